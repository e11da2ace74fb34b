"""Alerts: a score threshold chosen for a precision, and what alerting at it does.

Accuracy says little when events are rare: a model that never alerts is right on nearly every
entity-day. What an alert is worth is how often it is right (precision), how many events it
catches (recall), and for how many it comes early enough to act (`lead_time` or more before
the event), at the cost of how many false alarms per entity. These are pure functions of arrays
and pandas frames; the training job calls them on the folds' out-of-fold predictions (to choose
the threshold) and on the holdout (to report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.engine import DATE
from nightjar.durations import DAY_MICROS, Duration

Rule = Literal["min_precision", "best_f1"]
MIN_PRECISION: Rule = "min_precision"
BEST_F1: Rule = "best_f1"
EVENT_TIME = "event_micros"  # an event's instant, microseconds since the epoch (UTC)
ENTITY_DAYS_PER_PERIOD = 30  # false alarms are counted per entity and 30 days
BOOTSTRAP_RESAMPLES = 200
# Precision is a ratio of (weighted) sums: 9/10 computed through weights of 1/rate may land a
# hair under 0.9, which must still count as reaching 0.9.
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Threshold:
    """An alert threshold (alert when score >= value), the rule that chose it, and how it did there."""

    value: float
    rule: Rule
    rows: int
    precision: float
    recall: float

    def summary(self) -> dict[str, Any]:
        return {"threshold": self.value, "rule": self.rule,
                "chosen_on": {"rows": self.rows, "precision": self.precision, "recall": self.recall}}


def _curve(label: np.ndarray, score: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct score, highest first, with the weighted true and false positives of alerting at it."""
    order = np.argsort(-score, kind="stable")
    ordered, positive, w = score[order], label[order] == 1, weight[order]
    true_positives = np.cumsum(np.where(positive, w, 0.0))
    false_positives = np.cumsum(np.where(positive, 0.0, w))
    # Rows tied at a score are alerted together: read the sums at the last row of each tie.
    last = np.r_[np.flatnonzero(ordered[1:] != ordered[:-1]), len(ordered) - 1]
    return ordered[last], true_positives[last], false_positives[last]


def _arrays(label: np.ndarray, score: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, ...]:
    label = np.asarray(label, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    weight = np.ones_like(score) if weight is None else np.asarray(weight, dtype=np.float64)
    if not len(score):
        raise ValueError("no rows to choose an alert threshold on")
    return label, score, weight


def choose_threshold(
    label: np.ndarray, score: np.ndarray, min_precision: float, weight: np.ndarray | None = None,
) -> Threshold:
    """The alert threshold with the highest recall among those whose precision is at least `min_precision`.

    Candidates are the distinct scores (alert when score >= candidate). Among the candidates
    reaching `min_precision`, the one with the highest recall, and of several with that recall
    the highest (the fewest alerts: the same events caught with fewer false alarms). When none
    reaches it, the candidate with the best F1 (the highest of ties), with `rule` "best_f1".

    Args:
        label: 0/1 labels.
        score: the predictions, higher meaning more likely 1.
        min_precision: the precision to reach.
        weight: row weights (a down-sampled majority weighs 1 / rate); None: all 1.
    """
    label, score, weight = _arrays(label, score, weight)
    thresholds, true_positives, false_positives = _curve(label, score, weight)
    positives = true_positives[-1]
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / positives if positives > 0 else np.zeros_like(true_positives)
    reaching = precision >= min_precision - _TOLERANCE
    if reaching.any():
        # Recall only grows as the threshold falls, and an earlier candidate with the same true
        # positives has fewer false ones, so it reaches the precision too.
        index = int(np.flatnonzero(reaching & (true_positives == true_positives[reaching].max()))[0])
        rule = MIN_PRECISION
    else:
        f1 = 2 * true_positives / (positives + true_positives + false_positives)
        index = int(np.argmax(f1))  # the first maximum: the highest threshold among ties
        rule = BEST_F1
    return Threshold(float(thresholds[index]), rule, len(score), float(precision[index]), float(recall[index]))


def pr_auc(label: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Average precision (scikit-learn's `average_precision_score`): the area under the precision-recall steps."""
    label, score, weight = _arrays(label, score, weight)
    return _average_precision(*_curve(label, score, weight)[1:])


def _average_precision(true_positives: np.ndarray, false_positives: np.ndarray) -> float:
    positives = true_positives[-1]
    if positives <= 0:
        return float("nan")
    alerted = true_positives + false_positives
    # A tie whose rows all weigh 0 in a resample adds no recall; its 0/0 precision must not be NaN.
    precision = np.divide(true_positives, alerted, out=np.zeros_like(alerted), where=alerted > 0)
    recall_gained = np.diff(true_positives, prepend=0.0) / positives
    return float(np.sum(recall_gained * precision))


def pr_auc_interval(
    label: np.ndarray, score: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95,
) -> tuple[float, float]:
    """A percentile bootstrap interval of the PR-AUC: `resamples` draws of the rows with replacement.

    A resample is a count per row (how often it was drawn), so the scores are sorted once and
    each resample costs one pass. Resamples without a positive have no PR-AUC and are left out.
    The same seed and rows give the same interval.
    """
    label, score, _ = _arrays(label, score, None)
    order = np.argsort(-score, kind="stable")
    label, score = label[order], score[order]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, len(score), len(score)), minlength=len(score)).astype(np.float64)
        value = _average_precision(*_curve(label, score, counts)[1:])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def cutoff_micros(ds: pd.Series) -> np.ndarray:
    """The cutoff of each date, the start of the next day (UTC), in microseconds since the epoch."""
    days = pd.to_datetime(ds).to_numpy(dtype="datetime64[D]").astype(np.int64)
    return (days + 1) * DAY_MICROS


def early_alerts(
    rows: pd.DataFrame, events: pd.DataFrame, keys: list[str], horizon: Duration, lead_time: Duration,
) -> dict[str, Any]:
    """How many label events were alerted at least `lead_time` before they happened.

    An event at instant f could be warned of `lead_time` ahead by a scored date whose cutoff c
    has f - horizon < c <= f - lead_time: the event lies in that date's label window, at least
    `lead_time` after its cutoff. It counts (`events`) when some row of its entity is such a
    date, and is caught early (`alerted`) when one of those rows is alerted. Events no row could
    warn of in time (their entity unscored, or the dates around them not among the rows) count
    in neither, so the share is over the events the rows had a chance to catch.

    Args:
        rows: scored rows: the key's columns, `ds` and a boolean `alert`.
        events: the label's events: the key's columns and EVENT_TIME.
        keys: the entity key's columns.
        horizon: the label's horizon.
        lead_time: how early an alert must come.

    Returns:
        `events`, `alerted` and `share` (alerted / events; None without events).
    """
    scored = pd.DataFrame({**{key: rows[key].to_numpy() for key in keys}, "_cutoff": cutoff_micros(rows[DATE]),
                           "_alert": rows["alert"].to_numpy(dtype=bool)})
    happened = pd.DataFrame({**{key: events[key].to_numpy() for key in keys}, "_event": np.arange(len(events)),
                             "_time": events[EVENT_TIME].to_numpy(dtype=np.int64)})
    pairs = happened.merge(scored, on=keys)
    cutoff, instant = pairs["_cutoff"], pairs["_time"]
    in_time = (instant - horizon.micros < cutoff) & (cutoff <= instant - lead_time.micros)
    chances = pairs[in_time]
    counted = int(chances["_event"].nunique())
    alerted = int(chances.loc[chances["_alert"], "_event"].nunique())
    return {"events": counted, "alerted": alerted, "share": alerted / counted if counted else None}


def alerted(score: np.ndarray, threshold: float) -> np.ndarray:
    """Which scores raise an alert: those at or above the threshold (training's report and scoring alike)."""
    return np.asarray(score, dtype=np.float64) >= threshold


def holdout_figures(threshold: Threshold, label: np.ndarray, score: np.ndarray, seed: int) -> dict[str, Any]:
    """What alerting at `threshold` does on rows of one entity-day each (the holdout).

    False alarms are alerted rows whose label is 0; per entity per 30 days they are divided by
    the rows (entity-days) over 30. Accuracy stands beside the accuracy of never alerting, and
    the PR-AUC beside its bootstrap 95% interval (seeded by `seed`).
    """
    label = np.asarray(label, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    alert = alerted(score, threshold.value)
    positive = label == 1
    alerts, hits = int(alert.sum()), int((alert & positive).sum())
    false_alarms = alerts - hits
    low, high = pr_auc_interval(label, score, seed)
    return {
        **threshold.summary(),
        "rows": len(label),
        "alerts": alerts,
        "accuracy": float(np.mean(alert == positive)),
        "always_negative_accuracy": float(np.mean(~positive)),
        "precision": hits / alerts if alerts else None,
        "recall": hits / int(positive.sum()) if positive.any() else None,
        "false_alarms": false_alarms,
        "false_alarms_per_entity_30d": false_alarms / len(label) * ENTITY_DAYS_PER_PERIOD,
        "pr_auc": pr_auc(label, score),
        "pr_auc_95": [low, high],
    }


def report(
    threshold: Threshold,
    rows: pd.DataFrame,
    keys: list[str],
    label: str,
    score: str,
    events: pd.DataFrame | None,
    horizon: Duration,
    lead_time: Duration,
    seed: int,
) -> dict[str, Any]:
    """`holdout_figures` of `rows` (the key's columns, `ds`, `label`, `score`) with `early_alerts` under `early`.

    `events` None (a label without event instants, such as "no event in the horizon") gives
    `early` None.
    """
    figures = holdout_figures(threshold, rows[label].to_numpy(), rows[score].to_numpy(), seed)
    early = None
    if events is not None:
        flagged = pd.DataFrame({**{key: rows[key].to_numpy() for key in keys}, DATE: rows[DATE].to_numpy(),
                                "alert": alerted(rows[score].to_numpy(), threshold.value)})
        early = early_alerts(flagged, events, keys, horizon, lead_time)
    return {**figures, "early": early}
