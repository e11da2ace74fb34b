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

from dataclasses import dataclass

import great_expectations.expectations as gxe
from pyspark.sql import types as T

from nightjar.errors import ConfigError
from validation.checks import CheckBase, ColumnTypesCheck, RuleCheck, Severity, Stage, stage_words

SCHEMA = "columns"  # the schema rule: ColumnTypesCheck's kind, and the name of its expectation
EXPECTED = "expected"  # suffix of the schema rule's expected-type column
PRESENT, NUMERIC, MISSING = "present", "numeric", "missing"

_NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_GX_SEVERITY = {"blocking": "critical", "warning": "warning"}


@dataclass(frozen=True)
class Rule:
    """One check resolved against a table: its metric column's name and the labels of its values."""

    name: str  # the metric column in the statistics frame, unique in the suite: "in_set", "in_set#2"
    check: RuleCheck  # the configured check (or the drift check): what the rule computes and expects
    columns: tuple[str, ...]  # data columns; (TABLE,) for table-level rules; the key for `unique`

    @property
    def kind(self) -> str:
        """The configured `expect`, or "psi" for drift."""
        return self.check.expect

    @property
    def severity(self) -> Severity:
        return self.check.severity

    @property
    def low(self) -> float | None:
        return self.check.bounds()[0]

    @property
    def high(self) -> float | None:
        return self.check.bounds()[1]

    @property
    def expected(self) -> str:
        """The rule's bounds in words, for messages."""
        return self.check.expected()


@dataclass(frozen=True)
class SchemaRow:
    """One column of the `columns` rule: its expected Spark type (or `present`/`numeric`) and what the table has."""

    column: str
    expected: str
    observed: str


def _is_numeric(data_type: T.DataType) -> bool:
    return isinstance(data_type, _NUMERIC_TYPES)


def resolve(
    checks: list[CheckBase],
    schema: T.StructType,
    excluded: set[str],
    where: str,
    stage: Stage,
    timestamp: str | None = None,
) -> tuple[list[Rule], list[SchemaRow], Severity]:
    """Resolve configured checks against a table's schema.

    Args:
        checks: the suite's checks, in order, and the drift check last when drift is checked.
        schema: the table's schema.
        excluded: columns patterns never match (the entity key, the date column).
        where: the suite's configuration key, for errors.
        stage: the suite's stage.
        timestamp: the timestamp column `timestamp_in_partition` checks (source tables).

    Returns:
        The rules in suite order, the rows of the `columns` rule, and that rule's severity.

    Raises:
        ConfigError: a pattern matches no column (a typo would otherwise check nothing), or a
            check applies to another stage.
    """
    types = {item.name: item.dataType for item in schema.fields}
    rules: list[Rule] = []
    used_names: dict[str, int] = {}
    needs: dict[str, str] = {}  # column -> PRESENT or NUMERIC, from the rules that use it
    declared: ColumnTypesCheck | None = None
    for index, check in enumerate(checks):
        if stage not in check.stages:
            raise ConfigError(f"{where}[{index}]: {check.expect} {stage_words(check.stages)}")
        if isinstance(check, ColumnTypesCheck):
            declared = check
            continue
        assert isinstance(check, RuleCheck), f"{check.expect} is neither the schema nor a rule"
        kind = check.expect
        used_names[kind] = used_names.get(kind, 0) + 1
        name = kind if used_names[kind] == 1 else f"{kind}#{used_names[kind]}"
        columns = check.applies_to(list(types), excluded, f"{where}[{index}]", timestamp)
        for column in (part for label in columns for part in check.reads(label)):
            if check.numeric:
                needs[column] = NUMERIC
            else:
                needs.setdefault(column, PRESENT)
        rules.append(Rule(name, check, columns))
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
    """Whether `rule` can be computed on `column` (what it reads exists, and is numeric where numbers are needed)."""
    types = {item.name: item.dataType for item in schema.fields}
    return all(
        part in types and (not rule.check.numeric or _is_numeric(types[part])) for part in rule.check.reads(column)
    )


def _type_name(data_type: T.DataType | None) -> str:
    return MISSING if data_type is None else data_type.simpleString()


def describe(rule: Rule) -> str:
    """A sentence an analyst reads in Data Docs for the rule."""
    return f"{rule.name} [{rule.severity}]: {rule.check.describe(', '.join(rule.columns))}"


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
