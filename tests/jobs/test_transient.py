"""Transient failures exit 5 end to end, so a scheduler retries them, and leave the tables as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import train as train_job
from nightjar import tables
from nightjar.config import Config
from tests.conftest import TRAIN_DATE, free_port, run_in_process


def test_an_unreachable_dask_scheduler_exits_5_naming_it_and_registers_nothing(
    spark: SparkSession, prepared_lake: Path, lake: Path, config: Config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(prepared_lake, lake)
    inputs = ("customers", "transactions", config.tables.features)
    before = {table: tables.current_version(config, table) for table in inputs}
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    capsys.readouterr()

    code = run_in_process(
        train_job, lake, "--date", TRAIN_DATE,
        "--set", f"dask.scheduler={address}", "--set", "dask.connect_timeout_s=2",
    )

    assert code == 5
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert error[0].startswith(f"nightjar train: error: dask.scheduler {address}: cannot connect")
    assert {table: tables.current_version(config, table) for table in inputs} == before
    assert not tables.exists(spark, config, config.tables.registry)
    assert not tables.exists(spark, config, config.tables.training)  # the scheduler is reached before any write
    assert tables.model_versions(config, config.model_name) == []
    run = tables.read(spark, config, config.tables.runs).where(F.col("job") == "train").first()
    assert (run.status, run.exit_code, run.model_version) == ("failed", 5, None)
