"""A simulated retail chain for the demand forecasting demo: daily unit sales of every item in
every store, with the true mean demand of every (store, item, day) known.

The model, per store s, item i and day t (each item sold in every store, a series per pair):

    mean = base_i * size_s * weekly[category_i][weekday t] * yearly(category_i, day of year t)
           * exp(trend_i * years since the window's start) * (price / regular_i,s) ** elasticity_i
           * lift_i ** promo * launch(t - introduction_i) * competitor_s(t)

* `base_i`: log-normal; a third of the items are slow movers (a mean well under one unit a day
  in a typical store: mostly zero days, the intermittent demand that defeats plain averages);
* `size_s`: the store's format (express, supermarket, hypermarket) and its own spread;
* weekly and yearly seasonality per category (fresh food peaks on Saturdays, beverages in
  summer, snacks at the end of the year); a trend per item;
* the day's price: the item's regular price in the store, which steps now and then (a price
  change), less a promotion's discount on promotion days. Demand answers the price through the
  item's elasticity (price / its first regular price in that store), and a promotion lifts it
  further (display, advertising) by the item's `lift`;
* new items appear during the window: a series starts on its item's introduction day (no row
  before it) and ramps up over its first weeks (`launch`);
* a drift on `drift_date` (at `DRIFT_SHARE` of the window): a competitor opens near some stores
  (their demand drops to `COMPETITOR_FACTOR`), every `DRIFT_CATEGORY` item's regular price
  rises by `DRIFT_PRICE_FACTOR`, and promotions wear out: their lift beyond the discount keeps
  only `PROMO_FATIGUE` of its effect (a lift of 1.6 becomes 1.15). The first two move levels,
  which recent sales reveal to any model; the third changes how demand answers a promotion, a
  relation a model trained before the drift has learnt otherwise.

Units sold are Poisson around the mean (so their variance is the mean: a model can do no better
than the mean, and its squared error no better than the mean's). `sales` has one row per series
and day from its introduction on, also on days without a sale (units 0).

Prices and promotions are planned ahead: `plans` holds, per series and target day, the price
and promotion planned for it and `known_at`, when the plan became known: every plan is made
`plan_lead_days` (14) before its day; 5% are revised later (a promotion added or cancelled, or
another price), and the last plan known before a day is what happens that day. Plans reach
`plan_lead_days` past the window's end (the days a forecast at the end needs); plans known after
the end are not in the table.

`truth` holds the mean of every series and day sold (`ds` is the day the units are sold, not
a feature date): the best achievable one-day-ahead forecast of D + 1 is `truth` at ds = D + 1.

Every item has its own random streams, seeded by (seed, item), and every store its own, seeded
by (seed, store), so a series' data depend on the seed, the window and the number of stores
only: neither on the number of items nor on how they are grouped into blocks (Spark tasks).
Within an item the streams of its attributes, its schedule (prices, promotions), its sales
noise and its plan revisions are separate, so each table can be produced without the others.
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
from nightjar.generators import Blocks, Generator, NamedOutputs, in_spark

Output = Literal["series", "sales", "plans", "truth"]
OUTPUTS: tuple[Output, ...] = ("series", "sales", "plans", "truth")

CATEGORIES = np.array(["fresh", "dairy", "bakery", "beverages", "snacks", "household"])
CATEGORY_P = [0.2, 0.2, 0.15, 0.15, 0.15, 0.15]
CATEGORY_PRICE = np.array([2.5, 1.8, 2.2, 1.6, 2.0, 4.5])   # median regular price
# Monday .. Sunday, per category (normalised to a mean of 1 below).
WEEKLY = np.array([
    [0.85, 0.85, 0.9, 0.95, 1.15, 1.45, 0.85],
    [0.95, 0.95, 1.0, 1.0, 1.1, 1.25, 0.75],
    [0.9, 0.9, 0.9, 0.95, 1.1, 1.5, 0.75],
    [0.85, 0.85, 0.9, 0.95, 1.15, 1.35, 0.95],
    [0.9, 0.9, 0.9, 1.0, 1.2, 1.3, 0.8],
    [1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 0.85],
])
WEEKLY = WEEKLY / WEEKLY.mean(axis=1, keepdims=True)
YEARLY_AMPLITUDE = np.array([0.12, 0.04, 0.06, 0.35, 0.15, 0.04])   # on the log mean
YEARLY_PEAK_DAY = np.array([200, 15, 350, 200, 355, 90])           # day of the year of the peak
STORE_FORMATS = np.array(["express", "supermarket", "hypermarket"])
STORE_FORMAT_P = [0.3, 0.5, 0.2]
STORE_FORMAT_SIZE = np.array([0.5, 1.0, 2.0])
STORE_SIZE_SPREAD = 0.15
STORE_PRICE_SPREAD = 0.03

SLOW_SHARE = 0.3                         # slow movers: mostly zero days
SLOW_BASE, SLOW_SPREAD = 0.25, 0.6       # median units a day in a typical store, log spread
FAST_BASE, FAST_SPREAD = 5.0, 0.8
PRICE_SPREAD = 0.4
ELASTICITY = (-2.5, -0.8)
PROMO_LIFT = (1.2, 2.0)
TREND_SPREAD = 0.25                      # per year, on the log mean
NEW_ITEM_SHARE = 0.1                     # introduced during the window
MAX_AGE_MONTHS = 36                      # the others were introduced on the first of a month before it
LAUNCH_DIP, LAUNCH_DAYS = 0.6, 10.0      # a new series starts at 40% of its level, ramping up

PRICE_CHANGE_RATE = 1 / 90               # regular price changes per series and day...
PRICE_CHANGE_SPREAD = 0.07               # ...each a log-normal step
PROMO_START_RATE = 0.016                 # promotions starting per series and day: about 8% of days
PROMO_DAYS = (3, 7)
PROMO_DISCOUNT = (0.1, 0.3)

DRIFT_SHARE = 0.7                        # the drift's day, as a share of the window
COMPETITOR_SHARE = 0.3                   # stores near the new competitor...
COMPETITOR_FACTOR = 0.7                  # ...keep 70% of their demand from the drift on
DRIFT_CATEGORY = "snacks"
DRIFT_PRICE_FACTOR = 1.2
PROMO_FATIGUE = 0.25                     # the share of a promotion's lift - 1 left after the drift

PLAN_LEAD_DAYS = 14
PLAN_HOUR = 6                            # the plans of a day are published at 06:00 UTC
REVISION_RATE = 0.05
REVISED_PRICE_SPREAD = 0.05

_ITEM_STREAMS = 0                        # (seed, 0, item) and (seed, 1, store): never the same stream
_STORE_STREAMS = 1
_FLUSH_ROWS = 200_000                    # yield a block's rows in frames of about this many


@dataclass(frozen=True)
class DemandScenario(Blocks, NamedOutputs):
    """What determines the generated data, and the column names the use case gives them.

    `entities` is the number of series, `stores` times the number of items (every store sells
    every item). `block_size` is the series per Spark task, rounded down to whole items (an
    item's stores are simulated together); the data do not depend on it. `columns[output]` is
    (timestamp column, partition column) of each source; `truth` is partitioned by `ds`.
    """

    stores: int = 1
    plan_lead_days: int = PLAN_LEAD_DAYS
    plan_target: str = "target_date"  # the plans' column of the day a plan is for
    keys: tuple[str, str] = ("store_id", "item_id")
    columns: tuple[tuple[str, str, str], ...] = (
        ("series", "introduced_ts", "introduced_date"),
        ("sales", "ts", "sale_date"),
        ("plans", "known_at", "known_date"),
    )

    def __post_init__(self) -> None:
        if self.stores < 1 or self.entities % self.stores:
            raise ValueError(f"{self.entities} series are not a whole number of items in each of {self.stores} stores")

    @property
    def items(self) -> int:
        return self.entities // self.stores

    @property
    def items_per_block(self) -> int:
        return max(1, self.block_size // self.stores)

    @property
    def blocks(self) -> int:
        return math.ceil(self.items / self.items_per_block)

    @property
    def drift_day(self) -> int:
        """The first day of the new regime, in days from the window's start."""
        return int(round(DRIFT_SHARE * (self.days - 1)))

    @property
    def drift_date(self) -> date:
        return self.start_date + timedelta(days=self.drift_day)

    def parameters(self) -> dict[str, object]:
        """The values that determine the data, recorded with the tables they produce."""
        return {
            "scenario": "demand",
            "seed": self.seed,
            "entities": self.entities,
            "stores": self.stores,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "block_size": self.block_size,
            "plan_lead_days": self.plan_lead_days,
            "drift_date": self.drift_date.isoformat(),
        }


def schema(s: DemandScenario, output: Output) -> T.StructType:
    """The Spark schema of one generated table."""
    store, item = s.keys
    keys = [T.StructField(store, T.LongType(), False), T.StructField(item, T.LongType(), False)]
    fields: dict[str, list[T.StructField]] = {
        "series": [
            T.StructField(s.timestamp("series"), T.TimestampType(), False),
            T.StructField("category", T.StringType(), False),
            T.StructField("store_format", T.StringType(), False),
        ],
        "sales": [
            T.StructField(s.timestamp("sales"), T.TimestampType(), False),
            T.StructField("units", T.IntegerType(), False),
            T.StructField("price", T.DoubleType(), False),
            T.StructField("promo", T.IntegerType(), False),
        ],
        "plans": [
            T.StructField(s.plan_target, T.DateType(), False),
            T.StructField("planned_price", T.DoubleType(), False),
            T.StructField("planned_promo", T.IntegerType(), False),
            T.StructField(s.timestamp("plans"), T.TimestampType(), False),
        ],
        "truth": [T.StructField("mean_units", T.DoubleType(), False)],
    }
    return T.StructType([*keys, *fields[output], T.StructField(s.partition(output), T.DateType(), False)])


def generate(spark: SparkSession, scenario: DemandScenario, output: Output) -> DataFrame:
    """One generated table as a DataFrame: each Spark task simulates whole blocks of items."""
    return in_spark(spark, scenario, schema(scenario, output), lambda block: simulate_block(scenario, block, output))


@dataclass(frozen=True)
class _Stores:
    """The fixed properties of the chain's stores, each drawn from its own stream."""

    ids: np.ndarray
    format: np.ndarray          # index into STORE_FORMATS
    size: np.ndarray
    price_factor: np.ndarray
    competitor: np.ndarray      # bool: near the competitor that opens on the drift date


@dataclass(frozen=True)
class _Item:
    """The hidden, fixed properties of one item."""

    id: int
    category: int
    base: float
    regular_price: float
    elasticity: float
    lift: float
    trend: float
    introduced_day: int         # days from the window's start (negative: before it)


@dataclass(frozen=True)
class _Schedule:
    """An item's prices and promotions in every store over the window and the plans' lead past
    it, (stores, days + plan_lead_days), as they happen."""

    regular: np.ndarray         # the regular price, before any promotion
    promo: np.ndarray           # 0/1
    price: np.ndarray           # the day's price, rounded to cents


def _stores(scenario: DemandScenario) -> _Stores:
    ids = np.arange(1, scenario.stores + 1, dtype=np.int64)
    formats, sizes, factors, competitors = [], [], [], []
    for store in ids:
        rng = np.random.default_rng(np.random.SeedSequence([scenario.seed, _STORE_STREAMS, int(store)]))
        fmt = rng.choice(len(STORE_FORMATS), p=STORE_FORMAT_P)
        formats.append(fmt)
        sizes.append(STORE_FORMAT_SIZE[fmt] * math.exp(rng.normal(0.0, STORE_SIZE_SPREAD)))
        factors.append(math.exp(rng.normal(0.0, STORE_PRICE_SPREAD)))
        competitors.append(rng.random() < COMPETITOR_SHARE)
    return _Stores(ids, np.array(formats), np.array(sizes), np.array(factors), np.array(competitors, dtype=bool))


def _item(rng: np.random.Generator, item: int, scenario: DemandScenario) -> _Item:
    category = int(rng.choice(len(CATEGORIES), p=CATEGORY_P))
    slow = rng.random() < SLOW_SHARE
    base = math.exp(rng.normal(math.log(SLOW_BASE), SLOW_SPREAD) if slow else rng.normal(math.log(FAST_BASE), FAST_SPREAD))
    regular_price = CATEGORY_PRICE[category] * math.exp(rng.normal(0.0, PRICE_SPREAD))
    elasticity = rng.uniform(*ELASTICITY)
    lift = rng.uniform(*PROMO_LIFT)
    trend = rng.normal(0.0, TREND_SPREAD)
    new = rng.random() < NEW_ITEM_SHARE
    new_day = int(rng.integers(1, max(scenario.days, 2)))
    months_ago = int(rng.integers(1, MAX_AGE_MONTHS + 1))
    if new:
        introduced = new_day
    else:
        # Introduced on the first of a month before the window: few partitions in `series`.
        start_month = np.datetime64(scenario.start_date.isoformat(), "M")
        first = (start_month - np.timedelta64(months_ago, "M")).astype("datetime64[D]")
        introduced = -int((np.datetime64(scenario.start_date.isoformat(), "D") - first).astype(np.int64))
    return _Item(item, category, base, regular_price, elasticity, lift, trend, introduced)


def _schedule(rng: np.random.Generator, item: _Item, stores: _Stores, scenario: DemandScenario) -> _Schedule:
    n, days = len(stores.ids), scenario.days + scenario.plan_lead_days
    # Drawn for every store and day whatever happens, so each draw's meaning never shifts.
    changes = rng.random((n, days)) < PRICE_CHANGE_RATE
    steps = rng.normal(0.0, PRICE_CHANGE_SPREAD, (n, days))
    starts = rng.random((n, days)) < PROMO_START_RATE
    lengths = rng.integers(PROMO_DAYS[0], PROMO_DAYS[1] + 1, (n, days))
    discounts = rng.uniform(*PROMO_DISCOUNT, (n, days))

    # The first day's price is the reference the elasticity applies to; changes from day 1 on.
    changes[:, 0] = False
    regular = item.regular_price * stores.price_factor[:, None] * np.exp(np.cumsum(np.where(changes, steps, 0.0), axis=1))
    if CATEGORIES[item.category] == DRIFT_CATEGORY:
        regular[:, scenario.drift_day:] *= DRIFT_PRICE_FACTOR
    regular = np.round(regular, 2)
    promo = np.zeros((n, days), dtype=np.int32)
    discount = np.zeros((n, days))
    for store, day in zip(*np.nonzero(starts)):  # in day order per store: a later promotion overrides
        promo[store, day:day + lengths[store, day]] = 1
        discount[store, day:day + lengths[store, day]] = discounts[store, day]
    price = np.maximum(np.round(regular * (1.0 - discount), 2), 0.01)
    return _Schedule(regular, promo, price)


def _mean(item: _Item, stores: _Stores, schedule: _Schedule, scenario: DemandScenario) -> np.ndarray:
    """The true mean units of the item in every store (rows) and day of the window (columns); 0 before its introduction."""
    t = np.arange(scenario.days)
    days = np.datetime64(scenario.start_date.isoformat(), "D") + t
    weekday = (days.astype(np.int64) + 3) % 7            # 1970-01-01 was a Thursday; Monday is 0
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
    season = YEARLY_AMPLITUDE[item.category] * np.cos(2 * np.pi * (day_of_year - YEARLY_PEAK_DAY[item.category]) / 365.25)
    log_mean = (
        math.log(item.base)
        + np.log(WEEKLY[item.category][weekday])
        + season
        + item.trend * t / 365.25
    )[None, :] + np.log(stores.size)[:, None]
    price, promo = schedule.price[:, : scenario.days], schedule.promo[:, : scenario.days]
    reference = schedule.regular[:, :1]                   # the series' first regular price
    lift = np.where(t >= scenario.drift_day, 1.0 + (item.lift - 1.0) * PROMO_FATIGUE, item.lift)
    log_mean = log_mean + item.elasticity * np.log(price / reference) + promo * np.log(lift)[None, :]
    age = t - item.introduced_day
    launch = np.where(age >= 0, 1.0 - LAUNCH_DIP * np.exp(-np.maximum(age, 0) / LAUNCH_DAYS), 0.0)
    competitor = np.where(stores.competitor[:, None] & (t >= scenario.drift_day)[None, :], COMPETITOR_FACTOR, 1.0)
    return np.exp(log_mean) * launch[None, :] * competitor


def _day_dates(scenario: DemandScenario, first: int, count: int) -> np.ndarray:
    """The dates of `count` days from day `first` of the window, as `date` objects (Spark's DateType)."""
    start = np.datetime64(scenario.start_date.isoformat(), "D")
    return np.array([day.item() for day in start + np.arange(first, first + count)], dtype=object)


def simulate_block(scenario: DemandScenario, block: int, output: Output) -> Iterator[pd.DataFrame]:
    """Simulate the items of block `block` in every store and yield `output`'s rows, ordered by
    item, store and day, in frames of about `_FLUSH_ROWS` rows."""
    first = block * scenario.items_per_block + 1
    items = range(first, min(first + scenario.items_per_block, scenario.items + 1))
    stores = _stores(scenario)
    frames: list[pd.DataFrame] = []
    rows = 0
    for item_id in items:
        attributes_seed, schedule_seed, sales_seed, plans_seed = np.random.SeedSequence(
            [scenario.seed, _ITEM_STREAMS, item_id]
        ).spawn(4)
        item = _item(np.random.default_rng(attributes_seed), item_id, scenario)
        if output == "series":
            frame = _series_frame(scenario, item, stores)
        else:
            schedule = _schedule(np.random.default_rng(schedule_seed), item, stores, scenario)
            if output == "plans":
                frame = _plans_frame(scenario, np.random.default_rng(plans_seed), item, stores, schedule)
            else:
                mean = _mean(item, stores, schedule, scenario)
                if output == "truth":
                    frame = _daily_frame(scenario, item, stores, {"mean_units": mean}, "truth")
                else:
                    # Drawn for every day, sold or not, so a day's units never depend on the introduction.
                    units = np.random.default_rng(sales_seed).poisson(mean).astype(np.int32)
                    frame = _daily_frame(scenario, item, stores, {
                        "units": units, "price": schedule.price[:, : scenario.days],
                        "promo": schedule.promo[:, : scenario.days],
                    }, "sales")
        frames.append(frame)
        rows += len(frame)
        if rows >= _FLUSH_ROWS:
            yield pd.concat(frames, ignore_index=True)
            frames, rows = [], 0
    if rows:
        yield pd.concat(frames, ignore_index=True)


def _series_frame(s: DemandScenario, item: _Item, stores: _Stores) -> pd.DataFrame:
    store, key = s.keys
    introduced = np.datetime64(s.start_date.isoformat(), "D") + np.timedelta64(item.introduced_day, "D")
    n = len(stores.ids)
    return pd.DataFrame({
        store: stores.ids,
        key: np.full(n, item.id, dtype=np.int64),
        s.timestamp("series"): np.full(n, introduced.astype("datetime64[ns]")),
        "category": [CATEGORIES[item.category]] * n,
        "store_format": STORE_FORMATS[stores.format],
        s.partition("series"): [introduced.item()] * n,
    })


def _daily_frame(
    s: DemandScenario, item: _Item, stores: _Stores, values: dict[str, np.ndarray], output: Output,
) -> pd.DataFrame:
    """One row per store and day of the window from the item's introduction on, with `values` (stores, days)."""
    store, key = s.keys
    first = max(item.introduced_day, 0)
    days = s.days - first
    n = len(stores.ids)
    dates = _day_dates(s, first, days)
    frame = pd.DataFrame({store: np.repeat(stores.ids, days), key: np.full(n * days, item.id, dtype=np.int64)})
    if output == "sales":
        midnight = np.datetime64(s.start_date.isoformat(), "ns") + np.arange(first, s.days).astype("timedelta64[D]")
        frame[s.timestamp("sales")] = np.tile(midnight, n)
    for column, value in values.items():
        frame[column] = value[:, first:].reshape(-1)
    frame[s.partition(output)] = np.tile(dates, n)
    return frame


def _plans_frame(
    s: DemandScenario, rng: np.random.Generator, item: _Item, stores: _Stores, schedule: _Schedule,
) -> pd.DataFrame:
    """The plans of every series and target day from the item's introduction to `plan_lead_days` past
    the window: each made `plan_lead_days` ahead, 5% revised later; those known after the window are left out."""
    store, key = s.keys
    n, days = schedule.price.shape
    # Drawn for every series and target day, kept or not (see _schedule).
    revised = rng.random((n, days)) < REVISION_RATE
    lead = rng.integers(1, s.plan_lead_days, (n, days))
    second = rng.integers(0, 24 * 3600, (n, days))
    flip = rng.random((n, days)) < 0.5
    other_price = np.round(schedule.price * np.exp(rng.normal(0.0, REVISED_PRICE_SPREAD, (n, days))), 2)

    # The first plan of a revised day is what was planned before the revision: the promotion the
    # other way round (added late or cancelled, at the regular price or 20% off), or another price.
    first_promo = np.where(revised & flip, 1 - schedule.promo, schedule.promo)
    first_price = np.where(
        revised & flip,
        np.where(schedule.promo == 1, schedule.regular, np.round(schedule.regular * 0.8, 2)),
        np.where(revised, np.maximum(other_price, 0.01), schedule.price),
    )
    target = np.broadcast_to(np.arange(days), (n, days))
    store_index = np.broadcast_to(np.arange(n)[:, None], (n, days))
    sold = target >= item.introduced_day
    start = np.datetime64(s.start_date.isoformat(), "s")
    day = np.timedelta64(86_400, "s")
    first_known = start + (target - s.plan_lead_days) * day + np.timedelta64(PLAN_HOUR * 3600, "s")
    revision_known = start + (target - lead) * day + second.astype("timedelta64[s]")
    end = np.datetime64((s.end_date + timedelta(days=1)).isoformat(), "s")
    keep_first = sold
    keep_revision = sold & revised & (revision_known < end)

    parts = []
    for kept, price, promo, known in (
        (keep_first, first_price, first_promo, first_known),
        (keep_revision, schedule.price, schedule.promo, revision_known),
    ):
        parts.append((store_index[kept], target[kept], price[kept], promo[kept], known[kept]))
    store_at, target_at, price_at, promo_at, known_at = (np.concatenate(values) for values in zip(*parts))
    order = np.lexsort((known_at, target_at, store_at))
    known_at = known_at[order]
    target_dates = _day_dates(s, 0, days)
    # Every plan is known at most `plan_lead_days` before the window's first target day.
    known_day = (known_at.astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.int64)
    known_dates = _day_dates(s, -s.plan_lead_days, days + s.plan_lead_days)
    return pd.DataFrame({
        store: stores.ids[store_at[order]],
        key: np.full(len(order), item.id, dtype=np.int64),
        s.plan_target: target_dates[target_at[order]],
        "planned_price": price_at[order],
        "planned_promo": promo_at[order].astype(np.int32),
        s.timestamp("plans"): known_at.astype("datetime64[ns]"),
        s.partition("plans"): known_dates[known_day + s.plan_lead_days],
    })


def scenario_for(config: Config, start: date, end: date, entities: int, seed: int) -> DemandScenario:
    """The scenario of `config`'s use case: `entities` series over `generate.stores` stores, its
    sources named as this generator's outputs giving the tables' timestamp and partition columns,
    and its key's two columns the store's and the item's."""
    assert config.generate is not None
    stores = config.generate.stores or 1
    if entities % stores:
        raise ConfigError(
            f"generate: {entities} series are not a whole number of items in each of generate.stores={stores} stores"
        )
    keys = config.use_case.entity.keys
    if len(keys) != 2:
        raise ConfigError(f"use_case.entity.key: the demand generator writes a key of two columns (store, item), not {keys}")
    sources = config.use_case.sources
    # Plans read as known in advance: `timestamp` is the day a plan is for, `known_at` when it was
    # made (the generator's "timestamp" of a table is the instant its rows happen: known_at).
    plans = sources["plans"]
    happened = {name: sources[name].known_at or sources[name].timestamp for name in OUTPUTS if name != "truth"}
    return DemandScenario(
        seed=seed,
        entities=entities,
        start_date=start,
        end_date=end,
        block_size=config.generate.block_size,
        stores=stores,
        keys=(keys[0], keys[1]),
        columns=tuple((name, happened[name], sources[name].partition) for name in OUTPUTS if name != "truth"),
        plan_target=plans.timestamp if plans.known_at else "target_date",
    )


GENERATOR = Generator(outputs=OUTPUTS, scenario=scenario_for, generate=generate)  # type: ignore[arg-type]
