from __future__ import annotations

from models.config import METRICS


def test_promotion_needs_a_strict_improvement_by_the_margin() -> None:
    auc, rmse = METRICS["auc"], METRICS["rmse"]
    assert auc.beats(0.81, 0.80, 0.005)
    assert not auc.beats(0.80, 0.80)
    assert not auc.beats(0.804, 0.80, 0.005)
    assert rmse.beats(1.0, 1.2, 0.1)  # smaller errors are better
    assert not rmse.beats(1.2, 1.0)


def test_the_better_value_sorts_first() -> None:
    values = [0.7, 0.9, 0.8]
    assert sorted(values, key=METRICS["pr_auc"].best_first) == [0.9, 0.8, 0.7]
    assert sorted(values, key=METRICS["log_loss"].best_first) == [0.7, 0.8, 0.9]
