"""Drift of features against the data a model was trained on: the population stability index.

`reference_statistics` describes each feature of the training rows once, when the model is
registered (stored in its `metadata.json`): the edges of `DEFAULT_BINS` quantile bins and the
share of rows in each, missing values (null or NaN) as a bin of their own. New data is binned
with the same edges (`bin_metric`, counted by `validation.metrics.histogram`, the one binning
rule, in the gate's pass over the rows) and compared (`psi_from_counts`):

    PSI = sum over bins of (new share - reference share) * ln(new share / reference share)

Common reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a significant one.
Shares are floored at `SHARE_FLOOR` so that a bin empty on one side gives a large, finite PSI.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from validation import metrics
from validation.metrics import Metric

DEFAULT_BINS = 10
SHARE_FLOOR = 1e-4


def _edges(values: np.ndarray, weights: np.ndarray, bins: int) -> list[float]:
    """Interior weighted quantile edges of the finite values; repeated quantiles (discrete features) merge."""
    finite = np.isfinite(values)
    if not finite.any():
        return []
    quantiles = np.quantile(values[finite], np.arange(1, bins) / bins, weights=weights[finite], method="inverted_cdf")
    return [float(edge) for edge in np.unique(quantiles)]


def reference_statistics(
    frame: pd.DataFrame, features: list[str], bins: int = DEFAULT_BINS, weights: pd.Series | None = None,
) -> dict[str, Any]:
    """Per feature, the bin edges of the training rows and the share of rows in each bin (JSON-serialisable).

    Args:
        frame: the training rows (pandas), one column per feature.
        features: the features to describe, in model order.
        bins: quantile bins per feature (fewer when quantiles repeat).
        weights: each row's weight, when the rows are a weighted sample (a down-sampled majority
            class): the statistics then describe the population the sample was drawn from, as
            the rows scored later do. None: every row weighs 1.

    Returns:
        `{"bins": bins, "rows": n, "features": {name: {"edges": [...], "shares": [...], "min": x,
        "max": y}}}` where `shares` has len(edges) + 2 entries: the bins, then missing values, and
        `min`/`max` are the finite values' range (None when there are none; `monitor` counts
        values outside it). Models registered before `min`/`max` existed lack them.
    """
    weight = np.ones(len(frame)) if weights is None else np.asarray(weights, dtype="float64")
    total = max(float(weight.sum()), 1e-300)
    described: dict[str, Any] = {}
    for name in features:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        edges = _edges(values, weight, bins)
        sums = np.bincount(metrics.histogram(values, edges), weights=weight, minlength=len(edges) + 2)
        finite = values[np.isfinite(values)]
        described[name] = {
            "edges": edges, "shares": [float(share) for share in sums / total],
            "min": float(finite.min()) if len(finite) else None, "max": float(finite.max()) if len(finite) else None,
        }
    return {"bins": bins, "rows": int(len(frame)), "features": described}


def bin_metric(reference: dict[str, Any], feature: str) -> Metric:
    """The per-date metric that counts `feature`'s values in its reference bins (for one pass with other metrics)."""
    return Metric("bins", feature, tuple(reference["features"][feature]["edges"]))


def psi_from_counts(reference_shares: list[float], counts: list[int]) -> float | None:
    """The PSI of binned counts against the reference shares; None without rows."""
    total = sum(counts)
    if total == 0:
        return None
    expected = np.maximum(np.asarray(reference_shares, dtype="float64"), SHARE_FLOOR)
    actual = np.maximum(np.asarray(counts, dtype="float64") / total, SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))

