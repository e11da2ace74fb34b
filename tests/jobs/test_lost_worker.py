"""A Dask worker lost mid-training, killed for real (`NIGHTJAR_KILL_WORKER_AT`): during the search
the job goes on without it; during the distributed fit it exits 5 at once, registering nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import train as train_job
from models import registry
from nightjar import crashpoints, tables
from nightjar.config import Config
from tests.conftest import TRAIN_DATE, dask_cluster, run_in_process


def _train_losing_a_worker(at: str, lake: Path, work: Path) -> int:
    """`train` on a fresh cluster of two workers, one of which dies as a task named `at` starts on it."""
    crash = work / "crash"
    crash.mkdir()
    with dask_cluster(work, "--preload", "nightjar.crashpoints",
                      **{crashpoints.KILL_WORKER_AT: at, crashpoints.CRASH_DIR: str(crash)}) as address:
        code = run_in_process(train_job, lake, "--date", TRAIN_DATE, "--set", f"dask.scheduler={address}")
    # Killed by the crash point, exactly once (the nanny's replacement worker was not).
    assert [marker.name for marker in crash.iterdir()] == [f"killed-worker-{at}"]
    return code


def _metadata(config: Config, version: int) -> dict:
    return json.loads(tables.read_model_file(config, config.model_name, version, registry.METADATA_FILE))


def test_a_worker_lost_during_the_search_is_done_without_and_the_search_gives_the_same_trials(
    spark: SparkSession, prepared_lake: Path, trained_lake: Path, lake: Path, config: Config, tmp_path: Path,
    make_config: Callable[..., Config],
) -> None:
    shutil.copytree(prepared_lake, lake)

    assert _train_losing_a_worker("nightjar-trial-", lake, tmp_path) == 0

    assert tables.model_versions(config, config.model_name) == [1]
    assert {row["version"] for row in registry.history(config, config.model_name)} == {1}
    # The trial whose worker died ran again on the other one: every trial finished, with the
    # fold scores of a run that lost nothing.
    uninterrupted = _metadata(make_config(trained_lake), 1)["search"]
    search = _metadata(config, 1)["search"]
    assert all(trial["complete"] for trial in search["trials"])
    assert search["trials"] == uninterrupted["trials"]
    assert search["best_trial"] == uninterrupted["best_trial"]


def test_a_worker_lost_during_the_distributed_fit_exits_5_at_once_and_registers_nothing(
    spark: SparkSession, prepared_lake: Path, lake: Path, config: Config, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(prepared_lake, lake)
    capsys.readouterr()

    assert _train_losing_a_worker("_train_part", lake, tmp_path) == 5

    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    # Ended by noticing the loss, not by training.fit_timeout_s: the job does not hang on its workers.
    assert error[0].startswith("nightjar train: error: lost Dask worker tcp://127.0.0.1:"), error[0]
    assert error[0].endswith("during the distributed LightGBM fit"), error[0]
    assert tables.model_versions(config, config.model_name) == []
    assert not tables.exists(spark, config, config.tables.registry)
    run = tables.read(spark, config, config.tables.runs).where(F.col("job") == "train").first()
    assert (run.status, run.exit_code, run.model_version) == ("failed", 5, None)
