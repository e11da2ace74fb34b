"""What the lake holds for a range of dates, and what is stale: the `status` job's engine.

Everything here reads the Delta logs and the `runs` table with delta-rs (through
`nightjar.tables`), never Spark: a scheduler's sensor asks this every few minutes and must not
pay for a JVM.

An output's partition for date D (a `features`, `scores` or `monitoring` date) was written by
the last commit that changed D's data; that commit names its run (`run_id` in its metadata, or
the run whose `output_versions` holds the commit), and the run recorded the version of each table
it read (`input_versions`). The partition is stale when, after that version, a commit changed
data of the input in a partition at or before D (in D itself for an input that is another
per-date output, such as the features a score read), or when its input of the same date is
stale itself. Point-in-time correctness is why only partitions up to D count: nothing after D's cutoff
may change D's features, so the next day's data arriving makes nothing stale. Commits that
rewrite files without changing data (`OPTIMIZE`, `VACUUM`) make nothing stale either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

from nightjar import tables
from nightjar.config import Config

State = Literal["ok", "stale", "unknown", "missing", "no table"]


@dataclass(frozen=True)
class SourceState:
    """One source table's partition for one date."""

    table: str
    partition: str
    present: bool
    required: bool  # a date without this partition is a missing input (see tables.needs_daily_partition)
    table_exists: bool = True


@dataclass
class OutputState:
    """One output table's partition for one date, and whether it is up to date with its inputs."""

    table: str
    state: State
    version: int | None = None  # the commit that last changed this date
    run_id: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class DateStatus:
    day: date
    sources: list[SourceState]
    outputs: list[OutputState]


@dataclass
class Report:
    """The status of every date of a range."""

    use_case: str
    location: str
    dates: list[DateStatus]

    @property
    def missing_inputs(self) -> list[tuple[date, SourceState]]:
        """The required source partitions that do not exist, by date."""
        return [(d.day, s) for d in self.dates for s in d.sources if s.required and not s.present]

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON types, for schedulers' sensors (`status --json`)."""
        return {
            "use_case": self.use_case,
            "location": self.location,
            "start": self.dates[0].day.isoformat() if self.dates else None,
            "end": self.dates[-1].day.isoformat() if self.dates else None,
            "inputs_ready": not self.missing_inputs,
            "missing_inputs": [
                {"date": day.isoformat(), "table": s.table, "partition": s.partition} for day, s in self.missing_inputs
            ],
            "dates": [
                {
                    "date": d.day.isoformat(),
                    "sources": [asdict(s) for s in d.sources],
                    "outputs": [asdict(o) for o in d.outputs],
                }
                for d in self.dates
            ],
        }


def output_tables(config: Config) -> list[str]:
    """The per-date outputs, in the order each is computed from the one before."""
    return [config.tables.features, config.tables.scores, config.tables.monitoring]


def collect(config: Config, dates: list[date]) -> Report:
    """The status of `dates` in the configured use case's lake."""
    lineage = _Lineage(config)
    sources_by_date = _sources(config, dates)
    outputs_by_date: dict[date, list[OutputState]] = {d: [] for d in dates}
    for name in output_tables(config):
        for day, state in _output_states(config, lineage, name, dates, outputs_by_date).items():
            outputs_by_date[day].append(state)
    return Report(
        use_case=config.use_case.name,
        location=tables.use_case_root(config),
        dates=[DateStatus(d, sources_by_date[d], outputs_by_date[d]) for d in dates],
    )


def _sources(config: Config, dates: list[date]) -> dict[date, list[SourceState]]:
    result: dict[date, list[SourceState]] = {d: [] for d in dates}
    for source in config.use_case.sources.values():
        exists = tables.current_version(config, source.table) is not None
        present = tables.partition_dates(config, source.table, source.partition) if exists else set()
        for day in dates:
            # A source table that does not exist is missing on every date, whatever its kind.
            required = tables.needs_daily_partition(source) or not exists
            result[day].append(SourceState(source.table, source.partition, day in present, required, exists))
    return result


def _output_states(
    config: Config, lineage: "_Lineage", name: str, dates: list[date], earlier: dict[date, list[OutputState]],
) -> dict[date, OutputState]:
    if lineage.version(name) is None:
        return {d: OutputState(name, "no table") for d in dates}
    partition = lineage.partition(name)
    if partition is None:
        return {d: OutputState(name, "unknown", reasons=[f"table {name!r} is not partitioned by date"]) for d in dates}
    present = tables.partition_dates(config, name, partition)
    writers = lineage.writers(name, partition, [d for d in dates if d in present])
    states = {}
    for day in dates:
        if day not in present:
            states[day] = OutputState(name, "missing")
            continue
        writer = writers.get(day)
        if writer is None:
            states[day] = OutputState(name, "unknown", reasons=[
                f"the commit that wrote {partition}={day} is no longer in {name!r}'s Delta log"])
            continue
        states[day] = _freshness(lineage, name, day, writer, {o.table: o for o in earlier[day]})
    return states


def _freshness(
    lineage: "_Lineage", name: str, day: date, writer: tables.Commit, upstream: dict[str, OutputState],
) -> OutputState:
    run_id = (writer.metadata or {}).get("run_id")
    inputs = lineage.inputs(name, writer, run_id)
    state = OutputState(name, "ok", version=writer.version, run_id=run_id or lineage.run_of(name, writer.version))
    if inputs is None:
        state.state = "unknown"
        state.reasons.append(f"no run recorded the inputs of {name!r} version {writer.version}"
                             + (f" (run {run_id})" if run_id else ""))
        return state
    for table, read_version in sorted(inputs.items()):
        if table == name:
            continue  # a job that computes missing features first records the features it then reads
        # Another per-date output (the features a score read) is read for the same date only; a
        # source, over windows that end at the date.
        reason = lineage.changed_since(table, read_version, day, same_day=table in upstream)
        if reason:
            state.reasons.append(reason)
        above = upstream.get(table)
        if above is not None and above.state == "stale":
            state.reasons.append(f"{table} of {day} is stale")
    if state.reasons:
        state.state = "stale"
    return state


class _Lineage:
    """Cached reads of the Delta logs and of the `runs` table for one report."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._versions: dict[str, int | None] = {}
        self._partitions: dict[str, str | None] = {}
        self._commits: dict[tuple[str, int], tables.Commit | None] = {}
        self._runs: tuple[dict[str, dict[str, int]], dict[tuple[str, int], str]] | None = None

    def version(self, name: str) -> int | None:
        if name not in self._versions:
            self._versions[name] = tables.current_version(self.config, name)
        return self._versions[name]

    def partition(self, name: str) -> str | None:
        """The table's date partition column: the first partition column, or None."""
        if name not in self._partitions:
            columns = tables.partition_columns(self.config, name)
            self._partitions[name] = columns[0] if columns else None
        return self._partitions[name]

    def commit(self, name: str, table_version: int) -> tables.Commit | None:
        key = (name, table_version)
        if key not in self._commits:
            self._commits[key] = tables.commit(self.config, name, table_version, self.partition(name))
        return self._commits[key]

    def writers(self, name: str, partition: str, dates: list[date]) -> dict[date, tables.Commit]:
        """The last commit that changed each date's data, read back from the latest until all are found."""
        wanted = {d.isoformat(): d for d in dates}
        found: dict[date, tables.Commit] = {}
        table_version = self.version(name)
        while wanted and table_version is not None and table_version >= 0:
            entry = self.commit(name, table_version)
            if entry is None:
                break  # the older log is gone: the rest cannot be told
            hit = list(wanted) if entry.changed is None else [value for value in wanted if value in entry.changed]
            for value in hit:
                found[wanted.pop(value)] = entry
            table_version -= 1
        return found

    def _load_runs(self) -> tuple[dict[str, dict[str, int]], dict[tuple[str, int], str]]:
        if self._runs is None:
            inputs: dict[str, dict[str, int]] = {}
            outputs: dict[tuple[str, int], str] = {}
            runs = self.config.tables.runs
            if self.version(runs) is not None:
                rows = tables.read_table(self.config, runs, ["run_id", "input_versions", "output_versions"]).to_pylist()
                for row in rows:
                    inputs[row["run_id"]] = dict(row["input_versions"] or [])
                    for table, written in row["output_versions"] or []:
                        outputs[(table, int(written))] = row["run_id"]
            self._runs = (inputs, outputs)
        return self._runs

    def run_of(self, name: str, table_version: int) -> str | None:
        """The run whose recorded outputs hold version `table_version` of `name`."""
        return self._load_runs()[1].get((name, table_version))

    def inputs(self, name: str, writer: tables.Commit, run_id: str | None) -> dict[str, int] | None:
        """The input versions recorded by the run that made `writer`: from `runs`, else from the commit itself."""
        by_run, _ = self._load_runs()
        run_id = run_id or self.run_of(name, writer.version)
        if run_id in by_run:
            return by_run[run_id]
        recorded = (writer.metadata or {}).get("input_versions")
        return {str(k): int(v) for k, v in recorded.items()} if isinstance(recorded, dict) else None

    def changed_since(self, name: str, read_version: int, day: date, same_day: bool = False) -> str | None:
        """Why the data of `name` up to `day` (`same_day`: of `day` itself) changed after `read_version`,
        or None when it did not."""
        now = self.version(name)
        if now is None:
            return f"{name} (read at version {read_version}) no longer exists"
        if now <= read_version:
            return None
        partition = self.partition(name)
        changed_in, values, everything = [], set(), False
        for table_version in range(read_version + 1, now + 1):
            entry = self.commit(name, table_version)
            if entry is None:
                return f"{name} changed after version {read_version}, in versions no longer in its Delta log"
            relevant = None if entry.changed is None else {v for v in entry.changed if _counts(v, day, same_day)}
            if relevant is None or relevant:
                changed_in.append(table_version)
                everything = everything or relevant is None
                values |= relevant or set()
        if not changed_in:
            return None
        if everything or not partition:
            where = "its data"
        else:
            listed = sorted(values)
            where = f"{partition}={', '.join(listed[:3])}" + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
        shown = ", ".join(map(str, changed_in[:5])) + (" ..." if len(changed_in) > 5 else "")
        return f"{name}: {where} changed in version {shown} after version {read_version}, which its run read"


def _counts(value: str, day: date, same_day: bool) -> bool:
    try:
        changed = date.fromisoformat(value[:10])
    except ValueError:
        return True  # not a date: it may matter, so it counts
    return changed == day if same_day else changed <= day


# The readable form: one line per date, then a line per stale or unknown output.

_SOURCE_CELL = {(True, True): "ok", (True, False): "ok", (False, True): "MISSING", (False, False): "none"}


def render(report: Report) -> list[str]:
    """The report as a table, a date per line, followed by the reasons behind each stale output."""
    if not report.dates:
        return [f"use case {report.use_case}: no dates"]
    first = report.dates[0]
    header = ["date", *(s.table for s in first.sources), *(o.table for o in first.outputs)]
    rows = [
        [d.day.isoformat(),
         *(_SOURCE_CELL[(s.present, s.required)] if s.table_exists else "MISSING" for s in d.sources),
         *(o.state for o in d.outputs)]
        for d in report.dates
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"status of use case {report.use_case} in {report.location}, {report.dates[0].day}..{report.dates[-1].day}"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    for d in report.dates:
        for o in d.outputs:
            for reason in o.reasons:
                lines.append(f"{d.day} {o.table} {o.state}: {reason}")
    lines.append(
        "sources: ok, none (no partition, none needed: entities and sparse sources), MISSING (a required input); "
        "outputs: ok, stale, unknown (no lineage), missing, no table"
    )
    return lines
