"""Hyperparameter search: single-machine LightGBM fits with early stopping, run as Dask tasks.

A trial is one parameter set evaluated on every time fold; each (trial, fold) pair is one
Dask task fitting plain LightGBM with one thread on that fold's dates, stopped early on its
validation dates. Tasks of different trials run in parallel on the workers. A trial's score
is the mean of its folds' best scores, and its number of rounds the mean of their best
iterations: that is how many rounds the final distributed fit runs, since `lightgbm.dask`
cannot stop early itself. The best trial's predictions for each fold's validation dates (its
out-of-fold predictions) are kept: they choose the alert threshold on dates the holdout never sees.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client, Future, Worker, wait
from distributed.client import FutureCancelledError, FuturesCancelledError

from models.config import SearchDimension, Task, TrainingConfig, selection_metric
from models.ensemble import Ensemble, Offset
from models.folds import Fold
from models.training_set import DATE, LABEL, WEIGHT
from nightjar.errors import ConfigError, LostWorkerError, NightjarError

PREDICTION = "prediction"
_log = logging.getLogger(__name__)
# How many times a search starts over after losing its data with a worker (see `run_search`).
SEARCH_ATTEMPTS = 3


class TrainingFailed(NightjarError):
    """Training could not finish: a trial or fit raised, a worker died, a fit timed out.

    Exit 1, unless raised from a transient cause (a lost worker, a dropped connection), which
    the job runner reports as exit 5.
    """

    exit_code = 1


@dataclass(frozen=True)
class Trial:
    """One parameter set and how it did on each fold."""

    index: int
    params: dict[str, Any]
    fold_scores: tuple[float, ...] = ()
    fold_rounds: tuple[int, ...] = ()
    complete: bool = False

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores)) if self.complete else math.nan

    @property
    def rounds(self) -> int:
        return max(1, int(round(np.mean(self.fold_rounds)))) if self.complete else 0

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index, "params": self.params, "complete": self.complete,
            "score": None if not self.complete else self.score, "rounds": self.rounds,
            "fold_scores": list(self.fold_scores), "fold_rounds": list(self.fold_rounds),
        }


@dataclass(frozen=True)
class FoldFit:
    """A fold's fit: its best validation score, the iteration reaching it, its validation rows' predictions there."""

    score: float
    rounds: int
    predictions: np.ndarray


@dataclass
class SearchResult:
    """Every trial, the best one (by `metric`, its name in `evaluate.metrics`), and how the search went.

    `predictions` holds the best trial's predictions of each fold's validation rows, fold by
    fold, in the order `out_of_fold` lists those rows.
    """

    trials: list[Trial]
    best: Trial
    metric: str
    seconds: float
    stopped_by_time: bool = False
    cancelled: list[int] = field(default_factory=list)
    predictions: tuple[np.ndarray, ...] = ()


def base_params(training: TrainingConfig, task: Task, threads: int, seed: int) -> dict[str, Any]:
    """LightGBM parameters shared by every fit: objective, seeds, determinism, threads."""
    params: dict[str, Any] = {
        "objective": "binary" if task == "classification" else "regression",
        "metric": selection_metric(training, task).lightgbm,
        "verbosity": -1,
        "seed": seed,
        # Same data and seed give the same trees, whatever the machine's thread scheduling.
        "deterministic": True,
        "force_col_wise": True,
        # More threads than cores is catastrophic for LightGBM on small machines (STACK.md).
        "num_threads": threads,
    }
    params.update(training.params)
    return params


def offset_of_training(training: TrainingConfig) -> Offset | None:
    """The offset every fit of `training` starts from, if any."""
    return None if training.offset is None else Offset(training.offset.feature, training.offset.floor)


def fitted_features(training: TrainingConfig, features: list[str]) -> list[str]:
    """The features the model is fitted on: the feature set's, less `training.exclude_features`.

    Raises:
        ConfigError: a pattern that matches no feature (a typo would otherwise exclude nothing),
            or one that leaves no feature.
    """
    for pattern in training.exclude_features:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in features):
            raise ConfigError(f"training.exclude_features: {pattern!r} matches no feature of the feature set")
    fitted = [name for name in features
              if not any(fnmatch.fnmatchcase(name, pattern) for pattern in training.exclude_features)]
    if not fitted:
        raise ConfigError("training.exclude_features: excludes every feature")
    return fitted


def require_offset_feature(training: TrainingConfig, features: list[str]) -> None:
    """ConfigError unless `training.offset` (when set) names one of the model's features."""
    if training.offset is not None and training.offset.feature not in features:
        raise ConfigError(f"training.offset.feature: {training.offset.feature!r} is not a feature of the feature set")


def draw_params(space: dict[str, SearchDimension], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` parameter sets drawn at random from `space`.

    Trial i draws from its own stream seeded by (seed, i), so adding trials never changes
    the earlier ones.
    """
    drawn = []
    for index in range(trials):
        rng = np.random.default_rng([seed, index])
        params: dict[str, Any] = {}
        for name in sorted(space):
            dimension = space[name]
            if dimension.log:
                value = math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high)))
            else:
                value = rng.uniform(dimension.low, dimension.high)
            params[name] = int(round(value)) if dimension.integer else round(float(value), 6)
        drawn.append(params)
    return drawn


def fit_fold(
    frame: pd.DataFrame,
    features: list[str],
    fold: Fold,
    params: dict[str, Any],
    max_rounds: int,
    early_stopping_rounds: int,
    offset: Offset | None = None,
) -> FoldFit:
    """Fit on the fold's training dates, stop early on its validation dates.

    Returns:
        The best validation score, the iteration it was reached at, and the predictions of the
        validation rows (in `frame`'s order) at that iteration.
    """
    train = frame[frame[DATE].isin(fold.train)]
    valid = _valid_rows(frame, fold)
    starts = {name: None if offset is None else offset.log(rows[offset.feature]) for name, rows in (("train", train), ("valid", valid))}
    train_set = lgb.Dataset(train[features], train[LABEL], weight=train[WEIGHT], init_score=starts["train"],
                            free_raw_data=True)
    valid_set = lgb.Dataset(valid[features], valid[LABEL], weight=valid[WEIGHT], init_score=starts["valid"],
                            reference=train_set)
    booster = lgb.train(
        params, train_set, num_boost_round=max_rounds, valid_sets=[valid_set], valid_names=["valid"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    metric = params["metric"]
    rounds = int(booster.best_iteration or booster.current_iteration())
    if offset is None:
        predictions = booster.predict(valid[features], num_iteration=rounds, num_threads=params["num_threads"])
    else:
        # As the registered model will predict (`Ensemble` adds the offset); `rounds` is the
        # booster's best iteration, which its predictions use.
        predictions = Ensemble((booster,), offset).predict(valid[features].to_numpy(dtype=np.float64),
                                                           num_threads=params["num_threads"])
    return FoldFit(float(booster.best_score["valid"][metric]), rounds, predictions)


def _valid_rows(frame: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    return frame[frame[DATE].isin(fold.valid)]


def _headlines(keys: list[str], dask_worker: Worker) -> dict[str, tuple[float, int]]:
    """The score and rounds of the fits among `keys` that this worker holds.

    Run by `Client.run`, on the worker and outside its task threads, which may all be busy with
    fits that outlive the time budget (a cancelled fit still runs to its end): only scores and
    rounds leave the workers, never every trial's predictions.
    """
    held = dask_worker.data
    return {key: (held[key].score, held[key].rounds) for key in keys if key in held}


def out_of_fold(frame: pd.DataFrame, folds: tuple[Fold, ...], predictions: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """The folds' validation rows of `frame` (as searched), fold by fold, with `predictions` as PREDICTION.

    Validation blocks never overlap, so each row appears at most once.
    """
    parts = [_valid_rows(frame, fold).assign(**{PREDICTION: fold_predictions})
             for fold, fold_predictions in zip(folds, predictions, strict=True)]
    return pd.concat(parts, ignore_index=True)


def run_search(
    client: Client,
    frame: pd.DataFrame,
    features: list[str],
    folds: tuple[Fold, ...],
    training: TrainingConfig,
    task: Task,
    threads: int,
) -> SearchResult:
    """Evaluate the configured trials on the folds in parallel on the Dask workers.

    Trials still running when `training.search.time_budget_s` is spent are cancelled and the
    search goes on with the trials that finished every fold.

    A worker that dies mid-search is replaced by the others: Dask runs its tasks again
    elsewhere. Dask may hold the scattered data on that worker alone (its memory manager
    drops copies no task waits for), and losing it cancels every task that read it; the search
    then starts over with the workers left, at most SEARCH_ATTEMPTS times, within the same
    time budget. Trials give the same result on any worker, so the outcome does not change.

    Raises:
        TrainingFailed: a trial raised; no trial finished in the time budget; the data was
            lost SEARCH_ATTEMPTS times (from LostWorkerError: exit 5).
    """
    began = time.perf_counter()
    attempt = 1
    while True:
        try:
            return _search_once(client, frame, features, folds, training, task, threads, began)
        except (FutureCancelledError, FuturesCancelledError) as error:
            if attempt == SEARCH_ATTEMPTS:
                message = f"the search lost its data with a Dask worker {attempt} times ({_first_line(error)})"
                raise TrainingFailed(message) from LostWorkerError(message)
            _log.warning("the search lost its data with a Dask worker (%s); starting over", _first_line(error))
            attempt += 1


def _search_once(
    client: Client,
    frame: pd.DataFrame,
    features: list[str],
    folds: tuple[Fold, ...],
    training: TrainingConfig,
    task: Task,
    threads: int,
    began: float,
) -> SearchResult:
    """One attempt of `run_search`, its time budget counted from `began`."""
    metric = selection_metric(training, task)
    drawn = draw_params(training.search.space, training.search.trials, training.seed)
    token = uuid.uuid4().hex[:8]
    # One copy of the data per worker, not one per task.
    # Not keyed by a hash of its content: a second search on the same data in the same client
    # would share the key of the first one's scattered copy, which that search cancels at its end.
    [data] = client.scatter([frame], broadcast=True, hash=False)
    futures: dict[Future, tuple[int, int]] = {}
    for index, params in enumerate(drawn):
        full = {**base_params(training, task, threads, training.seed), **params}
        for fold in folds:
            future = client.submit(
                fit_fold, data, features, fold, full, training.max_rounds, training.early_stopping_rounds,
                offset_of_training(training), pure=False, key=f"nightjar-trial-{index}-fold-{fold.index}-{token}",
            )
            futures[future] = (index, fold.index)
    try:
        try:
            wait(list(futures), timeout=max(0.0, training.search.time_budget_s - (time.perf_counter() - began)),
                 return_when="ALL_COMPLETED")
        except TimeoutError:
            pass  # `wait` raises when the budget runs out; the trials finished by then are kept below
        done = [future for future in futures if future.status in ("finished", "error")]
        pending = [future for future in futures if future.status not in ("finished", "error")]
        client.cancel(pending)
        for future in done:
            if future.status == "error":
                index, fold_index = futures[future]
                error = future.exception()
                raise TrainingFailed(f"trial {index} fold {fold_index} failed: {_first_line(error)}") from error
        held: dict[str, tuple[float, int]] = {}
        for headlines in client.run(_headlines, [future.key for future in done]).values():
            held.update(headlines)
        # A fit whose worker died after it finished is not held anywhere: its trial did not finish.
        results = {futures[future]: held[future.key] for future in done if future.key in held}
        trials = []
        for index, params in enumerate(drawn):
            fold_results = [results.get((index, fold.index)) for fold in folds]
            complete = all(result is not None for result in fold_results)
            trials.append(Trial(
                index, params,
                tuple(r[0] for r in fold_results if r is not None),
                tuple(r[1] for r in fold_results if r is not None),
                complete,
            ))
        finished = [trial for trial in trials if trial.complete]
        if not finished:
            raise TrainingFailed(
                f"no trial finished within training.search.time_budget_s={training.search.time_budget_s:g}s"
            )
        # Ties go to the earlier trial, so the choice does not depend on completion order.
        best = min(finished, key=lambda t: (metric.best_first(t.score), t.index))
        of_best = {futures[future][1]: future for future in done if futures[future][0] == best.index}
        best_fits = client.gather([of_best[fold.index] for fold in folds])
        cancelled = sorted({futures[f][0] for f in pending})
        return SearchResult(trials, best, metric.name, time.perf_counter() - began, bool(pending), cancelled,
                            tuple(fit.predictions for fit in best_fits))
    finally:
        # Last: cancelling the data forgets every fit that read it, the best one's predictions too.
        client.cancel([data])


def _first_line(error: BaseException | None) -> str:
    text = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
    return text.strip().splitlines()[0]
