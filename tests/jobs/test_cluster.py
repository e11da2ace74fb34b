"""The whole path on a real cluster: generate → features → train → score, as a scheduler launches them,
on a Spark standalone master with two workers and a Dask scheduler with two workers (processes on
127.0.0.1), giving the features, the model and the scores of local mode, value for value.
"""

from __future__ import annotations

import importlib
import time
from datetime import date
from pathlib import Path
from typing import Callable

from distributed import Client
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from models import registry
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import FEATURES_END, FEATURES_START, TRAIN_DATE, SparkStandalone, get_json, run_launcher, wait_until

SCORE_DATE = FEATURES_END  # the date scored_lake holds scores of


def _on_the_cluster(lake: Path, cluster: SparkStandalone, scheduler: str, *argv: str) -> float:
    """Run one job through `./spark-submit.sh` on both clusters; the seconds it took."""
    started = time.monotonic()
    result = run_launcher(
        *argv, "--env", "test", "--set", f"lake.root={lake}",
        "--set", f"spark.master={cluster.master_url}", "--set", f"dask.scheduler={scheduler}",
        # Executors of 1 GiB fit the workers' 1.5 GiB; the driver needs no more on this data.
        "--set", "spark.driver_memory=1g", "--set", "spark.executor_memory=1g",
        # The driver serves the executors (block manager, file server): on the loopback interface,
        # where the workers are, rather than whatever the host name resolves to.
        SPARK_LOCAL_IP="127.0.0.1",
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return time.monotonic() - started


def _completed_apps(cluster: SparkStandalone) -> set[str]:
    """The ids of the applications the master lists as completed."""
    return {app["id"] for app in cluster.state()["completedapps"]}


def _executors_by_worker(cluster: SparkStandalone) -> dict[str, set[str]]:
    """For each worker (by id), the ids of the applications that had an executor there."""
    found: dict[str, set[str]] = {}
    for worker in cluster.state()["workers"]:
        report = get_json(f"{worker['webuiaddress']}/json/")
        # A worker moves an executor to `finishedexecutors` once it has stopped it, shortly after
        # its application ends; either list shows that the executor ran there.
        found[worker["id"]] = {e["appid"] for e in report["executors"] + report["finishedexecutors"]}
    return found


def _training_tasks_by_worker(scheduler: str) -> dict[str, int]:
    """How many of lightgbm.dask's training tasks (`_train_part`) each Dask worker has run."""
    with Client(scheduler, timeout=30) as client:
        return client.run(
            lambda dask_worker: sum(
                1 for entry in dask_worker.state.log
                # (key, start, finish, ...): one entry per transition of the task on this worker.
                if str(entry[0]).startswith("_train_part") and entry[2] == "memory"
            )
        )


def _code_of_dask_workers(scheduler: str) -> set[Path]:
    """The project folders the Dask workers import `models` from."""
    with Client(scheduler, timeout=30) as client:
        found = client.run(lambda: str(Path(importlib.import_module("models").__file__).resolve().parent.parent))
    return {Path(folder) for folder in found.values()}


def test_the_whole_path_on_spark_standalone_and_dask_gives_local_modes_values(
    spark: SparkSession, spark_standalone: SparkStandalone, dask_scheduler: str, scored_lake: Path,
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    apps_before = _completed_apps(spark_standalone)
    trained_before = _training_tasks_by_worker(dask_scheduler)

    cluster_lake = tmp_path / "cluster-lake"
    seconds = {
        "generate": _on_the_cluster(cluster_lake, spark_standalone, dask_scheduler, "generate"),
        "features": _on_the_cluster(cluster_lake, spark_standalone, dask_scheduler, "features",
                                    "--start", FEATURES_START, "--end", FEATURES_END),
        "train": _on_the_cluster(cluster_lake, spark_standalone, dask_scheduler, "train", "--date", TRAIN_DATE),
        "score": _on_the_cluster(cluster_lake, spark_standalone, dask_scheduler, "score", "--date", SCORE_DATE),
    }
    print(f"on the cluster: {', '.join(f'{job} {s:.1f}s' for job, s in seconds.items())}")

    # The local counterpart: scored_lake is generate, features, train and score in local mode
    # (local[2] and a 2 × 1-thread LocalCluster).
    cluster, local = make_config(cluster_lake), make_config(scored_lake)

    # Every job was a Spark application on the standalone master, each with an executor on both
    # workers, so each job's tasks, shuffles and writes crossed processes.
    # The master marks an application completed when its driver disconnects, which it learns
    # a moment after the launcher has exited.
    wait_until(lambda: len(_completed_apps(spark_standalone) - apps_before) >= len(seconds), 30,
               "the master to list every job as a completed application")
    ours = _completed_apps(spark_standalone) - apps_before
    assert len(ours) == len(seconds), f"expected one completed application per job, got {sorted(ours)}"
    for worker, app_ids in _executors_by_worker(spark_standalone).items():
        assert ours <= app_ids, f"worker {worker} ran no executor for {sorted(ours - app_ids)}"
    # The model was trained on the Dask workers: each ran one more part of the fit (lightgbm.dask
    # runs one `_train_part` per worker holding data, and `spread` gives both workers a partition).
    trained_after = _training_tasks_by_worker(dask_scheduler)
    assert len(trained_after) == 2
    assert all(trained_after[w] > trained_before.get(w, 0) for w in trained_after), (trained_before, trained_after)
    # ... with the code under test: the search's trials are functions of `models`, which the workers
    # import themselves (nothing ships them code, unlike Spark's --py-files).
    assert _code_of_dask_workers(dask_scheduler) == {PROJECT_ROOT.resolve()}

    for generated in ("customers", "transactions", "truth"):  # churn's generator's tables
        assertDataFrameEqual(tables.read(spark, cluster, generated), tables.read(spark, local, generated))
    assertDataFrameEqual(
        tables.read(spark, cluster, cluster.tables.features), tables.read(spark, local, local.tables.features),
    )
    assert tables.model_versions(cluster, cluster.model_name) == [1]
    assert tables.read_model_file(cluster, cluster.model_name, 1, registry.MODEL_FILE) == tables.read_model_file(
        local, local.model_name, 1, registry.MODEL_FILE)

    scores = tables.read(spark, cluster, cluster.tables.scores)
    assert scores.where(F.col("ds") != date.fromisoformat(SCORE_DATE)).count() == 0
    assert scores.count() > 0
    # run_id names the run that wrote a row: a fresh id per run, by design (the `runs` table's key).
    # Every other column (key, ds, score, model name and version, reasons) must be equal.
    assertDataFrameEqual(
        scores.drop("run_id"), tables.read(spark, local, local.tables.scores).drop("run_id"),
    )
