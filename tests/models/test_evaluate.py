from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models import evaluate


def test_classification_metrics() -> None:
    label = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.01])
    result = evaluate.metrics("classification", label, score, [10, 20])
    # Positives 0.9, 0.7, 0.01 against 7 negatives: 0.9 outranks all 7, 0.7 all but 0.8, 0.01 none.
    assert result["auc"] == pytest.approx(13 / 21)
    assert result["precision_at_10pct"] == 1.0 and result["recall_at_10pct"] == pytest.approx(1 / 3)
    assert result["precision_at_20pct"] == 0.5
    assert result["brier"] == pytest.approx(np.mean((score - label) ** 2))
    assert result["positive_rate"] == pytest.approx(0.3)


def _auc_by_ranks(label: list[int], score: list[float]) -> float:
    """Mann-Whitney: (sum of the positives' ranks - n1(n1+1)/2) / (n1 n0), ties sharing their mean rank."""
    ordered = sorted(score)
    rank = {s: (ordered.index(s) + 1 + len(ordered) - ordered[::-1].index(s)) / 2 for s in score}
    positives = [s for s, y in zip(score, label) if y == 1]
    n1, n0 = len(positives), len(score) - len(positives)
    return (sum(rank[s] for s in positives) - n1 * (n1 + 1) / 2) / (n1 * n0)


def test_auc_counts_tied_pairs_as_half() -> None:
    label = [1, 1, 1, 0, 0, 0]
    score = [0.9, 0.6, 0.4, 0.6, 0.3, 0.4]
    # Of the 9 (positive, negative) pairs: 0.9 wins 3; 0.6 wins 2 and ties 1; 0.4 wins 1, ties 1, loses 1.
    by_pairs = (3 + 2.5 + 1.5) / 9
    assert _auc_by_ranks(label, score) == pytest.approx(by_pairs)
    result = evaluate.metrics("classification", np.array(label), np.array(score), [])
    assert result["auc"] == pytest.approx(by_pairs)


def test_regression_metrics() -> None:
    result = evaluate.metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), [])
    assert result["rmse"] == pytest.approx(np.sqrt(4 / 3)) and result["mae"] == pytest.approx(2 / 3)


def test_calibration_bins_hold_the_mean_score_and_the_observed_rate() -> None:
    table = evaluate.calibration(np.array([0, 1, 1, 0]), np.array([0.05, 0.15, 0.95, 1.0]), bins=10)
    assert [(row["low"], row["rows"]) for row in table] == [(0.0, 1), (0.1, 1), (0.9, 2)]
    assert table[2]["mean_score"] == pytest.approx(0.975) and table[2]["observed_rate"] == 0.5


def test_promotion_needs_a_strict_improvement_by_the_margin() -> None:
    assert evaluate.better("classification", 0.81, 0.80, 0.005)
    assert not evaluate.better("classification", 0.80, 0.80, 0.0)
    assert not evaluate.better("classification", 0.804, 0.80, 0.005)
    assert evaluate.better("regression", 1.0, 1.2, 0.1)  # smaller errors are better
    assert not evaluate.better("regression", 1.2, 1.0, 0.0)


def test_importance_and_shap_rank_the_informative_feature_first() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=2000), "noise": rng.normal(size=2000)})
    label = (frame["signal"] + 0.1 * rng.normal(size=2000) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(frame, label), num_boost_round=20)
    assert next(iter(evaluate.importance(booster))) == "signal"
    shap = evaluate.shap_summary(booster, frame, ["signal", "noise"])
    assert list(shap) == ["signal", "noise"] and shap["signal"] > 10 * shap["noise"]
