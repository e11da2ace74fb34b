"""The `features` section of the configuration: what the feature set computes, declared once.

`features.definitions` expands it into one spec per output column; the engine computes them the
same way for training and for scoring.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from nightjar.durations import Duration
from nightjar.strict import IDENTIFIER, Scalar, Strict

AggregateFunction = Literal[
    "count", "sum", "mean", "min", "max", "std", "distinct_count", "last",
    "days_since_first", "days_since_last", "hours_since_first", "hours_since_last", "trend",
]
# Functions of a column's values; the others are functions of the events themselves
# (`trend` is the slope of daily event counts without a column, of daily totals with one).
VALUE_FUNCTIONS = frozenset({"sum", "mean", "min", "max", "std", "distinct_count", "last"})


def _windows_listed(windows: list[Duration]) -> list[Duration]:
    # Each window's own spelling and range are checked by `Duration`; an empty list would
    # silently define no features.
    if not windows:
        raise ValueError("windows must be a non-empty list of durations (30m, 3h, 7d)")
    return windows


class BreakdownConfig(Strict):
    """One feature per listed value of a categorical column; the list keeps the schema stable."""

    column: str = Field(pattern=IDENTIFIER)
    values: list[Scalar] = Field(min_length=1)


class LookupConfig(Strict):
    """Columns an events source lacks, taken from another source's row with the same `key` value
    (a chargeback's merchant, from its transaction: `{source: transactions, key: transaction_id}`)."""

    source: str
    key: str = Field(pattern=IDENTIFIER)
    # How much older than the event its looked-up row may be: how far back the lookup source is
    # read (a chargeback counts within the labels' maturity of its transaction: 60d).
    within: Duration


class AggregateConfig(Strict):
    """Trailing-window aggregations of one events source, per entity and date.

    At the event grain (`use_case.grain: event`) the windows end at each scored event's instant,
    exclusive, and `per` names the scored event's column whose history they aggregate: `per:
    card_id` counts the card's events of [t - w, t); `per: [card_id, merchant_id]` the card's events at
    the scored event's merchant. `lookup` gives the source's events the `per`
    column from another source first (the merchant of a chargeback's transaction).

    `offset` lags every window of the block: a window w then holds the events of
    [cutoff - offset - w, cutoff - offset) (e.g. the same weekday a week ago: window 1, offset 7).
    `align: target` (forecasts) ends the windows `offset` days before each row's target date
    instead: window 1 with offset 7 is the units of the target's weekday a week earlier, for
    every horizon. Such an offset must be at least `forecast.horizon_days`: days known at D.
    `pool_by` aggregates the events of every entity that shares these columns of its key (an
    item across all its stores: `pool_by: [item_id]`); each of those entities gets the pool's value.
    """

    source: str
    column: str | None = Field(None, pattern=IDENTIFIER)
    functions: list[AggregateFunction] = Field(min_length=1)
    windows: list[Duration] | None = None
    offset: Duration | None = None
    where: dict[str, Scalar] | None = None
    by: BreakdownConfig | None = None
    pool_by: list[str] | None = Field(None, min_length=1)
    align: Literal["cutoff", "target"] = "cutoff"
    per: str | list[str] | None = None
    lookup: LookupConfig | None = None
    name: str | None = Field(None, pattern=IDENTIFIER)
    # Totals and sums of squares are added as integers of 10**-scale units, which makes them
    # exact and independent of the order Spark adds them in; |totals| must stay below
    # 9.2e18 units (9.2e12 at the default scale of 6).
    scale: int = Field(6, ge=0, le=12)

    @field_validator("windows")
    @classmethod
    def _windows_listed(cls, value: list[Duration] | None) -> list[Duration] | None:
        return value if value is None else _windows_listed(value)

    @field_validator("offset")
    @classmethod
    def _offset_in_days(cls, value: Duration | None) -> Duration | None:
        # The engine computes a lagged window as the unlagged window of an earlier date, which
        # needs whole days; D's cutoff minus a sub-day offset is no date's cutoff.
        if value is not None and value.whole_days is None:
            raise ValueError(f"an offset must be a whole number of days (7, 7d or 168h), not {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "AggregateConfig":
        needs_column = sorted(VALUE_FUNCTIONS.intersection(self.functions))
        if needs_column and self.column is None:
            raise ValueError(f"{', '.join(needs_column)} need a column")
        if self.align == "target" and self.offset is None:
            raise ValueError("align: target needs an offset: how many days before the target date the windows end")
        for column in [self.per] if isinstance(self.per, str) else self.per or []:
            if not re.fullmatch(IDENTIFIER, column):
                raise ValueError(f"per: {column!r} is not an identifier")
        if self.lookup is not None and self.per is None:
            raise ValueError("lookup gives events the per column: it needs per")
        if self.where and not self.name:
            raise ValueError("a filtered aggregate (where) needs a name to tell its features apart")
        return self


class RatioConfig(Strict):
    """numerator / denominator of two other features; missing when the denominator is 0."""

    name: str = Field(pattern=IDENTIFIER)
    numerator: str
    denominator: str


class AttributeConfig(Strict):
    """An attribute of the entity from an entities source.

    `category`: the index of the value in `values` (missing when not listed);
    `numeric`: the value itself; `tenure_days`: days from the entity's timestamp to D;
    `hour_of_day` (event grain): the hour, 0 to 23 UTC, of the timestamp `column` of the scored event.
    """

    source: str
    kind: Literal["category", "numeric", "tenure_days", "hour_of_day"]
    column: str | None = Field(None, pattern=IDENTIFIER)
    values: list[Scalar] | None = None
    name: str | None = Field(None, pattern=IDENTIFIER)

    @model_validator(mode="after")
    def _consistent(self) -> "AttributeConfig":
        if self.kind != "tenure_days" and self.column is None:
            raise ValueError(f"a {self.kind} attribute needs a column")
        if self.kind == "category" and not self.values:
            raise ValueError("a category attribute needs its values listed")
        return self


class PlannedConfig(Strict):
    """Facts known in advance about a forecast row's target date (`use_case.forecast`), from a
    `known_in_advance` source: for (entity, D, h), the value last known before D's cutoff
    about day D + h (missing when none was). One feature per column, `<name>_<column>`."""

    source: str
    columns: list[str] = Field(min_length=1)
    name: str | None = Field(None, pattern=IDENTIFIER)  # default: the source's name

    @field_validator("columns")
    @classmethod
    def _identifiers(cls, columns: list[str]) -> list[str]:
        for column in columns:
            if not re.fullmatch(IDENTIFIER, column):
                raise ValueError(f"column {column!r} is not an identifier")
        return columns


CalendarPart = Literal["day_of_week", "day_of_month", "month", "day_of_year", "holiday"]


class CalendarConfig(Strict):
    """The calendar of a forecast row's target date, one feature per part, `target_<part>`:
    `day_of_week` (1 = Monday .. 7 = Sunday), `day_of_month`, `month`, `day_of_year`, and
    `holiday` (1 when the target date is one of `holidays`, else 0)."""

    parts: list[CalendarPart] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)


class FeaturesConfig(Strict):
    """The feature set: declared once, computed the same way for training and for scoring."""

    windows: list[Duration] = Field(default_factory=lambda: [Duration.parse(days) for days in (1, 7, 30, 90)])
    # Assemble each date's windows from partial aggregates stored per entity and tile
    # (`feature_partials`) instead of from all the events of their windows: the same features,
    # bit for bit. Off by default: measured on 2 cores, the tiles are slower than the full
    # computation at a million events a day (775 s against 156 s for one nightly date) and for
    # the demo's backfill, and faster only for long windows (README, Benchmarks).
    incremental: bool = False
    aggregates: list[AggregateConfig] = Field(default_factory=list)
    ratios: list[RatioConfig] = Field(default_factory=list)
    attributes: list[AttributeConfig] = Field(default_factory=list)
    # Features of a forecast row's target date (need `use_case.forecast`).
    planned: list[PlannedConfig] = Field(default_factory=list)
    calendar: CalendarConfig | None = None

    @field_validator("windows")
    @classmethod
    def _windows_listed(cls, value: list[Duration]) -> list[Duration]:
        return _windows_listed(value)
