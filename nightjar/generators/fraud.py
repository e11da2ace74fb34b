"""Simulated card payments for the fraud-detection demo, with the true probability that each
transaction is reported as fraud (a chargeback) within the labels' maturity.

The model. Merchants (about one per 20 cards, at least 50) are drawn from the seed alone, so every
block of cards sees the same ones:

* each merchant has a category (grocery, fuel, restaurant, retail, online_retail, electronics,
  travel, digital_goods), a log-normal popularity scaled by how often its category is visited,
  and an opening instant (3% open during the window and take transactions from the next day on);
* compromised periods (a breach: skimmers, a hacked checkout): per merchant, Poisson(`COMPROMISE_RATE`
  per day) periods start on whole days, last 5-30 days and carry a hidden share (20-50%): in the
  period, each of the cardholders' own transactions at the merchant gives the card's data away
  with that probability (overlapping periods combine as 1 - prod(1 - share)). The transactions
  there are the cardholders' own, never frauds; the frauds come later, elsewhere (scenario 3).

Each card (issued before the window, on the first of a month; 5% during it) has habits drawn once:
a rate of transactions (gamma, `TX_PER_DAY` a day on average), a weekend lean, a daily rhythm
(`HOUR_P` shifted by -2 .. +2 hours), a typical amount (log-normal median, higher for credit
cards, and spread), a home set of 4-20 favourite merchants with their weights, and a share of
exploration (transactions at any open merchant, by popularity). Its own transactions, day by day:

* Poisson(rate x weekday factor) a day, at an hour from its rhythm, a whole second in it (two
  transactions of a card sometimes share a second); none before the card's issue;
* at a home merchant, or with the exploration share at any merchant open that day;
* amount `median x CATEGORY_AMOUNT[category] x exp(spread x N(0, 1))`, in cents; online with the
  category's `CATEGORY_ONLINE` probability.

Fraud scenarios, interleaved with the cardholder's own transactions (which go on regardless):

1. stolen card: Poisson(`STOLEN_RATE` per day) thefts at uniform instants (night included);
   from each, a burst of 3 + Poisson(5) transactions, `STOLEN_GAP_S` apart on average
   (exponential), then the card is blocked (the replacement keeps the card's id). Amounts
   `median x exp(N(log 6, 0.4))`, at merchants drawn by popularity from online_retail,
   electronics, digital_goods and travel (seldom the card's own), 85% online: every one a fraud;
2. card testing: Poisson(`TESTING_RATE` per day) runs of 2 + Poisson(2) amounts under 3.00,
   `TESTING_GAP_S` apart on average, each at an online_retail or digital_goods merchant, online;
   40% followed, `TESTING_FOLLOW_UP_GAP_S` later on average, by one of `median x exp(N(log 5,
   0.4))`: every one a fraud;
3. compromised merchants (above), as a common point of purchase: a card whose data a compromised
   merchant gave away (once per card: the data are the same) is cashed out 1 + Exponential(6)
   days later, by 1 + Poisson(3) transactions `CASH_OUT_GAP_S` apart on average (exponential),
   of `median x exp(N(log 4, 0.5))` at merchants drawn by popularity from electronics, retail,
   online_retail, travel and digital_goods, 70% online (the rest counterfeit cards in shops):
   every one a fraud. Slower and less extreme than a stolen card's burst; the card's own history
   is what shows it, not the merchant's, whose chargebacks rise only as its frauds are reported.

A transaction that is not a fraud is disputed all the same (friendly fraud) with probability
`DISPUTE_P`. A fraud is reported with probability `REPORT_P`, a delay `2 + 43 U**2` days after
the transaction (U uniform: between 2 and 45 days, median 12.75) rounded down to a whole second;
a dispute likewise. `chargebacks` holds the reports known by the window's end (later ones are
not known yet and left out).

`truth` holds, for every transaction, the probability that it is reported within the label's
maturity `h` given the regime it came from (its hidden state: the cardholder's own, a cash-out of
data from a compromised merchant, a stolen card's burst, card testing):

    fraud_probability = (q REPORT_P + (1 - q) DISPUTE_P) P(delay < h),
    P(delay < h) = clip(sqrt((h - 2 days) / 43 days), 0, 1)

with q = 1 for the fraudsters' transactions, 0 for the cardholders' own;
`regime` names the regime (legit, compromised_merchant, stolen_card, card_testing). The label is
drawn from exactly that law, independently of everything observable given the regime, so the
truth is the best achievable prediction; it is not 0/1 (8% of frauds are never reported, a few
legitimate transactions are), so its PR-AUC is high but below 1 (0.86 on 10,000 cards over 60
days). About 0.37% of transactions are frauds: stolen cards 0.24%, card testing 0.05%, cash-outs of
compromised merchants' cards 0.08% (lumpy: a few merchants at a time; 10,000 cards over 60 days
with seed 11).

Every block of `block_size` cards has its own random streams seeded by (seed, block, stream):
the cards' habits, their transactions, the thefts, the testing runs, the labels and the captures
at compromised merchants each in one (transaction ids: block * 10**10 + a counter in time order),
so the data depend on the scenario only, never on how Spark schedules the blocks, and each table
is produced by re-running the simulation without the others. The merchants' streams are seeded by
the seed alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Iterator, Literal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from nightjar.config import Config
from nightjar.errors import ConfigError
from nightjar.generators import Blocks, Generator, NamedOutputs, in_spark

Output = Literal["cards", "merchants", "transactions", "chargebacks", "truth"]
OUTPUTS: tuple[Output, ...] = ("cards", "merchants", "transactions", "chargebacks", "truth")

CATEGORIES = np.array(
    ["grocery", "fuel", "restaurant", "retail", "online_retail", "electronics", "travel", "digital_goods"]
)
CATEGORY_P = np.array([0.22, 0.08, 0.22, 0.18, 0.1, 0.06, 0.05, 0.09])       # share of merchants
CATEGORY_VISITS = np.array([1.6, 1.2, 1.2, 0.8, 0.8, 0.4, 0.3, 0.6])         # popularity factor
CATEGORY_AMOUNT = np.array([1.0, 1.3, 0.7, 1.4, 1.2, 3.0, 6.0, 0.35])        # times the card's median
CATEGORY_ONLINE = np.array([0.03, 0.0, 0.05, 0.2, 1.0, 0.45, 0.8, 1.0])      # P(online)
CARD_TYPES = np.array(["debit", "credit"])
CHANNELS = np.array(["in_store", "online"])
REGIMES = np.array(["legit", "compromised_merchant", "stolen_card", "card_testing"])
LEGIT, COMPROMISED, STOLEN, TESTING = range(4)

MERCHANTS_PER_CARD = 1 / 20
MIN_MERCHANTS = 50
POPULARITY_SPREAD = 1.0               # log-normal merchant popularity
NEW_MERCHANT_SHARE = 0.03             # opened during the window
MERCHANT_MAX_AGE_MONTHS = 120

NEW_CARD_SHARE = 0.05                 # issued during the window
CARD_MAX_AGE_MONTHS = 48
CREDIT_SHARE = 0.4
CREDIT_AMOUNT = 1.35                  # credit cards' typical amounts are higher
TX_PER_DAY = 5.0                      # the mean of the cards' rates...
RATE_SHAPE = 2.0                      # ...gamma distributed with this shape
MEDIAN_AMOUNT, MEDIAN_SPREAD = 30.0, 0.6
AMOUNT_SPREAD = (0.4, 0.8)            # per card: the log spread of its amounts
HOME_MIN, HOME_EXTRA, HOME_MAX = 4, 6, 20   # favourite merchants: 4 + Poisson(6), at most 20
EXPLORE_BETA = (2.0, 12.0)            # per card: the share of transactions outside the home set
WEEKEND_LEAN = 0.25                   # per card: log spread of the weekend factor
# Monday .. Sunday, mean 1: busier towards the weekend, quiet on Sunday.
WEEKDAY_FACTOR = np.array([0.95, 0.97, 1.0, 1.02, 1.12, 1.1, 0.84])
# Hours of the day (UTC): few transactions at night.
HOUR_P = np.array([0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 1, 2.5, 4, 5, 5.5, 6.5, 8, 7, 6, 6, 6.5, 7.5, 8, 7.5, 6, 4.5, 3, 1.5])
HOUR_P = HOUR_P / HOUR_P.sum()
HOUR_SHIFT = 2                        # per card: its rhythm shifted by -2 .. +2 hours

STOLEN_RATE = 0.0015                  # thefts per card and day
STOLEN_MIN_TX, STOLEN_EXTRA_TX = 3, 5.0     # burst: 3 + Poisson(5) transactions...
STOLEN_GAP_S = 20 * 60.0              # ...this far apart on average
STOLEN_AMOUNT = (math.log(6.0), 0.4)  # log-normal, times the card's median
STOLEN_ONLINE = 0.85
STOLEN_CATEGORY_P = {"online_retail": 0.3, "electronics": 0.35, "digital_goods": 0.25, "travel": 0.1}
TESTING_RATE = 0.0006                 # card-testing runs per card and day
TESTING_MIN_TX, TESTING_EXTRA_TX = 2, 2.0
TESTING_GAP_S = 45.0
TESTING_AMOUNT = (0.5, 3.0)           # uniform, rounded down to cents: always under 3.00
TESTING_CATEGORY_P = {"online_retail": 0.5, "digital_goods": 0.5}
TESTING_FOLLOW_UP = 0.4               # share of runs followed by a larger amount...
TESTING_FOLLOW_UP_GAP_S = 20 * 60.0
TESTING_FOLLOW_UP_AMOUNT = (math.log(5.0), 0.4)
TESTING_FOLLOW_UP_CATEGORY_P = {"electronics": 0.5, "online_retail": 0.3, "digital_goods": 0.2}
COMPROMISE_RATE = 0.00025             # compromised periods starting per merchant and day
COMPROMISE_DAYS = (5, 30)
COMPROMISE_SHARE = (0.2, 0.5)         # per period: P(a transaction there gives the card's data away)
CASH_OUT_DELAY_DAYS = (1.0, 6.0)      # the run starts 1 + Exponential(6) days after the capture
CASH_OUT_MIN_TX, CASH_OUT_EXTRA_TX = 1, 3.0   # 1 + Poisson(3) transactions...
CASH_OUT_GAP_S = 3 * 3600.0           # ...this far apart on average
CASH_OUT_AMOUNT = (math.log(4.0), 0.5)   # log-normal, times the card's median
CASH_OUT_ONLINE = 0.7                 # the rest counterfeit cards in shops
CASH_OUT_CATEGORY_P = {"electronics": 0.3, "retail": 0.2, "online_retail": 0.25, "travel": 0.1, "digital_goods": 0.15}

REPORT_P = 0.92                       # a fraud is reported...
DISPUTE_P = 0.0002                    # ...and so is a legitimate transaction, rarely
DELAY_MIN_DAYS, DELAY_SPAN_DAYS = 2.0, 43.0   # delay = 2 + 43 U**2 days

ID_STRIDE = 10**10                    # transaction ids of block b: b * ID_STRIDE + 0, 1, ...
DAY_S = 86_400
# SeedSequence keys: (seed, _MERCHANT_STREAMS, stream) and (seed, _CARD_STREAMS, block, stream).
_MERCHANT_STREAMS, _CARD_STREAMS = 0, 1
_MERCHANT_ATTRIBUTES, _COMPROMISES = 0, 1
_CARD_HABITS, _TRANSACTIONS, _THEFTS, _TESTING, _LABELS, _CAPTURES = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class FraudScenario(Blocks, NamedOutputs):
    """What determines the generated data, and the column names the use case gives them.

    `entities` is the number of cards; `horizon_seconds` the labels' maturity. `columns[output]` is
    (timestamp column, partition column) of each source; `truth` is partitioned by `ds`.
    """

    horizon_seconds: int
    key: str = "transaction_id"
    columns: tuple[tuple[str, str, str], ...] = (
        ("cards", "issued_ts", "issued_date"),
        ("merchants", "opened_ts", "opened_date"),
        ("transactions", "ts", "tx_date"),
        ("chargebacks", "reported_at", "reported_date"),
    )

    @property
    def merchants(self) -> int:
        return max(MIN_MERCHANTS, round(self.entities * MERCHANTS_PER_CARD))

    def parameters(self) -> dict[str, object]:
        """The values that determine the data, recorded with the tables they produce."""
        return {
            "scenario": "fraud",
            "seed": self.seed,
            "entities": self.entities,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "block_size": self.block_size,
            "horizon_seconds": self.horizon_seconds,
        }


def schema(s: FraudScenario, output: Output) -> T.StructType:
    """The Spark schema of one generated table."""
    ts = s.timestamp(output) if output != "truth" else ""
    columns: dict[str, list[T.StructField]] = {
        "cards": [
            T.StructField("card_id", T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("card_type", T.StringType(), False),
        ],
        "merchants": [
            T.StructField("merchant_id", T.LongType(), False),
            T.StructField("category", T.StringType(), False),
            T.StructField(ts, T.TimestampType(), False),
        ],
        "transactions": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField("card_id", T.LongType(), False),
            T.StructField("merchant_id", T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("amount", T.DoubleType(), False),
            T.StructField("channel", T.StringType(), False),
            T.StructField("merchant_category", T.StringType(), False),
        ],
        "chargebacks": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
        ],
        "truth": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField("fraud_probability", T.DoubleType(), False),
            T.StructField("regime", T.StringType(), False),
        ],
    }
    return T.StructType([*columns[output], T.StructField(s.partition(output), T.DateType(), False)])


def generate(spark: SparkSession, scenario: FraudScenario, output: Output) -> DataFrame:
    """One generated table as a DataFrame: each Spark task simulates whole blocks of cards
    (`merchants` comes from block 0)."""
    return in_spark(spark, scenario, schema(scenario, output), lambda block: simulate_block(scenario, block, output))


def delay_within(horizon_seconds: int) -> float:
    """P(a report's delay < the horizon): delay = 2 + 43 U**2 days, floored to whole seconds, and
    a whole number of seconds is below the horizon exactly when the unfloored delay is."""
    days = horizon_seconds / DAY_S
    return min(1.0, math.sqrt(max(days - DELAY_MIN_DAYS, 0.0) / DELAY_SPAN_DAYS))


def fraud_probability(q: np.ndarray, horizon_seconds: int) -> np.ndarray:
    """The truth: P(a chargeback within the horizon) of transactions that are frauds with probability `q`."""
    return (q * REPORT_P + (1.0 - q) * DISPUTE_P) * delay_within(horizon_seconds)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(key)))


@dataclass(frozen=True)
class _Merchants:
    """The merchants, the same for every block: drawn from the seed alone."""

    ids: np.ndarray
    category: np.ndarray         # index into CATEGORIES
    popularity: np.ndarray
    opened: np.ndarray           # seconds from the window's start (negative: before it)
    # Compromised periods, on whole days from the window's start: [start_day, end_day).
    compromised: np.ndarray      # index of the merchant
    start_day: np.ndarray
    end_day: np.ndarray
    share: np.ndarray

    @property
    def old(self) -> np.ndarray:
        """Merchants open before the window: the ones in home sets and the fraudsters' picks."""
        return self.opened < 0

    def share_on(self, day: int) -> np.ndarray:
        """Each merchant's compromise share on `day` (0 when not compromised)."""
        active = (self.start_day <= day) & (day < self.end_day)
        kept = np.ones(len(self.ids))
        np.multiply.at(kept, self.compromised[active], 1.0 - self.share[active])
        return 1.0 - kept


@functools.lru_cache(maxsize=4)
def _merchants(s: FraudScenario) -> _Merchants:
    m = s.merchants
    rng = _rng(s.seed, _MERCHANT_STREAMS, _MERCHANT_ATTRIBUTES)
    # One merchant of each category first, so a small population still has every category.
    category = np.concatenate([np.arange(len(CATEGORIES)), rng.choice(len(CATEGORIES), m - len(CATEGORIES), p=CATEGORY_P)])
    popularity = np.exp(rng.normal(0.0, POPULARITY_SPREAD, m)) * CATEGORY_VISITS[category]
    new = rng.random(m) < NEW_MERCHANT_SHARE
    new[: len(CATEGORIES)] = False
    months_ago = rng.integers(1, MERCHANT_MAX_AGE_MONTHS + 1, m)
    new_day = rng.integers(0, s.days, m)
    second = rng.integers(0, DAY_S, m)
    opened = np.where(new, new_day * DAY_S, -_days_since_first_of_month(s, months_ago) * DAY_S) + second

    rng = _rng(s.seed, _MERCHANT_STREAMS, _COMPROMISES)
    # Periods may start before the window (up to their longest length), so its first day is as
    # likely to be compromised as any other.
    lead = COMPROMISE_DAYS[1] - 1
    periods = rng.poisson(COMPROMISE_RATE * (s.days + lead), m)
    compromised = np.repeat(np.arange(m), periods)
    count = len(compromised)
    start_day = rng.integers(-lead, s.days, count)
    end_day = start_day + rng.integers(COMPROMISE_DAYS[0], COMPROMISE_DAYS[1] + 1, count)
    share = rng.uniform(*COMPROMISE_SHARE, count)
    return _Merchants(np.arange(1, m + 1, dtype=np.int64), category, popularity, opened.astype(np.int64),
                      compromised, start_day, end_day, share)


def _days_since_first_of_month(s: FraudScenario, months_ago: np.ndarray) -> np.ndarray:
    """Days from the first of the month `months_ago` months before the window's start to that start."""
    start_month = np.datetime64(s.start_date.isoformat(), "M")
    first = (start_month - months_ago.astype("timedelta64[M]")).astype("datetime64[D]")
    return (np.datetime64(s.start_date.isoformat(), "D") - first).astype(np.int64)


def _pick(rng: np.random.Generator, merchants: _Merchants, category_p: dict[str, float], count: int) -> np.ndarray:
    """`count` merchants open before the window, of categories drawn from `category_p`, each by popularity."""
    names = list(category_p)
    category = np.flatnonzero(np.isin(CATEGORIES, names))
    p = np.array([category_p[CATEGORIES[c]] for c in category])
    chosen = category[rng.choice(len(category), count, p=p / p.sum())]
    draw = rng.random(count)
    picked = np.empty(count, dtype=np.int64)
    for c in category:  # a loop over categories, not transactions
        pool = np.flatnonzero((merchants.category == c) & merchants.old)
        cumulative = np.cumsum(merchants.popularity[pool])
        at = chosen == c
        picked[at] = pool[np.minimum(np.searchsorted(cumulative, draw[at] * cumulative[-1], side="right"), len(pool) - 1)]
    return picked


@dataclass(frozen=True)
class _Cards:
    """The cards of a block and their hidden habits."""

    ids: np.ndarray
    issued: np.ndarray           # seconds from the window's start (negative: before it)
    credit: np.ndarray
    rate: np.ndarray             # transactions a day
    weekday: np.ndarray          # (cards, 7): the card's weekday factors
    shift: np.ndarray            # hours its rhythm is shifted by
    log_median: np.ndarray
    spread: np.ndarray
    explore: np.ndarray
    home: np.ndarray             # (cards, HOME_MAX): favourite merchants (indices)
    home_cumulative: np.ndarray  # (cards, HOME_MAX): their cumulative weights, 1 from the last on


def _cards(s: FraudScenario, block: int, merchants: _Merchants) -> _Cards:
    first = block * s.block_size
    ids = np.arange(first, min(first + s.block_size, s.entities), dtype=np.int64) + 1
    n = len(ids)
    rng = _rng(s.seed, _CARD_STREAMS, block, _CARD_HABITS)
    new = rng.random(n) < NEW_CARD_SHARE
    months_ago = rng.integers(1, CARD_MAX_AGE_MONTHS + 1, n)
    new_day = rng.integers(0, s.days, n)
    second = rng.integers(0, DAY_S, n)
    issued = np.where(new, new_day * DAY_S, -_days_since_first_of_month(s, months_ago) * DAY_S) + second
    credit = rng.random(n) < CREDIT_SHARE
    rate = rng.gamma(RATE_SHAPE, TX_PER_DAY / RATE_SHAPE, n)
    weekend = np.array([0, 0, 0, 0, 0, 1, 1]) - 2 / 7
    weekday = WEEKDAY_FACTOR[None, :] * np.exp(rng.normal(0.0, WEEKEND_LEAN, n)[:, None] * weekend[None, :])
    shift = rng.integers(-HOUR_SHIFT, HOUR_SHIFT + 1, n)
    log_median = rng.normal(math.log(MEDIAN_AMOUNT), MEDIAN_SPREAD, n) + np.where(credit, math.log(CREDIT_AMOUNT), 0.0)
    spread = rng.uniform(*AMOUNT_SPREAD, n)
    explore = rng.beta(*EXPLORE_BETA, n)
    size = np.minimum(HOME_MIN + rng.poisson(HOME_EXTRA, n), HOME_MAX)
    old = np.flatnonzero(merchants.old)
    cumulative = np.cumsum(merchants.popularity[old])
    home = old[np.minimum(np.searchsorted(cumulative, rng.random((n, HOME_MAX)) * cumulative[-1], side="right"), len(old) - 1)]
    weights = rng.gamma(1.0, 1.0, (n, HOME_MAX)) * (np.arange(HOME_MAX)[None, :] < size[:, None])
    home_cumulative = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    home_cumulative[np.arange(HOME_MAX)[None, :] >= size[:, None] - 1] = 1.0
    return _Cards(ids, issued.astype(np.int64), credit, rate, weekday, shift, log_median, spread, explore, home,
                  home_cumulative)


@dataclass(frozen=True)
class _Events:
    """Transactions as parallel arrays: card (index in the block), merchant (index), second from the
    window's start, amount, online, regime, and q, the probability that each is a fraud."""

    card: np.ndarray
    merchant: np.ndarray
    second: np.ndarray
    amount: np.ndarray
    online: np.ndarray
    regime: np.ndarray
    q: np.ndarray

    def take(self, index: np.ndarray | slice) -> _Events:
        return _Events(*(getattr(self, f.name)[index] for f in fields(_Events)))

    @staticmethod
    def concat(parts: list[_Events]) -> _Events:
        return _Events(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Events)))


def _grouped_cumsum(gaps: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The running sum of `gaps` within consecutive groups of `sizes`."""
    total = np.cumsum(gaps)
    first = np.cumsum(sizes) - sizes
    return total - np.repeat(total[first] - gaps[first], sizes) if len(gaps) else total


def _uniform_instants(rng: np.random.Generator, cards: _Cards, s: FraudScenario, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson(`rate` a day) process per card over its time in the window: (card, instant)."""
    exposure_start = np.maximum(cards.issued, 0).astype(np.float64)
    window = float(s.days * DAY_S)
    count = rng.poisson(rate * np.maximum(window - exposure_start, 0.0) / DAY_S)
    card = np.repeat(np.arange(len(cards.ids)), count)
    return card, exposure_start[card] + rng.random(len(card)) * (window - exposure_start[card])


def _spending_runs(
    rng: np.random.Generator, cards: _Cards, merchants: _Merchants, card: np.ndarray, start: np.ndarray,
    size: np.ndarray, gap_s: float, category_p: dict[str, float], log_amount: tuple[float, float], online_p: float,
    regime: int,
) -> _Events:
    """Fraudsters spending a card: from each `start`, `size` transactions `gap_s` apart on average
    (exponential), at merchants of `category_p` by popularity, of `median x exp(N(*log_amount))`,
    online with `online_p`: every one a fraud of `regime`."""
    run_card = np.repeat(card, size)
    at = np.repeat(start, size) + _grouped_cumsum(rng.exponential(gap_s, len(run_card)), size)
    return _Events(
        card=run_card,
        merchant=_pick(rng, merchants, category_p, len(run_card)),
        second=np.floor(at).astype(np.int64),
        amount=_cents(np.exp(cards.log_median[run_card] + rng.normal(*log_amount, len(run_card)))),
        online=rng.random(len(run_card)) < online_p,
        regime=np.full(len(run_card), regime, dtype=np.int8),
        q=np.ones(len(run_card)),
    )


def _fraud(s: FraudScenario, block: int, cards: _Cards, merchants: _Merchants) -> _Events:
    """The block's stolen-card bursts and card-testing runs over the whole window, by time."""
    rng = _rng(s.seed, _CARD_STREAMS, block, _THEFTS)
    card, theft = _uniform_instants(rng, cards, s, STOLEN_RATE)
    size = STOLEN_MIN_TX + rng.poisson(STOLEN_EXTRA_TX, len(card))
    stolen = _spending_runs(rng, cards, merchants, card, theft, size, STOLEN_GAP_S, STOLEN_CATEGORY_P, STOLEN_AMOUNT,
                            STOLEN_ONLINE, STOLEN)

    rng = _rng(s.seed, _CARD_STREAMS, block, _TESTING)
    card, start = _uniform_instants(rng, cards, s, TESTING_RATE)
    size = TESTING_MIN_TX + rng.poisson(TESTING_EXTRA_TX, len(card))
    run_card = np.repeat(card, size)
    tested_at = np.repeat(start, size) + _grouped_cumsum(rng.exponential(TESTING_GAP_S, len(run_card)), size)
    low, high = TESTING_AMOUNT
    small = _Events(
        card=run_card,
        merchant=_pick(rng, merchants, TESTING_CATEGORY_P, len(run_card)),
        second=np.floor(tested_at).astype(np.int64),
        amount=np.floor(rng.uniform(low, high, len(run_card)) * 100) / 100,
        online=np.ones(len(run_card), dtype=bool),
        regime=np.full(len(run_card), TESTING, dtype=np.int8),
        q=np.ones(len(run_card)),
    )
    last = np.cumsum(size) - 1
    followed = rng.random(len(card)) < TESTING_FOLLOW_UP
    follow_card = card[followed]
    follow_at = tested_at[last[followed]] + rng.exponential(TESTING_FOLLOW_UP_GAP_S, len(follow_card))
    follow_up = _Events(
        card=follow_card,
        merchant=_pick(rng, merchants, TESTING_FOLLOW_UP_CATEGORY_P, len(follow_card)),
        second=np.floor(follow_at).astype(np.int64),
        amount=_cents(np.exp(cards.log_median[follow_card] + rng.normal(*TESTING_FOLLOW_UP_AMOUNT, len(follow_card)))),
        online=np.ones(len(follow_card), dtype=bool),
        regime=np.full(len(follow_card), TESTING, dtype=np.int8),
        q=np.ones(len(follow_card)),
    )
    events = _Events.concat([stolen, small, follow_up])
    # A burst cut short by the window's end goes on after it, unseen.
    events = events.take(events.second < s.days * DAY_S)
    return events.take(np.argsort(events.second, kind="stable"))


def _cash_outs(rng: np.random.Generator, day: int, own: _Events, cards: _Cards, merchants: _Merchants,
               captured: np.ndarray) -> _Events:
    """The fraud runs on the cards whose data the day's compromised merchants captured: each of the
    cardholders' own transactions at a merchant in a compromised period captures the card with the
    period's share, once per card (`captured`, updated); its run starts days later, elsewhere."""
    # Drawn for every transaction, compromised merchant or not, so each draw's meaning never shifts.
    draw = rng.random(len(own.card))
    hit = np.flatnonzero((draw < merchants.share_on(day)[own.merchant]) & ~captured[own.card])
    # The card's earliest capture of the day: the data are the same.
    hit = hit[np.lexsort((own.second[hit], own.card[hit]))]
    hit = hit[np.unique(own.card[hit], return_index=True)[1]]
    card = own.card[hit]
    captured[card] = True
    start = own.second[hit] + (CASH_OUT_DELAY_DAYS[0] + rng.exponential(CASH_OUT_DELAY_DAYS[1], len(card))) * DAY_S
    size = CASH_OUT_MIN_TX + rng.poisson(CASH_OUT_EXTRA_TX, len(card))
    return _spending_runs(rng, cards, merchants, card, start, size, CASH_OUT_GAP_S, CASH_OUT_CATEGORY_P,
                          CASH_OUT_AMOUNT, CASH_OUT_ONLINE, COMPROMISED)


def _cents(amount: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(amount, 2), 0.01)


def _legit(
    rng: np.random.Generator, s: FraudScenario, day: int, cards: _Cards, merchants: _Merchants, open_cumulative: np.ndarray,
) -> _Events:
    """The cardholders' own transactions of one day."""
    weekday = (np.datetime64(s.start_date.isoformat(), "D").astype(np.int64) + day + 3) % 7  # 1970-01-01: Thursday
    counts = rng.poisson(cards.rate * cards.weekday[:, weekday])
    card = np.repeat(np.arange(len(cards.ids)), counts)
    total = len(card)
    hour = np.minimum(np.searchsorted(np.cumsum(HOUR_P), rng.random(total), side="right"), 23)
    second = day * DAY_S + ((hour + cards.shift[card]) % 24) * 3600 + rng.integers(0, 3600, total)
    # The home slot of each transaction: one search in every card's cumulative weights at once
    # (card c's row shifted to (c, c + 1]), rather than a (transactions x HOME_MAX) comparison.
    shifted = (cards.home_cumulative + np.arange(len(cards.ids))[:, None]).ravel()
    slot = np.searchsorted(shifted, card + rng.random(total), side="right") - card * HOME_MAX
    home = cards.home[card, np.minimum(slot, HOME_MAX - 1)]
    wander = np.minimum(np.searchsorted(open_cumulative, rng.random(total) * open_cumulative[-1], side="right"),
                        len(open_cumulative) - 1)
    merchant = np.where(rng.random(total) < cards.explore[card], wander, home)
    category = merchants.category[merchant]
    amount = _cents(np.exp(cards.log_median[card] + np.log(CATEGORY_AMOUNT[category])
                           + cards.spread[card] * rng.standard_normal(total)))
    online = rng.random(total) < CATEGORY_ONLINE[category]
    events = _Events(card, merchant, second.astype(np.int64), amount, online,
                     np.full(total, LEGIT, dtype=np.int8), np.zeros(total))
    # No transaction before the card exists (its first day is thinned, not shifted).
    return events.take(second >= cards.issued[card])


@dataclass(frozen=True)
class Day:
    """One simulated day of a block's transactions (ordered by time, card), with their hidden state
    and drawn outcome: what the tables are made of, and what tests check them against."""

    day: int
    ids: np.ndarray              # transaction ids
    card_ids: np.ndarray
    events: _Events
    fraud: np.ndarray            # drawn: a fraud (probability q)
    reported: np.ndarray         # drawn: reported (a fraud with REPORT_P, otherwise DISPUTE_P)
    delay_s: np.ndarray          # drawn: seconds from the transaction to its report
    truth: np.ndarray            # fraud_probability
    label: np.ndarray            # reported within the horizon


def simulate_days(s: FraudScenario, block: int) -> Iterator[Day]:
    """Simulate block `block` day by day: every day's transactions, hidden state and outcomes."""
    merchants = _merchants(s)
    cards = _cards(s, block, merchants)
    fraud = _fraud(s, block, cards, merchants)
    fraud_bounds = np.searchsorted(fraud.second, np.arange(s.days + 1) * DAY_S)
    transaction_rng = _rng(s.seed, _CARD_STREAMS, block, _TRANSACTIONS)
    label_rng = _rng(s.seed, _CARD_STREAMS, block, _LABELS)
    capture_rng = _rng(s.seed, _CARD_STREAMS, block, _CAPTURES)
    captured = np.zeros(len(cards.ids), dtype=bool)
    pending = fraud.take(slice(0, 0))  # cash-out runs of cards captured on earlier days, by time
    next_id = block * ID_STRIDE
    for day in range(s.days):
        # A merchant takes transactions from the day after it opens.
        open_cumulative = np.cumsum(merchants.popularity * (merchants.opened < day * DAY_S))
        legit = _legit(transaction_rng, s, day, cards, merchants, open_cumulative)
        due = np.searchsorted(pending.second, (day + 1) * DAY_S)
        # Every run starts at least a day after its capture, so none is due on the day it is drawn.
        cash_outs = _cash_outs(capture_rng, day, legit, cards, merchants, captured)
        today, pending = pending.take(slice(0, due)), _Events.concat([pending.take(slice(due, None)), cash_outs])
        pending = pending.take(np.argsort(pending.second, kind="stable"))
        events = _Events.concat([legit, today, fraud.take(slice(fraud_bounds[day], fraud_bounds[day + 1]))])
        events = events.take(np.lexsort((events.card, events.second)))
        total = len(events.card)
        # Drawn for every transaction whatever its regime, so each draw's meaning never shifts.
        is_fraud = label_rng.random(total) < events.q
        reported = label_rng.random(total) < np.where(is_fraud, REPORT_P, DISPUTE_P)
        delay_s = np.floor((DELAY_MIN_DAYS + DELAY_SPAN_DAYS * label_rng.random(total) ** 2) * DAY_S).astype(np.int64)
        yield Day(
            day=day,
            ids=next_id + np.arange(total, dtype=np.int64),
            card_ids=cards.ids[events.card],
            events=events,
            fraud=is_fraud,
            reported=reported,
            delay_s=delay_s,
            truth=fraud_probability(events.q, s.horizon_seconds),
            label=reported & (delay_s < s.horizon_seconds),
        )
        next_id += total


def simulate_block(s: FraudScenario, block: int, output: Output) -> Iterator[pd.DataFrame]:
    """Simulate block `block` and yield `output`'s rows: one frame for `cards` (and for
    `merchants`, from block 0 only), one a day for the others."""
    if output == "merchants":
        if block == 0:
            yield _merchants_frame(s, _merchants(s))
        return
    if output == "cards":
        yield _cards_frame(s, _cards(s, block, _merchants(s)))
        return
    merchants = _merchants(s)
    window_end = s.days * DAY_S
    for day in simulate_days(s, block):
        e = day.events
        if output == "transactions":
            frame = pd.DataFrame({
                s.key: day.ids,
                "card_id": day.card_ids,
                "merchant_id": merchants.ids[e.merchant],
                s.timestamp("transactions"): _instants(s, e.second),
                "amount": e.amount,
                "channel": CHANNELS[e.online.astype(np.int64)],
                "merchant_category": CATEGORIES[merchants.category[e.merchant]],
                s.partition("transactions"): [s.start_date + timedelta(days=day.day)] * len(e.second),
            })
        elif output == "truth":
            frame = pd.DataFrame({
                s.key: day.ids,
                "fraud_probability": day.truth,
                "regime": REGIMES[e.regime],
                "ds": [s.start_date + timedelta(days=day.day)] * len(e.second),
            })
        else:
            # Reports after the window's end are not known yet.
            reported_at = e.second + day.delay_s
            known = day.reported & (reported_at < window_end)
            frame = pd.DataFrame({
                s.key: day.ids[known],
                s.timestamp("chargebacks"): _instants(s, reported_at[known]),
                s.partition("chargebacks"): _dates(s, reported_at[known]),
            })
        if len(frame):
            yield frame


def _instants(s: FraudScenario, seconds: np.ndarray) -> np.ndarray:
    """Seconds from the window's start as timestamps (Spark keeps microseconds; these are whole seconds)."""
    return (np.datetime64(s.start_date.isoformat(), "s") + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")


def _dates(s: FraudScenario, seconds: np.ndarray) -> np.ndarray:
    """The UTC dates of seconds from the window's start, as `date` objects (Spark's DateType)."""
    days = np.floor_divide(seconds, DAY_S)
    unique, inverse = np.unique(days, return_inverse=True)
    start = np.datetime64(s.start_date.isoformat(), "D")
    as_dates = np.array([(start + np.timedelta64(int(d), "D")).item() for d in unique], dtype=object)
    return as_dates[inverse]


def _cards_frame(s: FraudScenario, cards: _Cards) -> pd.DataFrame:
    return pd.DataFrame({
        "card_id": cards.ids,
        s.timestamp("cards"): _instants(s, cards.issued),
        "card_type": CARD_TYPES[cards.credit.astype(np.int64)],
        s.partition("cards"): _dates(s, cards.issued),
    })


def _merchants_frame(s: FraudScenario, merchants: _Merchants) -> pd.DataFrame:
    return pd.DataFrame({
        "merchant_id": merchants.ids,
        "category": CATEGORIES[merchants.category],
        s.timestamp("merchants"): _instants(s, merchants.opened),
        s.partition("merchants"): _dates(s, merchants.opened),
    })


def scenario_for(config: Config, start: date, end: date, entities: int, seed: int) -> FraudScenario:
    """The scenario of `config`'s use case: `entities` cards; its sources named as this generator's
    outputs give the tables' timestamp and partition columns, its entity key the transactions' id
    column, and its label's horizon the maturity the truth is about."""
    label = config.use_case.label
    if label.source != "chargebacks" or label.kind != "any_event" or label.where:
        # The truth is the probability of a chargeback: another label would not be what it predicts.
        raise ConfigError(
            "use_case.label: the fraud generator's truth is about any event of the source chargebacks, "
            f"not {label.kind} of {label.source!r}" + (" with where" if label.where else "")
        )
    sources = config.use_case.sources
    assert config.generate is not None
    return FraudScenario(
        seed=seed,
        entities=entities,
        start_date=start,
        end_date=end,
        block_size=config.generate.block_size,
        horizon_seconds=label.horizon.micros // 1_000_000,
        key=config.use_case.entity.keys[0],
        columns=tuple((name, sources[name].timestamp, sources[name].partition) for name in OUTPUTS if name != "truth"),
    )


GENERATOR = Generator(outputs=OUTPUTS, scenario=scenario_for, generate=generate, simulated="cards")  # type: ignore[arg-type]
