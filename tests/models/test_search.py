"""The hyperparameter search on a real Dask cluster: parallel trials, and the time budget."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from sklearn import metrics as skm

from models import search
from models.config import METRICS, SearchConfig, SearchDimension, TrainingConfig
from models.folds import Fold
from models.training_set import DATE, LABEL, WEIGHT
from nightjar.errors import ConfigError

DAYS = [date(2026, 1, 1) + timedelta(days=offset) for offset in range(4)]
FOLDS = (Fold(0, tuple(DAYS[:2]), (DAYS[2],)), Fold(1, tuple(DAYS[:3]), (DAYS[3],)))
SLOW_S = 8.0


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    # Threads, not processes: the test's own fit functions need not be importable by workers.
    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as dask_client:
            yield dask_client


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = 400
    x = rng.normal(size=rows)
    return pd.DataFrame({
        DATE: np.repeat(DAYS, rows // len(DAYS)),
        "x": x,
        "noise": rng.normal(size=rows),
        LABEL: (x + rng.normal(scale=0.5, size=rows) > 0).astype(int),
        WEIGHT: 1.0,
    })


def _training(trials: int, budget_s: float, metric: str | None = None) -> TrainingConfig:
    space = {"num_leaves": SearchDimension(low=2, high=64, integer=True)}
    return TrainingConfig(
        max_rounds=20, early_stopping_rounds=5, seed=3, metric=metric,
        search=SearchConfig(trials=trials, time_budget_s=budget_s, space=space),
    )


def _slow_after_the_first(training: TrainingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial 0's fits stay quick; every other trial's outlive the budget (the workers are threads here)."""
    first = search.draw_params(training.search.space, training.search.trials, training.seed)[0]
    fit_fold = search.fit_fold

    def fit(frame: pd.DataFrame, features: list[str], fold: Fold, params: dict[str, Any], *rest: Any) -> tuple[float, int]:
        if any(params[name] != value for name, value in first.items()):
            time.sleep(SLOW_S)
        return fit_fold(frame, features, fold, params, *rest)

    monkeypatch.setattr(search, "fit_fold", fit)


def test_every_trial_is_evaluated_on_every_fold(client: Client) -> None:
    training = _training(trials=3, budget_s=120)
    result = search.run_search(client, _frame(), ["x", "noise"], FOLDS, training, "classification", 1)
    assert [t.complete for t in result.trials] == [True, True, True]
    assert all(len(t.fold_scores) == len(FOLDS) for t in result.trials)
    assert not result.stopped_by_time and result.cancelled == []
    assert result.best.score == max(t.score for t in result.trials) and result.best.score > 0.7
    # The best trial's out-of-fold predictions: each fold's validation rows once, as its own fits predict them.
    frame = _frame()
    out_of_fold = search.out_of_fold(frame, FOLDS, result.predictions)
    assert out_of_fold[DATE].tolist() == frame[frame[DATE] >= DAYS[2]][DATE].tolist()
    params = {**search.base_params(training, "classification", 1, training.seed), **result.best.params}
    for fold, predictions in zip(FOLDS, result.predictions):
        fit = search.fit_fold(frame, ["x", "noise"], fold, params, training.max_rounds, training.early_stopping_rounds)
        assert fit.rounds == result.best.fold_rounds[fold.index]
        np.testing.assert_array_equal(predictions, fit.predictions)


# sklearn's weighted form of each classification metric, as LightGBM computes it on the validation rows.
_SKLEARN = {"auc": skm.roc_auc_score, "pr_auc": skm.average_precision_score, "log_loss": skm.log_loss}


@pytest.mark.parametrize("metric", sorted(_SKLEARN))
def test_the_folds_stop_and_the_search_chooses_on_the_configured_metric(client: Client, metric: str) -> None:
    frame = _frame()
    # Down-sampled negatives weigh more: the folds' metric is weighted like the population.
    frame[WEIGHT] = np.where(frame[LABEL] == 0, 5.0, 1.0)
    training = _training(trials=3, budget_s=120, metric=metric)
    selected = METRICS[metric]
    params = search.base_params(training, "classification", 1, training.seed)
    assert params["metric"] == selected.lightgbm
    fit = search.fit_fold(frame, ["x", "noise"], FOLDS[1], {**params, "num_leaves": 4}, training.max_rounds,
                          training.early_stopping_rounds)
    valid = frame[frame[DATE] == DAYS[3]]
    expected = _SKLEARN[metric](valid[LABEL], fit.predictions, sample_weight=valid[WEIGHT])
    assert fit.score == pytest.approx(expected, rel=1e-6)
    result = search.run_search(client, frame, ["x", "noise"], FOLDS, training, "classification", 1)
    assert result.metric == metric
    scores = [t.score for t in result.trials]
    assert result.best.score == (max(scores) if selected.larger_is_better else min(scores))


# Before the tests of the budget, whose slow fits keep the threads busy after they end.
def test_a_failing_fit_fails_the_search_with_its_own_error(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: Any) -> search.FoldFit:
        raise ValueError("bad parameter: num_leaves")

    monkeypatch.setattr(search, "fit_fold", failing)
    with pytest.raises(search.TrainingFailed, match=r"^trial 0 fold 0 failed: ValueError: bad parameter: num_leaves$"):
        search.run_search(client, _frame(), ["x", "noise"], FOLDS, _training(trials=1, budget_s=60),
                          "classification", 1)


def test_the_time_budget_keeps_finished_trials_and_cancels_the_rest(
    client: Client, monkeypatch: pytest.MonkeyPatch,
) -> None:
    training = _training(trials=3, budget_s=2.0)
    _slow_after_the_first(training, monkeypatch)
    result = search.run_search(client, _frame(), ["x", "noise"], FOLDS, training, "classification", 1)
    assert result.stopped_by_time and result.cancelled == [1, 2]
    assert [t.complete for t in result.trials] == [True, False, False]
    assert result.best.index == 0 and result.best.rounds >= 1
    # Trial 0's results were in hand when the budget ran out, although every worker thread was
    # then busy with a slow fit that cannot be stopped.
    assert result.seconds < SLOW_S and len(result.predictions) == len(FOLDS)


def test_no_trial_within_the_budget_is_a_one_line_failure(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    fit_fold = search.fit_fold

    def slow(*args: Any) -> tuple[float, int]:
        time.sleep(SLOW_S)
        return fit_fold(*args)

    monkeypatch.setattr(search, "fit_fold", slow)
    training = _training(trials=2, budget_s=1.0)
    with pytest.raises(search.TrainingFailed, match=r"^no trial finished within training.search.time_budget_s=1s$"):
        search.run_search(client, _frame(), ["x", "noise"], FOLDS, training, "classification", 1)


def test_excluded_features_are_left_out_of_the_fit_by_name_or_pattern() -> None:
    names = ["card_count_1h", "merchant_chargebacks_count_30d", "merchant_chargeback_rate_30d", "amount"]
    excluding = TrainingConfig(exclude_features=["merchant_chargeback*", "amount"])
    assert search.fitted_features(excluding, names) == ["card_count_1h"]
    assert search.fitted_features(TrainingConfig(), names) == names
    with pytest.raises(ConfigError, match="'merchant_chargebak\\*' matches no feature"):
        search.fitted_features(TrainingConfig(exclude_features=["merchant_chargebak*"]), names)
    with pytest.raises(ConfigError, match="excludes every feature"):
        search.fitted_features(TrainingConfig(exclude_features=["*"]), names)
