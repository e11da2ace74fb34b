"""The final fit: `lightgbm.dask` over the training snapshot, spread evenly over the workers."""

from __future__ import annotations

import math
import threading
import time
import warnings
from typing import Any, Callable

import dask.dataframe as dd
import lightgbm as lgb
from distributed import Client
from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

from models.config import Task, TrainingConfig
from models.ensemble import Ensemble, Model, Offset
from models.search import TrainingFailed, offset_of_training
from models.training_set import LABEL, WEIGHT
from nightjar.dask_cluster import worker_addresses
from nightjar.errors import LostWorkerError

# The scikit-learn wrapper always passes its `n_jobs` default, which lightgbm.dask replaces by
# each worker's thread count and warns about on every fit.
warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored", category=UserWarning)

# How often a fit looks for lost workers: the scheduler knows within moments that one died.
_WATCH_INTERVAL_S = 0.5


def _watch_workers(client: Client, workers: list[str], finished: Callable[[], bool], timeout_s: float, stage: str) -> None:
    """Wait until `finished()` holds, watching that every one of `workers` stays in the cluster.

    A fit pins its work to particular workers (`spread`, and `lightgbm.dask` after it): when
    one of them dies, its tasks wait for it forever and its peers wait on it inside LightGBM's
    network code. So a lost worker ends the wait at once, as a transient failure (exit 5).

    Raises:
        TrainingFailed: from LostWorkerError when a worker left the cluster; or `timeout_s` passed.
    """
    deadline = time.monotonic() + timeout_s
    while not finished():
        lost = set(workers) - set(worker_addresses(client))
        if lost:
            message = f"lost Dask worker {', '.join(sorted(lost))} during {stage}"
            raise TrainingFailed(message) from LostWorkerError(message)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TrainingFailed(f"{stage} did not finish within training.fit_timeout_s={timeout_s:g}s")
        # Never past the deadline: the next look comes at it at the latest.
        time.sleep(min(_WATCH_INTERVAL_S, remaining))


def spread(client: Client, frame: dd.DataFrame, timeout_s: float) -> tuple[dd.DataFrame, list[str]]:
    """`frame` in one partition per worker, partition i held by the i-th worker by address;
    and those workers.

    LightGBM fails when a worker holds no data (LightGBM #4074), and which rows each worker
    bins depends on where the partitions sit; a fixed placement makes the distributed model
    depend on the data and seed only, not on the scheduler's choices.

    Raises:
        TrainingFailed: no workers; a partition failed to load; a worker was lost (transient).
    """
    workers = worker_addresses(client)
    if not workers:
        raise TrainingFailed("the Dask cluster has no workers")
    parts = frame.repartition(npartitions=len(workers)).to_delayed()
    futures = [
        client.compute(part, workers=[workers[index]], allow_other_workers=False)
        for index, part in enumerate(parts)
    ]
    _watch_workers(client, workers, lambda: all(f.status in ("finished", "error") for f in futures), timeout_s,
                  "loading the training data")
    for index, future in enumerate(futures):
        if future.status == "error":
            # Chained so that a lost worker (KilledWorker) is reported as transient, exit 5.
            raise TrainingFailed(
                f"loading training partition {index} failed: {future.exception()}"
            ) from future.exception()
    return dd.from_delayed(futures, meta=frame._meta, verify_meta=False), workers


class _PartsInOrder:
    """A Client whose `who_has` lists the futures in the order they were asked about.

    `lightgbm.dask` ranks the workers in the order `who_has` returns them, and the scheduler
    returns them in no fixed order; ranks decide which worker bins which features, so the
    model changed from run to run. With the parts placed by `spread` and listed in order,
    rank i is the i-th worker by address, holding partition i.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def who_has(self, futures: Any = None, **kwargs: Any) -> dict[str, Any]:
        found = self._client.who_has(futures, **kwargs)
        if futures is None:
            return found
        return {future.key: found[future.key] for future in futures if future.key in found}


def fit(
    client: Client,
    frame: dd.DataFrame,
    features: list[str],
    params: dict[str, Any],
    rounds: int,
    task: Task,
    timeout_s: float,
    offset: Offset | None = None,
) -> lgb.Booster:
    """Fit `rounds` boosting rounds with data-parallel LightGBM on the Dask workers, each row's
    raw score starting from `offset`'s log of its feature when one is given.

    Raises:
        TrainingFailed: the fit raised, or did not finish within `timeout_s`; from LostWorkerError
            (exit 5) when one of its workers left the cluster (a lost worker leaves
            `lightgbm.dask` waiting forever, LightGBM #3882 and #5920).
    """
    data, workers = spread(client, frame, timeout_s)
    model_class = DaskLGBMClassifier if task == "classification" else DaskLGBMRegressor
    # lightgbm.dask sets each worker's threads from its Dask thread count and warns about ours.
    fit_params = {k: v for k, v in params.items() if k not in ("metric", "num_threads")}
    # LightGBM's own wait for a peer (minutes; 120 by default): after a lost worker, the job
    # gives up at once but the survivors stay inside LightGBM until this passes, unable to run
    # anything else. No longer than the fit may take.
    fit_params["time_out"] = max(1, math.ceil(timeout_s / 60))
    model = model_class(client=_PartsInOrder(client), n_estimators=rounds, **fit_params)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            starts = None if offset is None else data[offset.feature].map_partitions(offset.log, meta=(None, "float64"))
            outcome["model"] = model.fit(data[features], data[LABEL], sample_weight=data[WEIGHT], init_score=starts)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error

    # A daemon thread: a hung fit must not keep the process alive after the job gives up.
    fitting = threading.Thread(target=work, name="lightgbm-dask-fit", daemon=True)
    fitting.start()
    _watch_workers(client, workers, lambda: not fitting.is_alive(), timeout_s, "the distributed LightGBM fit")
    if "error" in outcome:
        error = outcome["error"]
        # Chained so that a lost worker or a dropped connection is reported as transient, exit 5.
        raise TrainingFailed(
            f"distributed LightGBM fit failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    return outcome["model"].booster_


def fit_model(
    client: Client,
    frame: dd.DataFrame,
    features: list[str],
    params: dict[str, Any],
    rounds: int,
    task: Task,
    training: TrainingConfig,
) -> Model:
    """The model `train` registers: one booster, or an ensemble of one per `training.ensemble` member
    (each fitted like the one booster with its own parameter overrides). With `training.offset`,
    always an ensemble (of one booster without members): the offset is part of the model."""
    offset = offset_of_training(training)
    if training.ensemble is None and offset is None:
        return fit(client, frame, features, params, rounds, task, training.fit_timeout_s)
    overrides = training.ensemble.members if training.ensemble else [{}]
    return Ensemble(tuple(
        fit(client, frame, features, {**params, **member}, rounds, task, training.fit_timeout_s, offset)
        for member in overrides
    ), offset)
