"""Maintenance's bad input: what its validation suites stop before any feature is written.

A reading of a machine unknown to `machines`, a reading outside its physical range, and two
readings of one machine in one hour each end the `features` job with exit 3 and a line naming
the check; a day without any failure or replacement (sparse sources) is no missing input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import features as features_job
from jobs import generate as generate_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from tests.conftest import run_in_process

DATE = "2026-03-31"
MINE = ("--use-case", "maintenance")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine days of a small fleet: enough history for the 7-day windows of one date."""
    lake = tmp_path_factory.mktemp("maintenance") / "lake"
    assert run_in_process(generate_job, lake, *MINE, "--date", DATE, "--days", "9", "--entities", "60") == 0
    return lake


@pytest.fixture
def lake(generated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(generated, copy)
    return copy


def _config(lake: Path) -> Config:
    return load_config("test", [f"lake.root={lake}"], use_case="maintenance")


def _unknown_machine(readings: DataFrame) -> DataFrame:
    return readings.limit(1).withColumn("machine_id", F.lit(999_999).cast("bigint"))


def _out_of_range(readings: DataFrame) -> DataFrame:
    return readings.limit(1).withColumn("voltage", F.lit(5_000.0)).withColumn("ts", F.col("ts") + F.expr("INTERVAL 30 MINUTES"))


def _same_hour_twice(readings: DataFrame) -> DataFrame:
    return readings.limit(1).withColumn("voltage", F.col("voltage") + 1.0)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_unknown_machine, "references failed"),
        (_out_of_range, "column voltage: between failed"),
        (_same_hour_twice, "unique failed"),
    ],
)
def test_bad_telemetry_stops_features_before_anything_is_written(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
    tamper, message: str,  # noqa: ANN001
) -> None:
    config = _config(lake)
    readings = tables.read(spark, config, "telemetry").where(F.col("telemetry_date") == DATE)
    tables.append(tamper(readings).localCheckpoint(), config, "telemetry")
    assert run_in_process(features_job, lake, *MINE, "--date", DATE) == 3
    err = capsys.readouterr().err
    assert "table 'telemetry'" in err and message in err, err
    assert not tables.exists(spark, config, config.tables.features)


def test_a_day_without_failures_is_no_missing_input(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(lake)
    tables.overwrite(
        tables.read(spark, config, "failures").where(F.col("failure_date") != DATE).localCheckpoint(),
        config, "failures", partition_by="failure_date",
    )
    assert DATE not in {str(day) for day in tables.partition_dates(config, "failures", "failure_date")}
    assert run_in_process(features_job, lake, *MINE, "--date", DATE) == 0
    assert tables.read(spark, config, config.tables.features).count() == 60

    # A dense source is another matter: telemetry missing its day is a missing input (exit 4).
    tables.overwrite(
        tables.read(spark, config, "telemetry").where(F.col("telemetry_date") != DATE).localCheckpoint(),
        config, "telemetry", partition_by="telemetry_date",
    )
    assert run_in_process(features_job, lake, *MINE, "--date", DATE, "--force") == 4
    assert f"table 'telemetry' has no partition telemetry_date={DATE}" in capsys.readouterr().err
