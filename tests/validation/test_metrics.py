"""The one-pass statistics, worked out by hand on rows spread over several Spark partitions."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from validation import metrics
from validation.metrics import Metric

D1, D2 = date(2026, 1, 10), date(2026, 1, 11)
NAN, INF = float("nan"), float("inf")


@pytest.fixture
def frame(spark: SparkSession) -> DataFrame:
    rows = [
        (1, D1, 1.0, "a", datetime(2026, 1, 10, 5)),
        (2, D1, NAN, "b", datetime(2026, 1, 11, 1)),  # filed under the day before its timestamp
        (2, D1, None, None, None),
        (3, D2, INF, "z", datetime(2026, 1, 11, 3)),
        (4, D2, 5.0, "a", datetime(2026, 1, 11, 3)),
    ]
    # Three partitions: the tasks' partial counters must add up to the same totals.
    return spark.createDataFrame(rows, "k long, d date, x double, s string, ts timestamp").repartition(3)


def test_every_statistic_per_date(frame: DataFrame) -> None:
    wanted = [
        Metric("rows"), Metric("nulls", "x"), Metric("missing", "x"), Metric("nonfinite", "x"),
        Metric("outside", "x", (0.0, 2.0)), Metric("not_in", "s", ("a", "b")), Metric("not_in", "k", (1, 2)),
        Metric("nulls", "s"), Metric("missing", "s"), Metric("varies", "s"), Metric("varies", "x"),
        Metric("moments", "x"), Metric("bins", "x", (0.5, 2.0)), Metric("true", "off_day"),
    ]
    computed = metrics.compute(frame, "d", wanted, {"off_day": F.to_date("ts") != F.col("d")})
    assert computed == {
        D1: {
            Metric("rows"): 3, Metric("nulls", "x"): 1, Metric("missing", "x"): 2, Metric("nonfinite", "x"): 1,
            Metric("outside", "x", (0.0, 2.0)): 0, Metric("not_in", "s", ("a", "b")): 0, Metric("not_in", "k", (1, 2)): 0,
            Metric("nulls", "s"): 1, Metric("missing", "s"): 1, Metric("varies", "s"): True, Metric("varies", "x"): False,
            Metric("moments", "x"): (1, 1.0, 1.0), Metric("bins", "x", (0.5, 2.0)): [0, 1, 0, 2],
            Metric("true", "off_day"): 1,
        },
        D2: {
            Metric("rows"): 2, Metric("nulls", "x"): 0, Metric("missing", "x"): 0, Metric("nonfinite", "x"): 1,
            # infinity is not finite: `finite` reports it, `between` does not count it twice
            Metric("outside", "x", (0.0, 2.0)): 1, Metric("not_in", "s", ("a", "b")): 1, Metric("not_in", "k", (1, 2)): 2,
            Metric("nulls", "s"): 0, Metric("missing", "s"): 0, Metric("varies", "s"): True, Metric("varies", "x"): True,
            Metric("moments", "x"): (1, 5.0, 25.0), Metric("bins", "x", (0.5, 2.0)): [0, 0, 2, 0],
            Metric("true", "off_day"): 0,
        },
    }


def test_an_empty_frame_has_no_dates(frame: DataFrame) -> None:
    assert metrics.compute(frame.where("false"), "d", [Metric("rows")]) == {}


def test_histogram_bins_are_left_closed_with_missing_last() -> None:
    values = np.array([-INF, 0.4, 0.5, 1.9, 2.0, INF, NAN])
    assert metrics.histogram(values, [0.5, 2.0]).tolist() == [0, 0, 1, 1, 2, 2, 3]


def test_sample_std() -> None:
    values = [1.0, 2.0, 4.0]
    moments = (3, sum(values), sum(v * v for v in values))
    assert metrics.sample_std(moments) == pytest.approx(np.std(values, ddof=1))
    assert metrics.sample_std((1, 1.0, 1.0)) is None


def test_side_aggregations(frame: DataFrame) -> None:
    assert metrics.duplicates(frame, "d", ["k"]) == {D1: 1, D2: 0}
    assert metrics.duplicates(frame, "d", ["k", "s"]) == {D1: 0, D2: 0}  # a null key part is not compared
    assert metrics.row_counts(frame, "d", D1, D1) == {D1: 3}
    # entity 2 is first seen on D2 (its row on D1 has no timestamp)
    assert metrics.entities_known(frame, ["k"], "ts", [D1, D2]) == {D1: 1, D2: 4}
