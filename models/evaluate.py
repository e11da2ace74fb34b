"""Holdout evaluation: metrics, a calibration table, feature importance and a SHAP summary.

Pure functions of arrays and a Booster; the training job calls them on the holdout rows.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from models.search import Task

# The metric the promotion decision compares, and whether larger is better.
PRIMARY: dict[str, tuple[str, bool]] = {"classification": ("auc", True), "regression": ("rmse", False)}
SHAP_ROWS = 5000


def predict(booster: lgb.Booster, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predictions of `booster` for `frame`, its columns taken in the model's own feature order."""
    return booster.predict(frame[features].to_numpy(dtype=np.float64), num_threads=1)


def metrics(task: Task, label: np.ndarray, score: np.ndarray, top_k_percent: list[float]) -> dict[str, float]:
    """The holdout metrics of one set of predictions."""
    label = np.asarray(label, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(label, score))),
            "mae": float(skm.mean_absolute_error(label, score)),
            "r2": float(skm.r2_score(label, score)),
            "rows": float(len(label)),
        }
    result = {
        "auc": float(skm.roc_auc_score(label, score)),
        "pr_auc": float(skm.average_precision_score(label, score)),
        "log_loss": float(skm.log_loss(label, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(label, score)),
        "positive_rate": float(label.mean()),
        "rows": float(len(label)),
    }
    # Ties in score are broken by position, which the caller keeps deterministic (key order).
    order = np.argsort(-score, kind="stable")
    positives = label.sum()
    for k in top_k_percent:
        top = max(1, int(round(len(label) * k / 100.0)))
        hits = label[order[:top]].sum()
        result[f"precision_at_{k:g}pct"] = float(hits / top)
        result[f"recall_at_{k:g}pct"] = float(hits / positives) if positives else 0.0
    return result


def calibration(label: np.ndarray, score: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean prediction against the observed rate in equal-width score bins (empty bins left out)."""
    label = np.asarray(label, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    index = np.minimum((score * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            table.append({
                "low": b / bins, "high": (b + 1) / bins, "rows": int(inside.sum()),
                "mean_score": float(score[inside].mean()), "observed_rate": float(label[inside].mean()),
            })
    return table


def importance(booster: lgb.Booster) -> dict[str, float]:
    """Total gain of each feature, largest first."""
    gains = booster.feature_importance(importance_type="gain")
    pairs = sorted(zip(booster.feature_name(), gains), key=lambda p: (-p[1], p[0]))
    return {name: round(float(gain), 6) for name, gain in pairs}


def shap_summary(booster: lgb.Booster, frame: pd.DataFrame, features: list[str]) -> dict[str, float]:
    """Mean absolute SHAP contribution of each feature (LightGBM's `pred_contrib`), largest first.

    On the first `SHAP_ROWS` rows: the caller passes them in a deterministic order.
    """
    sample = frame[features].head(SHAP_ROWS).to_numpy(dtype=np.float64)
    contributions = booster.predict(sample, pred_contrib=True, num_threads=1)[:, : len(features)]
    means = np.abs(contributions).mean(axis=0)
    pairs = sorted(zip(features, means), key=lambda p: (-p[1], p[0]))
    return {name: round(float(value), 8) for name, value in pairs}


def report(
    task: Task,
    booster: lgb.Booster,
    holdout: pd.DataFrame,
    features: list[str],
    label_column: str,
    top_k_percent: list[float],
) -> dict[str, Any]:
    """Everything recorded about a model's holdout performance."""
    score = predict(booster, holdout, features)
    label = holdout[label_column].to_numpy()
    result: dict[str, Any] = {"metrics": metrics(task, label, score, top_k_percent)}
    if task == "classification":
        result["calibration"] = calibration(label, score)
    result["importance_gain"] = importance(booster)
    result["shap_mean_abs"] = shap_summary(booster, holdout, features)
    return result


def better(task: Task, candidate: float, incumbent: float, margin: float) -> bool:
    """Whether `candidate` beats `incumbent` on the primary metric by more than `margin`."""
    _, larger_is_better = PRIMARY[task]
    # Strictly better: a retrained twin of the champion does not replace it.
    return candidate - incumbent > margin if larger_is_better else incumbent - candidate > margin
