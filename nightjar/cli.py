"""The command-line contract shared by every job: options, dates, exit codes, the runs table.

A job module provides `add_arguments(parser)` and `run(context)`; `main` does the rest:
parses the command line (errors exit 2), loads the configuration (errors exit 2), starts the
session, runs the job, maps Nightjar's typed errors to their exit codes, and records the run.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import re
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterator, Literal, NoReturn

from pyspark.sql import SparkSession

from nightjar import logs, tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.errors import NightjarError, UsageError, is_transient
from nightjar.lineage import code_version
from nightjar.runs import FAILED, SUCCEEDED, RunRecord, mark_interrupted, record_run, record_start
from nightjar.session import get_spark

DatePolicy = Literal["required", "optional", "none"]
MAX_RANGE_DAYS = 3660
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting by itself."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_date(text: str, option: str = "--date") -> date:
    """A strict `YYYY-MM-DD` calendar date, or UsageError naming the option and the reason."""
    if not _ISO_DATE.match(text):
        raise UsageError(f"{option} {text!r}: expected a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise UsageError(f"{option} {text!r}: not a calendar date ({error})") from None


def date_range(start: date, end: date) -> list[date]:
    """Every date from `start` to `end`, both included."""
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def plural(noun: str) -> str:
    """The plural of an entity's name in a progress line: `customers`, but `series` stays `series`."""
    return noun if noun.endswith("s") else noun + "s"


def selected_dates(args: argparse.Namespace, policy: DatePolicy) -> list[date]:
    """The dates a run processes, from `--date` or `--start/--end`, checked against the job's policy."""
    given_range = args.start is not None or args.end is not None
    if args.date is not None and given_range:
        raise UsageError("give either --date or --start/--end, not both")
    if given_range and (args.start is None or args.end is None):
        raise UsageError("--start and --end go together")
    if args.date is not None:
        return [parse_date(args.date)]
    if given_range:
        start, end = parse_date(args.start, "--start"), parse_date(args.end, "--end")
        if start > end:
            raise UsageError(f"--start {start} is after --end {end}")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise UsageError(f"--start/--end spans more than {MAX_RANGE_DAYS} days")
        return date_range(start, end)
    if policy == "required":
        raise UsageError("a date is required: --date YYYY-MM-DD or --start/--end")
    return []


def build_parser(job: str, description: str, policy: DatePolicy) -> argparse.ArgumentParser:
    """The options every job shares; the job adds its own."""
    parser = _Parser(prog=f"spark-submit.sh {job}", description=description)
    parser.add_argument(
        "--use-case", default=None, metavar="NAME",
        help="the use case, conf/use_cases/NAME.yaml (default: $NIGHTJAR_USE_CASE or churn)",
    )
    parser.add_argument("--env", default=None, help="configuration environment (default: $NIGHTJAR_ENV or local)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one configuration value by its dotted key (repeatable)",
    )
    if policy != "none":
        parser.add_argument("--date", help="the logical date YYYY-MM-DD")
        parser.add_argument("--start", help="first date of a range (inclusive)")
        parser.add_argument("--end", help="last date of a range (inclusive)")
        parser.add_argument("--force", action="store_true", help="redo dates that are already complete")
    else:
        parser.set_defaults(date=None, start=None, end=None, force=False)
    return parser


@dataclass
class JobContext:
    """What a running job knows: its options, configuration, session, dates and run record."""

    job: str
    args: argparse.Namespace
    config: Config
    dates: list[date]
    record: RunRecord
    spark: SparkSession = field(repr=False, default=None)  # type: ignore[assignment]

    def progress(self, message: str) -> None:
        """Log one progress line at INFO (stdout, timestamped; see `nightjar.logs`)."""
        # Named after the job rather than its module: under spark-submit that module is `__main__`.
        logging.getLogger(f"jobs.{self.job}").info(message)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record the wall time of `step` in the run's timings."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.record.timings[step] = round(time.perf_counter() - began, 3)


def main(
    job: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    body: Callable[[JobContext], None],
    policy: DatePolicy,
    argv: list[str] | None = None,
    record_runs: bool = True,
    spark: bool = True,
) -> NoReturn:
    """Run a job from the command line and exit with its documented exit code."""
    sys.exit(run_job(job, description, add_arguments, body, policy, argv, record_runs, spark))


def run_job(
    job: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    body: Callable[[JobContext], None],
    policy: DatePolicy,
    argv: list[str] | None = None,
    record_runs: bool = True,
    spark: bool = True,
) -> int:
    """Run a job and return its exit code; see `main`.

    `record_runs=False` is for read-only jobs (queries), which must not need write access.
    `spark=False` is for jobs that read with delta-rs alone (`status`): no session, so no JVM.
    The launcher runs such a job with plain Python when its module says `SPARK = False` (see
    `nightjar.submit`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.configure(job)
    try:
        parser = build_parser(job, description, policy)
        add_arguments(parser)
        args = parser.parse_args(argv)
        dates = selected_dates(args, policy)
        config = load_config(args.env, args.overrides, use_case=args.use_case)
    except NightjarError as error:
        return _report(job, error.exit_code, str(error))

    record = RunRecord(
        run_id=str(uuid.uuid4()),
        job=job,
        env=config.env,
        arguments=argv,
        code_version=code_version(),
        user=_user(),
        started_at=_utc_now(),
        dates=dates,
    )
    context = JobContext(job=job, args=args, config=config, dates=dates, record=record)
    exit_code, message = 0, None
    try:
        # Before the session, which must not start on a lake it would misread.
        tables.require_layout(config)
        if spark:
            context.spark = get_spark(config)
        if record_runs:
            _record_start(context)
        body(context)
    except NightjarError as error:
        # A generic failure (exit 1) raised because of a transient one, say a training
        # failure caused by a lost worker, is still worth retrying.
        exit_code = 5 if error.exit_code == 1 and is_transient(error) else error.exit_code
        message = str(error)
    except Exception as error:  # noqa: BLE001 - every other failure is reported as exit 1 or 5
        _log.exception("unexpected failure")
        exit_code = 5 if is_transient(error) else 1
        message = f"{type(error).__name__}: {_first_line(str(error))}"
    record.status = SUCCEEDED if exit_code == 0 else FAILED
    record.exit_code, record.message, record.finished_at = exit_code, message, _utc_now()
    # A run whose session never started recorded no `started` row either.
    recorded = record_runs and context.spark is not None
    if recorded:
        try:
            record_run(config, record)
        except Exception as error:  # noqa: BLE001 - never hide the job's own outcome
            _log.warning("could not record the run: %s", _first_line(str(error)))
    if exit_code:
        return _report(job, exit_code, message or "failed")
    elapsed = (record.finished_at - record.started_at).total_seconds()
    # A job that records no run (`sql`, `status`) has no run id to name.
    run = f" (run {record.run_id})" if recorded else ""
    context.progress(f"done in {elapsed:.1f}s: {_outcome(record)}{run}")
    return 0


def _outcome(record: RunRecord) -> str:
    # The last line of a run says what it did, so that a scheduler's log tail is enough.
    written = [
        f"{table} version {version}" + (f" ({record.row_counts[table]:,} rows)" if table in record.row_counts else "")
        for table, version in sorted(record.output_versions.items())
    ]
    return f"wrote {', '.join(written)}" if written else "wrote no table"


def _record_start(context: JobContext) -> None:
    """The run's `started` row, before the job writes anything, and the runs found interrupted.

    A job killed from here on leaves that row `started`; the next run reports it (`runs.mark_interrupted`).
    """
    for step in (record_start, mark_interrupted):
        try:
            step(context.config, context.record)
        except Exception as error:  # noqa: BLE001 - bookkeeping never stops the job itself
            _log.warning("could not record the run's start: %s", _first_line(str(error)))
            return


def _report(job: str, exit_code: int, message: str) -> int:
    # The one line a failed run ends with, in the same form as the launcher's own errors
    # (nightjar.submit), with no timestamp prefix: schedulers and alerts match it as it is.
    print(f"nightjar {job}: error: {message}", file=sys.stderr, flush=True)
    return exit_code


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _utc_now() -> datetime:
    # Run bookkeeping only; data never depends on the wall clock.
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
