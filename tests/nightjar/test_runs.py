"""The `runs` table's lifecycle: `started` before a job writes, its end after; runs whose driver is
gone become `interrupted`; a table from before these statuses keeps working."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from nightjar import cli, runs, tables
from nightjar.config import Config


def _no_options(parser) -> None:  # noqa: ANN001
    pass


def _run(lake: Path, body, *extra: str) -> int:  # noqa: ANN001
    return cli.run_job(
        "probe", "a test job", _no_options, body, "optional",
        ["--env", "test", "--set", f"lake.root={lake}", *extra],
    )


def _statuses(config: Config) -> dict[str, str]:
    rows = DeltaTable(tables.table_path(config, config.tables.runs)).to_pyarrow_table().to_pylist()
    return {row["run_id"]: row["status"] for row in rows}


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _record(run_id: str, pid: int, host: str | None = None) -> runs.RunRecord:
    return runs.RunRecord(run_id=run_id, job="probe", env="test", arguments=[], code_version="x", user=None,
                          started_at=datetime(2026, 1, 1), host=host or socket.gethostname(), pid=pid)


def test_a_run_is_started_before_its_body_and_ended_after_and_dead_runs_become_interrupted(
    config: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[dict[str, str]] = []
    assert _run(lake, lambda context: seen.append(_statuses(context.config))) == 0
    (own, status), = seen[0].items()
    assert status == "started"
    assert _statuses(config) == {own: "succeeded"}

    # Left `started` by three drivers: one gone, one alive (this process), one on another host.
    for record in (_record("dead", _dead_pid()), _record("alive", os.getpid()), _record("elsewhere", 1, "another-host")):
        runs.record_start(config, record)
    capsys.readouterr()
    assert _run(lake, lambda context: None, "--date", "2026-01-05") == 0
    err = capsys.readouterr().err
    assert "run dead (probe, started 2026-01-01 00:00:00 UTC" in err and "never finished: interrupted" in err
    assert "run elsewhere" in err and "another-host, where it may still be running" in err
    statuses = _statuses(config)
    assert (statuses["dead"], statuses["alive"], statuses["elsewhere"]) == ("interrupted", "started", "started")
    assert sorted(statuses.values()).count("succeeded") == 2


def test_a_runs_table_from_before_started_rows_keeps_working(
    spark: SparkSession, config: Config, lake: Path,
) -> None:
    # The columns Spark wrote before `host` and `pid`, as an older release left them.
    old = spark.createDataFrame(
        [("old", "probe", "test", "succeeded", 0, datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 1), 60.0, "[]", "x")],
        "run_id string, job string, env string, status string, exit_code int, started_at timestamp, "
        "finished_at timestamp, duration_s double, arguments string, code_version string",
    )
    tables.append(old, config, config.tables.runs)
    assert _run(lake, lambda context: None) == 0
    rows = tables.read(spark, config, config.tables.runs).orderBy("started_at").collect()
    assert [(row.run_id, row.status, row.pid) for row in rows][0] == ("old", "succeeded", None)
    assert rows[1].status == "succeeded" and rows[1].host == socket.gethostname() and rows[1].exit_code == 0
