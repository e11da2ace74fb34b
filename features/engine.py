"""The feature engine: trailing-window aggregations per entity and date, in Spark.

`compute_features` is a pure function, DataFrames in and a DataFrame out. It computes a
whole range of dates in one pass over the history the range needs:

1. events are reduced to *daily partial aggregates* per (entity, day, measure): event and
   value counts, exact decimal totals and squares, min, max, the last value, the distinct
   values. A measure is a column under a filter, shared by all functions and windows on it;
2. each daily row is expanded to the target dates whose windows contain it (at most the
   longest window's worth) and all windows are aggregated at once with conditional sums;
3. the result is joined onto the spine of entities known at each date, so an entity with no
   events still gets a row, with 0 for counts and totals and missing for the rest.

Because step 2 only combines daily partials, the same partials can later be stored once
per day and trailing windows assembled from them incrementally (see the README).

Point-in-time correctness: the features of date D use only events whose timestamp falls on
a day d with D - window < d <= D. Totals are summed as DECIMAL(38, 9) (squares as
DECIMAL(38, 6)) so that a rerun gives bit-identical values whatever order Spark adds them in.

Bad input, decided here and documented in the README:
* an event whose entity key is null is dropped (it belongs to no entity);
* an event whose timestamp's day is not its partition's date is dropped: it would otherwise
  let a late-filed event leak across dates, and the validation gate reports such rows;
* NaN and infinite values count as events but not as values (like nulls);
* a day with no events contributes nothing: counts 0, totals 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.definitions import ZERO_WHEN_EMPTY, AggregateSpec, AttributeSpec, FeatureSet
from nightjar.config import SourceConfig

DATE = "ds"
_SUM = T.DecimalType(38, 9)
_SQUARES = T.DecimalType(38, 6)
_DAY = "_day"


@dataclass
class _Measure:
    """The daily partials one (source, column, filters) needs, and the features reading them."""

    index: int
    column: str | None
    filters: tuple
    needs: set[str] = field(default_factory=set)

    def prefix(self, partial: str) -> str:
        return f"_m{self.index}_{partial}"


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
        events: the events frames the aggregates read, by source name; they may hold more
            history than needed (only the lookback is read, by partition).
        entities: the spine source: one row per entity, known from `entities_source.timestamp`.
        entities_source: the spine's configuration.
        dates: the dates to compute.

    Returns:
        One row per (entity, date): the key, `ds`, then `feature_set.names` in order.
    """
    key = feature_set.key
    spark = entities.sparkSession
    dates = sorted(set(dates))
    dates_frame = _dates_frame(spark, dates)
    spine = (
        entities.select(F.col(key), F.to_date(F.col(entities_source.timestamp)).alias("_known_from"),
                        *[F.col(c) for c in _attribute_columns(feature_set, entities_source, sources)])
        .where(F.col(key).isNotNull())
        .join(F.broadcast(dates_frame), F.col("_known_from") <= F.col(DATE))
    )
    result = spine
    for source_name in sorted({spec.source for spec in feature_set.aggregates}):
        specs = [spec for spec in feature_set.aggregates if spec.source == source_name]
        windowed = _windowed_aggregates(events[source_name], sources[source_name], key, specs, dates)
        result = result.join(windowed, [key, DATE], "left")
    result = result.fillna(0, subset=[s.name for s in feature_set.aggregates if s.function in ZERO_WHEN_EMPTY])
    for spec in feature_set.attributes:
        result = result.withColumn(spec.name, _attribute(spec))
    for ratio in feature_set.ratios:
        denominator = F.col(ratio.denominator).cast("double")
        result = result.withColumn(
            ratio.name,
            F.when(denominator != 0, F.col(ratio.numerator).cast("double") / denominator),
        )
    return result.select(key, DATE, *feature_set.names)


def _dates_frame(spark: SparkSession, dates: list[date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in dates], T.StructType([T.StructField(DATE, T.DateType(), False)]))


def _attribute_columns(feature_set: FeatureSet, spine: SourceConfig, sources: dict[str, SourceConfig]) -> list[str]:
    columns = sorted({spec.column for spec in feature_set.attributes if spec.column})
    return [c for c in columns if c not in ("_known_from",)]


def _attribute(spec: AttributeSpec) -> Column:
    if spec.kind == "tenure_days":
        return F.datediff(F.col(DATE), F.col("_known_from"))
    if spec.kind == "numeric":
        return F.col(spec.column).cast("double")
    position = F.array_position(F.array(*[F.lit(v) for v in spec.values]), F.col(spec.column))
    return F.when(position > 0, (position - 1).cast("int"))


def prepared_events(frame: DataFrame, source: SourceConfig, key: str, first_day: date, last_day: date) -> DataFrame:
    """The events of days first_day..last_day that features may use, with their event day.

    Filters on the partition column first, so Spark reads only the partitions needed; then
    drops events with a null key or a timestamp outside their partition's date.
    """
    day = F.to_date(F.col(source.timestamp))
    return (
        frame.where(F.col(source.partition).between(F.lit(first_day), F.lit(last_day)))
        .where(F.col(key).isNotNull())
        .withColumn(_DAY, day)
        .where(F.col(_DAY) == F.col(source.partition))
    )


def _measures(specs: list[AggregateSpec]) -> tuple[list[_Measure], dict[str, _Measure]]:
    measures: dict[tuple, _Measure] = {}
    of_spec: dict[str, _Measure] = {}
    for spec in specs:
        identity = (spec.column, spec.filters)
        measure = measures.setdefault(identity, _Measure(len(measures), spec.column, spec.filters))
        measure.needs |= {
            "count": {"events"},
            "sum": {"total"},
            "mean": {"total", "values"},
            "min": {"min"},
            "max": {"max"},
            "std": {"total", "squares", "values"},
            "distinct_count": {"distinct"},
            "last": {"last"},
            "days_since_first": {"events"},
            "days_since_last": {"events"},
            "trend": {"total"} if spec.column else {"events"},
        }[spec.function]
        of_spec[spec.name] = measure
    return list(measures.values()), of_spec


def _daily_partials(events: DataFrame, source: SourceConfig, key: str, measures: list[_Measure]) -> DataFrame:
    value_types = dict(events.dtypes)
    aggregates: list[Column] = []
    for measure in measures:
        selected = F.lit(True)
        for column, value in measure.filters:
            selected = selected & (F.col(column) == F.lit(value))
        value = F.col(measure.column) if measure.column else None
        if value is not None and value_types[measure.column] in ("float", "double"):
            # NaN and infinity are not values: counted as events, ignored as values.
            value = F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)
        is_value = selected & value.isNotNull() if value is not None else selected
        for partial in sorted(measure.needs):
            name = measure.prefix(partial)
            if partial == "events":
                aggregates.append(F.sum(F.when(selected, 1).otherwise(0)).alias(name))
            elif partial == "values":
                aggregates.append(F.sum(F.when(is_value, 1).otherwise(0)).alias(name))
            elif partial == "total":
                aggregates.append(F.sum(F.when(is_value, value.cast(_SUM))).alias(name))
            elif partial == "squares":
                aggregates.append(F.sum(F.when(is_value, (value.cast("double") * value.cast("double")).cast(_SQUARES))).alias(name))
            elif partial == "min":
                aggregates.append(F.min(F.when(is_value, value)).alias(name))
            elif partial == "max":
                aggregates.append(F.max(F.when(is_value, value)).alias(name))
            elif partial == "last":
                # The latest value; among events at the same instant, the largest, so the
                # result does not depend on row order.
                aggregates.append(F.max(F.when(is_value, F.struct(F.col(source.timestamp).alias("t"), value.alias("v")))).alias(name))
            elif partial == "distinct":
                aggregates.append(F.collect_set(F.when(is_value, value)).alias(name))
    return events.groupBy(key, _DAY).agg(*aggregates)


def _windowed_aggregates(
    events: DataFrame, source: SourceConfig, key: str, specs: list[AggregateSpec], dates: list[date],
) -> DataFrame:
    longest = max(spec.window for spec in specs)
    first, last = dates[0], dates[-1]
    measures, of_spec = _measures(specs)
    relevant = prepared_events(events, source, key, first - timedelta(days=longest - 1), last)
    daily = _daily_partials(relevant, source, key, measures)
    # Each daily row feeds the target dates d..d+longest-1 that are being computed.
    target = F.explode(
        F.sequence(
            F.greatest(F.col(_DAY), F.lit(first)),
            F.least(F.date_add(F.col(_DAY), longest - 1), F.lit(last)),
        )
    )
    expanded = daily.withColumn(DATE, target)
    if len(dates) != (last - first).days + 1:
        expanded = expanded.where(F.col(DATE).isin(dates))
    expanded = expanded.withColumn("_age", F.datediff(F.col(DATE), F.col(_DAY)))
    return expanded.groupBy(key, DATE).agg(*[_windowed(spec, of_spec[spec.name]) for spec in specs])


def _windowed(spec: AggregateSpec, measure: _Measure) -> Column:
    inside = F.col("_age") < spec.window

    def within(partial: str) -> Column:
        return F.when(inside, F.col(measure.prefix(partial)))

    function = spec.function
    if function == "count":
        result = F.sum(within("events"))
    elif function == "sum":
        result = F.sum(within("total")).cast("double")
    elif function == "mean":
        result = F.sum(within("total")).cast("double") / F.nullif(F.sum(within("values")), F.lit(0))
    elif function in ("min", "max"):
        result = (F.min if function == "min" else F.max)(within(function)).cast("double")
    elif function == "std":
        n = F.sum(within("values")).cast("double")
        total = F.sum(within("total")).cast("double")
        squares = F.sum(within("squares")).cast("double")
        variance = F.greatest((squares - total * total / n) / (n - 1), F.lit(0.0))
        result = F.when(n >= 2, F.sqrt(variance))
    elif function == "distinct_count":
        result = F.size(F.array_distinct(F.flatten(F.collect_list(within("distinct")))))
    elif function == "last":
        result = F.max(within("last"))["v"]
    elif function in ("days_since_first", "days_since_last"):
        seen = F.when(inside & (F.col(measure.prefix("events")) > 0), F.col(_DAY))
        edge = F.min(seen) if function == "days_since_first" else F.max(seen)
        result = F.datediff(F.col(DATE), edge)
    elif function == "trend":
        # Least-squares slope of the daily totals (0 on days without events) against the day,
        # per day, over the window's w days: t = -age, so sum(t*y) = -sum(age*y).
        w = spec.window
        y = F.coalesce(within("total" if spec.column else "events").cast("double"), F.lit(0.0))
        sum_y = F.sum(y)
        sum_ty = -F.sum(F.when(inside, F.col("_age")).otherwise(0) * y)
        sum_t = -w * (w - 1) / 2
        sum_tt = (w - 1) * w * (2 * w - 1) / 6
        result = (w * sum_ty - sum_t * sum_y) / (w * sum_tt - sum_t * sum_t)
    else:  # pragma: no cover - the configuration model admits no other function
        raise ValueError(function)
    return result.alias(spec.name)
