"""Reference statistics and the population stability index, on data with known shifts."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from validation import drift, metrics
from validation.checks import DriftConfig

D = date(2026, 1, 10)


def _training(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"amount": rng.normal(50.0, 10.0, rows), "visits": rng.integers(0, 3, rows).astype(float)})
    frame.loc[: rows // 10 - 1, "amount"] = np.nan  # 10% missing
    return frame


def test_reference_statistics_describe_quantile_bins_and_missing_values() -> None:
    stats = drift.reference_statistics(_training(), ["amount", "visits"])
    json.dumps(stats)  # stored in metadata.json
    amount, visits = stats["features"]["amount"], stats["features"]["visits"]
    assert stats["rows"] == 2000 and stats["bins"] == drift.DEFAULT_BINS
    assert len(amount["edges"]) == 9 and amount["edges"] == sorted(amount["edges"])
    assert len(amount["shares"]) == 11 and sum(amount["shares"]) == pytest.approx(1.0)
    assert amount["shares"][-1] == pytest.approx(0.1)  # missing values are a bin of their own
    assert amount["shares"][:-1] == pytest.approx([0.09] * 10, abs=0.002)  # quantile bins hold equal shares
    # A discrete feature's repeated quantiles merge: 0, 1 and 2 fall into three bins.
    assert visits["edges"] == [0.0, 1.0, 2.0] and sum(s > 0 for s in visits["shares"]) == 3


def test_psi_from_counts_by_hand() -> None:
    shares = [0.5, 0.5, 0.0]
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert drift.psi_from_counts(shares, [80, 20, 0]) == pytest.approx(expected)
    assert drift.psi_from_counts(shares, [50, 50, 0]) == 0.0
    assert drift.psi_from_counts(shares, [0, 0, 0]) is None


def test_psi_on_spark_is_small_for_the_same_population_and_large_for_a_shift(spark: SparkSession) -> None:
    training = _training()
    stats = drift.reference_statistics(training, ["amount", "visits"])
    rng = np.random.default_rng(4)
    same = pd.DataFrame({"amount": rng.normal(50.0, 10.0, 2000), "visits": rng.integers(0, 3, 2000).astype(float)})
    same.loc[:199, "amount"] = np.nan
    shifted = same.assign(amount=same["amount"] + 15.0, visits=2.0)
    frame = spark.createDataFrame(
        pd.concat([same.assign(ds=D), shifted.assign(ds=date(2026, 1, 11))], ignore_index=True)
    )
    # As the gate computes it: the drift check's bin counts in the one pass, then its value per date.
    check = DriftConfig().check(stats)
    features = check.applies_to(frame.columns, set(), "drift", None)
    computed = metrics.compute(frame, "ds", [check.metric(name) for name in features])
    psi = {day: {name: check.value(name, values, None)[0] for name in features} for day, values in computed.items()}
    assert psi[D]["amount"] < 0.05 and psi[D]["visits"] < 0.05
    assert psi[date(2026, 1, 11)]["amount"] > 1.0 and psi[date(2026, 1, 11)]["visits"] > 1.0


def test_a_down_sampled_weighted_training_set_gives_the_reference_of_the_full_one() -> None:
    # The minority class sits high, the majority low: keeping a tenth of the majority with
    # weight 10 (training.majority_sample_rate=0.1) must describe the same population.
    rng = np.random.default_rng(8)
    label = rng.random(200_000) < 0.1
    full = pd.DataFrame({"x": np.where(label, rng.normal(3.0, 1.0, label.size), rng.normal(0.0, 1.0, label.size))})
    kept = label | (rng.random(label.size) < 0.1)
    sample = full[kept]
    weights = np.where(label[kept], 1.0, 10.0)
    reference = drift.reference_statistics(full, ["x"])["features"]["x"]
    weighted = drift.reference_statistics(sample, ["x"], weights=weights)["features"]["x"]
    assert weighted["edges"] == pytest.approx(reference["edges"], abs=0.05)
    assert weighted["shares"] == pytest.approx(reference["shares"], abs=0.01)
    # The same rows without their weights describe another population: half the rows are positives.
    unweighted = drift.reference_statistics(sample, ["x"])["features"]["x"]
    assert max(abs(a - b) for a, b in zip(unweighted["edges"], reference["edges"])) > 0.5
