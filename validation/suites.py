"""From configured checks to rules: what each check measures, on which columns, within which bounds.

A rule is one configured check resolved against a table's schema. The gate computes each
rule's value for every (date, column) it applies to, and Great Expectations evaluates the rule
as one expectation over those values (`expectation`): a metric column of the statistics frame
that must lie within the rule's bounds. The `columns` rule compares each column's Spark type
with the expected one; a column that another rule needs but the table lacks, or that is not
numeric where a rule computes with numbers, is added to it, so a vanished column fails the
suite instead of passing silently.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import great_expectations.expectations as gxe
from pyspark.sql import types as T

from nightjar.errors import ConfigError
from validation.checks import Check, ColumnTypesCheck, Severity

TABLE = "(table)"  # the column label of table-level rules
SCHEMA = "columns"
EXPECTED = "expected"  # suffix of the schema rule's expected-type column
DRIFT = "psi"
PRESENT, NUMERIC, MISSING = "present", "numeric", "missing"

# Rules that compute with numbers, and rules about the whole table rather than columns.
_NUMERIC_KINDS = frozenset({"finite", "between", "stdev", DRIFT})
_TABLE_KINDS = frozenset({"row_count", "row_count_history", "entity_count"})
_NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_GX_SEVERITY = {"blocking": "critical", "warning": "warning"}


@dataclass(frozen=True)
class Rule:
    """One check resolved against a table: its metric column's name and the columns it applies to."""

    name: str  # the metric column in the statistics frame, unique in the suite: "in_set", "in_set#2"
    kind: str  # the configured `expect`, or "psi" for drift
    severity: Severity
    columns: tuple[str, ...]  # data columns; (TABLE,) for table-level rules; the key for `unique`
    low: float | None = None
    high: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        """The rule's bounds in words, for messages."""
        return describe_bounds(self.kind, self.low, self.high, self.params)


@dataclass(frozen=True)
class SchemaRow:
    """One column of the `columns` rule: its expected Spark type (or `present`/`numeric`) and what the table has."""

    column: str
    expected: str
    observed: str


def _is_numeric(data_type: T.DataType) -> bool:
    return isinstance(data_type, _NUMERIC_TYPES)


def resolve(
    checks: list[Check],
    schema: T.StructType,
    excluded: set[str],
    where: str,
    drift: tuple[list[str], float, Severity] | None = None,
    timestamp: str | None = None,
) -> tuple[list[Rule], list[SchemaRow], Severity]:
    """Resolve configured checks against a table's schema.

    Args:
        checks: the suite's checks, in order.
        schema: the table's schema.
        excluded: columns patterns never match (the entity key, the date column).
        where: the suite's configuration key, for errors.
        drift: (features, PSI maximum, severity) to add a drift rule, or None.
        timestamp: the timestamp column `timestamp_in_partition` checks (source tables).

    Returns:
        The rules in suite order, the rows of the `columns` rule, and that rule's severity.

    Raises:
        ConfigError: a pattern matches no column (a typo would otherwise check nothing).
    """
    types = {item.name: item.dataType for item in schema.fields}
    rules: list[Rule] = []
    used_names: dict[str, int] = {}
    needs: dict[str, str] = {}  # column -> PRESENT or NUMERIC, from the rules that use it
    declared: ColumnTypesCheck | None = None
    for index, check in enumerate(checks):
        if isinstance(check, ColumnTypesCheck):
            declared = check
            continue
        kind = check.expect
        used_names[kind] = used_names.get(kind, 0) + 1
        name = kind if used_names[kind] == 1 else f"{kind}#{used_names[kind]}"
        params: dict[str, Any] = {}
        low, high = _bounds(check)
        if kind in _TABLE_KINDS:
            columns: tuple[str, ...] = (TABLE,)
            if kind == "row_count_history":
                params = {"days": check.days, "min_days": check.min_days}
        elif kind == "unique":
            columns = (", ".join(check.key),)
            params = {"key": list(check.key)}
            for column in check.key:
                needs.setdefault(column, PRESENT)
        elif kind == "timestamp_in_partition":
            if timestamp is None:
                raise ConfigError(f"{where}[{index}]: timestamp_in_partition applies to source tables only")
            columns = (timestamp,)
            needs.setdefault(timestamp, PRESENT)
        else:
            columns = tuple(_match(check.columns, list(types), excluded, f"{where}[{index}] ({kind})"))
            if kind == "in_set":
                params = {"values": list(check.values)}
            if kind == "between":
                params = {"min": check.min, "max": check.max}
            for column in columns:
                if kind in _NUMERIC_KINDS:
                    needs[column] = NUMERIC
                else:
                    needs.setdefault(column, PRESENT)
        rules.append(Rule(name, kind, check.severity, columns, low, high, params))
    if drift is not None:
        features, psi_max, severity = drift
        for column in features:
            needs[column] = NUMERIC
        rules.append(Rule(DRIFT, DRIFT, severity, tuple(features), 0.0, psi_max))
    rows = [SchemaRow(c, expected, _type_name(types.get(c))) for c, expected in (declared.types.items() if declared else [])]
    listed = {row.column for row in rows}
    for column, need in needs.items():
        if column in listed:
            continue
        if column not in types:
            rows.append(SchemaRow(column, need, MISSING))
        else:
            rows.append(SchemaRow(column, need, NUMERIC if _is_numeric(types[column]) else _type_name(types[column])) if need == NUMERIC
                        else SchemaRow(column, need, PRESENT))
    return rules, rows, (declared.severity if declared else "blocking")


def usable(rule: Rule, column: str, schema: T.StructType) -> bool:
    """Whether `rule` can be computed on `column` (it exists, and is numeric where numbers are needed)."""
    types = {item.name: item.dataType for item in schema.fields}
    if column == TABLE:
        return True
    if rule.kind == "unique":
        return all(part in types for part in rule.params["key"])
    if column not in types:
        return False
    return rule.kind not in _NUMERIC_KINDS or _is_numeric(types[column])


def _type_name(data_type: T.DataType | None) -> str:
    return MISSING if data_type is None else data_type.simpleString()


def _bounds(check: Check) -> tuple[float | None, float | None]:
    """The allowed range of the rule's metric (counts of offending rows must be 0)."""
    kind = check.expect
    if kind in ("row_count", "stdev"):
        return check.min, check.max
    if kind == "row_count_history":
        return check.min_ratio, check.max_ratio
    if kind == "null_fraction":
        return 0.0, check.max
    if kind == "not_constant":
        return 1.0, 1.0
    return 0.0, 0.0  # counts of offending rows; entity_count's difference


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


def _range(params: dict[str, Any]) -> str:
    return describe_bounds("x", params.get("min"), params.get("max"), {})


def describe_bounds(kind: str, low: float | None, high: float | None, params: dict[str, Any]) -> str:
    """What a rule expects, in words."""
    if kind in ("not_null", "finite", "between", "in_set", "unique", "timestamp_in_partition"):
        return "none"
    if kind == "entity_count":
        return "as many rows as entities"
    if kind == "not_constant":
        return "at least 2 distinct values"
    if kind == "row_count_history":
        return f"{format_number(low)}-{format_number(high)} x the median of the previous {params['days']} dates"
    if low is not None and high is not None:
        return f"between {format_number(low)} and {format_number(high)}" if low != high else format_number(low)
    return f"at least {format_number(low)}" if low is not None else f"at most {format_number(high)}"


def format_number(value: float | None) -> str:
    """A bound as written in configuration: 1 not 1.0, 1e+06 for a million."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def describe(rule: Rule) -> str:
    """A sentence an analyst reads in Data Docs for the rule."""
    columns = ", ".join(rule.columns)
    text = {
        "not_null": f"no null values in {columns}",
        "null_fraction": f"at most {format_number(rule.high)} of the rows null or NaN in each of {columns}",
        "unique": f"no two rows share the same {columns}",
        "finite": f"no NaN or infinite values in {columns}",
        "between": f"every finite value of {columns} {_range(rule.params)}",
        "in_set": f"every value of {columns} in {rule.params.get('values')}",
        "not_constant": f"at least two distinct values in each of {columns}",
        "stdev": f"standard deviation of {columns} {describe_bounds('x', rule.low, rule.high, {})}",
        "timestamp_in_partition": f"every {columns} on its partition's date",
        "row_count": f"row count {describe_bounds('x', rule.low, rule.high, {})}",
        "row_count_history": f"row count {rule.expected}",
        "entity_count": "one row per entity known at the date",
        DRIFT: f"population stability index of each feature at most {format_number(rule.high)} against the champion's training data",
    }[rule.kind]
    return f"{rule.name} [{rule.severity}]: {text}"


def expectation(rule: Rule) -> gxe.Expectation:
    """The rule as a Great Expectations expectation over its metric column."""
    return gxe.ExpectColumnValuesToBeBetween(
        column=rule.name,
        min_value=rule.low,
        max_value=rule.high,
        severity=_GX_SEVERITY[rule.severity],
        description=describe(rule),
        meta={"nightjar": {"rule": rule.name, "expect": rule.kind, "columns": list(rule.columns)}},
    )


def schema_expectation(rows: list[SchemaRow], severity: Severity) -> gxe.Expectation:
    """The `columns` rule: each listed column's type (or presence) equals the expected one."""
    listed = ", ".join(f"{row.column} {row.expected}" for row in rows)
    return gxe.ExpectColumnPairValuesToBeEqual(
        column_A=SCHEMA,
        column_B=f"{SCHEMA}:{EXPECTED}",
        ignore_row_if="either_value_is_missing",
        severity=_GX_SEVERITY[severity],
        description=f"{SCHEMA} [{severity}]: the table has {listed}",
        meta={"nightjar": {"rule": SCHEMA, "expect": SCHEMA, "columns": [row.column for row in rows]}},
    )
