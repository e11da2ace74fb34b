"""Feature definitions: configuration expanded into one spec per output column.

`expand` turns the `features` section into named, ordered specs and checks what the
configuration alone can tell (sources of the right kind, unique names, ratios of known
features); `check_columns` checks the rest against the source schemas before any work.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import date
from typing import Iterable

from pyspark.sql import types as T

from features.config import AggregateConfig
from nightjar.config import Config, ForecastConfig
from nightjar.durations import Duration
from nightjar.errors import ConfigError, DataCheckError
from nightjar.strict import Scalar

# Bump when a change to the engine changes what a definition computes: it is part of the
# feature-set hash, so models trained on the old semantics are refused by scoring.
ENGINE_VERSION = 1
# Empty-window values: a count, a total or the slope of all-zero daily totals is 0; the rest
# (mean, min, max, std, last, days since) are undefined, so missing.
ZERO_WHEN_EMPTY = frozenset({"count", "sum", "distinct_count", "trend"})
NUMERIC_FUNCTIONS = frozenset({"sum", "mean", "min", "max", "std", "trend"})
NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
# Functions of the events' instants rather than their days: they need a timestamp column.
TIME_FUNCTIONS = frozenset({"hours_since_first", "hours_since_last"})
TIMESTAMP_TYPES = (T.TimestampType, T.TimestampNTZType)


@dataclass(frozen=True)
class AggregateSpec:
    """One trailing-window aggregation: `function` of `column` over [cutoff - window, cutoff), cutoff = D + 1.

    A lagged one (`offset`, whole days) covers [cutoff - offset - window, cutoff - offset) instead.
    """

    name: str
    source: str
    function: str
    window: Duration
    column: str | None
    filters: tuple[tuple[str, Scalar], ...]
    scale: int
    definition: str
    # Last, with a default: specs built before lags existed (and their fingerprints) stay as they were.
    offset: Duration | None = None
    # The columns of the entity key the events are pooled by (all of it: None).
    pool_by: tuple[str, ...] | None = None
    # Windows ending `offset` days before a forecast row's target date, not D's cutoff.
    before_target: bool = False
    # Event grain: the scored event's column whose history is aggregated, and the (source, column,
    # how much older its row may be) the events take it from when they lack it (`features.config.LookupConfig`).
    per: str | tuple[str, ...] | None = None
    lookup: tuple[str, str, Duration] | None = None

    @property
    def lag_days(self) -> int:
        """The offset in days (0 without one).

        Raises:
            ValueError: a sub-day offset, which the configuration rejects; a spec built otherwise
                must not be computed as if it had none.
        """
        if self.offset is None:
            return 0
        if self.offset.whole_days is None:
            raise ValueError(f"{self.name}: an offset must be a whole number of days, not {self.offset}")
        return self.offset.whole_days

    @property
    def lookback_days(self) -> int:
        """The days of source partitions one date's window reads, ending at D: D - lookback_days + 1 ... D.

        A lagged window does not read the last `lag_days` of them, but the source must reach back
        the offset and the window both.
        """
        return self.lag_days + self.window.days_spanned


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute of the entity as known at D."""

    name: str
    source: str
    kind: str
    column: str | None
    values: tuple[Scalar, ...]
    definition: str


@dataclass(frozen=True)
class RatioSpec:
    """numerator / denominator, both features of the same set."""

    name: str
    numerator: str
    denominator: str
    definition: str


@dataclass(frozen=True)
class PlannedSpec:
    """A fact known in advance about a forecast row's target date: `column` of a known_in_advance source."""

    name: str
    source: str
    column: str
    definition: str


@dataclass(frozen=True)
class CalendarSpec:
    """One part of a forecast row's target date (`features.calendar`)."""

    name: str
    part: str
    holidays: tuple[date, ...]
    definition: str


# The columns of a forecast row besides the key and `ds`: the horizon (also a feature, so one
# model serves every horizon) and the target date.
HORIZON = "horizon"
TARGET_DATE = "target_date"


@dataclass(frozen=True)
class FeatureSet:
    """The expanded feature set of a configuration, in output column order."""

    keys: tuple[str, ...]  # the entity key's columns
    aggregates: tuple[AggregateSpec, ...]
    attributes: tuple[AttributeSpec, ...]
    ratios: tuple[RatioSpec, ...]
    fingerprint: str
    # (source, its timestamp column) for each source read: `check_columns` needs the column's
    # type, which only the data know, for windows and functions that need event instants.
    timestamps: tuple[tuple[str, str], ...] = ()
    # Forecasts (`use_case.forecast`): rows per horizon 1..horizon_days, with features of the target date.
    horizon_days: int | None = None
    calendar: tuple[CalendarSpec, ...] = ()
    planned: tuple[PlannedSpec, ...] = ()
    # Aggregates over windows ending some days before the target date (`align: target`).
    before_target: tuple[AggregateSpec, ...] = ()
    # Ratios with an operand of the target date (the planned price over the recent mean price):
    # computed on each horizon's row, after the target date's features.
    target_ratios: tuple[RatioSpec, ...] = ()
    # Event grain: the source whose events are the rows, and its timestamp column, kept in each row.
    event_source: str | None = None
    event_time: str | None = None

    @property
    def names(self) -> list[str]:
        per_target = [HORIZON, *(spec.name for spec in (*self.calendar, *self.planned, *self.before_target,
                                                         *self.target_ratios))] if self.horizon_days else []
        return [spec.name for spec in (*self.aggregates, *self.attributes, *self.ratios)] + per_target

    @property
    def row_keys(self) -> list[str]:
        """The columns besides `ds` that identify a row: the entity key's, and the horizon of a forecast."""
        return [*self.keys, *([HORIZON] if self.horizon_days else [])]

    @property
    def sources(self) -> list[str]:
        lookups = [spec.lookup[0] for spec in self.aggregates if spec.lookup]
        scored = [self.event_source] if self.event_source else []
        return sorted({spec.source for spec in (*self.aggregates, *self.attributes, *self.planned, *self.before_target)}
                      | {*lookups, *scored})


def _slug(value: Scalar) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(value)).strip("_").lower() or "blank"


def expand(config: Config) -> FeatureSet:
    """Expand `config.features` into a FeatureSet; ConfigError names the offending definition."""
    sources = config.use_case.sources
    forecast = config.use_case.forecast
    aggregates: list[AggregateSpec] = []
    event_grain = config.use_case.grain == "event"
    for index, item in enumerate(config.features.aggregates):
        where = f"features.aggregates[{index}]"
        _require_source(config, item.source, "events", where)
        if event_grain:
            _require_event_aggregate(config, item, where)
        elif item.per is not None or item.lookup is not None:
            raise ConfigError(f"{where}: per and lookup apply to use_case.grain: event only")
        before_target = item.align == "target"
        if before_target:
            _require_before_target(item, forecast, where)
        unfit = [str(w) for w in item.windows or config.features.windows if not fits_trend(w)]
        if "trend" in item.functions and unfit:
            raise ConfigError(
                f"{where}: trend needs a window of at least 2 days, in whole days (not {', '.join(unfit)})"
            )
        pool_by = None
        if item.pool_by is not None:
            keys = config.use_case.entity.keys
            if not set(item.pool_by) < set(keys):
                raise ConfigError(f"{where}: pool_by must name some of the entity key's columns ({', '.join(keys)}), "
                                  f"not {', '.join(item.pool_by)}")
            if config.features.incremental:
                raise ConfigError(f"{where}: pooled aggregates are computed from events: set features.incremental: false")
            pool_by = tuple(column for column in keys if column in item.pool_by)
        breakdown = [(None, ())] if item.by is None else [
            (value, ((item.by.column, value),)) for value in item.by.values
        ]
        for function in item.functions:
            for value, by_filter in breakdown:
                for window in item.windows or config.features.windows:
                    parts = [item.name or item.source, item.column, function, None if value is None else _slug(value)]
                    lag = "" if item.offset is None else f"_{'before_target' if before_target else 'lag'}{item.offset}"
                    aggregates.append(
                        AggregateSpec(
                            name="_".join(p for p in parts if p) + f"_{window}{lag}",
                            source=item.source,
                            function=function,
                            window=window,
                            column=item.column,
                            filters=tuple(sorted((item.where or {}).items())) + by_filter,
                            scale=item.scale,
                            definition=where,
                            offset=item.offset,
                            pool_by=pool_by,
                            before_target=before_target,
                            per=item.per if item.per is None or isinstance(item.per, str) else tuple(item.per),
                            lookup=(item.lookup.source, item.lookup.key, item.lookup.within) if item.lookup else None,
                        )
                    )
    attributes: list[AttributeSpec] = []
    for index, item in enumerate(config.features.attributes):
        where = f"features.attributes[{index}]"
        if event_grain:
            # An event's attributes are its own columns: its amount, its channel.
            if item.source != config.use_case.entity.source or item.kind == "tenure_days":
                raise ConfigError(f"{where}: at the event grain an attribute is a numeric or category column "
                                  f"of the scored events, source {config.use_case.entity.source!r}")
        else:
            _require_source(config, item.source, "entities", where)
            if item.kind == "hour_of_day":
                raise ConfigError(f"{where}: hour_of_day is the hour of a scored event: use_case.grain: event only")
        default_name = "tenure_days" if item.kind == "tenure_days" else item.column
        attributes.append(
            AttributeSpec(
                name=item.name or str(default_name),
                source=item.source,
                kind=item.kind,
                column=item.column,
                values=tuple(item.values or ()),
                definition=where,
            )
        )
    aligned = [spec for spec in aggregates if spec.before_target]
    aggregates = [spec for spec in aggregates if not spec.before_target]
    known = [spec.name for spec in (*aggregates, *attributes)]
    keys = config.use_case.entity.keys
    calendar, planned = _per_target(config)
    per_target = [HORIZON, *(spec.name for spec in (*calendar, *planned, *aligned))] if forecast else []
    ratios: list[RatioSpec] = []
    target_ratios: list[RatioSpec] = []
    for index, item in enumerate(config.features.ratios):
        where = f"features.ratios[{index}] ({item.name})"
        for operand in (item.numerator, item.denominator):
            if operand not in known and operand not in per_target:
                raise ConfigError(f"{where}: unknown feature {operand!r}")
        spec = RatioSpec(item.name, item.numerator, item.denominator, where)
        if {item.numerator, item.denominator} & set(per_target):
            target_ratios.append(spec)
            per_target.append(item.name)
        else:
            ratios.append(spec)
            known.append(item.name)
    event_source = config.use_case.entity.source if event_grain else None
    event_time = sources[event_source].timestamp if event_source else None
    _require_unique(known + per_target + ([TARGET_DATE] if forecast else []) + [*keys, "ds"]
                    + ([event_time] if event_time else []))
    if not known and len(per_target) <= 1:  # the horizon alone is no feature of the data
        raise ConfigError("features: no features are defined")
    content = {
        "engine": ENGINE_VERSION,
        # A single-column key hashes as its name (written alone or as a list of one), as before
        # keys of several columns existed.
        "key": keys[0] if len(keys) == 1 else keys,
        # Where a source is stored (`path`) is not what is computed from it.
        "sources": {
            name: sources[name].content()
            for name in sorted({s.source for s in (*aggregates, *attributes)})
        },
        # A window hashes as written: day windows as their number, as before durations existed,
        # so a feature set of day windows keeps its fingerprint (and its models stay valid).
        "aggregates": [_hashed(spec) for spec in aggregates],
        "attributes": [asdict(spec) | {"definition": None} for spec in attributes],
        "ratios": [asdict(spec) | {"definition": None} for spec in ratios],
    }
    if event_source:
        # Only the event grain hashes this: other feature sets keep their fingerprints.
        content["event"] = {"source": event_source, **sources[event_source].content(),
                            "lookups": {name: sources[name].content() for name in
                                        sorted({s.lookup[0] for s in aggregates if s.lookup})}}
    if forecast:
        # Only forecasts hash these: the feature sets of other use cases keep their fingerprints.
        content["forecast"] = {
            "horizon_days": forecast.horizon_days,
            "calendar": [asdict(spec) | {"definition": None} for spec in calendar],
            "planned": [asdict(spec) | {"definition": None} for spec in planned],
        }
        if aligned:
            content["forecast"]["before_target"] = [_hashed(spec) for spec in aligned]
        if target_ratios:
            content["forecast"]["ratios"] = [asdict(spec) | {"definition": None} for spec in target_ratios]
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    used = sorted({spec.source for spec in (*aggregates, *attributes, *planned, *aligned)})
    return FeatureSet(
        tuple(keys), tuple(aggregates), tuple(attributes), tuple(ratios), fingerprint,
        timestamps=tuple((name, sources[name].timestamp) for name in used),
        horizon_days=forecast.horizon_days if forecast else None, calendar=tuple(calendar), planned=tuple(planned),
        target_ratios=tuple(target_ratios), before_target=tuple(aligned),
        event_source=event_source, event_time=event_time,
    )


# What the event grain computes over [t - w, t): functions of the events of the window, each
# exact (see `features.events`); `std`, `trend`, `last` and day counts are the snapshot grain's.
EVENT_FUNCTIONS = frozenset({"count", "sum", "mean", "min", "max", "distinct_count", "hours_since_first",
                             "hours_since_last"})


def _require_event_aggregate(config: Config, item: AggregateConfig, where: str) -> None:
    """ConfigError unless `item` is computable per scored event (`use_case.grain: event`)."""
    if item.per is None:
        raise ConfigError(f"{where}: at the event grain every aggregate needs per: the scored event's column "
                          "whose history it aggregates (per: card_id)")
    if item.lookup is not None:
        _require_source(config, item.lookup.source, "events", f"{where}.lookup")
    unsupported = sorted(set(item.functions) - EVENT_FUNCTIONS)
    if unsupported:
        raise ConfigError(f"{where}: {', '.join(unsupported)} not computed at the event grain "
                          f"(functions: {', '.join(sorted(EVENT_FUNCTIONS))})")
    for option in ("offset", "pool_by"):
        if getattr(item, option) is not None:
            raise ConfigError(f"{where}: {option} does not apply at the event grain")
    if config.features.incremental:
        raise ConfigError("features.incremental: the event grain computes from events: set it to false")


def _require_before_target(item: AggregateConfig, forecast: ForecastConfig | None, where: str) -> None:
    """ConfigError unless windows aligned on the target date can be computed at D for every horizon."""
    if forecast is None:
        raise ConfigError(f"{where}: align: target needs use_case.forecast (horizon_days)")
    assert item.offset is not None  # the configuration model requires it
    days = item.offset.whole_days
    if days is None or days < forecast.horizon_days:
        raise ConfigError(f"{where}: align: target needs an offset of at least horizon_days "
                          f"({forecast.horizon_days}d): the window of the last horizon must end by D, not {item.offset}")
    since = sorted(set(item.functions) & {"days_since_first", "days_since_last", *TIME_FUNCTIONS})
    if since:
        raise ConfigError(f"{where}: {', '.join(since)} count from D's cutoff: they cannot be aligned on the target date")


def _per_target(config: Config) -> tuple[list[CalendarSpec], list[PlannedSpec]]:
    """The features of a forecast row's target date: its calendar and the facts planned for it."""
    features = config.features
    if (features.calendar or features.planned) and config.use_case.forecast is None:
        what = "features.calendar" if features.calendar else "features.planned"
        raise ConfigError(f"{what}: features of a target date need use_case.forecast (horizon_days)")
    calendar = [
        CalendarSpec(f"target_{part}", part, tuple(features.calendar.holidays), "features.calendar")
        for part in (features.calendar.parts if features.calendar else [])
    ]
    planned = []
    for index, item in enumerate(features.planned):
        where = f"features.planned[{index}]"
        _require_source(config, item.source, "known_in_advance", where)
        planned += [PlannedSpec(f"{item.name or item.source}_{column}", item.source, column, where)
                    for column in item.columns]
    return calendar, planned


def _hashed(spec: AggregateSpec) -> dict:
    """What the fingerprint hashes of an aggregate: its fields, durations as written, no definition key.

    An unlagged spec hashes without an `offset` key, exactly as before offsets existed, so a
    feature set without lags keeps its fingerprint (and the models trained on it stay valid);
    so does one without pools.
    """
    content = asdict(spec) | {"definition": None, "window": spec.window.written}
    if spec.offset is None:
        del content["offset"]
    else:
        content["offset"] = spec.offset.written
    if spec.pool_by is None:
        del content["pool_by"]
    if not spec.before_target:
        del content["before_target"]
    for event_only in ("per", "lookup"):
        if content[event_only] is None:
            del content[event_only]
    if spec.lookup is not None:
        content["lookup"] = [spec.lookup[0], spec.lookup[1], spec.lookup[2].written]
    return content


def fits_trend(window: Duration) -> bool:
    """Whether `trend` (a slope per day of daily totals) is defined over `window`: whole days, at least 2."""
    return (window.whole_days or 0) >= 2


def needs_event_time(spec: AggregateSpec) -> bool:
    """Whether `spec` reads the events' instants, not only their days: a sub-day window or an `hours_since_*`."""
    return spec.window.whole_days is None or spec.function in TIME_FUNCTIONS


def require_event_times(schema: T.StructType, source: str, column: str, where: str, what: str) -> None:
    """ConfigError naming `where` when `source`'s timestamp `column` holds no instants (e.g. a date).

    Args:
        schema: the source's schema.
        source: the source's name in `use_case.sources`.
        column: its configured timestamp column.
        where: the configuration key that asks for instants.
        what: what needs them, for the message (`a 3h window`).
    """
    found = next((field.dataType for field in schema.fields if field.name == column), None)
    if not isinstance(found, TIMESTAMP_TYPES):
        kind = "missing" if found is None else found.simpleString()
        raise ConfigError(
            f"{where}: {what} needs event times, but {source}.{column} (use_case.sources.{source}.timestamp) "
            f"is {kind}, not a timestamp"
        )


def _require_source(config: Config, name: str, kind: str, where: str) -> None:
    source = config.use_case.sources.get(name)
    if source is None or source.kind != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ConfigError(f"{where}: source {name!r} is not {article} {kind} source of use_case.sources")


def _require_unique(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"features: the name {name!r} is defined twice")
        seen.add(name)


def check_columns(feature_set: FeatureSet, schemas: dict[str, T.StructType]) -> None:
    """Check each definition against its source's schema, before any computation.

    Raises:
        ConfigError: a definition names a column the source does not have, or needs event
            instants (a sub-day window, `hours_since_*`) from a source whose timestamp is a date (exit 2).
        DataCheckError: a column has a type its function cannot use, e.g. a sum of strings (exit 3).
    """
    timestamps = dict(feature_set.timestamps)
    for spec in (*feature_set.aggregates, *feature_set.before_target, *feature_set.attributes, *feature_set.planned):
        schema = schemas[spec.source]
        columns = {field.name: field.dataType for field in schema.fields}
        used = [spec.column] if spec.column else []
        if isinstance(spec, AggregateSpec):
            used += [column for column, _ in spec.filters]
        for column in used:
            if column not in columns:
                raise ConfigError(
                    f"{spec.definition} ({spec.name}): source {spec.source!r} has no column {column!r} "
                    f"(columns: {', '.join(columns)})"
                )
        if isinstance(spec, AggregateSpec) and spec.per is not None:
            _check_per_columns(feature_set, spec, schemas)
        if isinstance(spec, AggregateSpec) and needs_event_time(spec):
            what = spec.function if spec.function in TIME_FUNCTIONS else f"a {spec.window} window"
            require_event_times(schema, spec.source, timestamps[spec.source], f"{spec.definition} ({spec.name})", what)
        needs_number = (isinstance(spec, AggregateSpec) and spec.function in NUMERIC_FUNCTIONS and spec.column) or (
            isinstance(spec, AttributeSpec) and spec.kind == "numeric"
        ) or isinstance(spec, PlannedSpec)  # a planned value is the feature itself: a number
        if needs_number and not isinstance(columns[spec.column], NUMERIC_TYPES):
            raise DataCheckError(
                f"{spec.definition} ({spec.name}): {spec.source}.{spec.column} is "
                f"{columns[spec.column].simpleString()}, not numeric"
            )


def _check_per_columns(feature_set: FeatureSet, spec: AggregateSpec, schemas: dict[str, T.StructType]) -> None:
    """ConfigError unless the scored events and the aggregated ones (or their lookup) hold `spec.per`."""
    per = [spec.per] if isinstance(spec.per, str) else list(spec.per or ())
    needed = [(feature_set.event_source, column) for column in per]
    if spec.lookup is None:
        needed += [(spec.source, column) for column in per]
    else:
        lookup_source, on, _ = spec.lookup
        needed += [(spec.source, on), (lookup_source, on), *((lookup_source, column) for column in per)]
    for source, column in needed:
        columns = [field.name for field in schemas[source].fields]
        if column not in columns:
            raise ConfigError(f"{spec.definition} ({spec.name}): source {source!r} has no column {column!r} "
                              f"(columns: {', '.join(columns)})")
