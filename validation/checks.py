"""The validation checks, one definition per kind, and the `validation` section of the configuration.

A check kind is one class here. It holds the check's configuration (the pydantic model a suite
lists under `expect: <kind>`, strict and frozen), the stages it applies to, the columns it
applies to, the statistic it needs per date (a `validation.metrics.Metric` the gate computes in
its one pass over the rows, or a narrow side job), how that statistic becomes the check's value
on one (column, date) with the observation in words, the bounds the value must lie within, and
how the check reads in Data Docs and in messages. `validation.suites` and `validation.gate` loop
over these definitions and name no kind, so a new kind is one class here, listed in `Check`.

Two kinds are not rules like the others: `columns` (`ColumnTypesCheck`), which Great Expectations
evaluates as a pair of columns (`suites.schema_expectation`), and drift (`DriftCheck`, `psi`),
which the gate adds for the features stage when the champion stored reference statistics.

`nightjar.config` imports this module, and the launcher loads the configuration before any JVM
starts: nothing here may import Great Expectations (seconds to import) or `nightjar.config` (a
cycle). What a side job reads besides the rows comes in `SideInputs`, from the gate.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import median
from typing import Annotated, Any, Callable, ClassVar, Literal, Sequence, Union, get_args

from pydantic import Field, model_validator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from nightjar.errors import ConfigError
from nightjar.strict import Scalar, Strict
from validation import drift, metrics
from validation.metrics import Metric

Severity = Literal["blocking", "warning"]
Stage = Literal["source", "features", "scores"]
STAGES: tuple[Stage, ...] = ("source", "features", "scores")
# A column name, or a glob pattern (`*`, `?`, `[...]`) over the table's columns other than its
# entity key and date column: `"*"` is every feature, `"*_count_*"` every count.
ColumnPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?\[\]!]+$")]

TABLE = "(table)"  # the column label of table-level rules
DRIFT = "psi"  # the drift rule's kind and name
_OFF_DAY = "__nightjar_off_day"  # timestamp_in_partition's helper column: the row's day is not its partition's

Value = tuple[float | None, str]  # a rule's value on one (column, date), and the observation in words


@dataclass(frozen=True)
class SideInputs:
    """What side jobs read: the rows being validated, and other tables through the gate (lazily)."""

    frame: DataFrame  # the rows of `dates`
    date_column: str
    dates: list[date]
    stored: Callable[[], DataFrame | None]  # the table as stored so far; None before its first write
    entities_known: Callable[[], dict[date, int]]  # distinct entities the entities source knows at each date
    table: Callable[[str], DataFrame | None]  # another table of the use case by name; None when it does not exist
    where: str  # the suite's configuration key, for errors
    rows_per_entity: int = 1  # rows each entity has per date: a forecast's horizons


class CheckBase(Strict):
    """One configured expectation; a failed `blocking` one stops the job (exit 3), a `warning` is reported."""

    expect: str  # the kind; each definition narrows it to its own literal, which the `Check` union keys on
    severity: Severity = "blocking"

    stages: ClassVar[tuple[Stage, ...]] = STAGES  # where the kind applies
    once: ClassVar[bool] = False  # at most one per suite


class RuleCheck(CheckBase, ABC):
    """A check the gate evaluates as a rule: one value per (column, date) that must lie within `bounds`."""

    numeric: ClassVar[bool] = False  # computes with numbers: its columns must be numeric
    table_level: ClassVar[bool] = False  # one value per date for the whole table, labelled TABLE

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        """The labels of the rule's values: data columns, or (TABLE,) for the whole table.

        Args:
            names: the table's columns.
            excluded: columns patterns never match (the entity key, the date column).
            where: the check's configuration key, for errors.
            timestamp: the timestamp column of a source table (None for other stages).

        Raises:
            ConfigError: a pattern matches no column.
        """
        return (TABLE,)

    def reads(self, label: str) -> tuple[str, ...]:
        """The data columns the value labelled `label` reads; each must exist (and be numeric if `numeric`)."""
        return () if self.table_level else (label,)

    def metric(self, column: str) -> Metric | None:
        """The per-date statistic the value on `column` needs from the gate's one pass, if any."""
        return None

    def helpers(self, column: str, date_column: str) -> dict[str, Column]:
        """Per-row Spark expressions `metric` reads, evaluated in the same pass."""
        return {}

    def side(self, inputs: SideInputs) -> dict[date, Any] | None:
        """A side job's result per date, for statistics one pass over the rows cannot give; None: no side job."""
        return None

    @abstractmethod
    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        """The rule's value on one column and date, and the observation in words.

        Args:
            column: the value's label (a data column, or TABLE).
            stats: the date's statistics from the one pass (`rows` among them; empty without rows).
            side: the date's side job result (None without a side job).
        """

    @abstractmethod
    def bounds(self) -> tuple[float | None, float | None]:
        """The range the value must lie within (None: open on that side)."""

    def expected(self) -> str:
        """The bounds in words, for messages."""
        return _range(*self.bounds())

    @abstractmethod
    def describe(self, columns: str) -> str:
        """What the check expects of `columns` (their labels, joined), in a sentence an analyst reads in Data Docs."""


class _Counts(RuleCheck):
    """A check whose value counts offending rows (or values), which must be 0."""

    def bounds(self) -> tuple[float | None, float | None]:
        return 0.0, 0.0

    def expected(self) -> str:
        return "none"


class _ColumnCheck(RuleCheck):
    """A check of each listed column (names or patterns), one value per column and date."""

    columns: list[ColumnPattern] = Field(min_length=1)

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        return tuple(_match(self.columns, names, excluded, f"{where} ({self.expect})"))


class _Bounds(RuleCheck):
    """A check whose value lies in [min, max], either of them open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "_Bounds":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self

    def bounds(self) -> tuple[float | None, float | None]:
        return self.min, self.max


class ColumnTypesCheck(CheckBase):
    """The table has these columns, with these Spark SQL types (`bigint`, `double`, `string`, `date`, ...).

    Not a rule: `validation.suites` merges it with the columns the rules need into the schema expectation.
    """

    expect: Literal["columns"]
    types: dict[str, str] = Field(min_length=1)

    once: ClassVar[bool] = True


class NotNullCheck(_ColumnCheck, _Counts):
    """No null values in the columns."""

    expect: Literal["not_null"]

    def metric(self, column: str) -> Metric:
        return Metric("nulls", column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = _count(stats, self.metric(column))
        return n, _plural(n, "null value")

    def describe(self, columns: str) -> str:
        return f"no null values in {columns}"


class NullFractionCheck(_ColumnCheck):
    """At most `max` of the rows are null or NaN in each column."""

    expect: Literal["null_fraction"]
    max: float = Field(ge=0, le=1)

    def metric(self, column: str) -> Metric:
        return Metric("missing", column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        rows = _rows(stats)
        if rows == 0:
            return None, "no rows"
        share = _count(stats, self.metric(column)) / rows
        return share, f"{share:.3g} of {rows} rows null or NaN"

    def bounds(self) -> tuple[float | None, float | None]:
        return 0.0, self.max

    def describe(self, columns: str) -> str:
        return f"at most {format_number(self.max)} of the rows null or NaN in each of {columns}"


class UniqueCheck(_Counts):
    """No two rows share the same values of `key` (one column or several together); rows with a null key part are not compared."""

    expect: Literal["unique"]
    key: list[str] = Field(min_length=1)

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        return (", ".join(self.key),)

    def reads(self, label: str) -> tuple[str, ...]:
        return tuple(self.key)

    def side(self, inputs: SideInputs) -> dict[date, Any]:
        # Comparing rows with one another needs a shuffle: a narrow aggregation of the key columns.
        found = metrics.duplicates(inputs.frame, inputs.date_column, self.key)
        return {day: found.get(day, 0) for day in inputs.dates}

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = int(side or 0)
        return n, _plural(n, "duplicate row")

    def describe(self, columns: str) -> str:
        return f"no two rows share the same {columns}"


class FiniteCheck(_ColumnCheck, _Counts):
    """No NaN or infinite values in the (floating-point) columns."""

    expect: Literal["finite"]

    numeric: ClassVar[bool] = True

    def metric(self, column: str) -> Metric:
        return Metric("nonfinite", column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = _count(stats, self.metric(column))
        return n, _plural(n, "NaN or infinite value")

    def describe(self, columns: str) -> str:
        return f"no NaN or infinite values in {columns}"


class BetweenCheck(_ColumnCheck, _Counts, _Bounds):
    """Every finite value lies in [min, max] (nulls, NaN and infinities are the other checks' business).

    Its value counts the values out of range, so its own bounds are a count's (`_Counts` comes
    before `_Bounds`), not [min, max].
    """

    expect: Literal["between"]

    numeric: ClassVar[bool] = True

    def metric(self, column: str) -> Metric:
        return Metric("outside", column, (self.min, self.max))

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = _count(stats, self.metric(column))
        low, high = (format_number(bound) if bound is not None else None for bound in (self.min, self.max))
        where = f"outside [{low}, {high}]" if low and high else f"below {low}" if low else f"above {high}"
        return n, f"{_plural(n, 'value')} {where}"

    def describe(self, columns: str) -> str:
        return f"every finite value of {columns} {_range(self.min, self.max)}"


class InSetCheck(_ColumnCheck, _Counts):
    """Every non-null value is one of `values`."""

    expect: Literal["in_set"]
    values: list[Scalar] = Field(min_length=1)

    def metric(self, column: str) -> Metric:
        return Metric("not_in", column, tuple(self.values))

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = _count(stats, self.metric(column))
        return n, f"{_plural(n, 'value')} not in {self.values}"

    def describe(self, columns: str) -> str:
        return f"every value of {columns} in {self.values}"


class NotConstantCheck(_ColumnCheck):
    """Each column holds at least two different non-null values."""

    expect: Literal["not_constant"]

    def metric(self, column: str) -> Metric:
        return Metric("varies", column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        if _rows(stats) == 0:
            return None, "no rows"
        varies = bool(stats.get(self.metric(column), False))
        return float(varies), "varies" if varies else "constant (fewer than 2 distinct values)"

    def bounds(self) -> tuple[float | None, float | None]:
        return 1.0, 1.0

    def expected(self) -> str:
        return "at least 2 distinct values"

    def describe(self, columns: str) -> str:
        return f"at least two distinct values in each of {columns}"


class StdevCheck(_ColumnCheck, _Bounds):
    """The sample standard deviation of the finite values lies in [min, max] (a collapsed distribution fails `min`)."""

    expect: Literal["stdev"]

    numeric: ClassVar[bool] = True

    def metric(self, column: str) -> Metric:
        return Metric("moments", column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        std = metrics.sample_std(stats.get(self.metric(column), (0, 0.0, 0.0)))
        return std, "fewer than 2 values" if std is None else f"standard deviation {std:.4g}"

    def describe(self, columns: str) -> str:
        return f"standard deviation of {columns} {self.expected()}"


class TimestampInPartitionCheck(_Counts):
    """Every row's timestamp falls on its partition's date (source tables: their configured columns)."""

    expect: Literal["timestamp_in_partition"]

    stages: ClassVar[tuple[Stage, ...]] = ("source",)

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        if timestamp is None:  # `suites.resolve` rejects other stages before asking
            raise ConfigError(f"{where}: {self.expect} needs the source's timestamp column")
        return (timestamp,)

    def metric(self, column: str) -> Metric:
        return Metric("true", _OFF_DAY)

    def helpers(self, column: str, date_column: str) -> dict[str, Column]:
        # Spark's to_date follows the session time zone, as the feature engine's day does.
        return {_OFF_DAY: F.to_date(F.col(column)) != F.col(date_column)}

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = _count(stats, self.metric(column))
        return n, f"{_plural(n, 'row')} whose {column} is not on the partition's date"

    def describe(self, columns: str) -> str:
        return f"every {columns} on its partition's date"


class RowCountCheck(_Bounds):
    """The number of rows of each date lies in [min, max]; `min: 1` rejects an empty partition."""

    expect: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    table_level: ClassVar[bool] = True

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        rows = _rows(stats)
        return rows, _plural(rows, "row")

    def describe(self, columns: str) -> str:
        return f"row count {self.expected()}"


class RowCountHistoryCheck(RuleCheck):
    """A date's row count lies within [min_ratio, max_ratio] times the median of the previous `days` dates.

    Checked once at least `min_days` of those dates hold rows; skipped before that.
    """

    expect: Literal["row_count_history"]
    days: int = Field(28, ge=1, le=3650)
    min_days: int = Field(7, ge=1)
    min_ratio: float = Field(0.2, ge=0)
    max_ratio: float = Field(5.0, gt=0)

    table_level: ClassVar[bool] = True

    def side(self, inputs: SideInputs) -> dict[date, Any]:
        """Per date, the row counts of the previous `days` dates that hold rows, from the table as stored."""
        dates, span = inputs.dates, timedelta(days=self.days)
        stored = inputs.stored()
        history = {} if stored is None else metrics.row_counts(stored, inputs.date_column, dates[0] - span, dates[-1] - timedelta(days=1))
        return {d: [n for day, n in history.items() if d - span <= day < d and n > 0] for d in dates}

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        rows = _rows(stats)
        previous: list[int] = side or []
        if len(previous) < self.min_days:
            return None, f"{rows} rows; only {len(previous)} previous dates with rows, {self.min_days} needed"
        typical = median(previous)
        ratio = rows / typical
        return ratio, f"{rows} rows, {ratio:.2f} x the median {typical:g} of {len(previous)} previous dates"

    def bounds(self) -> tuple[float | None, float | None]:
        return self.min_ratio, self.max_ratio

    def expected(self) -> str:
        return f"{format_number(self.min_ratio)}-{format_number(self.max_ratio)} x the median of the previous {self.days} dates"

    def describe(self, columns: str) -> str:
        return f"row count {self.expected()}"


class EntityCountCheck(_Counts):
    """A date has exactly as many rows as the entities source knows entities at that date (a
    forecast's, that many per horizon)."""

    expect: Literal["entity_count"]

    stages: ClassVar[tuple[Stage, ...]] = ("features", "scores")
    table_level: ClassVar[bool] = True

    def side(self, inputs: SideInputs) -> dict[date, Any]:
        return {day: (count, inputs.rows_per_entity) for day, count in inputs.entities_known().items()}

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        rows, (entities, per_entity) = _rows(stats), side
        each = f" x {per_entity} rows each" if per_entity > 1 else ""
        return rows - entities * per_entity, f"{rows} rows for {entities} entities{each}"

    def expected(self) -> str:
        return "as many rows as entities"

    def describe(self, columns: str) -> str:
        return "one row per entity known at the date"


class ReferencesCheck(_Counts):
    """Every key of this table exists in another table of the use case: `columns` (one, or several
    forming a composite key) match `key` (the referenced columns, by default the same names) of some
    row of `table`, read whole as it is stored now. Rows with a null key part are not compared.

    Its value per date is the number of rows whose key has no match (one left anti join on the key
    columns). A referenced table that does not exist yet fails the check rather than the
    configuration: no key can be found in it, so every keyed row counts, and the words say the
    table is missing (a table may be written by a later job; a misspelt name still blocks). A
    referenced table that exists but lacks a key column is a configuration error (exit 2) naming
    the suite's key and the column.
    """

    expect: Literal["references"]
    columns: list[str] = Field(min_length=1)
    table: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    key: list[str] | None = None  # the referenced table's columns, in the order of `columns`

    @model_validator(mode="after")
    def _same_length(self) -> "ReferencesCheck":
        if self.key is not None and len(self.key) != len(self.columns):
            raise ValueError("key must name as many columns as columns")
        return self

    @property
    def referenced(self) -> list[str]:
        """The referenced table's key columns."""
        return self.key if self.key is not None else self.columns

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        return (", ".join(self.columns),)

    def reads(self, label: str) -> tuple[str, ...]:
        return tuple(self.columns)

    def side(self, inputs: SideInputs) -> dict[date, Any]:
        other = inputs.table(self.table)
        if other is not None:
            lacking = [column for column in self.referenced if column not in other.columns]
            if lacking:
                raise ConfigError(
                    f"{inputs.where} ({self.expect} {self.table}): table {self.table!r} has no column "
                    f"{', '.join(lacking)} (columns: {', '.join(other.columns)})"
                )
        found = metrics.unmatched(inputs.frame, inputs.date_column, self.columns, other, self.referenced)
        return {day: (found.get(day, 0), other is None) for day in inputs.dates}

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n, missing = side if side is not None else (0, False)
        key = column if len(self.columns) == 1 else f"({column})"
        words = f"{_plural(n, 'row')} whose {key} is not in table {self.table!r}{self._as()}"
        return n, f"{words} (the table does not exist)" if missing else words

    def describe(self, columns: str) -> str:
        return f"every non-null {columns} exists in table {self.table!r}{self._as()}"

    def _as(self) -> str:
        return "" if self.referenced == self.columns else f" as {', '.join(self.referenced)}"


Check = Annotated[
    Union[
        ColumnTypesCheck, NotNullCheck, NullFractionCheck, UniqueCheck, FiniteCheck, BetweenCheck, InSetCheck,
        NotConstantCheck, StdevCheck, TimestampInPartitionCheck, RowCountCheck, RowCountHistoryCheck, EntityCountCheck,
        ReferencesCheck,
    ],
    Field(discriminator="expect"),
]
KINDS: tuple[type[CheckBase], ...] = get_args(get_args(Check)[0])  # the configurable kinds, in `Check`'s order


class DriftCheck(RuleCheck):
    """The population stability index of each feature against the champion's training data is at most `psi_max`.

    Not configured in a suite: the gate adds it for the features stage from `validation.drift`
    (`DriftConfig.check`) and the champion's `reference_statistics`, which it carries.
    """

    expect: Literal["psi"] = DRIFT
    psi_max: float = Field(gt=0)
    reference: dict[str, Any]  # `drift.reference_statistics` of the training rows

    stages: ClassVar[tuple[Stage, ...]] = ("features",)
    numeric: ClassVar[bool] = True

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        # Features the model was trained on that the table no longer has are the schema's to report.
        return tuple(name for name in self.reference.get("features", {}) if name in names)

    def metric(self, column: str) -> Metric:
        return drift.bin_metric(self.reference, column)

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        shares = self.reference["features"][column]["shares"]
        psi = drift.psi_from_counts(shares, stats.get(self.metric(column), []))
        return psi, "no values" if psi is None else f"PSI {psi:.3f}"

    def bounds(self) -> tuple[float | None, float | None]:
        return 0.0, self.psi_max

    def describe(self, columns: str) -> str:
        return f"population stability index of each feature at most {format_number(self.psi_max)} against the champion's training data"


class DriftConfig(Strict):
    """Drift of the features against the champion's training data: the population stability index per feature."""

    psi_max: float = Field(0.25, gt=0)
    severity: Severity = "warning"

    def check(self, reference: dict[str, Any]) -> DriftCheck:
        """The drift rule against `reference`, the champion's `reference_statistics`."""
        return DriftCheck(psi_max=self.psi_max, severity=self.severity, reference=reference)


class ValidationConfig(Strict):
    """The validation gate: suites per stage and table, drift, and where Great Expectations keeps its project."""

    # The folder of the file-backed GX projects (suites, stored results, Data Docs), one per use case;
    # default <lake.root>/<use case>/_gx (see nightjar.tables.gx_root).
    gx_root: str | None = None
    suites: dict[Stage, dict[str, list[Check]]] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    # Stored results (and their Data Docs pages) older than this many days are deleted when a
    # suite runs; None keeps every result. Each Data Docs update reads every stored result, so a
    # nightly lake without a bound slows its own validation down over the months.
    keep_results_days: int | None = Field(None, ge=0)

    def check_suites(self, tables: dict[Stage, list[str]]) -> None:
        """Check that each suite names a table of its stage and holds only kinds that apply there.

        Args:
            tables: the tables of each stage (a suite for a table no job reads or writes would never run).

        Raises:
            ConfigError: naming the suite's key and the problem.
        """
        for stage, suites in self.suites.items():
            for table, checks in suites.items():
                where = f"validation.suites.{stage}.{table}"
                if table not in tables[stage]:
                    raise ConfigError(f"invalid configuration: {where}: not a {stage} table (expected one of: {', '.join(tables[stage])})")
                problem = suite_problem(stage, checks)
                if problem:
                    raise ConfigError(f"invalid configuration: {where}: {problem}")


def suite_problem(stage: Stage, checks: Sequence[CheckBase]) -> str | None:
    """What is wrong with a suite's kinds at `stage` (None: nothing): a kind of another stage, or one repeated that may appear once."""
    for kind in KINDS:
        present = [check for check in checks if type(check) is kind]
        if not present:
            continue
        name = present[0].expect
        if kind.once and len(present) > 1:
            return f"more than one `{name}` check"
        if stage not in kind.stages:
            return f"{name} {stage_words(kind.stages)}"
    return None


def stage_words(stages: tuple[Stage, ...]) -> str:
    """The stages a kind applies to, in words: "applies to source tables only"."""
    names = ["source tables" if stage == "source" else stage for stage in stages]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"applies to {listed} only"


def format_number(value: float | None) -> str:
    """A bound as written in configuration: 1 not 1.0, 1e+06 for a million."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range(low: float | None, high: float | None) -> str:
    """A range in words: "between 0 and 1", "at least 0", "at most 0.25", or the value when low == high."""
    if low is not None and high is not None:
        return f"between {format_number(low)} and {format_number(high)}" if low != high else format_number(low)
    return f"at least {format_number(low)}" if low is not None else f"at most {format_number(high)}"


def _match(patterns: list[str], columns: list[str], excluded: set[str], where: str) -> list[str]:
    """Names as given (a missing one is the schema rule's to report); patterns over the other columns."""
    matched: list[str] = []
    for pattern in patterns:
        if not any(ch in pattern for ch in "*?["):
            found = [pattern]
        else:
            found = [c for c in columns if c not in excluded and fnmatch.fnmatchcase(c, pattern)]
            if not found:
                raise ConfigError(f"{where}: the pattern {pattern!r} matches no column (columns: {', '.join(columns)})")
        matched.extend(c for c in found if c not in matched)
    return matched


def _rows(stats: dict[Metric, Any]) -> int:
    return int(stats.get(Metric("rows"), 0))


def _count(stats: dict[Metric, Any], metric: Metric) -> int:
    return int(stats.get(metric, 0))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
