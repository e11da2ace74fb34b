from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
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
