"""The monitoring measures as pure functions of Spark DataFrames (`models.monitoring`)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn import metrics as skm

from models import monitoring
from models.monitoring import ESTIMATED, REALIZED
from nightjar.config import MonitoringConfig
from validation import drift

DAY = date(2026, 3, 1)


def _calibrated(spark: SparkSession, rows: int, seed: int) -> DataFrame:
    """Seeded rows whose score p is the true probability of their label (drawn Bernoulli(p))."""
    # A skewed p, as a real classifier's: most rows unlikely positives, a tail of likely ones. On a
    # grid of 1/1000 (still the true probability of the label drawn from it), as a calibrated
    # model's step-function scores are: few distinct scores keep the test fast.
    return (
        spark.range(rows, numPartitions=2)
        .select(F.round(F.pow(F.rand(seed), F.lit(2.0)), 3).alias("score"), F.rand(seed + 1).alias("_draw"))
        .select(F.lit(DAY).alias("ds"), F.lit(1).alias("model_version"), "score",
                (F.col("_draw") < F.col("score")).cast("int").alias("label"))
    )


def _by_metric(measures: list[monitoring.Measure], kind: str) -> dict[str, float | None]:
    return {m.metric: m.value for m in measures if m.kind == kind and m.feature is None}


def test_estimated_auc_matches_realized_on_calibrated_data(spark: SparkSession) -> None:
    frame = _calibrated(spark, 120_000, seed=11).cache()
    estimated = _by_metric(monitoring.estimated_measures(frame.drop("label"), 0.5, {1: None}), ESTIMATED)
    realized = _by_metric(monitoring.realized_classification(frame, 0.5, {1: None}, 10), REALIZED)
    frame.unpersist()
    assert estimated["auc"] == pytest.approx(realized["auc"], abs=0.02)
    assert estimated["precision"] == pytest.approx(realized["precision"], abs=0.02)
    assert estimated["recall"] == pytest.approx(realized["recall"], abs=0.02)
    assert estimated["positive_rate"] == pytest.approx(realized["positive_rate"], abs=0.01)
    assert estimated["brier"] == pytest.approx(realized["brier"], abs=0.01)
    # Not a trivial agreement: for this p the AUC is well above chance.
    assert realized["auc"] > 0.7


def test_estimated_auc_moves_with_the_scores_not_with_the_labels(spark: SparkSession) -> None:
    # Scores squeezed towards their mean: CBPE expects a worse ranking even before any label.
    frame = _calibrated(spark, 20_000, seed=3)
    sharp = _by_metric(monitoring.estimated_measures(frame, 0.5, {1: None}), ESTIMATED)["auc"]
    flat = frame.withColumn("score", F.lit(0.3) + 0.1 * F.col("score"))
    blurred = _by_metric(monitoring.estimated_measures(flat, 0.5, {1: None}), ESTIMATED)["auc"]
    assert blurred < sharp - 0.1


def test_realized_ranking_is_sklearns_with_ties(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    score = np.round(rng.random(2_000), 1)  # many ties
    label = (rng.random(2_000) < score).astype(int)
    frame = spark.createDataFrame(
        [(DAY, 1, float(s), int(y)) for s, y in zip(score, label)], "ds date, model_version int, score double, label int")
    realized = _by_metric(monitoring.realized_classification(frame, 0.5, {1: 0.99}, 10), REALIZED)
    assert realized["auc"] == pytest.approx(skm.roc_auc_score(label, score), abs=1e-12)
    assert realized["pr_auc"] == pytest.approx(skm.average_precision_score(label, score), abs=1e-12)
    assert realized["brier"] == pytest.approx(skm.brier_score_loss(label, score), abs=1e-12)
    flagged = score >= 0.5
    assert realized["precision"] == pytest.approx(label[flagged].mean(), abs=1e-12)
    assert realized["recall"] == pytest.approx(label[flagged].sum() / label.sum(), abs=1e-12)


def test_realized_calibration_table_and_auc_alert(spark: SparkSession) -> None:
    frame = _calibrated(spark, 5_000, seed=8)
    measures = monitoring.realized_classification(frame, 0.5, {1: 0.99}, 4)
    auc = next(m for m in measures if m.metric == "auc")
    assert auc.alert and auc.threshold == 0.99 and auc.labelled_rows == auc.rows == 5_000
    bins = {m.feature: m for m in measures if m.metric == "calibration_observed"}
    assert sorted(bins) == ["score_bin_01", "score_bin_02", "score_bin_03", "score_bin_04"]
    assert sum(m.rows for m in bins.values()) == 5_000
    assert all(m.labelled_rows == m.rows for m in bins.values())  # a bin's rows are labelled ones
    predicted = {m.feature: m.value for m in measures if m.metric == "calibration_predicted"}
    for name, observed in bins.items():  # calibrated scores: each bin's rate is near its mean score
        assert observed.value == pytest.approx(predicted[name], abs=0.06)


def test_realized_regression_errors(spark: SparkSession) -> None:
    rows = [("a", DAY, h, date(2026, 3, 1 + h), 1, float(p), float(y))
            for h, (p, y) in enumerate([(1, 2), (2, 2), (4, 3)], start=1)]
    frame = spark.createDataFrame(rows, "k string, ds date, horizon int, target_date date, model_version int, "
                                        "score double, label double")
    values = _by_metric(monitoring.realized_regression(frame, ["k"]), REALIZED)
    assert values["rmse"] == pytest.approx(np.sqrt((1 + 0 + 1) / 3))
    assert values["wape"] == pytest.approx(2 / 7)
    # Scale: the mean squared day-to-day change of the labels, ((2-2)^2 + (3-2)^2) / 2.
    assert values["rmsse"] == pytest.approx(np.sqrt((2 / 3) / 0.5))


def test_feature_drift_and_quality(spark: SparkSession) -> None:
    rng = np.random.default_rng(2)
    training = rng.normal(0, 1, 5_000)
    import pandas as pd

    reference = drift.reference_statistics(pd.DataFrame({"x": training, "y": training}), ["x", "y"])
    day2 = date(2026, 3, 2)
    values = [(DAY, float(v), float(v)) for v in rng.normal(0, 1, 2_000)]
    values += [(day2, float(v) + 3.0, float(v)) for v in rng.normal(0, 1, 2_000)]  # x shifts on day 2
    values += [(day2, None, float("nan"))] * 500
    frame = spark.createDataFrame(values, "ds date, x double, y double")
    settings = MonitoringConfig()
    measures = monitoring.feature_measures(frame, {DAY: 2_000, day2: 2_500}, 1, ["x", "y"], reference, settings)
    psi = {(m.ds, m.feature): m for m in measures if m.metric == "psi"}
    assert not psi[(DAY, "x")].alert and not psi[(DAY, "y")].alert
    assert psi[(day2, "x")].alert and psi[(day2, "x")].value > 1
    nulls = {(m.ds, m.feature): m for m in measures if m.metric == "null_share"}
    assert nulls[(day2, "y")].value == pytest.approx(0.2) and nulls[(day2, "y")].alert  # NaN counts as missing
    outside = {(m.ds, m.feature): m for m in measures if m.metric == "out_of_range_share"}
    assert outside[(day2, "x")].alert and not outside[(DAY, "x")].alert
    # Without reference statistics: quality only, no drift and no range of its own.
    bare = monitoring.feature_measures(frame, {DAY: 2_000}, 1, ["x"], None, settings)
    assert {m.metric for m in bare} == {"feature_rows", "null_share"}
