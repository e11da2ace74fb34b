from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from features.definitions import expand
from features.engine import compute_features
from nightjar.config import Config
from tests.features.conftest import entities_frame, entity, event, events_frame, with_features

ALL_FUNCTIONS = {
    "aggregates": [
        {"source": "transactions", "functions": ["count", "days_since_first", "days_since_last", "trend"],
         "windows": [7, 30]},
        {"source": "transactions", "column": "amount",
         "functions": ["sum", "mean", "min", "max", "std", "last", "trend"], "windows": [7, 30]},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"], "windows": [7, 30]},
        {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"],
         "windows": [30]},
        {"source": "transactions", "column": "amount", "functions": ["sum"],
         "by": {"column": "merchant_category", "values": ["grocery", "fuel"]}, "windows": [30]},
    ],
    "ratios": [{"name": "online_share_30d", "numerator": "online_count_30d", "denominator": "transactions_count_30d"}],
    "attributes": [
        {"source": "customers", "kind": "tenure_days"},
        {"source": "customers", "kind": "category", "column": "segment", "values": ["consumer", "enterprise"]},
    ],
}

ENTITIES = [
    entity(1, "2026-01-01 08:00:00"),
    entity(2, "2026-01-05 09:00:00", segment="enterprise"),   # known at D, no events
    entity(3, "2026-01-11 09:00:00"),                          # signs up after D
    entity(4, "2025-12-01 09:00:00", segment="unlisted"),
]
EVENTS = [
    event(1, "2026-01-10 10:00:00", 10.0, channel="in_store"),     # on D
    event(1, "2026-01-04 12:00:00", 20.0, "fuel"),                  # 6 days before: inside 7d
    event(1, "2026-01-03 23:59:59", 40.0),                          # 7 days before: outside 7d, inside 30d
    event(1, "2025-12-12 00:00:00", 5.0),                           # first day of the 30-day window
    event(1, "2025-12-11 23:59:59", 500.0),                         # just outside the 30-day window
    event(4, "2026-01-09 08:00:00", None, None),                    # a null value: an event, not a value
    event(4, "2026-01-09 09:00:00", float("nan"), "fuel"),          # NaN: an event, not a value
    event(4, "2026-01-08 09:00:00", float("inf"), "fuel"),          # infinity: an event, not a value
    event(4, "2026-01-08 10:00:00", 7.0, "fuel"),
    event(None, "2026-01-10 10:00:00", 99.0),                       # null key: dropped
    event(1, "2026-01-09 10:00:00", 300.0, partition="2026-01-10"),  # filed under another day: dropped
]


def _compute(spark: SparkSession, config: Config, events: list[tuple], dates: list[date],
             entities: list[tuple] = ENTITIES) -> DataFrame:
    feature_set = expand(config)
    sources = config.use_case.sources
    return compute_features(
        feature_set, sources, {"transactions": events_frame(spark, events)},
        entities_frame(spark, entities), sources["customers"], dates,
    )


def _rows(frame: DataFrame) -> dict[int, dict]:
    return {row["customer_id"]: row.asDict() for row in frame.collect()}


@pytest.fixture
def config(config: Config) -> Config:
    return with_features(config, ALL_FUNCTIONS)


def test_each_aggregation_by_hand(spark: SparkSession, config: Config, d: date) -> None:
    rows = _rows(_compute(spark, config, EVENTS, [d]))
    assert set(rows) == {1, 2, 4}  # 3 is not known yet; the null key is not an entity
    one = rows[1]
    assert (one["transactions_count_7d"], one["transactions_count_30d"]) == (2, 4)
    assert one["transactions_amount_sum_7d"] == 30.0
    assert one["transactions_amount_sum_30d"] == 75.0
    assert one["transactions_amount_mean_30d"] == pytest.approx(75.0 / 4, abs=1e-12)
    assert (one["transactions_amount_min_30d"], one["transactions_amount_max_30d"]) == (5.0, 40.0)
    assert one["transactions_amount_std_30d"] == pytest.approx(float(np.std([10, 20, 40, 5], ddof=1)), rel=1e-12)
    assert one["transactions_amount_last_30d"] == 10.0
    assert one["transactions_days_since_last_30d"] == 0
    assert one["transactions_days_since_first_30d"] == 29
    assert one["transactions_days_since_first_7d"] == 6
    assert one["transactions_merchant_category_distinct_count_7d"] == 2
    assert one["online_count_30d"] == 3
    assert one["online_share_30d"] == pytest.approx(0.75)
    assert (one["transactions_amount_sum_grocery_30d"], one["transactions_amount_sum_fuel_30d"]) == (55.0, 20.0)
    assert one["tenure_days"] == 9
    assert one["segment"] == 0


def _slope(daily_totals_by_age: dict[int, float], window: int) -> float:
    ys = [daily_totals_by_age.get(age, 0.0) for age in range(window - 1, -1, -1)]
    return float(np.polyfit(np.arange(window), ys, 1)[0])


def test_trend_is_the_slope_of_daily_totals(spark: SparkSession, config: Config, d: date) -> None:
    one = _rows(_compute(spark, config, EVENTS, [d]))[1]
    assert one["transactions_trend_7d"] == pytest.approx(_slope({0: 1, 6: 1}, 7), abs=1e-12)
    assert one["transactions_amount_trend_7d"] == pytest.approx(_slope({0: 10.0, 6: 20.0}, 7), abs=1e-12)
    assert one["transactions_amount_trend_30d"] == pytest.approx(_slope({0: 10.0, 6: 20.0, 7: 40.0, 29: 5.0}, 30), abs=1e-12)


def test_an_entity_without_events_gets_empty_values(spark: SparkSession, config: Config, d: date) -> None:
    two = _rows(_compute(spark, config, EVENTS, [d]))[2]
    zeros = [n for n in two if n.endswith(("count_7d", "count_30d", "sum_7d", "sum_30d", "trend_7d", "trend_30d"))
             or "distinct_count" in n or "_sum_" in n]
    assert zeros and all(two[n] == 0 for n in zeros), {n: two[n] for n in zeros}
    for name in ("transactions_amount_mean_30d", "transactions_amount_min_30d", "transactions_amount_std_30d",
                 "transactions_amount_last_30d", "transactions_days_since_last_30d", "online_share_30d"):
        assert two[name] is None, name
    assert (two["tenure_days"], two["segment"]) == (5, 1)


def test_nan_infinite_and_null_values_are_events_but_not_values(spark: SparkSession, config: Config, d: date) -> None:
    four = _rows(_compute(spark, config, EVENTS, [d]))[4]
    assert four["transactions_count_7d"] == 4
    assert four["transactions_amount_sum_7d"] == 7.0
    assert four["transactions_amount_mean_7d"] == 7.0
    assert four["transactions_amount_max_7d"] == 7.0
    assert four["transactions_amount_std_7d"] is None  # one value
    assert four["transactions_merchant_category_distinct_count_7d"] == 1  # null category is not a value
    assert four["segment"] is None  # not in the listed values


def test_last_among_events_at_the_same_instant_is_the_largest_value(spark: SparkSession, config: Config,
                                                                    d: date) -> None:
    tied = [event(1, "2026-01-10 10:00:00", 8.0), event(1, "2026-01-10 10:00:00", -3.0),
            event(1, "2026-01-09 10:00:00", 50.0), event(1, "2026-01-10 10:00:00", 7.999999)]
    for ordered in (tied, tied[::-1]):
        assert _rows(_compute(spark, config, ordered, [d]))[1]["transactions_amount_last_7d"] == 8.0


def test_null_keys_and_misfiled_events_are_dropped(spark: SparkSession, config: Config, d: date) -> None:
    clean = [e for e in EVENTS if e[0] is not None and e[1].date() == e[5]]
    assertDataFrameEqual(_compute(spark, config, EVENTS, [d]), _compute(spark, config, clean, [d]))


def test_events_after_d_change_nothing(spark: SparkSession, config: Config, d: date) -> None:
    future = [
        event(1, "2026-01-11 00:00:00", 1000.0), event(2, "2026-01-12 08:00:00", 3.0),
        event(4, "2026-02-01 08:00:00", 1.0), event(1, "2026-01-10 23:59:59", 8.0, partition="2026-01-11"),
    ]
    assertDataFrameEqual(_compute(spark, config, EVENTS + future, [d]), _compute(spark, config, EVENTS, [d]))


def test_a_range_equals_its_dates_computed_one_by_one(spark: SparkSession, config: Config, d: date) -> None:
    dates = [d - timedelta(days=k) for k in range(5)]
    together = _compute(spark, config, EVENTS, dates)
    one_by_one = _compute(spark, config, EVENTS, [dates[0]])
    for day in dates[1:]:
        one_by_one = one_by_one.unionByName(_compute(spark, config, EVENTS, [day]))
    assertDataFrameEqual(together, one_by_one)


def test_a_day_without_events_is_an_empty_day(spark: SparkSession, config: Config, d: date) -> None:
    # No events at all on D - 1 (an empty partition): the features of D - 1 still exist.
    rows = _rows(_compute(spark, config, EVENTS, [d - timedelta(days=1)]))
    assert rows[1]["transactions_count_7d"] == 2 and rows[1]["transactions_days_since_last_7d"] == 5
    assert rows[2]["transactions_count_30d"] == 0


def test_non_contiguous_dates(spark: SparkSession, config: Config, d: date) -> None:
    dates = [d, d - timedelta(days=3)]
    frame = _compute(spark, config, EVENTS, dates)
    assert sorted({row["ds"] for row in frame.collect()}) == sorted(dates)


def test_reruns_are_bit_identical(spark: SparkSession, config: Config, d: date) -> None:
    first = _compute(spark, config, EVENTS, [d]).collect()
    second = _compute(spark, config, EVENTS[::-1], [d]).repartition(3).collect()
    key = lambda row: row["customer_id"]  # noqa: E731
    assert sorted(first, key=key) == sorted(second, key=key)


def test_distinct_counts_of_a_column_with_many_values(spark: SparkSession, config: Config, d: date) -> None:
    # More values than the bits of a long: counted by each value's latest event instead.
    many = [event(1, f"2026-01-{1 + k % 10:02d} 10:{k % 60:02d}:{k // 60:02d}", 1.0, f"m{k % 70}") for k in range(80)]
    many += [event(2, "2026-01-10 10:00:00", 1.0, "m1"), event(2, "2026-01-02 10:00:00", 1.0, "m2")]
    rows = _rows(_compute(spark, config, many, [d]))
    expected_7d = len({e[3] for e in many if e[0] == 1 and e[1].date() > d - timedelta(days=7)})
    assert rows[1]["transactions_merchant_category_distinct_count_30d"] == 70
    assert rows[1]["transactions_merchant_category_distinct_count_7d"] == expected_7d
    assert (rows[2]["transactions_merchant_category_distinct_count_7d"],
            rows[2]["transactions_merchant_category_distinct_count_30d"]) == (1, 2)


# Lagged windows (`offset`): a window w lagged by n days at D is the window w of D - n, whose
# ages (days and hours since) are counted from D's cutoff instead.
LAGGABLE = [
    {"source": "transactions", "functions": ["count", "days_since_first", "days_since_last", "hours_since_first",
                                             "hours_since_last"], "windows": [1, 7, 30, "3h", "36h"]},
    {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "min", "max", "std", "last"],
     "windows": [1, 7, 30, "3h"]},
    {"source": "transactions", "functions": ["trend"], "windows": [7, 30]},
    {"source": "transactions", "column": "amount", "functions": ["trend"], "windows": [7]},
    # More categories than the bits of a long (counted per value) and a channel of two (bitwise).
    {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"], "windows": [7, 30]},
    {"source": "transactions", "column": "channel", "functions": ["distinct_count"], "windows": [7]},
    {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"],
     "windows": [7]},
]
EARLY_ENTITIES = [entity(k, "2025-10-01 08:00:00") for k in (1, 2, 3, 4)]  # known at every date compared


def _history() -> list[tuple]:
    """Events of customers 1-3 from 2025-11-01 to 2026-01-12 at random instants (4 has none), reproducibly."""
    rng = np.random.default_rng(7)
    rows = []
    for k in range(400):
        moment = datetime(2025, 11, 1) + timedelta(microseconds=int(rng.integers(0, 72 * 86_400_000_000)))
        amount = None if k % 37 == 0 else round(float(rng.normal(50, 20)), 2)
        rows.append(event(int(rng.integers(1, 4)), moment.isoformat(), amount, f"m{rng.integers(0, 70)}",
                          channel="online" if rng.random() < 0.6 else "in_store"))
    return rows


def _lagged(features: list[dict], offset: int | str) -> list[dict]:
    return [block | {"offset": offset} for block in features]


@pytest.mark.parametrize(("offset", "lag"), [(7, 7), ("48h", 2)])
def test_a_lagged_window_is_the_window_of_d_minus_the_offset(spark: SparkSession, config: Config, d: date,
                                                             offset: int | str, lag: int) -> None:
    events = _history()
    unlagged = with_features(config, {"aggregates": LAGGABLE})
    both = with_features(config, {"aggregates": LAGGABLE + _lagged(LAGGABLE, offset)})
    dates = [d, d - timedelta(days=1), d - timedelta(days=4)]  # a range, not contiguous
    computed = _compute(spark, both, events, dates, EARLY_ENTITIES)
    earlier = _compute(spark, unlagged, events, [day - timedelta(days=lag) for day in dates], EARLY_ENTITIES)
    suffix = f"_lag{'7d' if offset == 7 else offset}"
    columns = []
    for spec in expand(unlagged).aggregates:
        value = F.col(spec.name)
        if spec.function.startswith("days_since"):
            value = value + lag
        elif spec.function.startswith("hours_since"):
            value = value + 24 * lag
        columns.append(value.alias(spec.name + suffix))
    expected = earlier.select("customer_id", F.date_add("ds", lag).alias("ds"), *columns)
    lagged_names = [name for name in expand(both).names if name.endswith(suffix)]
    assert len(lagged_names) == len(columns) and set(lagged_names) == set(expected.columns[2:])
    # Bit-identical, not close: the same partials combined the same way.
    assertDataFrameEqual(computed.select("customer_id", "ds", *expected.columns[2:]), expected, rtol=0, atol=0)
    # And the unlagged features beside them are what they are without lags.
    alone = _compute(spark, unlagged, events, dates, EARLY_ENTITIES)
    assertDataFrameEqual(computed.select(*alone.columns), alone, rtol=0, atol=0)


def test_events_between_the_lagged_window_and_the_cutoff_change_nothing(spark: SparkSession, config: Config,
                                                                         d: date) -> None:
    lagged = with_features(config, {"aggregates": _lagged(LAGGABLE, 7)})
    events = [e for e in _history() if e[1] < datetime(2026, 1, 4)]
    # [cutoff - 7d, cutoff) and later: from the first instant the offset excludes to after D.
    gap = [event(1, "2026-01-04 00:00:00", 1000.0, "z1"), event(2, "2026-01-07 12:00:00", 5.0, "z2"),
           event(4, "2026-01-10 23:59:59.999999", 7.0, "z3"), event(3, "2026-01-11 00:00:00", 9.0, "z4")]
    assertDataFrameEqual(_compute(spark, lagged, events + gap, [d], EARLY_ENTITIES),
                         _compute(spark, lagged, events, [d], EARLY_ENTITIES), rtol=0, atol=0)


def test_lagged_window_edges(spark: SparkSession, config: Config, d: date) -> None:
    # D's cutoff is 2026-01-11 00:00: 1d lagged 7d is [01-03 00:00, 01-04 00:00),
    # 3h lagged 1d is [01-09 21:00, 01-10 00:00).
    lagged = with_features(config, {"aggregates": [
        {"source": "transactions", "column": "amount", "windows": [1], "offset": "7d",
         "functions": ["count", "sum", "days_since_first", "days_since_last", "hours_since_first", "hours_since_last"]},
        {"source": "transactions", "column": "amount", "windows": ["3h"], "offset": "24h",
         "functions": ["count", "sum", "hours_since_last"]},
    ]})
    events = [
        event(1, "2026-01-03 00:00:00", 1.0),               # the lagged day's first instant: in
        event(1, "2026-01-03 23:59:59.999999", 2.0),        # its last: in
        event(1, "2026-01-02 23:59:59.999999", 4.0),        # a microsecond before it: out
        event(1, "2026-01-04 00:00:00", 8.0),               # cutoff - 7d, the offset's first instant: out
        event(1, "2026-01-09 21:00:00", 16.0),              # cutoff - 1d - 3h: in the lagged 3h window
        event(1, "2026-01-09 20:59:59.999999", 32.0),       # a microsecond earlier: out
        event(1, "2026-01-10 00:00:00", 64.0),              # cutoff - 1d: out
    ]
    one = _rows(_compute(spark, lagged, events, [d], EARLY_ENTITIES))[1]
    assert (one["transactions_amount_count_1d_lag7d"], one["transactions_amount_sum_1d_lag7d"]) == (2, 3.0)
    # Ages from D's cutoff, not from the window's end.
    assert one["transactions_amount_days_since_first_1d_lag7d"] == 7
    assert one["transactions_amount_days_since_last_1d_lag7d"] == 7
    assert one["transactions_amount_hours_since_first_1d_lag7d"] == 8 * 24
    assert one["transactions_amount_hours_since_last_1d_lag7d"] == 7 * 24  # 168 h and a microsecond, floored
    assert (one["transactions_amount_count_3h_lag24h"], one["transactions_amount_sum_3h_lag24h"]) == (1, 16.0)
    assert one["transactions_amount_hours_since_last_3h_lag24h"] == 27
