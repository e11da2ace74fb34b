"""Durations: parsing, and windows and labels at the exact edges of [cutoff - w, cutoff) and [cutoff, cutoff + h).

D is 2026-01-10 throughout, so its cutoff is 2026-01-11 00:00:00 UTC.
"""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from features.definitions import check_columns, expand
from features.engine import compute_features
from models.training_set import LABEL, labels
from nightjar.config import Config, LabelConfig
from nightjar.durations import Duration
from nightjar.errors import ConfigError
from tests.features.conftest import (
    ENTITIES_SCHEMA, EVENTS_SCHEMA, entities_frame, entity, event, events_frame, with_features,
)

SUB_DAY = {
    "aggregates": [
        {"source": "transactions", "functions": ["count", "hours_since_first", "hours_since_last", "days_since_last"],
         "windows": ["30m", "3h", "1d", "7d"]},
        {"source": "transactions", "column": "amount", "functions": ["sum", "max"], "windows": ["3h", "36h"]},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"],
         "windows": ["3h", "24h"]},
    ],
}
# Only sub-day and 36h windows: the longest window is not whole days.
SHORT = {
    "aggregates": [
        {"source": "transactions", "functions": ["count", "hours_since_first"], "windows": ["30m", "36h"]},
        {"source": "transactions", "column": "amount", "functions": ["sum"], "windows": ["90m", "36h"]},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"],
         "windows": ["3h", "36h"]},
    ],
}
ENTITIES = [entity(1, "2025-12-01 09:00:00"), entity(4, "2025-12-01 09:00:00"), entity(5, "2025-12-01 09:00:00")]
EVENTS = [
    event(1, "2026-01-10 21:00:00", 1.0, "a"),            # cutoff - 3h: in the 3-hour window
    event(1, "2026-01-10 20:59:59.999999", 2.0, "b"),     # a microsecond earlier: not in it
    event(1, "2026-01-10 23:30:00", 4.0, "c"),            # cutoff - 30m: in the 30-minute window
    event(1, "2026-01-10 23:29:59.999999", 8.0, "c"),     # a microsecond earlier: not in it
    event(1, "2026-01-11 00:00:00", 16.0, "d"),           # the cutoff itself: D + 1's, never D's
    event(1, "2026-01-09 12:00:00", 32.0, "e"),           # cutoff - 36h: in the 36-hour window
    event(1, "2026-01-09 11:59:59.999999", 64.0, "f"),    # a microsecond earlier: not in it
    event(1, "2026-01-04 00:00:00", 128.0, "g"),          # the first instant of the 7-day window
    event(1, "2026-01-03 23:59:59.999999", 256.0, "h"),   # a microsecond earlier: not in it
    event(4, "2026-01-08 10:15:00", 1.0),                 # 61 h 45 min before the cutoff
]


def _compute(spark: SparkSession, config: Config, events: list[tuple], dates: list[date]) -> DataFrame:
    sources = config.use_case.sources
    return compute_features(
        expand(config), sources, {"transactions": events_frame(spark, events)},
        entities_frame(spark, ENTITIES), sources["customers"], dates,
    )


def _rows(frame: DataFrame) -> dict[int, dict]:
    return {row["customer_id"]: row.asDict() for row in frame.collect()}


@pytest.mark.parametrize(
    ("written", "amount", "unit"),
    [("30m", 30, "m"), ("3h", 3, "h"), ("7d", 7, "d"), (7, 7, "d"), ("7", 7, "d"), ("3650d", 3650, "d")],
)
def test_durations_parse(written: object, amount: int, unit: str) -> None:
    assert Duration.parse(written) == Duration(amount, unit)  # type: ignore[arg-type]


@pytest.mark.parametrize("written", ["3x", "0h", "0", -3, "-3h", "", " 3h", "3H", "1.5d", 1.5, True, None, "3651d"])
def test_bad_durations_are_rejected(written: object) -> None:
    with pytest.raises(ValueError, match="duration|longer than 3650 days"):
        Duration.parse(written)


def test_duration_lengths() -> None:
    assert (Duration.parse("48h").whole_days, Duration.parse("36h").whole_days) == (2, None)
    assert [Duration.parse(w).days_spanned for w in ("30m", "24h", "36h", "7d")] == [1, 1, 2, 7]
    assert [Duration.parse(w).written for w in (7, "7d", "3h")] == [7, 7, "3h"]


def test_windows_at_their_exact_edges(spark: SparkSession, config: Config) -> None:
    one = _rows(_compute(spark, with_features(config, SUB_DAY), EVENTS, [date(2026, 1, 10)]))[1]
    counts = [one[f"transactions_count_{w}"] for w in ("30m", "3h", "1d", "7d")]
    assert counts == [1, 3, 4, 7]  # the event at the cutoff is in none of them
    assert one["transactions_amount_sum_3h"] == 1.0 + 4.0 + 8.0
    assert one["transactions_amount_sum_36h"] == 1.0 + 2.0 + 4.0 + 8.0 + 32.0
    assert one["transactions_amount_max_36h"] == 32.0
    assert one["transactions_merchant_category_distinct_count_3h"] == 2  # a, c
    assert one["transactions_merchant_category_distinct_count_24h"] == 3  # a, b, c


def test_hours_since_by_hand(spark: SparkSession, config: Config) -> None:
    rows = _rows(_compute(spark, with_features(config, SUB_DAY), EVENTS, [date(2026, 1, 10)]))
    one, four, five = rows[1], rows[4], rows[5]
    assert one["transactions_hours_since_last_30m"] == 0  # 30 minutes: floor to 0
    assert one["transactions_hours_since_first_3h"] == 3  # exactly 3 hours
    assert one["transactions_hours_since_first_1d"] == 3  # 3 hours and a microsecond
    assert one["transactions_hours_since_first_7d"] == 7 * 24
    assert (four["transactions_hours_since_last_7d"], four["transactions_days_since_last_7d"]) == (61, 2)
    assert four["transactions_hours_since_last_3h"] is None and four["transactions_count_3h"] == 0
    assert five["transactions_hours_since_last_7d"] is None  # no events: missing, like days_since


def test_day_windows_keep_their_names_values_and_fingerprint(spark: SparkSession, config: Config) -> None:
    days = with_features(config, {"aggregates": [
        {"source": "transactions", "functions": ["count"], "windows": [1, 7]}]})
    spelled = with_features(config, {"aggregates": [
        {"source": "transactions", "functions": ["count"], "windows": ["1d", "7d"]}]})
    assert expand(days).names == expand(spelled).names == ["transactions_count_1d", "transactions_count_7d"]
    assert expand(days).fingerprint == expand(spelled).fingerprint
    hours = with_features(config, {"aggregates": [
        {"source": "transactions", "functions": ["count"], "windows": ["24h", "168h"]}]})
    in_days = _compute(spark, days, EVENTS, [date(2026, 1, 10)])
    in_hours = _compute(spark, hours, EVENTS, [date(2026, 1, 10)])
    assertDataFrameEqual(
        in_hours.withColumnsRenamed({"transactions_count_24h": "one", "transactions_count_168h": "seven"}),
        in_days.withColumnsRenamed({"transactions_count_1d": "one", "transactions_count_7d": "seven"}),
    )


@pytest.mark.parametrize("features", [SUB_DAY, SHORT], ids=["up-to-7d", "longest-36h"])
def test_a_range_with_hour_windows_equals_its_dates_one_by_one(spark: SparkSession, config: Config,
                                                               features: dict) -> None:
    config = with_features(config, features)
    dates = [date(2026, 1, 9), date(2026, 1, 10), date(2026, 1, 11)]
    together = _compute(spark, config, EVENTS, dates)
    one_by_one = _compute(spark, config, EVENTS, [dates[0]])
    for day in dates[1:]:
        one_by_one = one_by_one.unionByName(_compute(spark, config, EVENTS, [day]))
    assertDataFrameEqual(together, one_by_one)
    rows = {(row["customer_id"], row["ds"]): row for row in together.collect()}
    assert rows[(1, date(2026, 1, 11))]["transactions_count_30m"] == 0
    # D + 1's 36 hours: D's last 12 hours and the event at D's cutoff, the first instant of D + 1.
    assert rows[(1, date(2026, 1, 11))]["transactions_amount_sum_36h"] == 1.0 + 2.0 + 4.0 + 8.0 + 16.0


def test_an_event_at_the_cutoff_is_in_the_label_and_in_no_feature(spark: SparkSession, config: Config) -> None:
    d = date(2026, 1, 10)
    at_cutoff = [event(5, "2026-01-11 00:00:00", 1.0)]
    five = _rows(_compute(spark, with_features(config, SUB_DAY), at_cutoff, [d]))[5]
    assert all(five[f"transactions_count_{w}"] == 0 for w in ("30m", "3h", "1d", "7d"))
    label = LabelConfig(name="failure", kind="any_event", source="transactions", horizon="48h")
    spine = spark.createDataFrame([(5, d)], "customer_id long, ds date")
    source = config.use_case.sources["transactions"]
    assert labels(spine, events_frame(spark, at_cutoff), source, label, ["customer_id"]).first()[LABEL] == 1


@pytest.mark.parametrize(
    ("window", "function", "message"),
    [
        ("3h", "count", "features.aggregates[0] (transactions_count_3h): a 3h window needs event times, "
                        "but transactions.ts (use_case.sources.transactions.timestamp) is date, not a timestamp"),
        ("36h", "count", "a 36h window needs event times"),
        ("7d", "hours_since_last", "(transactions_hours_since_last_7d): hours_since_last needs event times"),
    ],
)
def test_instants_from_a_date_timestamp_are_a_config_error(spark: SparkSession, config: Config, window: str,
                                                           function: str, message: str) -> None:
    dated = T.StructType([
        T.StructField(f.name, T.DateType() if f.name == "ts" else f.dataType)
        for f in spark.createDataFrame([], EVENTS_SCHEMA).schema.fields
    ])
    schemas = {"transactions": dated, "customers": spark.createDataFrame([], ENTITIES_SCHEMA).schema}
    feature_set = expand(with_features(config, {"aggregates": [
        {"source": "transactions", "functions": [function], "windows": [window]}]}))
    with pytest.raises(ConfigError) as caught:
        check_columns(feature_set, schemas)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    days = expand(with_features(config, {"aggregates": [
        {"source": "transactions", "functions": ["count", "days_since_last"], "windows": ["48h", 7]}]}))
    check_columns(days, schemas)  # whole days need no instants


def test_trend_needs_whole_days(config: Config) -> None:
    with pytest.raises(ConfigError, match=r"trend needs a window of at least 2 days, in whole days \(not 36h\)"):
        expand(with_features(config, {"aggregates": [
            {"source": "transactions", "functions": ["trend"], "windows": ["48h", "36h"]}]}))
