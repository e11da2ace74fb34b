"""A simulated customer base for the churn demo, with the true churn probability of every
customer on every date.

The model, per customer:

* attributes drawn at signup (segment, region, plan, acquisition channel) shift a long-run
  engagement level `mu`; the hidden engagement `e` drifts around it (mean-reverting walk);
* on each day an active customer starts to churn with a hazard that falls with engagement
  and rises for basic plans, paid acquisition and the first 60 days of tenure;
* a churning customer's activity and spend decay over `decay_days` (14-42, hidden), then stop;
* daily transactions are Poisson with rate `exp(e) * weekday factor * decay`; amounts are
  log-normal per customer with rare large outliers and refunds (negative amounts); a few
  merchant categories are missing; 30% of customers sign up during the window.

`truth` holds, for every customer signed up by D, the probability that they make no
transaction in (D, D + 30] given the generator's hidden state at the end of D (engagement,
churn stage, hazard). It treats engagement as constant over the horizon, so it is the best
achievable prediction up to that small drift; no model sees the hidden state.

Every block of `block_size` customers has its own random streams seeded by (seed, block),
so the data depend on the scenario only, never on how Spark schedules the blocks; the
transaction streams are separate from the state streams, so each table can be produced by
re-running the simulation without producing the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterator, Literal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from nightjar.config import Config
from nightjar.errors import ConfigError
from nightjar.generators import Blocks, Generator, in_spark

Output = Literal["customers", "transactions", "truth"]

SEGMENTS = np.array(["consumer", "small_business", "enterprise"])
REGIONS = np.array(["north", "south", "east", "west", "central"])
PLANS = np.array(["basic", "plus", "premium"])
ACQUISITION = np.array(["organic", "paid", "referral"])
CATEGORIES = np.array(
    ["grocery", "fuel", "dining", "travel", "electronics", "apparel", "health", "entertainment"]
)
CHANNELS = np.array(["in_store", "online", "mobile"])

SEGMENT_P = [0.8, 0.15, 0.05]
REGION_P = [0.25, 0.2, 0.2, 0.2, 0.15]
PLAN_P = [0.6, 0.3, 0.1]
ACQUISITION_P = [0.5, 0.3, 0.2]
SEGMENT_ENGAGEMENT = np.array([0.0, 0.25, 0.5])
PLAN_ENGAGEMENT = np.array([-0.15, 0.1, 0.3])
SEGMENT_SPEND = np.array([1.0, 3.0, 8.0])
PLAN_HAZARD = np.array([1.35, 0.9, 0.55])
REGION_HAZARD = np.array([1.0, 1.1, 0.9, 1.0, 1.2])
ACQUISITION_HAZARD = np.array([1.0, 1.4, 0.8])
DECAY_DAYS = np.array([14, 21, 28, 35, 42])
# Monday .. Sunday: busier towards the weekend, quiet on Sunday.
WEEKDAY_FACTOR = np.array([0.95, 0.95, 1.0, 1.0, 1.15, 1.25, 0.7])
HOUR_P = np.array(
    [1, 0.5, 0.3, 0.3, 0.3, 0.5, 1, 2, 4, 5, 5, 6, 8, 7, 6, 6, 6, 7, 8, 8, 7, 5, 3, 2], dtype=float
)
HOUR_P /= HOUR_P.sum()

ENGAGEMENT_MEAN = -0.4
ENGAGEMENT_SPREAD = 0.9
ENGAGEMENT_REVERSION = 0.03
ENGAGEMENT_NOISE = 0.08
BASE_HAZARD = 0.0012
HAZARD_SENSITIVITY = 0.9
NEW_CUSTOMER_DAYS = 60
EXISTING_SHARE = 0.7
EXISTING_MAX_TENURE_DAYS = 365
OUTLIER_RATE = 0.0005
REFUND_RATE = 0.01
MISSING_CATEGORY_RATE = 0.002
TRANSACTION_ID_STRIDE = 10**10


@dataclass(frozen=True)
class ChurnScenario(Blocks):
    """What determines the generated data, and the column names the use case gives them."""

    horizon_days: int
    key: str = "customer_id"
    signup_ts: str = "signup_ts"
    signup_date: str = "signup_date"
    event_ts: str = "ts"
    event_date: str = "event_date"

    def parameters(self) -> dict[str, object]:
        """The values that determine the data, recorded with the tables they produce."""
        return {
            "scenario": "churn",
            "seed": self.seed,
            "entities": self.entities,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "block_size": self.block_size,
            "horizon_days": self.horizon_days,
        }


def customers_schema(s: ChurnScenario) -> T.StructType:
    return T.StructType(
        [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(s.signup_ts, T.TimestampType(), False),
            T.StructField("segment", T.StringType(), False),
            T.StructField("region", T.StringType(), False),
            T.StructField("plan", T.StringType(), False),
            T.StructField("acquisition_channel", T.StringType(), False),
            T.StructField(s.signup_date, T.DateType(), False),
        ]
    )


def transactions_schema(s: ChurnScenario) -> T.StructType:
    return T.StructType(
        [
            T.StructField("transaction_id", T.LongType(), False),
            T.StructField(s.key, T.LongType(), False),
            T.StructField(s.event_ts, T.TimestampType(), False),
            T.StructField("amount", T.DoubleType(), False),
            T.StructField("merchant_category", T.StringType(), True),
            T.StructField("channel", T.StringType(), False),
            T.StructField(s.event_date, T.DateType(), False),
        ]
    )


def truth_schema(s: ChurnScenario) -> T.StructType:
    return T.StructType(
        [
            T.StructField(s.key, T.LongType(), False),
            T.StructField("churn_probability", T.DoubleType(), False),
            T.StructField("stage", T.StringType(), False),
            T.StructField("engagement", T.DoubleType(), False),
            T.StructField("ds", T.DateType(), False),
        ]
    )


SCHEMAS = {"customers": customers_schema, "transactions": transactions_schema, "truth": truth_schema}


def generate(spark: SparkSession, scenario: ChurnScenario, output: Output) -> DataFrame:
    """One generated table as a DataFrame: each Spark task simulates whole blocks of customers."""
    return in_spark(spark, scenario, SCHEMAS[output](scenario),
                    lambda block: simulate_block(scenario, block, output))


def simulate_block(scenario: ChurnScenario, block: int, output: Output) -> Iterator[pd.DataFrame]:
    """Simulate block `block` day by day and yield `output`'s rows, one frame per day."""
    first = block * scenario.block_size
    ids = np.arange(first, min(first + scenario.block_size, scenario.entities), dtype=np.int64) + 1
    n = len(ids)
    attribute_seed, state_seed, transaction_seed = np.random.SeedSequence([scenario.seed, block]).spawn(3)
    attribute_rng = np.random.default_rng(attribute_seed)
    state_rng = np.random.default_rng(state_seed)
    transaction_rng = np.random.default_rng(transaction_seed)

    days = scenario.days
    existing = attribute_rng.random(n) < EXISTING_SHARE
    signup_day = np.where(
        existing,
        -attribute_rng.integers(1, EXISTING_MAX_TENURE_DAYS + 1, n),
        attribute_rng.integers(0, days, n),
    )
    signup_second = attribute_rng.integers(0, 86_400, n)
    segment = attribute_rng.choice(len(SEGMENTS), n, p=SEGMENT_P)
    region = attribute_rng.choice(len(REGIONS), n, p=REGION_P)
    plan = attribute_rng.choice(len(PLANS), n, p=PLAN_P)
    acquisition = attribute_rng.choice(len(ACQUISITION), n, p=ACQUISITION_P)
    long_run = (
        ENGAGEMENT_MEAN
        + SEGMENT_ENGAGEMENT[segment]
        + PLAN_ENGAGEMENT[plan]
        + attribute_rng.normal(0.0, ENGAGEMENT_SPREAD, n)
    )
    stationary_spread = ENGAGEMENT_NOISE / math.sqrt(2 * ENGAGEMENT_REVERSION)
    engagement = long_run + attribute_rng.normal(0.0, stationary_spread, n)
    decay_days = attribute_rng.choice(DECAY_DAYS, n)
    spend_scale = np.exp(attribute_rng.normal(math.log(30.0), 0.6, n)) * SEGMENT_SPEND[segment]
    category_cumulative = np.cumsum(attribute_rng.dirichlet(np.full(len(CATEGORIES), 0.4), n), axis=1)
    channel_cumulative = np.cumsum(attribute_rng.dirichlet(np.array([2.0, 1.5, 1.5]), n), axis=1)
    # Frailty: part of the churn risk that nothing observable explains.
    frailty = np.exp(attribute_rng.normal(-0.125, 0.5, n))
    hazard_scale = (
        BASE_HAZARD * PLAN_HAZARD[plan] * REGION_HAZARD[region] * ACQUISITION_HAZARD[acquisition] * frailty
    )

    if output == "customers":
        yield _customers_frame(scenario, ids, signup_day, signup_second, segment, region, plan, acquisition)
        return

    start = scenario.start_date
    weekday = np.array([(start + timedelta(days=t)).weekday() for t in range(days + scenario.horizon_days + 1)])
    churn_start = np.full(n, -1, dtype=np.int64)
    next_transaction = block * TRANSACTION_ID_STRIDE

    for t in range(days):
        today = start + timedelta(days=t)
        signed_up = signup_day <= t
        hazard = _hazard(hazard_scale, engagement, t - signup_day)
        onset = signed_up & (churn_start < 0) & (state_rng.random(n) < hazard)
        churn_start[onset] = t
        churning = churn_start >= 0
        since = t - churn_start
        departed = churning & (since >= decay_days)
        remaining = np.where(churning & ~departed, _decay(since, decay_days), 1.0)
        rate = np.where(signed_up & ~departed, np.exp(engagement) * WEEKDAY_FACTOR[weekday[t]] * remaining, 0.0)
        counts = state_rng.poisson(rate)

        if output == "transactions" and counts.sum():
            frame = _transactions_frame(
                scenario, transaction_rng, today, ids, counts, next_transaction,
                signup_day == t, signup_second, spend_scale, remaining,
                category_cumulative, channel_cumulative,
            )
            next_transaction += len(frame)
            yield frame
        elif output == "truth" and signed_up.any():
            probability = _no_event_probability(
                scenario.horizon_days, WEEKDAY_FACTOR[weekday[t + 1 : t + 1 + scenario.horizon_days]],
                engagement, hazard_scale, t + 1 - signup_day, churn_start, decay_days, departed, t,
            )
            stage = np.where(departed, "departed", np.where(churning, "churning", "active"))
            keep = signed_up
            yield pd.DataFrame(
                {
                    scenario.key: ids[keep],
                    "churn_probability": probability[keep],
                    "stage": stage[keep],
                    "engagement": engagement[keep],
                    "ds": [today] * int(keep.sum()),
                }
            )

        engagement = (
            engagement
            + ENGAGEMENT_REVERSION * (long_run - engagement)
            + ENGAGEMENT_NOISE * state_rng.standard_normal(n)
        )


def _hazard(scale: np.ndarray, engagement: np.ndarray, tenure_days: np.ndarray) -> np.ndarray:
    new_customer = np.where(tenure_days < NEW_CUSTOMER_DAYS, 2.0, 1.0)
    hazard = scale * np.exp(-HAZARD_SENSITIVITY * (engagement - ENGAGEMENT_MEAN)) * new_customer
    return np.minimum(hazard, 0.2)


def _decay(days_since_onset: np.ndarray, decay_days: np.ndarray) -> np.ndarray:
    """Activity multiplier `days_since_onset` days into churn: 1 at onset, 0 at departure."""
    fraction = np.clip(1.0 - days_since_onset / decay_days, 0.0, 1.0)
    return fraction**1.5


def _no_event_probability(
    horizon: int,
    weekday_factor: np.ndarray,
    engagement: np.ndarray,
    hazard_scale: np.ndarray,
    tenure_days: np.ndarray,
    churn_start: np.ndarray,
    decay_days: np.ndarray,
    departed: np.ndarray,
    today: int,
) -> np.ndarray:
    """P(no transaction on days today+1 .. today+horizon | hidden state at the end of today).

    Counts are Poisson, so P(none) = exp(-expected count). An active customer may start to
    churn on any day k of the horizon (geometric with the current hazard), after which its
    rate decays; the probability sums over those cases.
    """
    rate = np.exp(engagement)
    offsets = np.arange(1, horizon + 1)
    probability = np.ones(len(rate))

    churning = (churn_start >= 0) & ~departed
    if churning.any():
        since = today + offsets[None, :] - churn_start[churning, None]
        expected = rate[churning] * (weekday_factor[None, :] * _decay(since, decay_days[churning, None])).sum(axis=1)
        probability[churning] = np.exp(-expected)

    active = churn_start < 0
    if active.any():
        hazard = _hazard(hazard_scale[active], engagement[active], tenure_days[active])
        # exposure[L, k]: the expected count per unit rate when churn starts on day k (1-based)
        # of the horizon with decay length L; column 0 is "no churn within the horizon".
        exposure = np.empty((len(DECAY_DAYS), horizon + 1))
        exposure[:, 0] = weekday_factor.sum()
        for k in range(1, horizon + 1):
            before = weekday_factor[: k - 1].sum()
            for row, length in enumerate(DECAY_DAYS):
                after = (weekday_factor[k - 1 :] * _decay(np.arange(horizon - k + 1), length)).sum()
                exposure[row, k] = before + after
        row_of = np.searchsorted(DECAY_DAYS, decay_days[active])
        survive = 1.0 - hazard
        weights = np.empty((int(active.sum()), horizon + 1))
        weights[:, 0] = survive**horizon
        weights[:, 1:] = hazard[:, None] * survive[:, None] ** (offsets[None, :] - 1)
        probability[active] = (weights * np.exp(-rate[active, None] * exposure[row_of])).sum(axis=1)
    return probability


def _customers_frame(
    s: ChurnScenario,
    ids: np.ndarray,
    signup_day: np.ndarray,
    signup_second: np.ndarray,
    segment: np.ndarray,
    region: np.ndarray,
    plan: np.ndarray,
    acquisition: np.ndarray,
) -> pd.DataFrame:
    start = np.datetime64(s.start_date.isoformat(), "D")
    signup_date = start + signup_day.astype("timedelta64[D]")
    signup_ts = signup_date.astype("datetime64[s]") + signup_second.astype("timedelta64[s]")
    return pd.DataFrame(
        {
            s.key: ids,
            s.signup_ts: signup_ts.astype("datetime64[ns]"),
            "segment": SEGMENTS[segment],
            "region": REGIONS[region],
            "plan": PLANS[plan],
            "acquisition_channel": ACQUISITION[acquisition],
            s.signup_date: [d.item() for d in signup_date],
        }
    )


def _transactions_frame(
    s: ChurnScenario,
    rng: np.random.Generator,
    today: date,
    ids: np.ndarray,
    counts: np.ndarray,
    first_id: int,
    signs_up_today: np.ndarray,
    signup_second: np.ndarray,
    spend_scale: np.ndarray,
    remaining: np.ndarray,
    category_cumulative: np.ndarray,
    channel_cumulative: np.ndarray,
) -> pd.DataFrame:
    who = np.repeat(np.arange(len(ids)), counts)
    total = len(who)
    second = rng.choice(24, total, p=HOUR_P) * 3600 + rng.integers(0, 3600, total)
    # A customer's first day starts at signup: no transaction before the account exists.
    second = np.where(signs_up_today[who], np.maximum(second, signup_second[who]), second)
    spend = spend_scale[who] * (0.5 + 0.5 * remaining[who]) * np.exp(rng.normal(-0.4, 0.9, total))
    outlier = rng.random(total) < OUTLIER_RATE
    spend = np.where(outlier, spend * (20.0 + rng.pareto(1.5, total)), spend)
    refund = rng.random(total) < REFUND_RATE
    amount = np.round(np.where(refund, -spend, spend), 2)
    category_draw = rng.random(total)
    category = (category_draw[:, None] > category_cumulative[who]).sum(axis=1)
    category = np.minimum(category, len(CATEGORIES) - 1)
    missing_category = rng.random(total) < MISSING_CATEGORY_RATE
    channel_draw = rng.random(total)
    channel = np.minimum((channel_draw[:, None] > channel_cumulative[who]).sum(axis=1), len(CHANNELS) - 1)
    order = np.lexsort((who, second))
    midnight = np.datetime64(today.isoformat(), "s")
    return pd.DataFrame(
        {
            "transaction_id": first_id + np.arange(total, dtype=np.int64),
            s.key: ids[who][order],
            s.event_ts: (midnight + second[order].astype("timedelta64[s]")).astype("datetime64[ns]"),
            "amount": amount[order],
            "merchant_category": pd.array(np.where(missing_category, None, CATEGORIES[category])[order], dtype=object),
            "channel": CHANNELS[channel][order],
            s.event_date: [today] * total,
        }
    )


def scenario_for(config: Config, start: date, end: date, entities: int, seed: int) -> ChurnScenario:
    """The scenario of `config`'s use case: its sources `customers` and `transactions` name the columns."""
    horizon_days = config.use_case.label.horizon.whole_days
    if horizon_days is None:
        # The simulation steps in days: its true probabilities exist for whole-day horizons only.
        raise ConfigError(
            f"use_case.label.horizon: the churn generator simulates whole days, not {config.use_case.label.horizon}"
        )
    customers, transactions = config.use_case.sources["customers"], config.use_case.sources["transactions"]
    assert config.generate is not None
    return ChurnScenario(
        seed=seed,
        entities=entities,
        start_date=start,
        end_date=end,
        block_size=config.generate.block_size,
        horizon_days=horizon_days,
        key=config.use_case.entity.key,
        signup_ts=customers.timestamp,
        signup_date=customers.partition,
        event_ts=transactions.timestamp,
        event_date=transactions.partition,
    )


GENERATOR = Generator(outputs=("customers", "transactions", "truth"), scenario=scenario_for, generate=generate)  # type: ignore[arg-type]
