"""The validation checks a suite may configure, and the `validation` section of the configuration."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from nightjar.strict import Scalar, Strict

Severity = Literal["blocking", "warning"]
Stage = Literal["source", "features", "scores"]
# A column name, or a glob pattern (`*`, `?`, `[...]`) over the table's columns other than its
# entity key and date column: `"*"` is every feature, `"*_count_*"` every count.
ColumnPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?\[\]!]+$")]


class _Check(Strict):
    """One configured expectation; a failed `blocking` one stops the job (exit 3), a `warning` is reported."""

    severity: Severity = "blocking"


class _ColumnCheck(_Check):
    columns: list[ColumnPattern] = Field(min_length=1)


class _Bounds(_Check):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "_Bounds":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class ColumnTypesCheck(_Check):
    """The table has these columns, with these Spark SQL types (`bigint`, `double`, `string`, `date`, ...)."""

    expect: Literal["columns"]
    types: dict[str, str] = Field(min_length=1)


class NotNullCheck(_ColumnCheck):
    """No null values in the columns."""

    expect: Literal["not_null"]


class NullFractionCheck(_ColumnCheck):
    """At most `max` of the rows are null or NaN in each column."""

    expect: Literal["null_fraction"]
    max: float = Field(ge=0, le=1)


class UniqueCheck(_Check):
    """No two rows share the same values of `key` (one column or several together); rows with a null key part are not compared."""

    expect: Literal["unique"]
    key: list[str] = Field(min_length=1)


class FiniteCheck(_ColumnCheck):
    """No NaN or infinite values in the (floating-point) columns."""

    expect: Literal["finite"]


class BetweenCheck(_ColumnCheck, _Bounds):
    """Every finite value lies in [min, max] (nulls, NaN and infinities are the other checks' business)."""

    expect: Literal["between"]


class InSetCheck(_ColumnCheck):
    """Every non-null value is one of `values`."""

    expect: Literal["in_set"]
    values: list[Scalar] = Field(min_length=1)


class NotConstantCheck(_ColumnCheck):
    """Each column holds at least two different non-null values."""

    expect: Literal["not_constant"]


class StdevCheck(_ColumnCheck, _Bounds):
    """The sample standard deviation of the finite values lies in [min, max] (a collapsed distribution fails `min`)."""

    expect: Literal["stdev"]


class TimestampInPartitionCheck(_Check):
    """Every row's timestamp falls on its partition's date (source tables: their configured columns)."""

    expect: Literal["timestamp_in_partition"]


class RowCountCheck(_Bounds):
    """The number of rows of each date lies in [min, max]; `min: 1` rejects an empty partition."""

    expect: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class RowCountHistoryCheck(_Check):
    """A date's row count lies within [min_ratio, max_ratio] times the median of the previous `days` dates.

    Checked once at least `min_days` of those dates hold rows; skipped before that.
    """

    expect: Literal["row_count_history"]
    days: int = Field(28, ge=1, le=3650)
    min_days: int = Field(7, ge=1)
    min_ratio: float = Field(0.2, ge=0)
    max_ratio: float = Field(5.0, gt=0)


class EntityCountCheck(_Check):
    """A date has exactly as many rows as the entities source knows entities at that date."""

    expect: Literal["entity_count"]


Check = Annotated[
    Union[
        ColumnTypesCheck, NotNullCheck, NullFractionCheck, UniqueCheck, FiniteCheck, BetweenCheck, InSetCheck,
        NotConstantCheck, StdevCheck, TimestampInPartitionCheck, RowCountCheck, RowCountHistoryCheck, EntityCountCheck,
    ],
    Field(discriminator="expect"),
]


class DriftConfig(Strict):
    """Drift of the features against the champion's training data: the population stability index per feature."""

    psi_max: float = Field(0.25, gt=0)
    severity: Severity = "warning"


class ValidationConfig(Strict):
    """The validation gate: suites per stage and table, drift, and where Great Expectations keeps its project."""

    # The file-backed GX project (suites, stored results, Data Docs); default <lake.root>/_gx.
    gx_root: str | None = None
    suites: dict[Stage, dict[str, list[Check]]] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    # Stored results (and their Data Docs pages) older than this many days are deleted when a
    # suite runs; None keeps every result. Each Data Docs update reads every stored result, so a
    # nightly lake without a bound slows its own validation down over the months.
    keep_results_days: int | None = Field(None, ge=0)
