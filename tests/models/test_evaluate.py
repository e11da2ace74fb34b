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


def test_importance_and_shap_rank_the_informative_feature_first() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=2000), "noise": rng.normal(size=2000)})
    label = (frame["signal"] + 0.1 * rng.normal(size=2000) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(frame, label), num_boost_round=20)
    assert next(iter(evaluate.importance(booster))) == "signal"
    shap = evaluate.shap_summary(booster, frame, ["signal", "noise"])
    assert list(shap) == ["signal", "noise"] and shap["signal"] > 10 * shap["noise"]


def _forecast_rows(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    """(item, days after Mar 1 of ds, horizon, units on the target date) as forecast rows."""
    first = pd.Timestamp("2026-03-01")
    return pd.DataFrame({
        "store_id": 1, "item_id": [r[0] for r in rows],
        "ds": [(first + pd.Timedelta(days=r[1])).date() for r in rows], "horizon": [r[2] for r in rows],
        "target_date": [(first + pd.Timedelta(days=r[1] + r[2])).date() for r in rows],
        "label": [r[3] for r in rows],
    })


def test_forecast_errors_by_hand_beside_the_seasonal_naive_forecast() -> None:
    # Item 1 sold 0, 2, 0, 2, ... on days 1..14: every day-to-day change is 2, its scale 4.
    # Item 2 sold once, 5 on day 8: no consecutive days, no scale (a new item).
    history = _forecast_rows([(1, d, 1, float(2 * (d % 2))) for d in range(0, 14)] + [(2, 7, 1, 5.0)])
    # On day 14: item 1 sells 4 then 1 (days 15, 16), item 2 sells 3 on day 15.
    holdout = _forecast_rows([(1, 14, 1, 4.0), (1, 14, 2, 1.0), (2, 14, 1, 3.0)])
    found = evaluate.forecast_metrics(holdout, np.array([3.0, 1.0, 4.0]), history, ["store_id", "item_id"], "label")
    # Seasonal naive: days 8 and 9 for item 1 (2 and 0), day 8 for item 2 (5).
    assert found["rows"] == found["compared_rows"] == 3
    model, naive = found["overall"]["model"], found["overall"]["seasonal_naive"]
    assert model["rmse"] == pytest.approx(np.sqrt((1 + 0 + 1) / 3))
    assert model["mae"] == pytest.approx(2 / 3) and model["wape"] == pytest.approx(2 / 8)
    assert model["rmsse"] == pytest.approx(np.sqrt(0.5 / 4)) and model["series"] == 1
    assert naive["rmse"] == pytest.approx(np.sqrt((4 + 1 + 4) / 3)) and naive["wape"] == pytest.approx(5 / 8)
    assert naive["rmsse"] == pytest.approx(np.sqrt(2.5 / 4))
    assert found["by_horizon"]["2"]["model"]["rmse"] == 0.0 and found["by_horizon"]["2"]["seasonal_naive"]["mae"] == 1.0
    assert found["unscaled_series"] == {"series": 1, "rows": 1, "rmse": {"model": 1.0, "seasonal_naive": 2.0}}


def test_forecast_errors_compare_every_predictor_on_the_same_rows() -> None:
    history = _forecast_rows([(1, d, 1, 1.0) for d in range(3, 14)])  # no sale known for day 1 or 2 (ds 0, 1)
    holdout = _forecast_rows([(1, 0, 1, 2.0), (1, 14, 1, 2.0)]).assign(reference=[1.5, np.nan])
    found = evaluate.forecast_metrics(holdout, np.array([2.0, 2.0]), history, ["store_id", "item_id"], "label",
                                      "reference")
    # Day 1's naive forecast is unknown and day 15's reference is: neither row has all three.
    assert found["compared_rows"] == 0 and found["overall"] == {"model": {}, "seasonal_naive": {}, "true_mean": {}}
