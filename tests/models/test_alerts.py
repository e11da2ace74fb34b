"""Alert thresholds, the PR-AUC and its bootstrap, early alerts at the exact lead time, false alarms."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from models import alerts
from nightjar.durations import Duration

LABEL = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
# Alerting at each score, highest first: (true, false) positives and precision
#   0.9: (1, 0) 1.0   0.8: (2, 0) 1.0   0.7: (2, 1) 0.667   0.6: (3, 1) 0.75   0.5: (3, 2) 0.6
#   0.4: (3, 3) 0.5   0.3: (4, 3) 0.571 ...


@pytest.mark.parametrize(
    ("min_precision", "threshold", "recall"),
    [
        (0.75, 0.6, 0.75),  # exactly reached counts
        (0.76, 0.8, 0.5),   # a hair more: the last threshold above 0.75
        (1.0, 0.8, 0.5),
        # 0.6 and 0.5 both reach 0.6 at recall 0.75: the higher one, with fewer false alarms.
        (0.6, 0.6, 0.75),
        (0.55, 0.3, 1.0),
    ],
)
def test_the_threshold_with_the_most_recall_at_the_precision(min_precision: float, threshold: float,
                                                             recall: float) -> None:
    chosen = alerts.choose_threshold(LABEL, SCORE, min_precision)
    assert (chosen.value, chosen.rule, chosen.recall, chosen.rows) == (threshold, "min_precision", recall, 10)
    assert chosen.precision >= min_precision


def test_no_threshold_reaching_the_precision_falls_back_to_the_best_f1() -> None:
    label, score = np.array([0, 1, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # F1 at 0.8: 2/(2+1+1) = 0.5; at 0.5: 4/(4+3+0) = 0.571, the best; the best precision is 0.5.
    chosen = alerts.choose_threshold(label, score, 0.9)
    assert (chosen.value, chosen.rule, chosen.precision, chosen.recall) == (0.5, "best_f1", 0.4, 1.0)
    assert alerts.choose_threshold(label, score, 0.5).rule == "min_precision"


def test_tied_scores_are_alerted_together_and_weights_count() -> None:
    # The two rows at 0.5 alert together (precision 0.5); 0.4 adds a positive (2/3).
    chosen = alerts.choose_threshold(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.4]), 0.6)
    assert (chosen.value, chosen.precision) == (0.4, pytest.approx(2 / 3))
    # Negatives kept at rate 0.5 weigh 2: at 0.7 the precision is 2/4, not 2/3.
    label, score = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])
    assert alerts.choose_threshold(label, score, 0.6).value == 0.7
    assert alerts.choose_threshold(label, score, 0.6, weight=np.array([1.0, 2.0, 1.0, 2.0])).value == 0.9


def test_pr_auc_is_average_precision() -> None:
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) + 0.3 * label, 1)  # many ties
    weight = rng.integers(1, 4, 300).astype(float)
    assert alerts.pr_auc(label, score) == pytest.approx(average_precision_score(label, score), abs=1e-12)
    assert alerts.pr_auc(label, score, weight) == pytest.approx(
        average_precision_score(label, score, sample_weight=weight), abs=1e-12)


def test_the_bootstrap_interval_is_deterministic_and_holds_the_estimate() -> None:
    rng = np.random.default_rng(2)
    label = (rng.random(500) < 0.1).astype(int)
    score = rng.random(500) + 0.5 * label
    low, high = alerts.pr_auc_interval(label, score, seed=42)
    assert low < alerts.pr_auc(label, score) < high
    assert alerts.pr_auc_interval(label, score, seed=42) == (low, high)
    assert alerts.pr_auc_interval(label, score, seed=43) != (low, high)
    # Resamples without a positive are left out, not counted as 0.
    assert not np.isnan(alerts.pr_auc_interval(np.r_[1, np.zeros(9)], np.linspace(1, 0, 10), seed=1)).any()


def _micros(instant: str) -> int:
    return pd.Timestamp(instant, tz="UTC").value // 1000


def test_an_event_counts_as_early_from_exactly_the_lead_time_after_a_cutoff() -> None:
    # A 48h horizon and a 24h lead time: the cutoff of 03-01 is 03-02 00:00, of 02-28 it is 03-01 00:00.
    rows = pd.DataFrame({"machine_id": [1, 1, 2], "ds": [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 1)],
                         "alert": [False, True, False]})
    events = pd.DataFrame({"machine_id": [1, 1, 1, 1, 3], alerts.EVENT_TIME: [
        _micros("2026-03-03 00:00:00"),            # cutoff(03-01) + 24h: alerted on 03-01, early enough
        _micros("2026-03-02 23:59:59.999999"),     # 1 microsecond less: only 02-28 is early enough, not alerted
        _micros("2026-03-03 23:59:59.999999"),     # the last instant of 03-01's label window: alerted
        _micros("2026-03-04 00:00:00"),            # after 03-01's window; 03-02 was not scored: not counted
        _micros("2026-03-03 00:00:00"),            # an entity without scores: not counted
    ]})
    early = alerts.early_alerts(rows, events, ["machine_id"], Duration.parse("48h"), Duration.parse("24h"))
    assert early == {"events": 3, "alerted": 2, "share": pytest.approx(2 / 3)}
    # With no lead time to spare beyond a day, the 1-microsecond-short event is early on 03-01 too.
    early = alerts.early_alerts(rows, events, ["machine_id"], Duration.parse("48h"), Duration.parse("23h"))
    assert early == {"events": 3, "alerted": 3, "share": 1.0}
    assert alerts.early_alerts(rows, events.iloc[:0], ["machine_id"], Duration.parse("48h"),
                               Duration.parse("24h")) == {"events": 0, "alerted": 0, "share": None}


def test_false_alarms_per_entity_per_30_days_and_accuracy_beside_never_alerting() -> None:
    label = np.array([0, 0, 1, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1])
    threshold = alerts.Threshold(0.7, "min_precision", 100, 0.9, 0.5)
    figures = alerts.holdout_figures(threshold, label, score, seed=1)
    # 3 alerts, 1 right: 2 false alarms over 6 entity-days is 2 / (6 / 30) = 10 per entity per 30 days.
    assert (figures["alerts"], figures["false_alarms"]) == (3, 2)
    assert figures["false_alarms_per_entity_30d"] == pytest.approx(10.0)
    assert (figures["precision"], figures["recall"]) == (pytest.approx(1 / 3), 1.0)
    assert (figures["accuracy"], figures["always_negative_accuracy"]) == (pytest.approx(4 / 6), pytest.approx(5 / 6))
    assert (figures["threshold"], figures["rule"], figures["chosen_on"]) == (
        0.7, "min_precision", {"rows": 100, "precision": 0.9, "recall": 0.5})
    assert figures["pr_auc"] == pytest.approx(average_precision_score(label, score))
