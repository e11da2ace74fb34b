"""Time-based validation: rolling-origin folds over the training dates and a final holdout.

Every split trains on dates before it validates, never after, so a model is always judged
on a future it has not seen: the situation it will be in when it scores tomorrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from nightjar.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """Train on `train` dates, validate (and stop early) on `valid` dates, all of them later."""

    index: int
    train: tuple[date, ...]
    valid: tuple[date, ...]


@dataclass(frozen=True)
class Plan:
    """The folds for choosing parameters and rounds, the dates of the final fit, and the holdout."""

    folds: tuple[Fold, ...]
    fit: tuple[date, ...]
    holdout: tuple[date, ...]
    # The dates between the fit and the holdout that calibrate its predictions (none by default).
    calibration: tuple[date, ...] = ()


def plan(dates: list[date], folds: int, holdout_days: int, gap_days: int, calibration_days: int = 0) -> Plan:
    """Split sorted distinct `dates` into rolling-origin folds and a holdout.

    The holdout is the dates within `holdout_days` of the newest; with `calibration_days`, the
    dates within that many days before the holdout calibrate the model. The remaining dates are cut
    into `folds + 1` consecutive blocks of (nearly) equal size; fold i trains on blocks
    0..i and validates on block i + 1 (an expanding window). `gap_days` removes training
    dates closer than that to the first validation date, in the folds and before the holdout.

    Raises:
        ConfigError: too few dates for the folds and holdout asked for (a matter of
            training.days, date_stride_days, folds, holdout_days and gap_days).
    """
    dates = sorted(set(dates))
    if not dates:
        raise ConfigError("no training dates")
    holdout_start = dates[-1] - timedelta(days=holdout_days - 1)
    holdout = [d for d in dates if d >= holdout_start]
    before_holdout = dates[: len(dates) - len(holdout)]
    calibration: list[date] = []
    if calibration_days:
        # The calibration dates come right before the holdout: train < calibration < holdout.
        calibration_start = holdout[0] - timedelta(days=calibration_days)
        calibration = [d for d in before_holdout if d >= calibration_start]
        before_holdout = before_holdout[: len(before_holdout) - len(calibration)]
        if not calibration:
            raise ConfigError(f"training.calibration.days={calibration_days} leaves no dates before the holdout")
    fit = _before(before_holdout, (calibration or holdout)[0], gap_days)
    blocks = _blocks(fit, folds + 1)
    if len(blocks) < folds + 1:
        raise ConfigError(
            f"{len(dates)} training dates ({dates[0]}..{dates[-1]}) leave {len(fit)} before the "
            f"{len(holdout)}-date holdout and gap: too few for training.folds={folds} (need {folds + 1})"
        )
    result = []
    for index in range(folds):
        valid = blocks[index + 1]
        train = _before([d for block in blocks[: index + 1] for d in block], valid[0], gap_days)
        if not train:
            raise ConfigError(f"fold {index}: training.gap_days={gap_days} leaves no training dates before {valid[0]}")
        result.append(Fold(index, tuple(train), tuple(valid)))
    return Plan(tuple(result), tuple(fit), tuple(holdout), tuple(calibration))


def _before(dates: list[date], cut: date, gap_days: int) -> list[date]:
    return [d for d in dates if d < cut - timedelta(days=gap_days)]


def _blocks(dates: list[date], count: int) -> list[list[date]]:
    if len(dates) < count:
        return []
    size, extra = divmod(len(dates), count)
    blocks, start = [], 0
    for index in range(count):
        # The earliest blocks take the remainder, so every validation block has `size` dates.
        end = start + size + (1 if index < extra else 0)
        blocks.append(dates[start:end])
        start = end
    return blocks
