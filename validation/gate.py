"""The validation gate: run a table's configured suite on a Spark DataFrame before anything is written.

    result = gate.validate(spark, config, "source", "transactions", frame, ds, run_id)

1. The suite `validation.suites.<stage>.<table>` is resolved against the frame's schema
   (`validation.suites`); for the features stage with a champion's reference statistics, a
   drift rule (PSI per feature) is added.
2. Every rule's statistic is computed per date in one pass over the frame (`validation.metrics`),
   plus one narrow aggregation per `unique` key, one over the table's recent row counts for
   `row_count_history`, one over the entities source for `entity_count`, and one left anti join
   per `references` check against the table it names: a handful of Spark
   jobs however many expectations the suite has.
3. Great Expectations 1.x evaluates the suite (one expectation per rule) on the small frame of
   those statistics, one row per (date, column), through the file-backed project under the lake;
   the result is stored and Data Docs are rebuilt (`validation.results`).
4. Failed `warning` expectations are logged (WARNING) and returned, with a summary (INFO); a failed `blocking` one raises
   `ValidationFailed` (exit code 3) once the result is stored, naming the table, the date, the
   column and the expectation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from features.definitions import TARGET_DATE
from features.engine import DATE as FEATURE_DATE
from nightjar import tables
from nightjar.config import Config, SourceConfig
from nightjar.errors import ConfigError, DataCheckError
from validation import metrics, results, suites
from validation.checks import DRIFT, TABLE, CheckBase, DriftCheck, Severity, SideInputs, Stage
from validation.metrics import Metric
from validation.suites import SCHEMA, Rule, SchemaRow

_LISTED = 20  # failures and warnings kept in a run's summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One expectation on one column (None: the whole table), over the dates validated."""

    expectation: str  # the rule: the configured `expect` ("in_set#2" for a second one), "columns" or "psi"
    column: str | None
    severity: Severity
    success: bool
    observed: float | str | None  # at the first failing date, else at the last date; None: not computed
    expected: str
    dates: tuple[date, ...] = ()  # the dates on which it failed
    detail: str = ""  # the observation in words


@dataclass(frozen=True)
class ValidationResult:
    """The gate's verdict on one table for some dates, and where GX stored and rendered it."""

    stage: str
    table: str
    date_column: str
    dates: tuple[date, ...]
    run_id: str
    success: bool  # no blocking expectation failed
    outcomes: tuple[Outcome, ...]
    warnings: tuple[str, ...]
    data_docs: str  # the Data Docs index.html
    page: str  # this result's Data Docs page
    result_path: str  # the stored GX validation result (JSON)
    result_id: str
    failures: tuple[str, ...] = field(default=())  # the blocking failures, one line each

    def summary(self) -> dict[str, Any]:
        """What the `runs` table keeps (in `checks`): the verdict, the failures, and where to look."""
        drifts = [o for o in self.outcomes if o.expectation == DRIFT and isinstance(o.observed, float)]
        largest = max(drifts, key=lambda o: o.observed, default=None)  # type: ignore[arg-type, return-value]
        return {
            "validation": f"{self.stage}.{self.table}",
            "dates": [d.isoformat() for d in self.dates],
            "success": self.success,
            "expectations": len(self.outcomes),
            "failed": list(self.failures[:_LISTED]),
            "warnings": list(self.warnings[:_LISTED]),
            "data_docs": self.data_docs,
            "page": self.page,
            "result": self.result_path,
            "result_id": self.result_id,
            **({"largest_psi": {"column": largest.column, "value": largest.observed}} if largest else {}),
        }


class ValidationFailed(DataCheckError):
    """A blocking expectation failed (exit code 3); the result is stored and rendered already."""

    def __init__(self, message: str, result: ValidationResult) -> None:
        super().__init__(message)
        self.result = result


def validate(
    spark: SparkSession,
    config: Config,
    stage: Stage,
    table: str,
    frame: DataFrame,
    ds: date,
    run_id: str,
    *,
    reference: dict | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> ValidationResult:
    """Run the suite of (`stage`, `table`) on `frame`, the rows of date `ds`; see `validate_dates`."""
    return validate_dates(spark, config, stage, table, frame, [ds], run_id, reference=reference, checks=checks)


def has_suite(config: Config, stage: Stage, table: str) -> bool:
    """Whether `validation.suites.<stage>.<table>` is configured: jobs validate only such tables."""
    return table in config.validation.suites.get(stage, {})


def validate_dates(
    spark: SparkSession,
    config: Config,
    stage: Stage,
    table: str,
    frame: DataFrame,
    dates: list[date],
    run_id: str,
    *,
    reference: dict | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> ValidationResult:
    """Run the suite of (`stage`, `table`) on `frame` for each of `dates`, in one pass over the frame.

    Args:
        spark: the session (the gate reads history and entity counts through `tables`).
        config: the run's configuration; the suite is `validation.suites.<stage>.<table>`.
        stage: `source`, `features` or `scores`.
        table: the table's name.
        frame: the table's rows for `dates` (rows of other dates are ignored).
        dates: the dates to validate; a date without rows is validated as empty.
        run_id: the run's id, under which GX stores the result and Data Docs list it.
        reference: features stage: the champion's `reference_statistics`, for drift (None: no drift rule).
        checks: a run record's `checks`: the summary is appended to it, also when the gate raises.

    Returns:
        The result; its warnings have been logged.

    Raises:
        ValidationFailed: a blocking expectation failed (after the result was stored).
        ConfigError: no suite is configured for the table, or a column pattern matches nothing.
    """
    dates = sorted(set(dates))
    if not has_suite(config, stage, table):
        raise ConfigError(f"validation.suites.{stage}.{table}: no suite is configured for this table")
    suite: list[CheckBase] = list(config.validation.suites[stage][table])
    if reference and stage in DriftCheck.stages:
        suite.append(config.validation.drift.check(reference))
    date_column, source = target(config, stage, table)
    frame = frame.where(F.col(date_column).isin(dates))
    where = f"validation.suites.{stage}.{table}"
    rules, schema_rows, schema_severity = suites.resolve(
        # A forecast's target date is an identifier, not a feature (its horizon is both).
        suite, frame.schema, {*config.use_case.entity.keys, date_column, TARGET_DATE}, where,
        # A known_in_advance source is partitioned by the day its facts became known, not by the
        # day they are about: `timestamp_in_partition` checks known_at.
        stage, timestamp=(source.known_at or source.timestamp) if source else None,
    )
    values = _measure(spark, config, table, frame, date_column, rules, dates, where)
    statistics = _statistics(rules, schema_rows, values, dates)
    expectations = ([suites.schema_expectation(schema_rows, schema_severity)] if schema_rows else [])
    expectations += [suites.expectation(rule) for rule in rules]
    stored = results.run_suite(config, f"{stage}.{table}", expectations, statistics, run_id)
    outcomes = _outcomes(stored, rules, schema_rows, schema_severity, values, dates)
    label = f"table {table!r}"
    failures = tuple(_line(label, date_column, o) for o in outcomes if not o.success and o.severity == "blocking")
    warnings = tuple(_line(label, date_column, o) for o in outcomes if not o.success and o.severity == "warning")
    result = ValidationResult(
        stage=stage, table=table, date_column=date_column, dates=tuple(dates), run_id=run_id,
        success=not failures, outcomes=tuple(outcomes), warnings=warnings, data_docs=stored.index,
        page=stored.page, result_path=stored.result_path, result_id=stored.result_id, failures=failures,
    )
    for warning in warnings:
        log.warning("%s", warning)
    span = f"{dates[0]}" if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
    log.info(
        "%s.%s %s: %d checks, %d failed, %d warnings; Data Docs: %s",
        stage, table, span, len(outcomes), len(failures), len(warnings), stored.index,
    )
    if checks is not None:
        checks.append(result.summary())
    if failures:
        more = f"; {len(failures) - 1} more blocking failures" if len(failures) > 1 else ""
        raise ValidationFailed(f"validation failed: {failures[0]}{more}; see {stored.page}", result)
    return result


def target(config: Config, stage: Stage, table: str) -> tuple[str, SourceConfig | None]:
    """The column that dates the table's rows, and its source configuration (source tables)."""
    if stage != "source":
        return FEATURE_DATE, None
    for source in config.use_case.sources.values():
        if source.table == table:
            return source.partition, source
    raise ConfigError(f"validation: {table!r} is not a source table")


# Values: one per (rule, column, date), each with its observation in words.
Values = dict[tuple[str, str, date], tuple[float | None, str]]


def _measure(
    spark: SparkSession,
    config: Config,
    table: str,
    frame: DataFrame,
    date_column: str,
    rules: list[Rule],
    dates: list[date],
    where: str,
) -> Values:
    """Every rule's value per column and date: one pass for the row statistics, side jobs for the rest."""
    wanted: dict[tuple[str, str], Metric | None] = {}
    helpers: dict[str, Column] = {}
    for rule in rules:
        for column in rule.columns:
            if suites.usable(rule, column, frame.schema):
                wanted[(rule.name, column)] = rule.check.metric(column)
                helpers.update(rule.check.helpers(column, date_column))
    plan = [Metric("rows"), *[metric for metric in wanted.values() if metric is not None]]
    computed = metrics.compute(frame, date_column, plan, helpers)
    side = _side_values(spark, config, table, frame, date_column, rules, dates, where)
    values: Values = {}
    for rule in rules:
        for column in rule.columns:
            for day in dates:
                if (rule.name, column) not in wanted:
                    values[(rule.name, column, day)] = (None, "not computed: the column is missing or not numeric")
                    continue
                values[(rule.name, column, day)] = rule.check.value(column, computed.get(day, {}), side.get((rule.name, day)))
    return values


# Entity counts per (entities table and its content, keys, timestamp, dates), within this process.
_ENTITIES_KNOWN: dict[tuple[Any, ...], dict[date, int]] = {}


def _side_values(
    spark: SparkSession,
    config: Config,
    table: str,
    frame: DataFrame,
    date_column: str,
    rules: list[Rule],
    dates: list[date],
    where: str,
) -> dict[tuple[str, date], Any]:
    """Per (rule, date): the side jobs' results (duplicates, row count history, entity counts, unmatched references), one narrow Spark job each."""

    def read(name: str) -> DataFrame | None:
        return tables.read(spark, config, name) if tables.exists(spark, config, name) else None

    def stored() -> DataFrame | None:
        return read(table)

    def entities_known() -> dict[date, int]:
        _, source = config.use_case.source_of_kind("entities")
        keys = config.use_case.entity.keys
        # The features and the scores suites of a `score` run ask the same question of the same table version.
        asked = (tables.table_path(config, source.table), tables.content_signature(config, source.table),
                 tuple(keys), source.timestamp, tuple(dates))
        if asked not in _ENTITIES_KNOWN:
            _ENTITIES_KNOWN[asked] = metrics.entities_known(tables.read(spark, config, source.table), keys,
                                                            source.timestamp, dates)
        return _ENTITIES_KNOWN[asked]

    forecast = config.use_case.forecast
    inputs = SideInputs(frame, date_column, dates, stored, entities_known, read, where,
                        rows_per_entity=forecast.horizon_days if forecast else 1)
    side: dict[tuple[str, date], Any] = {}
    for rule in rules:
        if all(suites.usable(rule, column, frame.schema) for column in rule.columns):
            found = rule.check.side(inputs)
            if found is not None:
                side.update({(rule.name, day): found[day] for day in dates})
    return side


def _statistics(rules: list[Rule], schema_rows: list[SchemaRow], values: Values, dates: list[date]) -> pd.DataFrame:
    """The frame GX validates: one row per (date, column), one metric column per rule."""
    labels = list(dict.fromkeys([row.column for row in schema_rows] + [c for rule in rules for c in rule.columns]))
    records = []
    for day in dates:
        for label in labels:
            record: dict[str, Any] = {results.STAT_DATE: day.isoformat(), results.STAT_COLUMN: label}
            records.append(record)
            for row in schema_rows:
                if row.column == label:
                    record[SCHEMA], record[f"{SCHEMA}:{suites.EXPECTED}"] = row.observed, row.expected
            for rule in rules:
                if label in rule.columns:
                    record[rule.name] = values[(rule.name, label, day)][0]
    columns = [results.STAT_DATE, results.STAT_COLUMN] + ([SCHEMA, f"{SCHEMA}:{suites.EXPECTED}"] if schema_rows else [])
    frame = pd.DataFrame.from_records(records, columns=columns + [rule.name for rule in rules])
    for rule in rules:
        frame[rule.name] = pd.to_numeric(frame[rule.name], errors="coerce").astype("float64")
    return frame


def _outcomes(
    stored: results.StoredRun,
    rules: list[Rule],
    schema_rows: list[SchemaRow],
    schema_severity: Severity,
    values: Values,
    dates: list[date],
) -> list[Outcome]:
    """Per rule and column, GX's verdict (the failing dates) with the values the gate measured."""
    failing: dict[tuple[str, str], list[date]] = {}
    for item in stored.result.results:
        rule_name = item.expectation_config.meta["nightjar"]["rule"]
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(f"Great Expectations could not evaluate {rule_name}: {item.exception_info.get('exception_message')}")
        for row in item.result.get("unexpected_index_list") or []:
            failing.setdefault((rule_name, row[results.STAT_COLUMN]), []).append(date.fromisoformat(row[results.STAT_DATE]))
    outcomes = []
    for row in schema_rows:
        failed = sorted(set(failing.get((SCHEMA, row.column), [])))
        detail = "missing" if row.observed == suites.MISSING else f"type {row.observed}"
        outcomes.append(Outcome(SCHEMA, row.column, schema_severity, not failed, row.observed, row.expected, tuple(failed), detail))
    for rule in rules:
        for column in rule.columns:
            failed = sorted(set(failing.get((rule.name, column), [])))
            value, detail = values[(rule.name, column, failed[0] if failed else dates[-1])]
            outcomes.append(Outcome(
                rule.name, None if column == TABLE else column, rule.severity, not failed,
                value, rule.expected, tuple(failed), detail,
            ))
    return outcomes


def _line(label: str, date_column: str, outcome: Outcome) -> str:
    """One failure in one line: table, date, column, expectation, what was seen and what was expected."""
    first = outcome.dates[0]
    more = f" (and {len(outcome.dates) - 1} more dates)" if len(outcome.dates) > 1 else ""
    column = f"column {outcome.column}: " if outcome.column else ""
    return f"{label} {date_column}={first}{more}: {column}{outcome.expectation} failed: {outcome.detail}, expected {outcome.expected}"

