"""Jobs side by side on one lake: real `./spark-submit.sh` processes at the same time, each with its own JVM.

No job uses a metastore, so none waits on another's lock; writes of different dates commit side
by side, and every table ends as sequential runs would leave it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models import registry
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT, load_config
from tests.conftest import FEATURES_END, FEATURES_START, TRAIN_DATE

TIMEOUT_S = 900  # a guard against a hang; on a loaded 2-core machine a job pair takes up to about 5 minutes


@dataclass
class Finished:
    """A launcher run that ended: its exit code and what it printed."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return (self.out + self.err).splitlines()


class Launched:
    """`./spark-submit.sh JOB ...` started in the background on `lake`, its output in files."""

    def __init__(self, folder: Path, lake: Path, *argv: str) -> None:
        self.argv = argv
        folder.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = folder / "stdout", folder / "stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [str(PROJECT_ROOT / "spark-submit.sh"), *argv, "--env", "test", "--set", f"lake.root={lake}"],
                stdout=out, stderr=err, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> Finished:
        try:
            code = self.process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return Finished(self.argv, code, self.out_path.read_text(), self.err_path.read_text())


def _launch(tmp_path: Path, lake: Path, name: str, *argv: str) -> Launched:
    return Launched(tmp_path / name, lake, *argv)


def _quiet_success(*runs: Finished) -> None:
    """Each run succeeded, printed no Java stack trace or exception, and ended with its summary line."""
    for run in runs:
        assert run.code == 0, f"{run.argv} exited {run.code}:\n{run.err[-3000:]}"
        noisy = [line for line in run.lines() if line.startswith("\tat ") or "Exception" in line or "XSDB6" in line]
        assert not noisy, f"{run.argv} printed:\n" + "\n".join(noisy[:20])
        assert "INFO" in run.out.strip().splitlines()[-1] and " done in " in run.out.strip().splitlines()[-1]


def _config(lake: Path) -> Config:
    return load_config("test", [f"lake.root={lake}"])


@pytest.fixture
def lake(trained_lake: Path, tmp_path: Path) -> Path:
    """A copy of churn at the test size: sources, features of 2026-02-16..2026-03-01, champion version 1."""
    copy = tmp_path / "lake"
    shutil.copytree(trained_lake, copy)
    return copy


def _rows_per_date(spark: SparkSession, config: Config, name: str) -> dict[str, int]:
    counts = tables.read(spark, config, name).groupBy("ds").count().collect()
    return {row.ds.isoformat(): row["count"] for row in counts}


def _runs(spark: SparkSession, config: Config) -> list[tuple[str, str, int]]:
    rows = tables.read(spark, config, config.tables.runs).select("job", "status", "exit_code").collect()
    return sorted((row.job, row.status, row.exit_code) for row in rows)


def test_features_for_two_dates_at_once(spark: SparkSession, trained_lake: Path, lake: Path, tmp_path: Path) -> None:
    config = _config(lake)
    runs_before = _runs(spark, config)
    first = _launch(tmp_path, lake, "first", "features", "--date", "2026-03-02")
    second = _launch(tmp_path, lake, "second", "features", "--date", "2026-03-03")
    _quiet_success(first.wait(), second.wait())

    # Each date holds a row per customer known by its cutoff, as a run of its own writes
    # (checked on the dates computed one range before), and the other dates are untouched.
    _, entities = config.use_case.source_of_kind("entities")
    customers = tables.read(spark, config, entities.table)
    counts = _rows_per_date(spark, config, config.tables.features)
    assert len(counts) == 16 and {"2026-03-02", "2026-03-03"} <= set(counts)
    for day, rows in counts.items():
        cutoff = date.fromisoformat(day) + timedelta(days=1)
        assert rows == customers.where(F.col(entities.timestamp) < F.lit(cutoff)).count(), day
    before = tables.read(spark, _config(trained_lake), config.tables.features)
    after = tables.read(spark, config, config.tables.features).where(F.col("ds") <= F.lit(FEATURES_END))
    assert before.exceptAll(after).count() == 0 and after.exceptAll(before).count() == 0
    assert _runs(spark, config) == sorted([*runs_before, ("features", "succeeded", 0), ("features", "succeeded", 0)])


def test_score_while_validate_and_sql_run(spark: SparkSession, lake: Path, tmp_path: Path) -> None:
    # Three JVMs on one lake at once: a write (score), a gate over every feature date
    # (validate) and an analyst's query (sql), each reading what the others may be committing.
    config = _config(lake)
    runs_before = _runs(spark, config)
    checking = _launch(tmp_path, lake, "validate", "validate", "--table", "features",
                       "--start", FEATURES_START, "--end", FEATURES_END)
    scoring = _launch(tmp_path, lake, "score", "score", "--date", FEATURES_END)
    query = "SELECT ds, count(*) AS n FROM nightjar_churn.features GROUP BY ds ORDER BY ds"
    querying = _launch(tmp_path, lake, "sql", "sql", query)
    validated, scored, answered = checking.wait(), scoring.wait(), querying.wait()
    _quiet_success(validated, scored, answered)
    assert "features.features" in validated.out

    features = _rows_per_date(spark, config, config.tables.features)
    printed = {
        cells[1]: int(cells[2])
        for cells in (line.split("|") for line in answered.out.splitlines())
        if len(cells) == 4 and cells[1].startswith("2026-")
    }
    assert printed == features and len(printed) == 14
    assert _rows_per_date(spark, config, config.tables.scores) == {FEATURES_END: features[FEATURES_END]}
    # sql records no run.
    assert _runs(spark, config) == sorted([*runs_before, ("score", "succeeded", 0), ("validate", "succeeded", 0)])


def test_two_train_runs_register_distinct_versions(spark: SparkSession, lake: Path, tmp_path: Path) -> None:
    config = _config(lake)
    # One Dask worker each: two jobs, two JVMs and their clusters share the machine's cores.
    argv = ("train", "--date", TRAIN_DATE, "--force", "--set", "dask.workers=1")
    first, second = _launch(tmp_path, lake, "first", *argv), _launch(tmp_path, lake, "second", *argv)
    _quiet_success(first.wait(), second.wait())

    history = registry.history(config, config.model_name)
    registered = sorted(row["version"] for row in history if row["action"] == "register")
    assert registered == [1, 2, 3]
    assert len({row["sequence"] for row in history}) == len(history)
    assert tables.model_versions(config, config.model_name) == [1, 2, 3]
    champion = registry.champion_version(history)
    assert champion in registered
    trained = tables.read(spark, config, config.tables.runs).where("job = 'train' AND status = 'succeeded'")
    assert sorted(int(row.model_version) for row in trained.collect()) == registered
