"""Models with an offset: members fitted from log(feature), predicting exp(raw + log(feature))."""

from __future__ import annotations

from datetime import date, timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models import search
from models.config import TrainingConfig
from models.ensemble import Ensemble, Offset, from_text, to_text
from models.folds import Fold
from models.training_set import DATE, LABEL, WEIGHT

NAMES = ["level", "weekend", "noise"]
OFFSET = Offset("level", 0.1)


def _counts(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson counts whose mean is a series' level (spanning 300 times) times a weekend factor of 1.8."""
    rng = np.random.default_rng(seed)
    level = np.exp(rng.uniform(np.log(0.2), np.log(60.0), rows))
    weekend = rng.integers(0, 2, rows).astype(np.float64)
    mean = level * np.where(weekend == 1, 1.8, 1.0)
    x = np.column_stack([level, weekend, rng.normal(size=rows)])
    return x, rng.poisson(mean).astype(np.float64), mean


def _fit(x: np.ndarray, y: np.ndarray, offset: Offset | None) -> lgb.Booster:
    params = {"objective": "poisson", "verbosity": -1, "num_threads": 1, "seed": 1, "num_leaves": 15,
              "learning_rate": 0.1, "min_data_in_leaf": 20}
    init = None if offset is None else offset.log(x[:, NAMES.index(offset.feature)])
    return lgb.train(params, lgb.Dataset(x, y, feature_name=NAMES, init_score=init), num_boost_round=60)


def test_an_offset_model_predicts_exp_of_its_raw_score_plus_the_log_of_its_feature() -> None:
    x, y, _ = _counts(2000, 0)
    booster = _fit(x, y, OFFSET)
    model = Ensemble((booster,), OFFSET)
    rows = x[:200].copy()
    rows[0, 0], rows[1, 0] = 0.0, np.nan  # below the floor, and missing: both count as the floor
    expected = np.exp(booster.predict(rows, raw_score=True) + np.log(np.r_[0.1, 0.1, rows[2:, 0]]))
    np.testing.assert_allclose(model.predict(rows), expected, rtol=1e-12, atol=0)
    # The offset is its feature's contribution: the contributions still add up to the raw score.
    contributions = model.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(contributions.sum(axis=1), np.log(expected), rtol=0, atol=1e-9)
    # The text scoring broadcasts keeps the offset; without it the same members predict otherwise.
    again = from_text(to_text([booster.model_to_string()], OFFSET))
    np.testing.assert_allclose(again.predict(rows), expected, rtol=1e-12, atol=0)
    assert not np.allclose(from_text(to_text([booster.model_to_string()])).predict(rows), expected)


def test_the_offset_is_closer_to_the_true_mean_on_series_of_many_scales() -> None:
    """Without it the trees need the weekend's effect once per scale of series; with it, one split."""
    x, y, _ = _counts(3000, 1)
    test_x, _, test_mean = _counts(3000, 2)
    with_offset = Ensemble((_fit(x, y, OFFSET),), OFFSET).predict(test_x)
    without = _fit(x, y, None).predict(test_x)
    error = {name: float(np.sqrt(np.mean((p - test_mean) ** 2))) for name, p in
             (("offset", with_offset), ("plain", without))}
    assert error["offset"] < 0.8 * error["plain"], error


def test_a_fold_fitted_with_the_offset_predicts_as_the_registered_model_will() -> None:
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(4)]
    x, y, _ = _counts(800, 3)
    frame = pd.DataFrame(x, columns=NAMES).assign(**{DATE: np.repeat(days, 200), LABEL: y, WEIGHT: 1.0})
    fold = Fold(0, tuple(days[:3]), (days[3],))
    params = {"objective": "poisson", "metric": "rmse", "verbosity": -1, "num_threads": 1, "seed": 1}
    fit = search.fit_fold(frame, NAMES, fold, params, 30, 5, OFFSET)
    train = frame[frame[DATE].isin(fold.train)]
    booster = lgb.train(params, lgb.Dataset(train[NAMES], train[LABEL], weight=train[WEIGHT],
                                            init_score=OFFSET.log(train["level"])), num_boost_round=fit.rounds)
    valid = frame[frame[DATE] == days[3]]
    expected = Ensemble((booster,), OFFSET).predict(valid[NAMES].to_numpy())
    np.testing.assert_allclose(fit.predictions, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("training", [
    {"offset": {"feature": "level"}},  # the default objective: regression, an identity link
    {"offset": {"feature": "level"}, "params": {"objective": "tweedie"},
     "ensemble": {"members": [{"seed": 1}, {"objective": "huber"}]}},
])
def test_an_offset_needs_a_log_link_in_every_member(training: dict) -> None:
    with pytest.raises(ValidationError, match="training.offset needs a log-link objective"):
        TrainingConfig(**training)
    TrainingConfig(**{**training, "params": {"objective": "poisson"}, "ensemble": None})
