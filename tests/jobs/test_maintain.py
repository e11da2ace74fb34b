"""The `maintain` job on churn's demo data at the test size: fewer files, the same rows."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import maintain as maintain_job
from nightjar import tables
from nightjar.config import Config
from tests.conftest import run_in_process

SOURCES = ("customers", "transactions")
# What compaction shrinks here: features written by a range of dates (files per task and date)
# and a source fed in batches (below). A source written once with a file per partition, as
# `generate` writes them, has nothing to merge: OPTIMIZE bin-packs within a partition, never
# across partitions.
SHRINKING = ("features", "transactions")


def _feed_in_batches(spark: SparkSession, config: Config, name: str, key: str, batches: int = 3) -> None:
    """Rewrite source `name` as a source fed by `batches` appends is: several small files in each partition."""
    frame = tables.read(spark, config, name).localCheckpoint()
    partition = config.use_case.sources[name].partition
    tables.overwrite(frame.where(F.col(key) % batches == 0).repartition(partition), config, name, partition_by=partition)
    for batch in range(1, batches):
        tables.append(frame.where(F.col(key) % batches == batch).repartition(partition), config, name)


def _plant_orphan(table: Path, name: str, age_hours: float) -> Path:
    """A data file no version refers to, as a killed write leaves behind, `age_hours` old."""
    source = next(table.glob("*/*.parquet"))
    orphan = source.with_name(name)
    shutil.copy(source, orphan)
    then = time.time() - age_hours * 3600
    os.utime(orphan, (then, then))
    return orphan


def test_maintain_compacts_small_files_and_keeps_every_row(
    spark: SparkSession, prepared_lake: Path, tmp_path: Path, make_config,  # noqa: ANN001
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(prepared_lake, lake)
    config: Config = make_config(lake)
    _feed_in_batches(spark, config, "transactions", "customer_id")
    kept = (*SOURCES, config.tables.features)
    before = {name: tables.file_counts(config, name) for name in (*kept, config.tables.runs)}
    rows = {name: tables.read(spark, config, name).collect() for name in kept}
    schemas = {name: tables.read(spark, config, name).schema for name in kept}
    # Orphans as killed writes leave behind, either side of a retention of 200 hours; Delta's own
    # default (168 hours) would take both.
    old = _plant_orphan(lake / "churn" / "customers", "part-99999-orphan-old.c000.snappy.parquet", 216)
    recent = _plant_orphan(lake / "churn" / "customers", "part-99999-orphan-recent.c000.snappy.parquet", 192)

    assert run_in_process(maintain_job, lake, "--retention-hours", "200") == 0

    for name in SHRINKING:
        after = tables.file_counts(config, name)
        assert after.files < before[name].files, (name, before[name], after)
    # generate's own layout, one file per signup date, stays as it is.
    assert tables.file_counts(config, "customers").files == before["customers"].files
    for name in kept:
        # The same rows, read by Spark and by delta-rs.
        assertDataFrameEqual(tables.read(spark, config, name), spark.createDataFrame(rows[name], schemas[name]))
        assert len(DeltaTable(tables.table_path(config, name)).to_pandas()) == len(rows[name])
    for name, key in {"customers": "customer_id", "transactions": "transaction_id"}.items():
        assert set(DeltaTable(tables.table_path(config, name)).to_pandas()[key]) == {r[key] for r in rows[name]}
    # Unreferenced files go once older than the retention, not before.
    assert not old.exists() and recent.exists()
    runs = tables.read(spark, config, config.tables.runs).where("job = 'maintain'").collect()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    assert set(SHRINKING) <= set(runs[0]["output_versions"])
    # The runs table's files (one per run) were compacted too: uncompacted, this run's own row
    # (appended as `started`, then replaced by its outcome) would make one more than before.
    assert tables.file_counts(config, config.tables.runs).files <= 2 <= before[config.tables.runs].files

    # Idempotent: a second run compacts nothing and changes no row.
    compacted = {name: tables.file_counts(config, name) for name in kept}
    assert run_in_process(maintain_job, lake, "--retention-hours", "200") == 0
    for name in kept:
        assert tables.file_counts(config, name) == compacted[name]
        assertDataFrameEqual(tables.read(spark, config, name), spark.createDataFrame(rows[name], schemas[name]))


def test_maintain_refuses_a_retention_below_deltas_safety_limit(
    prepared_lake: Path, make_config, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    config: Config = make_config(prepared_lake)
    versions = {name: tables.current_version(config, name) for name in SOURCES}
    assert run_in_process(maintain_job, prepared_lake, "--retention-hours", "24") == 2
    assert "below Delta's safety limit of 168 hours" in capsys.readouterr().err
    assert run_in_process(maintain_job, prepared_lake, "--set", "housekeeping.retention_hours=1") == 2
    assert "housekeeping.retention_hours" in capsys.readouterr().err
    assert {name: tables.current_version(config, name) for name in SOURCES} == versions
