"""Jobs killed with SIGKILL at each point where they commit leave every table as a reader saw it
before (or after) that commit, never in between; the next run completes, writes what an
uninterrupted run writes, and reports the killed run as `interrupted`.

Each kill is a real `./spark-submit.sh` process killed at a named commit point
(`nightjar.crashpoints`, `run_killed_at`); each next run is in-process, which costs no JVM start.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from models import registry
from nightjar import tables
from nightjar.config import Config
from tests.conftest import FEATURES_END, TRAIN_DATE, run_in_process, run_killed_at

D = FEATURES_END  # the last feature date of the prepared lake


def _launcher_args(job: str, lake: Path, *argv: str) -> list[str]:
    return [job, "--env", "test", "--set", f"lake.root={lake}", *argv]


def _rows(config: Config, name: str, version: int | None = None, drop: tuple[str, ...] = ()) -> list[str]:
    """The rows of a version of table `name` read by delta-rs, as a sorted list (any column type compares)."""
    rows = DeltaTable(tables.table_path(config, name), version=version).to_pyarrow_table().to_pylist()
    return sorted(json.dumps({k: v for k, v in row.items() if k not in drop}, sort_keys=True, default=str)
                  for row in rows)


def _version(config: Config, name: str) -> int:
    return DeltaTable(tables.table_path(config, name)).version()


def _readers_see(spark: SparkSession, config: Config, name: str, expected: Config, version: int | None = None) -> None:
    """Spark and delta-rs both read from `name` exactly what `expected`'s table held at `version` (latest: None)."""
    assert _rows(config, name) == _rows(expected, name, version)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    assertDataFrameEqual(tables.read(spark, config, name), reader.load(tables.table_path(expected, name)))


def _orphan_files(config: Config, name: str) -> list[str]:
    """Data files in the table's folder that its Delta log does not reference: a write's leftovers."""
    folder = Path(tables.table_path(config, name))
    referenced = {Path(uri.removeprefix("file://")).resolve() for uri in DeltaTable(str(folder)).file_uris()}
    return [str(path) for path in folder.rglob("*.parquet")
            if "_delta_log" not in path.parts and path.resolve() not in referenced]


def _runs(config: Config) -> list[dict]:
    return DeltaTable(tables.table_path(config, config.tables.runs)).to_pyarrow_table().to_pylist()


def _killed_run(config: Config, job: str) -> str:
    """The run id of the one `started` run of `job`: the killed one, which never finished."""
    started = [run for run in _runs(config) if run["job"] == job and run["status"] == "started"]
    assert len(started) == 1, [(run["job"], run["status"]) for run in _runs(config)]
    assert started[0]["finished_at"] is None and started[0]["exit_code"] is None
    return started[0]["run_id"]


def _reported_interrupted(config: Config, run_id: str, stderr: str) -> None:
    """The next run logged the killed run as interrupted, and recorded it so; no run is left `started`."""
    assert f"run {run_id} (" in stderr and "never finished: interrupted" in stderr
    statuses = {run["run_id"]: run["status"] for run in _runs(config)}
    assert statuses.pop(run_id) == "interrupted"
    assert "started" not in statuses.values()


def test_killed_while_writing_features(
    spark: SparkSession, prepared_lake: Path, lake: Path, config: Config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(prepared_lake, lake)
    name = config.tables.features
    version = _version(config, name)

    run_killed_at("writing:features", *_launcher_args("features", lake, "--date", D, "--force"))

    assert _orphan_files(config, name), "killed before any data file was written: not mid-write"
    assert _version(config, name) == version
    _readers_see(spark, config, name, config, version)
    killed = _killed_run(config, "features")

    capsys.readouterr()
    assert run_in_process(features_job, lake, "--date", D, "--force") == 0
    _reported_interrupted(config, killed, capsys.readouterr().err)
    # The same rows as the uninterrupted run that wrote the prepared lake's D.
    assert _version(config, name) == version + 1
    _readers_see(spark, config, name, config, version)


def test_killed_while_writing_scores(
    spark: SparkSession, scored_lake: Path, lake: Path, config: Config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(scored_lake, lake)
    name = config.tables.scores
    version = _version(config, name)

    run_killed_at("writing:scores", *_launcher_args("score", lake, "--date", D, "--force"))

    assert _orphan_files(config, name), "killed before any data file was written: not mid-write"
    assert _version(config, name) == version
    _readers_see(spark, config, name, config, version)
    killed = _killed_run(config, "score")

    capsys.readouterr()
    assert run_in_process(score_job, lake, "--date", D, "--force") == 0
    _reported_interrupted(config, killed, capsys.readouterr().err)
    # The uninterrupted run's rows; only run_id names the run that wrote them.
    assert _rows(config, name, drop=("run_id",)) == _rows(config, name, version, drop=("run_id",))


def test_killed_after_the_scores_commit_before_its_runs_row(
    spark: SparkSession, scored_lake: Path, lake: Path, config: Config,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(scored_lake, lake)
    name = config.tables.scores
    version = _version(config, name)

    run_killed_at("committed:scores", *_launcher_args("score", lake, "--date", D, "--force"))

    # The commit happened, whole: the killed run's rows, equal to the uninterrupted run's.
    assert _version(config, name) == version + 1
    killed = _killed_run(config, "score")
    assert {json.loads(row)["run_id"] for row in _rows(config, name)} == {killed}
    assert _rows(config, name, drop=("run_id",)) == _rows(config, name, version, drop=("run_id",))
    _readers_see(spark, config, name, config, version + 1)

    capsys.readouterr()
    assert run_in_process(score_job, lake, "--date", D) == 0
    captured = capsys.readouterr()
    assert "already scored" in captured.out
    _reported_interrupted(config, killed, captured.err)
    assert _version(config, name) == version + 1


def test_killed_after_the_model_files_before_the_registry_row(
    spark: SparkSession, prepared_lake: Path, trained_lake: Path, lake: Path, config: Config,
    make_config, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    shutil.copytree(prepared_lake, lake)
    name = config.model_name

    run_killed_at("model-written", *_launcher_args("train", lake, "--date", TRAIN_DATE))

    # Files in place, no registry row: the version is not registered, and nothing can score with it.
    assert tables.model_versions(config, name) == [1]
    assert registry.history(config, name) == []
    killed = _killed_run(config, "train")

    capsys.readouterr()
    assert run_in_process(train_job, lake, "--date", TRAIN_DATE) == 0
    _reported_interrupted(config, killed, capsys.readouterr().err)
    # Registry rows and model folders agree, and say what the uninterrupted run's say.
    reference = make_config(trained_lake)
    rows, expected = registry.history(config, name), registry.history(reference, name)
    assert tables.model_versions(config, name) == sorted({row["version"] for row in rows}) == [1]
    varying = ("run_id", "recorded_at", "path", "user")
    assert [{k: v for k, v in row.items() if k not in varying} for row in rows] == [
        {k: v for k, v in row.items() if k not in varying} for row in expected]
    model_dir, expected_dir = Path(tables.model_path(config, name, 1)), Path(tables.model_path(reference, name, 1))
    assert (model_dir / "model.txt").read_text() == (expected_dir / "model.txt").read_text()
    assert json.loads((model_dir / "metadata.json").read_text())["run_id"] != killed


def test_killed_between_the_tables_of_generate(
    spark: SparkSession, prepared_lake: Path, lake: Path, config: Config,
    make_config, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    written = ("customers", "transactions", "truth")  # churn's generator, in its order

    run_killed_at(f"committed:{written[0]}", *_launcher_args("generate", lake))

    reference = make_config(prepared_lake)
    _readers_see(spark, config, written[0], reference)
    assert not any(tables.exists(spark, config, table) for table in written[1:])
    killed = _killed_run(config, "generate")

    capsys.readouterr()
    assert run_in_process(generate_job, lake) == 0
    _reported_interrupted(config, killed, capsys.readouterr().err)
    for table in written:
        _readers_see(spark, config, table, reference)
