from __future__ import annotations

from datetime import date, timedelta

import pytest

from models.folds import plan
from nightjar.errors import ConfigError

START = date(2026, 1, 1)


def days(count: int, stride: int = 1) -> list[date]:
    return [START + timedelta(days=i * stride) for i in range(count)]


def test_folds_train_on_earlier_dates_and_validate_on_later_ones() -> None:
    result = plan(days(14), folds=3, holdout_days=2, gap_days=0)
    assert result.holdout == (date(2026, 1, 13), date(2026, 1, 14))
    assert result.fit == tuple(days(12))
    assert [len(f.valid) for f in result.folds] == [3, 3, 3]
    for fold in result.folds:
        assert max(fold.train) < min(fold.valid)
        assert max(fold.valid) < min(result.holdout)
    # An expanding window: each fold trains on everything before its validation block.
    assert result.folds[0].train == tuple(days(3))
    assert result.folds[2].train == tuple(days(9))
    assert result.folds[2].valid == tuple(days(12)[9:])


def test_the_holdout_is_the_latest_days_with_a_stride() -> None:
    result = plan(days(10, stride=3), folds=2, holdout_days=7, gap_days=0)
    # Dates 3 days apart: the 7 days ending at the newest date hold three of them.
    assert result.holdout == (date(2026, 1, 22), date(2026, 1, 25), date(2026, 1, 28))


def test_a_gap_removes_training_dates_close_to_the_validation_dates() -> None:
    result = plan(days(20), folds=2, holdout_days=4, gap_days=3)
    assert max(result.fit) < min(result.holdout) - timedelta(days=3)
    for fold in result.folds:
        assert max(fold.train) < min(fold.valid) - timedelta(days=3)


def test_too_few_dates_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="training.folds=3"):
        plan(days(5), folds=3, holdout_days=2, gap_days=0)
    with pytest.raises(ConfigError, match="gap_days"):
        plan(days(12), folds=2, holdout_days=1, gap_days=3)


def test_calibration_dates_lie_between_the_fit_and_the_holdout() -> None:
    dates = [date(2026, 1, 1) + timedelta(days=i) for i in range(20)]
    split = plan(dates, folds=2, holdout_days=5, gap_days=1, calibration_days=4)
    assert split.holdout == tuple(dates[15:])
    assert split.calibration == tuple(dates[11:15])
    # The gap separates the fit from the calibration dates; calibration runs into the holdout.
    assert split.fit == tuple(dates[:10])
    assert max(d for fold in split.folds for d in (*fold.train, *fold.valid)) < split.calibration[0]
    assert plan(dates, folds=2, holdout_days=5, gap_days=1).calibration == ()
