"""The `runs` table: one row per job run, written when it starts and completed when it ends.

A run appends its row with status `started` before it writes anything, and replaces it with
`succeeded` or `failed` at its end. A run killed in between (SIGKILL, a lost machine) leaves
its row `started`: the next run on the same host finds that row's driver process gone and
records it as `interrupted`. Rows written before statuses `started` and `interrupted` existed
(and before the `host` and `pid` columns) read as they always did.

Wall-clock times appear here and only here: they describe the run, not the data it wrote.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nightjar import tables
from nightjar.config import Config


def _counts(value: pa.DataType) -> pa.DataType:
    return pa.map_(pa.string(), value)


# Written with delta-rs (see `tables.append_rows`); the same columns Spark wrote before, in UTC.
RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("job", pa.string()),
        ("env", pa.string()),
        ("ds", pa.date32()),
        ("start_date", pa.date32()),
        ("end_date", pa.date32()),
        ("status", pa.string()),
        # Null while the run is `started`, and for an `interrupted` one: it never ended.
        ("exit_code", pa.int32()),
        ("message", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("row_counts", _counts(pa.int64())),
        ("timings", _counts(pa.float64())),
        ("input_versions", _counts(pa.int64())),
        ("output_versions", _counts(pa.int64())),
        ("model_version", pa.string()),
        ("checks", pa.string()),
        ("arguments", pa.string()),
        ("code_version", pa.string()),
        ("user", pa.string()),
        # Where the driver ran: what tells a run that was killed from one still running.
        ("host", pa.string()),
        ("pid", pa.int64()),
    ]
)

STARTED, SUCCEEDED, FAILED, INTERRUPTED = "started", "succeeded", "failed", "interrupted"
_log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What one run did; filled in by the job as it goes and appended to `runs` at the end."""

    run_id: str
    job: str
    env: str
    arguments: list[str]
    code_version: str
    user: str | None
    started_at: datetime
    dates: list[date] = field(default_factory=list)
    status: str = STARTED
    exit_code: int | None = None
    message: str | None = None
    finished_at: datetime | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    model_version: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def as_table(self) -> pa.Table:
        """The record as one row of `RUNS_SCHEMA`."""
        return pa.Table.from_pylist([dict(zip(RUNS_SCHEMA.names, self.as_row()))], schema=RUNS_SCHEMA)

    def as_row(self) -> tuple[Any, ...]:
        """The record in `RUNS_SCHEMA` order."""
        finished = self.finished_at
        single = self.dates[0] if len(self.dates) == 1 else None
        return (
            self.run_id,
            self.job,
            self.env,
            single,
            min(self.dates) if self.dates else None,
            max(self.dates) if self.dates else None,
            self.status,
            self.exit_code,
            self.message,
            self.started_at,
            finished,
            None if finished is None else (finished - self.started_at).total_seconds(),
            list(self.row_counts.items()),
            list(self.timings.items()),
            list(self.input_versions.items()),
            list(self.output_versions.items()),
            self.model_version,
            json.dumps(self.checks, sort_keys=True, default=str) if self.checks else None,
            json.dumps(self.arguments),
            self.code_version,
            self.user,
            self.host,
            self.pid,
        )


def record_start(config: Config, record: RunRecord) -> int:
    """Append `record`'s row with status `started` (a blind append: it never conflicts); returns the table's version."""
    return tables.append_rows(config, config.tables.runs, record.as_table())


def record_run(config: Config, record: RunRecord) -> int:
    """Write `record`'s final row: it replaces its `started` row, or is appended when there is none
    (its start could not be recorded); returns the table's new version."""
    return tables.upsert_rows(config, config.tables.runs, record.as_table(), ["run_id"])


def mark_interrupted(config: Config, record: RunRecord) -> list[dict[str, Any]]:
    """Record as `interrupted` every run still `started` whose driver ran on this host and is
    gone, logging each; returns their rows as they were.

    A run on another host may still be running (its process cannot be looked at from here):
    it is logged and left `started`. So is one whose process is alive: a job running beside this one.
    """
    found = tables.read_rows(config, config.tables.runs, pc.field("status") == STARTED)
    if found is None or "host" not in found.column_names:  # a table from before `started` rows
        return []
    ended = []
    for row in sorted(found.to_pylist(), key=lambda r: r["started_at"]):
        if row["run_id"] == record.run_id:
            continue
        what = _described(row)
        if row["host"] != record.host:
            _log.warning("%s has not finished; it ran on %s, where it may still be running", what, row["host"])
        elif row["pid"] is not None and _alive(int(row["pid"])):
            _log.info("%s is still running (pid %d)", what, row["pid"])
        else:
            _log.warning("%s never finished: interrupted (killed, or its machine stopped); "
                         "what it committed stays, nothing half-written is visible", what)
            ended.append(row)
    if ended:
        listed = ", ".join(f"'{row['run_id']}'" for row in ended)
        tables.update_rows(config, config.tables.runs, f"run_id IN ({listed}) AND status = '{STARTED}'", {
            "status": f"'{INTERRUPTED}'",
            "message": f"'interrupted: found not running by run {record.run_id}'",
        })
    return ended


def interrupted(config: Config, run_ids: set[str]) -> set[str]:
    """Which of `run_ids` are recorded `interrupted`."""
    if not run_ids:
        return set()
    found = tables.read_rows(config, config.tables.runs,
                             (pc.field("status") == INTERRUPTED) & pc.field("run_id").isin(sorted(run_ids)))
    return set() if found is None else set(found.column("run_id").to_pylist())


def _described(row: dict[str, Any]) -> str:
    dates = row["ds"] or (f"{row['start_date']}..{row['end_date']}" if row["start_date"] else None)
    on = f" for {dates}" if dates else ""
    return f"run {row['run_id']} ({row['job']}{on}, started {row['started_at']:%Y-%m-%d %H:%M:%S} UTC, pid {row['pid']})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        # A killed driver whose parent (the JVM) died with it stays a zombie until init reaps it.
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
