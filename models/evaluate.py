"""Holdout evaluation: metrics, a calibration table, feature importance and a SHAP summary.

Pure functions of arrays and a Booster; the training job calls them on the holdout rows.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from features.definitions import HORIZON, TARGET_DATE
from models.config import Task

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


def forecast_metrics(
    holdout: pd.DataFrame,
    predicted: np.ndarray,
    history: pd.DataFrame,
    keys: list[str],
    label_column: str,
    reference_column: str | None = None,
) -> dict[str, Any]:
    """A forecast's holdout errors, overall and per horizon, beside its baselines.

    Every predictor is measured on the same rows: those where the seasonal-naive forecast (the
    same weekday a week before the target date) and the reference (the true mean, when there is
    one) exist. RMSSE scales each series' error by the mean squared day-to-day change of its own
    history (the horizon-1 labels of `history`, consecutive days only), as in the M5
    competition, and is averaged over the series whose scale is not zero; series without such a
    history (new items) are counted apart, with their RMSE.

    Args:
        holdout: rows (key columns, `ds`, `horizon`, `target_date`, the label, the reference).
        predicted: the model's prediction for each holdout row.
        history: earlier rows of the same columns (the fit dates), for the scales.
        keys: the entity key's columns.
    """
    frame = holdout.assign(_model=np.asarray(predicted, dtype=np.float64))
    sold = _sales_by_day(pd.concat([history, holdout], ignore_index=True), keys, label_column)
    week_before = frame[keys].assign(_day=pd.to_datetime(frame[TARGET_DATE]) - pd.Timedelta(days=7))
    frame["_seasonal_naive"] = week_before.merge(sold, on=[*keys, "_day"], how="left")["_units"].to_numpy()
    predictors = {"model": "_model", "seasonal_naive": "_seasonal_naive"}
    if reference_column is not None and reference_column in frame.columns:
        predictors["true_mean"] = reference_column
    compared = frame.dropna(subset=list(predictors.values()))
    scale = _series_scale(sold, keys)
    result: dict[str, Any] = {"rows": len(frame), "compared_rows": len(compared), "overall": {}, "by_horizon": {}}
    for name, column in predictors.items():
        result["overall"][name] = _errors(compared, column, label_column, keys, scale)
    for horizon, rows in compared.groupby(HORIZON, sort=True):
        result["by_horizon"][str(int(horizon))] = {
            name: _errors(rows, column, label_column, keys, scale) for name, column in predictors.items()
        }
    scaled = compared[keys].merge(scale.rename("_scale").reset_index(), on=keys, how="left")["_scale"]
    new = compared[~(scaled.fillna(0) > 0).to_numpy()]
    result["unscaled_series"] = {
        "series": int(new[keys].drop_duplicates().shape[0]), "rows": len(new),
        "rmse": {name: _rmse(new[label_column], new[column]) for name, column in predictors.items()} if len(new) else None,
    }
    return result




def _sales_by_day(rows: pd.DataFrame, keys: list[str], label_column: str) -> pd.DataFrame:
    """Each series' label per target day, from the horizon-1 rows (one per series and day)."""
    first = rows[rows[HORIZON] == 1]
    sold = first[keys].assign(_day=pd.to_datetime(first[TARGET_DATE]), _units=first[label_column].to_numpy(dtype=np.float64))
    return sold.drop_duplicates([*keys, "_day"])


def _series_scale(sold: pd.DataFrame, keys: list[str]) -> pd.Series:
    """The mean squared change between consecutive days of each series (M5's RMSSE denominator)."""
    ordered = sold.sort_values([*keys, "_day"])
    grouped = ordered.groupby(keys, sort=False)
    change = grouped["_units"].diff()
    consecutive = grouped["_day"].diff() == pd.Timedelta(days=1)
    squares = (change[consecutive] ** 2).to_frame("_square")
    squares[keys] = ordered.loc[consecutive, keys]
    return squares.groupby(keys)["_square"].mean()


def _rmse(label: pd.Series, prediction: pd.Series) -> float:
    return float(np.sqrt(np.mean((label.to_numpy(np.float64) - prediction.to_numpy(np.float64)) ** 2)))


def _errors(rows: pd.DataFrame, column: str, label_column: str, keys: list[str], scale: pd.Series) -> dict[str, float]:
    """RMSE, MAE, WAPE and RMSSE of `column` against the label on `rows`."""
    if not len(rows):
        return {}
    label, prediction = rows[label_column].to_numpy(np.float64), rows[column].to_numpy(np.float64)
    error = label - prediction
    squared = rows[keys].assign(_square=error**2).groupby(keys)["_square"].mean()
    scales = scale.reindex(squared.index)
    usable = scales > 0
    total = np.abs(label).sum()
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "wape": float(np.abs(error).sum() / total) if total else float("nan"),
        "rmsse": float(np.sqrt(squared[usable] / scales[usable]).mean()) if usable.any() else float("nan"),
        "series": int(usable.sum()),
    }
