"""Job logs a scheduler can read: UTC timestamps and levels, warnings on stderr, each line once."""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from pyspark.sql import SparkSession

from nightjar import cli, logs

LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z) (INFO|WARNING|ERROR) \[(\w+)\] (.*)$")


@pytest.fixture
def far_time_zone() -> Iterator[None]:
    """The process's local time zone 5:30 from UTC, so that a local-time stamp would show."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _no_options(parser) -> None:  # noqa: ANN001
    pass


def _run(lake: Path, body) -> int:  # noqa: ANN001
    return cli.run_job(
        "probe", "a test job", _no_options, body, "optional",
        ["--env", "test", "--set", f"lake.root={lake}"],
    )


def test_progress_lines_carry_a_utc_timestamp_and_level_and_warnings_go_to_stderr(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str], far_time_zone: None,
) -> None:
    def body(context: cli.JobContext) -> None:
        context.progress("step one")
        logging.getLogger("models.something").warning("a feature is constant")

    began = datetime.now(timezone.utc).replace(microsecond=0)
    assert _run(lake, body) == 0
    ended = datetime.now(timezone.utc)
    out, err = capsys.readouterr()

    lines = [LINE.match(line) for line in out.strip().splitlines()]
    assert lines and all(lines), out  # every stdout line is a log line: nothing else printed
    assert [(m[2], m[3], m[4]) for m in lines][0] == ("INFO", "probe", "step one")
    assert lines[-1][4].startswith("done in ")
    for match in lines:
        stamp = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert began <= stamp <= ended + timedelta(seconds=1)  # UTC, whatever the machine's zone

    (warning,) = err.strip().splitlines()
    assert LINE.match(warning).group(2, 3, 4) == ("WARNING", "probe", "a feature is constant")
    assert "constant" not in out


def test_configure_twice_logs_each_line_once_with_the_latest_job_name(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("first")
    logs.configure("second")
    logging.getLogger("nightjar.probe").info("hello")
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert LINE.match(line).group(2, 3, 4) == ("INFO", "second", "hello")


def test_libraries_log_warnings_only(capsys: pytest.CaptureFixture[str]) -> None:
    # Imported for its side effect (by name, so pyflakes sees no unused import): distributed sets
    # its own loggers to INFO, as a job that trains has them.
    importlib.import_module("distributed")

    logs.configure("probe")
    assert logging.getLogger("distributed").getEffectiveLevel() == logging.INFO
    logging.getLogger("py4j.clientserver").info("Closing down clientserver connection")
    logging.getLogger("distributed.scheduler").info("State start")
    logging.getLogger("some.library").info("routine detail")
    logging.getLogger("some.library").warning("something to look at")
    out, err = capsys.readouterr()
    assert out == ""
    assert LINE.match(err.strip()).group(2, 4) == ("WARNING", "something to look at")


def test_an_unexpected_failure_logs_its_traceback_then_ends_with_the_one_error_line(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    def body(context: cli.JobContext) -> None:
        raise RuntimeError("boom")

    assert _run(lake, body) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert LINE.match(err[0]).group(2, 3) == ("ERROR", "probe")
    assert "Traceback (most recent call last):" in err and 'raise RuntimeError("boom")' in "\n".join(err)
    assert err[-1] == "nightjar probe: error: RuntimeError: boom"


def test_spark_and_hadoop_log_at_warn(spark: SparkSession) -> None:
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager
    for name in ("org.apache.spark", "org.apache.spark.scheduler.DAGScheduler", "org.apache.hadoop"):
        logger = log4j.getLogger(name)
        assert str(logger.getLevel()) == "WARN" and not logger.isInfoEnabled(), name
