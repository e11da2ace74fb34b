"""Prediction intervals of a regression from conformal residuals.

Split conformal prediction: the residuals of predictions made on rows the model did not see
(the validation folds' out-of-fold predictions) give, per group (a forecast's horizon), the
quantiles that bound a new residual with the stated probability. Residuals are scaled by
sqrt(prediction + 1) first, because the noise of counts grows with their mean (a Poisson
variance equals its mean): the interval is then prediction + q * sqrt(prediction + 1), wide where
much is expected and narrow where little is, and its coverage holds over the rows of a group
(marginally), not for each series. The holdout, which neither the fit nor the quantiles saw,
measures the coverage. Pure functions of arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ALL = "all"  # the one group of a model without horizons


def _keys(groups: np.ndarray | None, rows: int) -> np.ndarray:
    """Each row's group as text: a horizon is "3" whether it arrives as an int or a float."""
    if groups is None:
        return np.full(rows, ALL, dtype=object)
    values = np.asarray(groups)
    if np.issubdtype(values.dtype, np.number):
        values = values.astype(np.int64)
    return values.astype(str)


def _spread(prediction: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(prediction, 0.0) + 1.0)


def calibrate(
    label: np.ndarray, prediction: np.ndarray, groups: np.ndarray | None, levels: list[float],
) -> dict[str, Any]:
    """Per group and level, the (low, high) quantiles of the scaled residuals.

    Each bound is the empirical quantile at the finite-sample corrected probability
    (ceil((n + 1) p) / n, as split conformal prediction takes it), so that the interval covers a
    new exchangeable row with at least the level's probability.

    Returns:
        {"levels": [...], "nonnegative": bool, "quantiles": {group: {level: [low, high]}}}, where
        `nonnegative` says whether every label was (intervals are then cut at 0).
    """
    label = np.asarray(label, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    scaled = (label - prediction) / _spread(prediction)
    keys = _keys(groups, len(label))
    quantiles: dict[str, dict[str, list[float]]] = {}
    for group in sorted(set(keys.tolist())):
        residuals = np.sort(scaled[keys == group])
        n = len(residuals)
        quantiles[group] = {}
        for level in levels:
            tail = (1.0 - level) / 2.0
            upper = min(n - 1, math.ceil((n + 1) * (1.0 - tail)) - 1)
            lower = max(0, math.floor((n + 1) * tail) - 1)
            quantiles[group][str(level)] = [float(residuals[lower]), float(residuals[upper])]
    return {"levels": list(levels), "nonnegative": bool((label >= 0).all()), "quantiles": quantiles}


def bounds(prediction: np.ndarray, groups: np.ndarray | None, calibrated: dict[str, Any], level: float) -> tuple[np.ndarray, np.ndarray]:
    """The (low, high) bounds at `level` of each prediction; NaN for a group not calibrated."""
    prediction = np.asarray(prediction, dtype=np.float64)
    keys = _keys(groups, len(prediction))
    low = np.full(len(prediction), np.nan)
    high = np.full(len(prediction), np.nan)
    spread = _spread(prediction)
    for group, by_level in calibrated["quantiles"].items():
        inside = keys == group
        q_low, q_high = by_level[str(level)]
        low[inside] = prediction[inside] + q_low * spread[inside]
        high[inside] = prediction[inside] + q_high * spread[inside]
    if calibrated["nonnegative"]:
        low, high = np.maximum(low, 0.0), np.maximum(high, 0.0)
    return low, high


def coverage(label: np.ndarray, prediction: np.ndarray, groups: np.ndarray | None, calibrated: dict[str, Any]) -> dict[str, Any]:
    """The share of rows whose label lies in its interval, per level, overall and per group."""
    label = np.asarray(label, dtype=np.float64)
    keys = _keys(groups, len(label))
    result: dict[str, Any] = {"overall": {}, "by_group": {group: {} for group in calibrated["quantiles"]}}
    for level in calibrated["levels"]:
        low, high = bounds(prediction, groups, calibrated, level)
        covered = (label >= low) & (label <= high)
        result["overall"][str(level)] = float(covered.mean()) if len(label) else None
        for group in calibrated["quantiles"]:
            inside = keys == group
            result["by_group"][group][str(level)] = float(covered[inside].mean()) if inside.any() else None
    return result
