from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import DataCheckError, MissingInputError, UsageError


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-02-30", "not a calendar date"),
        ("2026-13-01", "not a calendar date"),
        ("2026-1-5", "expected a date as YYYY-MM-DD"),
        ("20260105", "expected a date as YYYY-MM-DD"),
        ("yesterday", "expected a date as YYYY-MM-DD"),
        (" 2026-01-05", "expected a date as YYYY-MM-DD"),
    ],
)
def test_parse_date_is_strict(text: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason) as caught:
        cli.parse_date(text)
    assert caught.value.exit_code == 2


def test_parse_date_accepts_a_leap_day() -> None:
    assert cli.parse_date("2028-02-29") == date(2028, 2, 29)


def _args(**given: str | None) -> argparse.Namespace:
    return argparse.Namespace(**{"date": None, "start": None, "end": None, **given})


def test_a_range_includes_both_ends() -> None:
    dates = cli.selected_dates(_args(start="2026-02-27", end="2026-03-02"), "required")
    assert dates == [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"date": "2026-01-05", "start": "2026-01-01", "end": "2026-01-05"}, "either --date or --start/--end"),
        ({"start": "2026-01-01"}, "--start and --end go together"),
        ({"start": "2026-01-05", "end": "2026-01-01"}, "--start 2026-01-05 is after --end 2026-01-01"),
        ({"start": "2000-01-01", "end": "2026-01-01"}, "spans more than"),
        ({}, "a date is required"),
    ],
)
def test_bad_date_selections(given: dict[str, str], reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        cli.selected_dates(_args(**given), "required")


def test_no_date_is_fine_where_optional() -> None:
    assert cli.selected_dates(_args(), "optional") == []


def _no_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flag", action="store_true")


def _run(lake: Path, body, *extra: str) -> int:  # noqa: ANN001
    return cli.run_job(
        "probe", "a test job", _no_options, body, "optional",
        ["--env", "test", "--set", f"lake.root={lake}", *extra],
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [(UsageError("bad"), 2), (DataCheckError("check failed"), 3), (MissingInputError("no partition"), 4), (RuntimeError("boom"), 1)],
)
def test_errors_map_to_exit_codes_and_are_recorded(
    spark: SparkSession, config: Config, lake: Path, error: Exception, code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def body(context: cli.JobContext) -> None:
        raise error

    assert _run(lake, body, "--date", "2026-01-05") == code
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("nightjar probe: error: ")
    run = tables.read(spark, config, config.tables.runs).first()
    assert (run.job, run.status, run.exit_code, run.ds) == ("probe", "failed", code, date(2026, 1, 5))
    assert str(error) in run.message


def test_a_successful_run_is_recorded_with_its_counts(
    spark: SparkSession, config: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    def body(context: cli.JobContext) -> None:
        with context.timed("work"):
            context.record.row_counts["things"] = 3
            context.record.output_versions["things"] = 7

    assert _run(lake, body, "--start", "2026-01-01", "--end", "2026-01-03", "--flag") == 0
    # The last line says what the run did.
    assert re.search(r"done in [\d.]+s: wrote things version 7 \(3 rows\) \(run [-0-9a-f]+\)$",
                     capsys.readouterr().out.strip().splitlines()[-1])
    run = tables.read(spark, config, config.tables.runs).first()
    assert run.status == "succeeded" and run.exit_code == 0 and run.message is None
    assert (run.ds, run.start_date, run.end_date) == (None, date(2026, 1, 1), date(2026, 1, 3))
    assert run.row_counts == {"things": 3}
    assert "work" in run.timings
    assert "--flag" in run.arguments
    assert run.finished_at >= run.started_at


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--date", "2026-02-30"], "--date '2026-02-30': not a calendar date"),
        (["--nope"], "unrecognized arguments: --nope"),
        (["--set", "spark.mastr=x"], "spark.mastr: unknown key"),
    ],
)
def test_command_line_errors_exit_2_before_any_session(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    def body(context: cli.JobContext) -> None:
        raise AssertionError("the body must not run")

    assert cli.run_job("probe", "a test job", _no_options, body, "optional", ["--env", "test", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nightjar probe: error: {message}" or (err.startswith("nightjar probe: error: ") and message in err)
    assert len(err.splitlines()) == 1
