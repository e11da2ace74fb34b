"""The `status` job: what a lake holds per date and what is stale, read with delta-rs and no JVM."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import status as status_job
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.submit import available_jobs, needs_spark
from tests.conftest import FEATURES_END, FEATURES_START, run_launcher

REWRITTEN = date(2026, 2, 20)  # a transactions partition inside the features' dates


def _status(lake: Path, *argv: str) -> int:
    return cli.run_job(
        status_job.JOB, status_job.__doc__ or "", status_job.add_arguments, status_job.run, "required",
        ["--env", "test", "--set", f"lake.root={lake}", *argv], record_runs=False, spark=False,
    )


def _report(lake: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = _status(lake, "--json", *argv)
    return code, json.loads(capsys.readouterr().out)


def _outputs(report: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    return {d["date"]: next(o for o in d["outputs"] if o["table"] == table) for d in report["dates"]}


@pytest.fixture(scope="module")
def lake(prepared_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the prepared lake (sources and the features of FEATURES_START..FEATURES_END) to write in."""
    copy = tmp_path_factory.mktemp("status") / "lake"
    shutil.copytree(prepared_lake, copy)
    return copy


def test_status_lists_sources_and_outputs_per_date(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _report(lake, capsys, "--start", "2026-02-28", "--end", "2026-03-02")
    assert code == 0
    assert set(report) == {"use_case", "location", "start", "end", "inputs_ready", "missing_inputs", "dates"}
    assert (report["use_case"], report["start"], report["end"]) == ("churn", "2026-02-28", "2026-03-02")
    assert report["inputs_ready"] is True and report["missing_inputs"] == []
    day = report["dates"][0]
    assert set(day) == {"date", "sources", "outputs"}
    assert [(s["table"], s["partition"], s["required"]) for s in day["sources"]] == [
        ("customers", "signup_date", False), ("transactions", "event_date", True)]
    assert all(s["present"] for d in report["dates"] for s in d["sources"] if s["table"] == "transactions")
    features = _outputs(report, "features")
    assert {d: o["state"] for d, o in features.items()} == {"2026-02-28": "ok", "2026-03-01": "ok", "2026-03-02": "missing"}
    # Each date names the commit and run that wrote it.
    assert features["2026-03-01"]["run_id"] and features["2026-03-01"]["version"] == 0
    assert {o["state"] for o in _outputs(report, "scores").values()} == {"no table"}
    assert set(next(o for o in day["outputs"] if o["table"] == "features")) == {"table", "state", "version", "run_id", "reasons"}

    # The readable form: a header, then a line per date.
    assert _status(lake, "--date", FEATURES_END) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("date "))
    assert lines[header].split() == ["date", "customers", "transactions", "features", "scores", "monitoring"]
    # No customer signed up that day: an entities source needs no partition per day.
    assert lines[header + 1].split() == [FEATURES_END, "none", "ok", "ok", "no", "table", "no", "table"]


def test_status_exits_4_when_a_required_input_is_missing(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The demo data end on 2026-03-31: no transactions on 2026-04-01; customers need no partition a day.
    code, report = _report(lake, capsys, "--start", "2026-03-31", "--end", "2026-04-01")
    assert code == 4
    assert report["inputs_ready"] is False
    assert report["missing_inputs"] == [{"date": "2026-04-01", "table": "transactions", "partition": "event_date"}]
    code = _status(lake, "--date", "2026-04-01")
    assert code == 4
    assert "nightjar status: error: required input missing: table 'transactions' has no partition event_date=2026-04-01" \
        in capsys.readouterr().err


def test_status_reports_outputs_stale_after_an_input_changed(
    spark: SparkSession, lake: Path, tmp_path: Path, make_config, capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    config: Config = make_config(copy)
    window = ("--start", FEATURES_START, "--end", FEATURES_END)
    code, before = _report(copy, capsys, *window)
    assert code == 0 and {o["state"] for o in _outputs(before, "features").values()} == {"ok"}

    # Compacting the features' files changes no data: nothing becomes stale.
    version = tables.current_version(config, config.tables.features)
    assert tables.optimize(spark, config, config.tables.features) > version
    assert _report(copy, capsys, *window)[1]["dates"] == before["dates"]

    # A day after the last features date arrives corrected: nothing before it may see it.
    transactions = tables.read(spark, config, "transactions")
    later = transactions.where(F.col("event_date") == date(2026, 3, 5)).localCheckpoint()
    tables.replace_partitions(later, config, "transactions", "event_date", [date(2026, 3, 5)])
    assert _report(copy, capsys, *window)[1]["dates"] == before["dates"]

    # A partition inside the window is rewritten: the features of that date and later are stale.
    rewritten = transactions.where(F.col("event_date") == REWRITTEN).localCheckpoint()
    changed = tables.replace_partitions(rewritten, config, "transactions", "event_date", [REWRITTEN])
    code, after = _report(copy, capsys, *window)
    assert code == 0
    states = {date.fromisoformat(d): o for d, o in _outputs(after, "features").items()}
    assert {d for d, o in states.items() if o["state"] == "stale"} == {d for d in states if d >= REWRITTEN}
    assert f"changed in version {changed} after version 0" in states[REWRITTEN]["reasons"][0]
    assert all(o["reasons"][0].startswith(f"transactions: event_date={REWRITTEN} changed")
               for d, o in states.items() if d >= REWRITTEN)

    # The readable form says why.
    assert _status(copy, "--date", REWRITTEN.isoformat()) == 0
    out = capsys.readouterr().out
    assert f"{REWRITTEN} features stale: transactions: event_date={REWRITTEN} changed in version {changed}" in out


def test_status_through_the_launcher_starts_no_jvm(lake: Path) -> None:
    # No Java to be found: any job that starts a JVM fails (the control below), status does not.
    no_java = {"JAVA_HOME": str(lake / "no-java-here"), "NIGHTJAR_ENV": "test"}
    began = time.monotonic()
    done = run_launcher("status", "--set", f"lake.root={lake}", "--date", FEATURES_END, "--json", timeout=120, **no_java)
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout is the document alone
    assert report["dates"][0]["date"] == FEATURES_END and report["inputs_ready"] is True
    assert "Spark" not in done.stderr and "WARN" not in done.stderr
    print(f"status through the launcher: {elapsed:.1f}s")

    control = run_launcher("sql", "--set", f"lake.root={lake}", "SELECT 1", timeout=120, **no_java)
    assert control.returncode != 0
    assert os.path.basename(no_java["JAVA_HOME"]) in control.stderr + control.stdout


def test_only_jobs_that_say_so_run_without_spark() -> None:
    assert not needs_spark("status")
    assert all(needs_spark(job) for job in available_jobs() if job != "status")
