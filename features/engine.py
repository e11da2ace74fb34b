"""The feature engine: trailing-window aggregations per entity and date, in Spark.

`compute_features` is the *full computation*: every event of every window, the reference the
stored partials of `features.tiles` (what the features job runs) are tested against, bit for
bit, and what `features.incremental: false` runs. A pure function, DataFrames in and a
DataFrame out, it computes a whole range of dates in one pass over the history the range needs:

1. each event becomes a *partial aggregate* per measure (a column under a filter, shared by
   all functions and windows on it): event and value counts, exact fixed-point totals and
   squares, min, max, the last value, the distinct value;
2. each event is expanded to the target dates whose windows contain it (one for a nightly
   date, at most the longest window's worth for a range), aggregated once per band of ages
   between consecutive windows, and the few bands per entity and date are then combined into
   every window;
3. the result is joined onto the spine of entities known at each date, so an entity with no
   events still gets a row, with 0 for counts and totals and missing for the rest.

Step 2 only combines partials, and every partial is associative (sums, min, max, the
latest (timestamp, value), first/last day or instant, value bits), which is what lets
`features.tiles` store them per entity and tile and assemble windows from a few tiles; both
share the partials (`_event_partials`), the final functions (`_windowed`) and the spine
(`complete_features`).

Point-in-time correctness: the features of date D describe each entity as of D's cutoff, the
start of D + 1 (UTC), and a window w holds the events with timestamp in [cutoff - w, cutoff).
For a window of whole days that is the events of days D - w < d <= D, which the engine tests
on days alone; a sub-day window (`3h`, `30m`) tests the event's instant, as `hours_since_*`
read it, and instants are read only when a feature needs them. Totals and sums of squares are
added as integers of 10**-scale units (`scale`, default 6 decimals): exact, so a rerun gives
bit-identical values whatever order Spark merges partial sums in, and as fast as adding
doubles. Distinct counts are a bitwise OR of one bit per value when a column has at most 63
values, and otherwise aggregate each value's most recent band; neither needs sets.

Lagged windows: a window w with an `offset` of n days holds the events with timestamp in
[cutoff - offset - w, cutoff - offset), which is the unlagged window w of D - n. The specs of
each offset are computed in a pass of their own over the partitions n days earlier, with every
event moved n days later (its day and instant), so one machinery serves both and the plans of
feature sets without lags stay as they were. `days_since_*` and `hours_since_*` of a lagged
window are measured from D's cutoff, not from the window's end: the unlagged value of D - n
plus n days (24 n hours). `trend` is the slope over the window's own days, shift-invariant.

Bad input, decided here and documented in the README:
* an event with a null entity key (or key part) is dropped (it belongs to no entity);
* an event whose timestamp's day is not its partition's date is dropped: it would otherwise
  let a late-filed event leak across dates, and the validation gate reports such rows;
* NaN and infinite values count as events but not as values (like nulls);
* a day with no events contributes nothing: counts 0, totals 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.definitions import (
    HORIZON,
    TARGET_DATE,
    ZERO_WHEN_EMPTY,
    AggregateSpec,
    AttributeSpec,
    CalendarSpec,
    FeatureSet,
    PlannedSpec,
    RatioSpec,
    needs_event_time,
)
from nightjar.config import SourceConfig
from nightjar.durations import DAY_MICROS, HOUR_MICROS
from nightjar.keys import all_present

DATE = "ds"
_DAY = "_day"
_TIME = "_time"  # the event's instant in microseconds since the epoch, read only when a feature needs it
_BAND = "_band"
_DOMAIN_BITS = 63


@dataclass
class _Measure:
    """The partials one (source, column, filters) needs, and the features reading them."""

    index: int
    column: str | None
    filters: tuple
    scale: int
    needs: set[str] = field(default_factory=set)
    # The column's values when few enough for one bit each: distinct counts are then a bitwise
    # OR and a popcount, folded into the main aggregation instead of a grouping of their own.
    domain: tuple | None = None
    # The partial columns' prefix: by position within one computation, or a stable identity
    # where partials are stored (`features.tiles`), so that a column keeps its meaning.
    label: str | None = None

    def selected(self) -> Column:
        """Whether an event passes the measure's filters."""
        selected = F.lit(True)
        for column, value in self.filters:
            selected = selected & (F.col(column) == F.lit(value))
        return selected

    def value(self, value_types: dict[str, str]) -> Column | None:
        """The measured value; NaN and infinity are not values (counted as events, ignored as values)."""
        if self.column is None:
            return None
        value = F.col(self.column)
        if value_types[self.column] in ("float", "double"):
            value = F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)
        return value

    def prefix(self, partial: str) -> str:
        return f"{self.label or f'_m{self.index}'}_{partial}"


def compute_features(
    feature_set: FeatureSet,
    sources: dict[str, SourceConfig],
    events: dict[str, DataFrame],
    entities: DataFrame,
    entities_source: SourceConfig,
    dates: list[date],
) -> DataFrame:
    """Features of every entity known at each of `dates`.

    Args:
        feature_set: the expanded definitions.
        sources: the use case's source configurations, by name.
        events: the events frames the aggregates read (and the known_in_advance frames planned
            features read), by source name; they may hold more history than needed (only the
            lookback is read, by partition).
        entities: the spine source: one row per entity, known from `entities_source.timestamp`.
        entities_source: the spine's configuration.
        dates: the dates to compute.

    Returns:
        One row per (entity, date): the key, `ds`, then `feature_set.names` in order; a
        forecast's, one per (entity, date, horizon): the key, `ds`, `target_date`, then the names.
    """
    keys = list(feature_set.keys)
    dates = sorted(set(dates))
    windowed = []
    for source_name in sorted({spec.source for spec in feature_set.aggregates}):
        # One pass per offset and pool: lagged windows are the unlagged windows of earlier dates,
        # computed on shifted events (see `_windowed_aggregates`); unlagged, unpooled ones come
        # first, as before.
        of_source = [spec for spec in feature_set.aggregates if spec.source == source_name]
        for pool_by, lag, specs in _passes(of_source):
            windowed.append(_windowed_aggregates(events[source_name], sources[source_name], keys, specs, dates, lag,
                                                 pool_by))
    return complete_features(feature_set, windowed, entities, entities_source, dates, sources, events)


def complete_features(
    feature_set: FeatureSet,
    windowed: list[DataFrame],
    entities: DataFrame,
    entities_source: SourceConfig,
    dates: list[date],
    sources: Mapping[str, SourceConfig] | None = None,
    frames: Mapping[str, DataFrame] | None = None,
) -> DataFrame:
    """The feature rows of every entity known at each of `dates`, from its aggregates per source.

    Joins each source's windowed aggregates (one row per entity and date that has events,
    however computed: from events here, from stored tiles in `features.tiles`) onto the spine,
    fills empty windows, and adds attributes and ratios. A forecast's feature set
    (`horizon_days`) then has one row per horizon, with the target date's features, which read
    the known_in_advance sources among `sources` and `frames` (by name).
    """
    keys = list(feature_set.keys)
    dates = sorted(set(dates))
    dates_frame = _dates_frame(entities.sparkSession, dates)
    spine = (
        entities.select(
            *keys,
            F.to_date(F.col(entities_source.timestamp)).alias("_known_from"),
            *sorted({spec.column for spec in feature_set.attributes if spec.column} - set(keys)),
        )
        .where(all_present(keys))
        .join(F.broadcast(dates_frame), F.col("_known_from") <= F.col(DATE))
    )
    result = spine
    for frame in windowed:
        # A pool's aggregates (`pool_by`) hold some of the key's columns: every entity of the pool gets them.
        result = result.join(frame, [*(key for key in keys if key in frame.columns), DATE], "left")
    result = result.fillna(0, subset=[s.name for s in feature_set.aggregates if s.function in ZERO_WHEN_EMPTY])
    for spec in feature_set.attributes:
        result = result.withColumn(spec.name, attribute_value(spec))
    for ratio in feature_set.ratios:
        result = result.withColumn(ratio.name, ratio_value(ratio))
    if not feature_set.horizon_days:
        return result.select(*keys, DATE, *feature_set.names)
    horizons = entities.sparkSession.range(1, feature_set.horizon_days + 1).select(F.col("id").cast("int").alias(HORIZON))
    result = result.crossJoin(F.broadcast(horizons)).withColumn(TARGET_DATE, F.date_add(F.col(DATE), F.col(HORIZON)))
    for spec in feature_set.calendar:
        result = result.withColumn(spec.name, _calendar(spec))
    for source_name in sorted({spec.source for spec in feature_set.before_target}):
        assert sources is not None and frames is not None, "windows before the target date need their sources"
        specs = [spec for spec in feature_set.before_target if spec.source == source_name]
        for frame in before_target(frames[source_name], sources[source_name], keys, specs, dates, feature_set.horizon_days):
            result = result.join(frame, [*(key for key in keys if key in frame.columns), DATE, HORIZON], "left")
    result = result.fillna(0, subset=[s.name for s in feature_set.before_target if s.function in ZERO_WHEN_EMPTY])
    for source_name in sorted({spec.source for spec in feature_set.planned}):
        assert sources is not None and frames is not None, "planned features need their sources"
        specs = [spec for spec in feature_set.planned if spec.source == source_name]
        planned = planned_values(frames[source_name], sources[source_name], keys, specs, dates, feature_set.horizon_days)
        result = result.join(planned, [*keys, DATE, HORIZON], "left")
    for ratio in feature_set.target_ratios:
        result = result.withColumn(ratio.name, ratio_value(ratio))
    return result.select(*keys, DATE, TARGET_DATE, *feature_set.names)


def before_target(
    events: DataFrame, source: SourceConfig, keys: list[str], specs: list[AggregateSpec], dates: list[date],
    horizon_days: int,
) -> list[DataFrame]:
    """The aggregates `specs` (`align: target`) of each (entity, ds, horizon) of `dates`, one frame per offset and pool.

    A window ending n days before the target date ds + h is the unaligned, unlagged window of
    date ds + h - n (n >= horizon_days, so a date no later than ds): computed once for each of
    those dates and handed to every (ds, h) that reads it.
    """
    frames = []
    for pool_by, offset, group in _passes(specs):
        unaligned = [replace(spec, offset=None, before_target=False) for spec in group]
        read_at = sorted({day + timedelta(days=h - offset) for day in dates for h in range(1, horizon_days + 1)})
        windowed = _windowed_aggregates(events, source, keys, unaligned, read_at, 0, pool_by)
        horizons = events.sparkSession.range(1, horizon_days + 1).select(F.col("id").cast("int").alias(HORIZON))
        frames.append(
            windowed.crossJoin(F.broadcast(horizons))
            .withColumn(DATE, F.date_add(F.col(DATE), offset - F.col(HORIZON)))
            .where(F.col(DATE).isin(dates))
        )
    return frames


def _passes(specs: list[AggregateSpec]) -> list[tuple[tuple[str, ...] | None, int, list[AggregateSpec]]]:
    """`specs` by (pool, offset in days): each group is one aggregation pass over the events.
    Unpooled before pooled, shorter offsets first (unlagged, unpooled ones first, as before pools)."""
    groups = sorted({(spec.pool_by or (), spec.lag_days) for spec in specs})
    return [(pool_by or None, lag, [spec for spec in specs if (spec.pool_by or ()) == pool_by and spec.lag_days == lag])
            for pool_by, lag in groups]


def ratio_value(spec: RatioSpec) -> Column:
    """numerator / denominator of each row, missing when the denominator is 0 or missing."""
    denominator = F.col(spec.denominator).cast("double")
    return F.when(denominator != 0, F.col(spec.numerator).cast("double") / denominator)


def _calendar(spec: CalendarSpec) -> Column:
    target = F.col(TARGET_DATE)
    if spec.part == "day_of_week":
        return ((F.dayofweek(target) + 5) % 7 + 1).cast("int")  # Spark's 1 = Sunday; ISO's 1 = Monday
    if spec.part == "holiday":
        return target.isin(list(spec.holidays)).cast("int") if spec.holidays else F.lit(0)
    part = {"day_of_month": F.dayofmonth, "month": F.month, "day_of_year": F.dayofyear}[spec.part]
    return part(target).cast("int")


def planned_values(
    frame: DataFrame, source: SourceConfig, keys: list[str], specs: list[PlannedSpec], dates: list[date],
    horizon_days: int,
) -> DataFrame:
    """The facts of a known_in_advance source for each (entity, ds, horizon) of `dates`: per
    target day ds + horizon, the value last known before ds's cutoff (known_at's date <= ds).

    Each fact is spread over the dates that may use it, from the day it became known to the day
    before its target, at most `horizon_days` back, so no date sees a fact known after its
    cutoff. Facts known at the same instant for the same target are ordered by their values, so
    the choice does not depend on Spark. Rows with a null key part, known_at or timestamp
    belong to nothing, and a fact whose known_at's date is not its partition's is dropped (as
    events outside their partition are).
    """
    first, last = min(dates), max(dates)
    known_day = F.to_date(F.col(source.known_at))
    columns = [spec.column for spec in specs]
    facts = (
        frame.where(F.col(source.partition) <= F.lit(last))
        # On the timestamp itself, so that Parquet's statistics can skip files of other targets.
        .where((F.col(source.timestamp) >= F.lit(first + timedelta(days=1)))
               & (F.col(source.timestamp) < F.lit(last + timedelta(days=horizon_days + 1))))
        .where(all_present([*keys, source.known_at]) & (known_day == F.col(source.partition)))
        .select(*keys, known_day.alias("_known_day"), F.col(source.known_at).alias("_known_at"),
                F.to_date(F.col(source.timestamp)).alias(TARGET_DATE), *columns)
    )
    spread_from = F.greatest(F.col("_known_day"), F.date_sub(F.col(TARGET_DATE), horizon_days), F.lit(first))
    spread_to = F.least(F.date_sub(F.col(TARGET_DATE), 1), F.lit(last))
    spread = (
        facts.where(spread_from <= spread_to)
        .withColumn(DATE, F.explode(F.sequence(spread_from, spread_to)))
        .where(F.col(DATE).isin(sorted(set(dates))))
    )
    latest = F.max_by(F.struct(*columns), F.struct("_known_at", *columns))
    return (
        spread.groupBy(*keys, DATE, F.datediff(F.col(TARGET_DATE), F.col(DATE)).cast("int").alias(HORIZON))
        .agg(latest.alias("_latest"))
        .select(*keys, DATE, HORIZON, *[F.col(f"_latest.{spec.column}").alias(spec.name) for spec in specs])
    )


def _dates_frame(spark: SparkSession, dates: list[date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in dates], T.StructType([T.StructField(DATE, T.DateType(), False)]))


def attribute_value(spec: AttributeSpec) -> Column:
    """The attribute `spec` of each row: a category's index in its values, a number, or days since the entity was known."""
    if spec.kind == "tenure_days":
        return F.datediff(F.col(DATE), F.col("_known_from"))
    if spec.kind == "numeric":
        return F.col(spec.column).cast("double")
    if spec.kind == "hour_of_day":
        # The session's time zone is UTC (conf/base.yaml), so this is the UTC hour.
        return F.hour(F.col(spec.column))
    position = F.array_position(F.array(*[F.lit(v) for v in spec.values]), F.col(spec.column))
    return F.when(position > 0, (position - 1).cast("int"))


def prepared_events(
    frame: DataFrame, source: SourceConfig, keys: Sequence[str], first_day: date, last_day: date,
) -> DataFrame:
    """The events of days first_day..last_day that features may use, with their event day.

    Filters on the partition column first, so Spark reads only the partitions needed; then
    drops events with a null key part or a timestamp outside their partition's date.
    """
    day = F.to_date(F.col(source.timestamp))
    return (
        frame.where(F.col(source.partition).between(F.lit(first_day), F.lit(last_day)))
        .where(all_present(keys))
        .withColumn(_DAY, day)
        .where(F.col(_DAY) == F.col(source.partition))
    )


def _measures(specs: list[AggregateSpec]) -> tuple[list[_Measure], dict[str, _Measure]]:
    measures: dict[tuple, _Measure] = {}
    of_spec: dict[str, _Measure] = {}
    for spec in specs:
        identity = (spec.column, spec.filters, spec.scale)
        measure = measures.setdefault(identity, _Measure(len(measures), spec.column, spec.filters, spec.scale))
        measure.needs |= {
            "count": {"events"},
            "sum": {"total"},
            "mean": {"total", "values"},
            "min": {"min"},
            "max": {"max"},
            "std": {"total", "squares", "values"},
            "distinct_count": {"distinct"},
            "last": {"last", "last_order"},
            "days_since_first": {"first_day"},
            "days_since_last": {"last_day"},
            "hours_since_first": {"first_time"},
            "hours_since_last": {"last_time"},
            "trend": {"total", "weighted"} if spec.column else {"events", "weighted"},
        }[spec.function]
        of_spec[spec.name] = measure
    return list(measures.values()), of_spec


def _event_partials(events: DataFrame, source: SourceConfig, keys: Sequence[str], measures: list[_Measure]) -> DataFrame:
    """Each event as a partial aggregate of itself: the columns the window aggregation combines.

    Partials at the event level need no grouping pass of their own; daily partials stored per
    day would combine the same way (see the module docstring).
    """
    value_types = dict(events.dtypes)
    columns: list[Column] = [*map(F.col, keys), F.col(_DAY), *([F.col(_TIME)] if _TIME in events.columns else [])]
    for measure in measures:
        selected = measure.selected()
        value = measure.value(value_types)
        is_value = selected & value.isNotNull() if value is not None else selected
        for partial in sorted(measure.needs):
            name = measure.prefix(partial)
            if partial == "events":
                columns.append(F.when(selected, 1).otherwise(0).alias(name))
            elif partial == "values":
                columns.append(F.when(is_value, 1).otherwise(0).alias(name))
            elif partial == "total":
                columns.append(F.when(is_value, _fixed_point(value, measure.scale)).alias(name))
            elif partial == "squares":
                squared = value.cast("double") * value.cast("double")
                columns.append(F.when(is_value, _fixed_point(squared, measure.scale)).alias(name))
            elif partial == "distinct" and measure.domain is not None:
                position = F.array_position(F.array(*[F.lit(v) for v in measure.domain]), value)
                bit = F.pow(F.lit(2.0), position - 1).cast("long")  # powers of two are exact in a double
                columns.append(F.when(is_value, bit).otherwise(F.lit(0).cast("long")).alias(name))
            elif partial in ("min", "max", "distinct"):
                columns.append(F.when(is_value, value).alias(name))
            elif partial in ("first_day", "last_day"):
                columns.append(F.when(selected, F.col(_DAY)).alias(name))
            elif partial in ("first_time", "last_time"):
                columns.append(F.when(selected, F.col(_TIME)).alias(name))
            elif partial == "last":
                columns.append(F.when(is_value, value).alias(name))
            elif partial == "last_order":
                columns.append(F.when(is_value, _last_order(F.col(source.timestamp), value)).alias(name))
    return events.select(*columns)


def _last_order(timestamp: Column, value: Column) -> Column:
    """The order `last` picks its value by: the timestamp, then the value rounded to 1e-6.

    One decimal(38, 0) (microseconds * 10**20 + the offset value), not a struct: Spark
    aggregates fixed-width buffers in a hash table, but a struct forces a sort of every event
    (measured, 1M events, one date: 3.8 s with a struct, 2.9 s with this key). Among events at
    the same instant the largest value wins, so the result does not depend on row order; only
    values equal to 6 decimals at the same microsecond tie, and they differ by less than 1e-6.
    """
    micros = event_micros(timestamp).cast("decimal(20,0)")  # the session time zone is UTC: monotonic
    rounded = F.least(F.greatest(F.round(value.cast("double") * F.lit(1e6)), F.lit(-9e18)), F.lit(9e18))
    return micros * F.lit(Decimal(10**20)) + (rounded.cast("long").cast("decimal(20,0)") + F.lit(Decimal(10**19)))


def _fixed_point(value: Column, scale: int) -> Column:
    """`value` as a whole number of 10**-scale units; Spark's ANSI mode fails loudly on overflow."""
    return F.round(value.cast("double") * F.lit(10.0**scale)).cast("long")


def _windowed_aggregates(
    events: DataFrame, source: SourceConfig, keys: list[str], specs: list[AggregateSpec], dates: list[date], lag: int = 0,
    pool_by: Sequence[str] | None = None,
) -> DataFrame:
    """The aggregates `specs` of `dates`, per entity and date; `specs` all lag their windows by `lag` days.

    With `pool_by` (some of `keys`), per pool and date instead: the events of every entity of a pool together.

    A window lagged by n days at D is the unlagged window at D - n: the events are read n days
    earlier and moved n days later (day and instant), and the unlagged computation runs as is.
    Measured from D's cutoff, not the window's end, `days_since_*` then add the n days back
    and `hours_since_*` 24 n hours; a trend's slope over the window's own days needs nothing.
    """
    # Windows by length: a whole number of days is a day window however it is written (24h = 1d).
    lengths = sorted({spec.window.micros for spec in specs})
    longest = max((spec.window for spec in specs), key=lambda window: window.micros)
    span = longest.days_spanned  # the days of events one date's longest window reaches
    first, last = dates[0], dates[-1]
    measures, of_spec = _measures(specs)
    # The partitions these dates' windows read: lookback_days (the lag and the window) back from
    # the first date, and none of the last `lag` days before the last date.
    reach = max(spec.lookback_days for spec in specs)
    relevant = prepared_events(events, source, keys, first - timedelta(days=reach - 1), last - timedelta(days=lag))
    keys = list(pool_by or keys)  # events with a null key part belong to no entity, nor to its pool
    if any(needs_event_time(spec) for spec in specs):
        relevant = relevant.withColumn(_TIME, event_micros(F.col(source.timestamp)))
    if lag:
        # After `prepared_events` compared each event's day with its partition, which stay unshifted.
        relevant = relevant.withColumn(_DAY, F.date_add(F.col(_DAY), lag))
        if _TIME in relevant.columns:
            relevant = relevant.withColumn(_TIME, F.col(_TIME) + F.lit(lag * DAY_MICROS))
    for measure in measures:
        if "distinct" in measure.needs:
            measure.domain = _small_domain(relevant, measure)
    partials = _event_partials(relevant, source, keys, measures)
    # Each event feeds the target dates d..d+span-1 that are being computed.
    target = F.explode(
        F.sequence(
            F.greatest(F.col(_DAY), F.lit(first)),
            F.least(F.date_add(F.col(_DAY), span - 1), F.lit(last)),
        )
    )
    expanded = partials.withColumn(DATE, target)
    if len(dates) != (last - first).days + 1:
        expanded = expanded.where(F.col(DATE).isin(dates))
    age = F.datediff(F.col(DATE), F.col(_DAY))
    # Band b holds the ages between the b-th and the (b+1)-th shortest window, so window j is
    # bands 0..j. Aggregating once per band and then combining the few bands per entity costs
    # one pass of ~a dozen aggregates over the events instead of one per window and feature.
    band = sum((F.when(_outside(length, age), 1).otherwise(0) for length in lengths), F.lit(0))
    expanded = expanded.withColumn("_age", age).withColumn(_BAND, band)
    if longest.whole_days is None:
        # The earliest day a sub-day longest window reaches holds events older than it.
        expanded = expanded.where(F.col(_BAND) < len(lengths))
    banded = expanded.groupBy(*keys, DATE, _BAND).agg(*_band_partials(measures))
    by_sets = [s for s in specs if s.function == "distinct_count" and of_spec[s.name].domain is None]
    result = banded.groupBy(*keys, DATE).agg(*[
        _windowed(spec, of_spec[spec.name], lengths.index(spec.window.micros)) for spec in specs if spec not in by_sets
    ])
    for measure in measures:
        distinct = [spec for spec in by_sets if of_spec[spec.name] is measure]
        if distinct:
            result = result.join(_distinct_counts(expanded, keys, measure, distinct, lengths), [*keys, DATE], "left")
    if lag:
        result = result.select(*keys, DATE, *[_from_cutoff(spec, lag) for spec in specs])
    return result


def _from_cutoff(spec: AggregateSpec, lag: int) -> Column:
    """A lagged spec's value, computed on events shifted `lag` days later, as of D's own cutoff.

    Only the ages need it: `days_since_*` and `hours_since_*` measured from the shifted events
    are `lag` days short of the real ones, exactly (the shift is whole days, so whole hours).
    """
    column = F.col(spec.name)
    if spec.function in ("days_since_first", "days_since_last"):
        column = column + F.lit(lag)
    elif spec.function in ("hours_since_first", "hours_since_last"):
        column = column + F.lit(24 * lag)
    return column.alias(spec.name)


def _outside(length: int, age_days: Column) -> Column:
    """Whether an event is older than a window of `length` microseconds: not in [cutoff - length, cutoff).

    A whole-day window compares days (ages of `age_days` = D - the event's day), which is the
    same test, needs no timestamp (a source's may be a date) and keeps day-only feature sets'
    plans as they were; a sub-day window compares the event's instant with the cutoff.
    """
    days, rest = divmod(length, DAY_MICROS)
    if not rest:
        return age_days >= days
    return cutoff_micros(F.col(DATE)) - F.col(_TIME) > F.lit(length)


def cutoff_micros(day: Column) -> Column:
    """The cutoff instant of date `day` in microseconds since the epoch: the start of day + 1, UTC."""
    return (F.unix_date(day).cast("long") + 1) * F.lit(DAY_MICROS)


def event_micros(timestamp: Column) -> Column:
    """An event's timestamp in microseconds since the epoch (a time zone-less one read as UTC, the session's)."""
    return F.unix_micros(timestamp.cast("timestamp"))


def _small_domain(events: DataFrame, measure: _Measure) -> tuple | None:
    """The measure's distinct values when they fit in the bits of a long, else None.

    One light pass over a single column; a column with more values (ids, free text) is
    counted by `_distinct_counts` instead.
    """
    value = measure.value(dict(events.dtypes))
    found = (
        events.where(measure.selected() & value.isNotNull()).select(value.alias("v")).distinct()
        .limit(_DOMAIN_BITS + 1).collect()
    )
    return tuple(sorted(row["v"] for row in found)) if len(found) <= _DOMAIN_BITS else None


def _distinct_counts(
    expanded: DataFrame, keys: list[str], measure: _Measure, specs: list[AggregateSpec], lengths: list[int],
) -> DataFrame:
    """Distinct values per window: a value is in a window when its most recent event (lowest band) is."""
    value = measure.prefix("distinct")
    latest = expanded.where(F.col(value).isNotNull()).groupBy(*keys, DATE, value).agg(F.min(_BAND).alias(_BAND))
    return latest.groupBy(*keys, DATE).agg(*[
        F.sum(F.when(F.col(_BAND) <= lengths.index(spec.window.micros), 1).otherwise(0)).alias(spec.name)
        for spec in specs
    ])


def _band_partials(measures: list[_Measure]) -> list[Column]:
    aggregates: list[Column] = []
    for measure in measures:
        for partial in sorted(measure.needs):
            column = F.col(measure.prefix(partial))
            name = measure.prefix(partial)
            if partial == "distinct":
                if measure.domain is not None:
                    aggregates.append(F.bit_or(column).alias(name))
                continue  # otherwise counted by _distinct_counts
            if partial in ("events", "values", "total", "squares"):
                aggregates.append(F.sum(column).alias(name))
            elif partial in ("min", "first_day", "first_time"):
                aggregates.append(F.min(column).alias(name))
            elif partial in ("max", "last_order", "last_day", "last_time"):
                aggregates.append(F.max(column).alias(name))
            elif partial == "last":
                aggregates.append(F.max_by(column, F.col(measure.prefix("last_order"))).alias(name))
            elif partial == "weighted":
                # The trend's sum(age * y) over the daily series it fits: the column's totals,
                # or event counts; it reuses that partial rather than a column of its own.
                series = F.col(measure.prefix("total" if measure.column else "events"))
                aggregates.append(F.sum(F.col("_age") * series).alias(name))
    return aggregates


def _windowed(spec: AggregateSpec, measure: _Measure, last_band: int, first_band: int = 0) -> Column:
    """The feature `spec` from rows of partials, each of a band: the window is bands first_band..last_band.

    Rows are events grouped by band (`compute_features`) or stored tiles (`features.tiles`);
    a measure without a small domain then holds each row's distinct values as a sorted array.
    """
    in_window = F.col(_BAND) <= last_band if first_band == 0 else F.col(_BAND).between(first_band, last_band)

    def within(partial: str) -> Column:
        return F.when(in_window, F.col(measure.prefix(partial)))

    unit = 10.0**measure.scale

    function = spec.function
    if function == "count":
        result = F.sum(within("events"))
    elif function == "sum":
        result = F.sum(within("total")).cast("double") / unit
    elif function == "mean":
        result = F.sum(within("total")).cast("double") / unit / F.nullif(F.sum(within("values")), F.lit(0))
    elif function in ("min", "max"):
        result = (F.min if function == "min" else F.max)(within(function)).cast("double")
    elif function == "distinct_count" and measure.domain is None:
        result = F.size(F.array_distinct(F.flatten(F.collect_list(within("distinct"))))).cast("long")
    elif function == "distinct_count":
        result = F.coalesce(F.bit_count(F.bit_or(within("distinct"))), F.lit(0)).cast("long")
    elif function == "std":
        n = F.sum(within("values")).cast("double")
        total = F.sum(within("total")).cast("double") / unit
        squares = F.sum(within("squares")).cast("double") / unit
        variance = F.greatest((squares - total * total / n) / (n - 1), F.lit(0.0))
        result = F.when(n >= 2, F.sqrt(variance))
    elif function == "last":
        result = F.max_by(within("last"), within("last_order"))
    elif function == "days_since_first":
        result = F.datediff(F.col(DATE), F.min(within("first_day")))
    elif function == "days_since_last":
        result = F.datediff(F.col(DATE), F.max(within("last_day")))
    elif function in ("hours_since_first", "hours_since_last"):
        instant = F.min(within("first_time")) if function == "hours_since_first" else F.max(within("last_time"))
        # Ages stay far below 2**53 microseconds, so the double quotient is floored exactly.
        result = F.floor((cutoff_micros(F.col(DATE)) - instant) / F.lit(HOUR_MICROS)).cast("int")
    elif function == "trend":
        # Least-squares slope of the daily totals (0 on days without events) against the day,
        # per day, over the window's w days: t = -age, so sum(t*y) = -sum(age*y).
        w = spec.window.whole_days
        scale = 1.0 if spec.column is None else unit
        sum_y = F.coalesce(F.sum(within("events" if spec.column is None else "total")).cast("double"), F.lit(0.0)) / scale
        sum_ty = -F.coalesce(F.sum(within("weighted")).cast("double"), F.lit(0.0)) / scale
        sum_t = -w * (w - 1) / 2
        sum_tt = (w - 1) * w * (2 * w - 1) / 6
        result = (w * sum_ty - sum_t * sum_y) / (w * sum_tt - sum_t * sum_t)
    else:  # pragma: no cover - the configuration model admits no other function
        raise ValueError(function)
    return result.alias(spec.name)
