"""Conformal prediction intervals: they cover new rows as often as they say."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import SparkSession

from models import intervals, scoring


def _poisson(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts around known means that differ by horizon (1..3), and the means as predictions."""
    rng = np.random.default_rng(seed)
    horizon = rng.integers(1, 4, size=rows)
    mean = rng.gamma(2.0, 2.0, size=rows) * horizon
    return rng.poisson(mean).astype(float), mean, horizon


def test_intervals_cover_new_rows_at_their_level_in_every_group() -> None:
    label, mean, horizon = _poisson(1, 30_000)
    calibrated = intervals.calibrate(label, mean, horizon, [0.8, 0.95])
    assert calibrated["nonnegative"] and sorted(calibrated["quantiles"]) == ["1", "2", "3"]
    new_label, new_mean, new_horizon = _poisson(2, 30_000)
    covered = intervals.coverage(new_label, new_mean, new_horizon, calibrated)
    for level in ("0.8", "0.95"):
        # 30,000 rows: the binomial standard error is below 0.25 points.
        assert covered["overall"][level] == pytest.approx(float(level), abs=0.015)
        for group in ("1", "2", "3"):
            assert covered["by_group"][group][level] == pytest.approx(float(level), abs=0.025)
    # Wider where more is expected: the noise of counts grows with their mean.
    low, high = intervals.bounds(np.array([1.0, 20.0]), np.array([2, 2]), calibrated, 0.8)
    assert high[1] - low[1] > 2 * (high[0] - low[0]) and low.min() >= 0


def test_an_uncalibrated_group_has_no_interval_and_negative_labels_are_not_cut() -> None:
    label = np.array([-3.0, -1.0, 0.0, 1.0, 2.0])
    calibrated = intervals.calibrate(label, np.zeros(5), None, [0.5])
    assert not calibrated["nonnegative"]
    low, high = intervals.bounds(np.zeros(2), None, calibrated, 0.5)
    assert (low < 0).all() and (high >= low).all()
    by_horizon = intervals.calibrate(label, np.zeros(5), np.ones(5), [0.5])
    low, high = intervals.bounds(np.zeros(2), np.array([1, 2]), by_horizon, 0.5)
    assert not np.isnan(low[0]) and np.isnan(low[1]) and np.isnan(high[1])


def test_scores_carry_the_intervals_of_their_horizon(spark: SparkSession) -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 2))
    booster = lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(x, 5 + x[:, 0], feature_name=["a", "horizon"]), num_boost_round=5)
    label, mean, horizon = _poisson(4, 3000)
    calibrated = intervals.calibrate(label, mean, horizon, [0.8, 0.95])
    rows = [(i, float(x[i, 0]), int(h)) for i, h in zip(range(300), rng.integers(1, 4, size=300))]
    frame = spark.createDataFrame(rows, "item_id long, a double, horizon int").selectExpr(
        "item_id", "DATE'2026-03-01' AS ds", "a", "horizon")
    scored = scoring.score(frame, booster.model_to_string(), ["a", "horizon"], ["item_id"], reasons=0,
                           carried=["horizon"], intervals=calibrated, interval_group="horizon").toPandas()
    assert list(scored.columns) == ["item_id", "ds", "horizon", "score", "intervals"]
    for level_index, level in enumerate([0.8, 0.95]):
        low, high = intervals.bounds(scored["score"].to_numpy(), scored["horizon"].to_numpy(), calibrated, level)
        got = scored["intervals"].map(lambda items: items[level_index])
        assert [item["level"] for item in got] == [level] * len(scored)
        np.testing.assert_allclose([item["low"] for item in got], low, rtol=0, atol=1e-12)
        np.testing.assert_allclose([item["high"] for item in got], high, rtol=0, atol=1e-12)
