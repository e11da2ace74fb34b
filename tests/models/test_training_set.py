from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from models.alerts import EVENT_TIME
from models.training_set import (
    LABEL, REFERENCE, WEIGHT, event_labels, label_dates, label_events, labels, labels_by_horizon, reference_dates, training_rows,
    with_reference,
)
from nightjar.config import Config, LabelConfig, SourceConfig
from nightjar.durations import Duration
from tests.features.conftest import event, events_frame

D = date(2026, 1, 10)
HORIZON = 5


def label_config(kind: str = "no_event", **extra: object) -> LabelConfig:
    return LabelConfig.model_validate({"name": "target", "kind": kind, "source": "transactions", "horizon": HORIZON,
                                       **extra})


def spine(spark: SparkSession, keys: list[int], dates: list[date]):  # noqa: ANN201
    return spark.createDataFrame([(k, d) for k in keys for d in dates], "customer_id long, ds date")


def test_labels_look_only_at_the_horizon_after_d(spark: SparkSession, config: Config) -> None:
    events = events_frame(spark, [
        event(1, "2026-01-10 23:59:59", 1.0),   # on D itself: a feature, never a label
        event(2, "2026-01-11 00:00:00", 2.0),   # the first day after D
        event(3, "2026-01-15 23:00:00", 3.0),   # the last day of the horizon
        event(4, "2026-01-16 00:00:00", 4.0),   # one day too late
        event(None, "2026-01-12 10:00:00", 5.0),  # no key: belongs to nobody
        event(5, "2026-01-12 10:00:00", 6.0, partition="2026-01-13"),  # outside its partition: dropped
    ])
    source = config.use_case.sources["transactions"]
    result = labels(spine(spark, [1, 2, 3, 4, 5], [D]), events, source, label_config(), ["customer_id"])
    expected = spark.createDataFrame(
        [(1, D, 1), (2, D, 0), (3, D, 0), (4, D, 1), (5, D, 1)], f"customer_id long, ds date, {LABEL} int"
    )
    assertDataFrameEqual(result, expected)


def test_a_forecasts_label_is_what_happens_on_its_target_date(spark: SparkSession, config: Config) -> None:
    events = events_frame(spark, [
        event(1, "2026-01-10 23:00:00", 1.0),   # on D: no horizon's
        event(1, "2026-01-11 00:00:00", 2.0),   # D + 1
        event(1, "2026-01-11 09:00:00", 3.0),
        event(1, "2026-01-13 23:59:59", 4.0),   # D + 3
        event(2, "2026-01-14 00:00:00", 5.0),   # D + 4: beyond every horizon of D, h = 3 of D + 1
    ])
    source = config.use_case.sources["transactions"]
    rows = spark.createDataFrame([(k, d, h) for k in (1, 2) for d in (D, date(2026, 1, 11)) for h in (1, 2, 3)],
                                 "customer_id long, ds date, horizon int")
    units = label_config("sum", column="amount", horizon="1d")
    found = labels_by_horizon(rows, events, source, units, ["customer_id"])
    assert found.columns == ["customer_id", "ds", "horizon", LABEL]
    assert {(r.customer_id, r.ds.day, r.horizon): r[LABEL] for r in found.collect()} == {
        (1, 10, 1): 5.0, (1, 10, 2): 0.0, (1, 10, 3): 4.0, (1, 11, 1): 0.0, (1, 11, 2): 4.0, (1, 11, 3): 0.0,
        (2, 10, 1): 0.0, (2, 10, 2): 0.0, (2, 10, 3): 0.0, (2, 11, 1): 0.0, (2, 11, 2): 0.0, (2, 11, 3): 5.0,
    }


def test_any_event_and_sum_labels_with_a_filter(spark: SparkSession, config: Config) -> None:
    events = events_frame(spark, [
        event(1, "2026-01-11 10:00:00", 10.0, channel="online"),
        event(1, "2026-01-12 10:00:00", 5.0, channel="in_store"),
        event(1, "2026-01-12 11:00:00", float("nan"), channel="online"),
        event(2, "2026-01-13 10:00:00", 7.0, channel="in_store"),
    ])
    source = config.use_case.sources["transactions"]
    keys = spine(spark, [1, 2, 3], [D, date(2026, 1, 11)])
    online = {"channel": "online"}
    any_online = labels(keys, events, source, label_config("any_event", where=online), ["customer_id"])
    assert {(r.customer_id, r.ds.day): r[LABEL] for r in any_online.collect()} == {
        (1, 10): 1, (1, 11): 1, (2, 10): 0, (2, 11): 0, (3, 10): 0, (3, 11): 0,
    }
    spend = labels(keys, events, source, label_config("sum", column="amount"), ["customer_id"])
    # NaN amounts are not values (as in the features); the event of the 11th is not after the 11th.
    assert {(r.customer_id, r.ds.day): r[LABEL] for r in spend.collect()} == {
        (1, 10): 15.0, (1, 11): 5.0, (2, 10): 7.0, (2, 11): 7.0, (3, 10): 0.0, (3, 11): 0.0,
    }


@pytest.mark.parametrize(
    ("horizon", "last_inside", "first_outside"),
    [
        ("48h", "2026-01-12 23:59:59.999999", "2026-01-13 00:00:00"),
        ("2d", "2026-01-12 23:59:59.999999", "2026-01-13 00:00:00"),
        ("36h", "2026-01-12 11:59:59.999999", "2026-01-12 12:00:00"),
        ("30m", "2026-01-11 00:29:59.999999", "2026-01-11 00:30:00"),
    ],
)
def test_a_label_window_is_cutoff_to_cutoff_plus_horizon(spark: SparkSession, config: Config, horizon: str,
                                                          last_inside: str, first_outside: str) -> None:
    # D's cutoff is 2026-01-11 00:00:00: every instant is before it (features) or after (labels).
    events = events_frame(spark, [
        event(1, "2026-01-10 23:59:59.999999", 1.0),  # the last instant of D's features
        event(2, "2026-01-11 00:00:00", 2.0),         # the cutoff: the label's first instant
        event(3, last_inside, 4.0),                   # a microsecond before cutoff + horizon
        event(4, first_outside, 8.0),                 # cutoff + horizon: past D's label
    ])
    source = config.use_case.sources["transactions"]
    keys = spine(spark, [1, 2, 3, 4], [D])
    found = labels(keys, events, source, label_config("any_event", horizon=horizon), ["customer_id"])
    assert {r.customer_id: r[LABEL] for r in found.collect()} == {1: 0, 2: 1, 3: 1, 4: 0}
    summed = labels(keys, events, source, label_config("sum", column="amount", horizon=horizon), ["customer_id"])
    assert {r.customer_id: r[LABEL] for r in summed.collect()} == {1: 0.0, 2: 2.0, 3: 4.0, 4: 0.0}


def test_label_events_are_those_of_the_label_windows(spark: SparkSession, config: Config) -> None:
    # Dates 01-10 and 01-11 with a 36h horizon: [01-11 00:00, 01-13 12:00), online events only.
    events = events_frame(spark, [
        event(1, "2026-01-10 23:59:59.999999", 1.0, channel="online"),  # before the first cutoff
        event(2, "2026-01-11 00:00:00", 2.0, channel="online"),         # the first cutoff
        event(3, "2026-01-13 11:59:59.999999", 3.0, channel="online"),  # the last window's last instant
        event(4, "2026-01-13 12:00:00", 4.0, channel="online"),         # its end
        event(5, "2026-01-12 10:00:00", 5.0, channel="in_store"),       # filtered out by `where`
    ])
    source = config.use_case.sources["transactions"]
    label = label_config("any_event", horizon="36h", where={"channel": "online"})
    found = label_events(events, source, label, ["customer_id"], [date(2026, 1, 11), D])
    micros = [pd.Timestamp(t, tz="UTC").value // 1000 for t in ("2026-01-11", "2026-01-13 11:59:59.999999")]
    assert sorted((r.customer_id, r[EVENT_TIME]) for r in found.collect()) == [(2, micros[0]), (3, micros[1])]


def test_label_dates_end_where_the_horizon_ends() -> None:
    assert label_dates(date(2026, 3, 31), Duration.parse(30), days=7, stride_days=3) == [
        date(2026, 2, 23), date(2026, 2, 26), date(2026, 3, 1),
    ]
    # A label is final once cutoff + horizon is at most T's cutoff: a 36h label of D ends on D + 2.
    newest = {
        w: label_dates(date(2026, 3, 31), Duration.parse(w), days=1, stride_days=1) for w in ("30m", "48h", "36h")
    }
    assert newest == {"30m": [date(2026, 3, 30)], "48h": [date(2026, 3, 29)], "36h": [date(2026, 3, 29)]}


def test_down_sampling_is_deterministic_weighted_and_spares_the_holdout(spark: SparkSession) -> None:
    dates = [date(2026, 1, d) for d in (1, 2, 3)]
    features = spark.createDataFrame(
        [(k, d, float(k)) for k in range(300) for d in dates], "customer_id long, ds date, f double"
    )
    labelled = features.select("customer_id", "ds", (F.col("customer_id") % 10 == 0).cast("int").alias(LABEL))
    sampled = training_rows(features, labelled, ["customer_id"], 0.25, exempt_dates=[dates[-1]], seed=7)
    again = training_rows(features, labelled, ["customer_id"], 0.25, exempt_dates=[dates[-1]], seed=7)
    assertDataFrameEqual(sampled, again)
    counts = {(r.ds, r[LABEL]): (r["count"], r["w"]) for r in
              sampled.groupBy("ds", LABEL).agg(F.count("*").alias("count"), F.max(WEIGHT).alias("w")).collect()}
    assert counts[(dates[-1], 0)] == (270, 1.0)  # the holdout keeps every row
    assert counts[(dates[0], 1)] == (30, 1.0)  # the minority class is never sampled
    kept, weight = counts[(dates[0], 0)]
    assert 40 <= kept <= 100 and weight == pytest.approx(4.0)
    other_seed = training_rows(features, labelled, ["customer_id"], 0.25, exempt_dates=[dates[-1]], seed=8)
    assert sorted(sampled.collect()) != sorted(other_seed.collect())


def test_a_reference_dated_by_the_target_day_sums_the_label_days(spark: SparkSession) -> None:
    keys = ["store_id", "item_id"]
    rows = spark.createDataFrame([(1, 7, date(2026, 1, d)) for d in (1, 2, 3)], "store_id long, item_id long, ds date")
    # The true mean of each day sold, for one series; another series shares nothing with it.
    truth = spark.createDataFrame(
        [(1, 7, date(2026, 1, d), float(d)) for d in (2, 3, 4)] + [(2, 7, date(2026, 1, 2), 100.0)],
        "store_id long, item_id long, ds date, mean_units double",
    )
    assert reference_dates([date(2026, 1, 3), date(2026, 1, 1)]) == [date(2026, 1, 1), date(2026, 1, 3)]
    assert reference_dates([date(2026, 1, 1), date(2026, 1, 2)], 2) == [date(2026, 1, d) for d in (2, 3, 4)]
    by_date = {r.ds.day: r[REFERENCE] for r in with_reference(rows, truth, keys, "mean_units").collect()}
    assert by_date == {1: None, 2: 2.0, 3: 3.0}  # as before: the row of the feature date itself
    next_day = {r.ds.day: r[REFERENCE] for r in with_reference(rows, truth, keys, "mean_units", 1).collect()}
    assert next_day == {1: 2.0, 2: 3.0, 3: 4.0}  # D + 1
    two_days = {r.ds.day: r[REFERENCE] for r in with_reference(rows, truth, keys, "mean_units", 2).collect()}
    assert two_days == {1: 5.0, 2: 7.0, 3: None}  # D + 1 and D + 2; a day missing leaves no sum


def test_an_events_label_is_a_report_within_its_maturity(spark: SparkSession) -> None:
    """Event grain: a chargeback counts from the transaction's instant to its maturity, exclusive;
    one reported before its transaction or at the maturity or after counts for nothing."""
    source = SourceConfig(table="chargebacks", kind="events", timestamp="reported_at", partition="reported_date")
    label = LabelConfig(name="fraud", kind="any_event", source="chargebacks", horizon=Duration.parse("60d"))
    at = pd.Timestamp("2026-01-10 12:00:00")
    spine = spark.createDataFrame(pd.DataFrame({
        "transaction_id": [1, 2, 3, 4, 5, 6],
        "ds": [at.date()] * 6,
        "ts": [at] * 6,
    }))
    reported = pd.DataFrame({
        "transaction_id": [1, 2, 3, 4, 4, 99],
        "reported_at": [at, at + pd.Timedelta(days=60) - pd.Timedelta(microseconds=1), at + pd.Timedelta(days=60),
                        at - pd.Timedelta(seconds=1), at + pd.Timedelta(days=3), at + pd.Timedelta(days=1)],
    })
    reported["reported_date"] = reported["reported_at"].dt.date
    found = event_labels(spine, spark.createDataFrame(reported), source, label, "transaction_id", "ts")
    expected = spark.createDataFrame([(1, at.date(), 1), (2, at.date(), 1), (3, at.date(), 0), (4, at.date(), 1),
                                      (5, at.date(), 0), (6, at.date(), 0)], "transaction_id long, ds date, label int")
    assertDataFrameEqual(found, expected)
