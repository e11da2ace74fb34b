"""The event grain's engine: features of each scored event as of the instant before it.

At `use_case.grain: event` every event of the scored source (a card transaction) is a row, and
a window w of an aggregate `per: card_id` holds the card's events with timestamp in [t - w, t),
t the scored event's instant: an event never sees itself, and events at the same instant never
see each other. A brute-force oracle in the tests checks this, including equal timestamps and
window boundaries.

How it scales, in Spark: the history of every `per` value (a card's events of the longest
window) and the scored events are hash-partitioned into buckets of `per` values and cogrouped,
and each bucket is computed by `window_features`, vectorised numpy over all the bucket's cards
at once: events sorted by (per value, instant), each window's bounds found by binary search,
counts and exact totals by differences of prefix sums, min and max by a sparse table over the
sorted values (O(n log n), kept one level at a time), distinct values by merging each value's
events into runs of coverage and counting run starts less run ends before t, and the time since
the first or last event from the bounds. No step compares an event with every earlier one, so
a card with millions of events in a day (a hot key) costs a sort, not a square.

Exactness: totals are added as integers of 10**-scale units, as in `features.engine`, so sums
and means are independent of order; min, max, counts and distinct counts are exact; times are
integer microseconds. A `per` column of an integral type is compared as itself; any other
type, or several columns (`per: [card_id, merchant_id]`: the card's history at the merchant), by
their 64-bit xxhash (distinct values of a non-integral column likewise): two histories merge
only if their hashes collide, about once in 10**19 pairs.

Bad input, decided here and documented in the README: events with a null `per` value belong to
no history (a scored event with a null one gets empty windows); an event whose timestamp's day
is not its partition's date is dropped, as in the snapshot engine; an event looked up through
`lookup` (a chargeback's transaction) counts only when its looked-up row is not later than it
and not more than `within` older: a chargeback reported before its transaction changes no feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.definitions import ZERO_WHEN_EMPTY, AggregateSpec, FeatureSet
from features.engine import DATE, attribute_value, event_micros, prepared_events, ratio_value
from nightjar import crashpoints
from nightjar.keys import all_present
from nightjar.config import SourceConfig
from nightjar.durations import DAY_MICROS, HOUR_MICROS

_PER = "_per"
_TIME = "_time"
_TAG = "_tag"
_ID = "_id"
_BUCKET = "_bucket"
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
# Composite search keys (per value's rank * span + instant) must stay below 2**62.
_KEY_LIMIT = 1 << 62


@dataclass(frozen=True)
class Stream:
    """The events one group of aggregates reads: a source, its lookup, and its filters."""

    tag: int
    source: str
    lookup: tuple | None
    filters: tuple


@dataclass(frozen=True)
class Measure:
    """A column of a stream's events that some aggregates read, and how it is carried."""

    index: int
    stream: int
    column: str
    distinct: bool  # carried as a 64-bit identity for distinct counts, else as units and a double

    @property
    def units(self) -> str:
        return f"_u{self.index}"

    @property
    def real(self) -> str:
        return f"_f{self.index}"

    @property
    def valid(self) -> str:
        return f"_k{self.index}"


@dataclass(frozen=True)
class Plan:
    """What one cogroup computes: the streams, their measures, and each aggregate's (stream, measure)."""

    streams: tuple[Stream, ...]
    measures: tuple[Measure, ...]
    specs: tuple[tuple[AggregateSpec, int, int | None], ...]  # (spec, stream tag, measure index or None)

    @property
    def longest_micros(self) -> int:
        return max(spec.window.micros for spec, _, _ in self.specs)


def plan_of(specs: list[AggregateSpec]) -> Plan:
    """The streams and measures `specs` (aggregates of one `per` column) read."""
    streams: dict[tuple, Stream] = {}
    measures: dict[tuple, Measure] = {}
    planned = []
    for spec in specs:
        identity = (spec.source, spec.lookup, spec.filters)
        stream = streams.setdefault(identity, Stream(len(streams), *identity))
        measure = None
        if spec.column is not None and spec.function not in ("count", "hours_since_first", "hours_since_last"):
            distinct = spec.function == "distinct_count"
            measure = measures.setdefault(
                (stream.tag, spec.column, distinct), Measure(len(measures), stream.tag, spec.column, distinct))
        planned.append((spec, stream.tag, None if measure is None else measure.index))
    return Plan(tuple(streams.values()), tuple(measures.values()), tuple(planned))


def window_features(history: pd.DataFrame, queries: pd.DataFrame, plan: Plan, scales: Mapping[str, int]) -> pd.DataFrame:
    """Every aggregate of `plan` for each query, over the history events of [t - w, t).

    Args:
        history: the events: `_tag` (the stream), `_per` (int64), `_time` (microseconds), and
            each measure's `_u<i>` (int64 units), `_f<i>` (double) and `_k<i>` (is a value).
        queries: the scored events: `_id`, `_per`, `_time`.
        plan: the streams, measures and aggregates.
        scales: each aggregate's fixed-point scale, by name.

    Returns:
        `_id` and one column per aggregate, NaN where a window holds no value.
    """
    result: dict[str, np.ndarray] = {_ID: queries[_ID].to_numpy()}
    query_per = queries[_PER].to_numpy(np.int64)
    query_time = queries[_TIME].to_numpy(np.int64)
    for stream in plan.streams:
        rows = history[history[_TAG].to_numpy() == stream.tag]
        per = rows[_PER].to_numpy(np.int64)
        time = rows[_TIME].to_numpy(np.int64)
        order = np.lexsort((time, per))
        sorted_rows = rows.iloc[order]
        index = _SearchIndex(per[order], time[order], query_per, query_time, plan.longest_micros)
        for spec, tag, measure_index in plan.specs:
            if tag != stream.tag:
                continue
            measure = None if measure_index is None else plan.measures[measure_index]
            result[spec.name] = _aggregate(spec, measure, sorted_rows, index, query_time, scales[spec.name])
    return pd.DataFrame(result)


class _SearchIndex:
    """Binary search of instants within each per value's sorted events, as one sorted int64 key.

    Each event's key is rank(per) * span + (time - origin); a bound for a query is its per
    value's rank * span + the bound's offset, so `searchsorted` counts the events of earlier
    per values and those of its own before the bound. Bounds before the origin are clamped to
    it: no event lies before the origin.
    """

    def __init__(self, per: np.ndarray, time: np.ndarray, query_per: np.ndarray, query_time: np.ndarray,
                 longest: int) -> None:
        values = np.unique(np.concatenate([per, query_per]))
        first = np.iinfo(np.int64).max
        self.origin = int(min(time.min(initial=first), (query_time - longest).min(initial=first)))
        last = int(max(time.max(initial=self.origin), query_time.max(initial=self.origin)))
        self.span = last - self.origin + 1
        if len(values) * self.span >= _KEY_LIMIT:
            # Decades of history per bucket would overflow the key: more buckets fix it.
            raise ValueError(f"{len(values)} values over {self.span} microseconds overflow the search key: "
                             "raise the number of buckets")
        self.rank = np.searchsorted(values, per)
        self.query_rank = np.searchsorted(values, query_per)
        self.keys = self.rank * self.span + (time - self.origin)
        self.time = time

    def before(self, bound: np.ndarray) -> np.ndarray:
        """For each query, the position of its per value's first event at or after `bound`
        (the number of sorted events before it)."""
        offset = np.clip(bound - self.origin, 0, self.span - 1)
        return np.searchsorted(self.keys, self.query_rank * self.span + offset, side="left")

    def keys_of(self, rank: np.ndarray, time: np.ndarray) -> np.ndarray:
        return rank * self.span + np.clip(time - self.origin, 0, self.span - 1)


def _aggregate(spec: AggregateSpec, measure: Measure | None, rows: pd.DataFrame, index: _SearchIndex,
               query_time: np.ndarray, scale: int) -> np.ndarray:
    window = spec.window.micros
    low, high = index.before(query_time - window), index.before(query_time)
    function = spec.function
    if function == "count":
        return (high - low).astype(np.int64)
    if function in ("hours_since_first", "hours_since_last"):
        found = high > low
        at = np.where(found, low if function == "hours_since_first" else high - 1, 0)
        instants = index.time[at] if len(index.time) else np.zeros(len(at), np.int64)
        return np.where(found, (query_time - instants) / HOUR_MICROS, np.nan)
    assert measure is not None
    valid = rows[measure.valid].to_numpy(bool)
    if function == "distinct_count":
        return _distinct(rows[measure.units].to_numpy(np.int64), valid, index, query_time, window)
    counts = _prefix(valid.astype(np.int64))
    values = counts[high] - counts[low]
    if function in ("sum", "mean"):
        totals = _prefix(np.where(valid, rows[measure.units].to_numpy(np.int64), 0))
        total = (totals[high] - totals[low]).astype(np.float64) / 10.0**scale
        if function == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(values > 0, total / values, np.nan)
    real = rows[measure.real].to_numpy(np.float64)
    if function == "max":
        extreme = _range_max(np.where(valid, real, -np.inf), low, high)
    else:
        extreme = -_range_max(np.where(valid, -real, -np.inf), low, high)
    return np.where(values > 0, extreme, np.nan)


def _prefix(values: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: the total of positions [a, b) is prefix[b] - prefix[a]."""
    return np.concatenate([np.zeros(1, values.dtype), np.cumsum(values)])


def _range_max(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """max(values[low:high]) for each range (-inf for an empty one), by a sparse table.

    Level k holds the maxima of the runs of 2**k values; a range of length L is covered by two
    runs of the largest 2**k <= L. Only one level is kept at a time, and each range is answered
    at its own level: O(n log n) time, O(n) memory.
    """
    result = np.full(len(low), -np.inf)
    length = high - low
    if not len(values) or not (length > 0).any():
        return result
    level = np.zeros(len(low), np.int64)
    nonempty = length > 0
    level[nonempty] = np.floor(np.log2(length[nonempty])).astype(np.int64)
    # log2 of a power of two may round below it: correct both ways.
    level[nonempty & ((1 << (level + 1)) <= length)] += 1
    level[nonempty & ((1 << level) > length)] -= 1
    runs = values
    for k in range(int(level[nonempty].max()) + 1):
        if k:
            half = 1 << (k - 1)
            runs = np.maximum(runs[:-half], runs[half:])
        at = nonempty & (level == k)
        if at.any():
            width = 1 << k
            result[at] = np.maximum(runs[low[at]], runs[high[at] - width])
    return result


def _distinct(identity: np.ndarray, valid: np.ndarray, index: _SearchIndex, query_time: np.ndarray,
              window: int) -> np.ndarray:
    """The number of distinct values among each query's window events.

    A value is in the window [t - w, t) of a query exactly when one of its events is at an
    instant a with a < t <= a + w. A value's events of one per value, in time order, are merged
    into runs whose coverage (first, last + w] is contiguous; the distinct count is then the
    runs started before t less the runs ended before t.
    """
    rank, time = index.rank[valid], index.time[valid]
    identity = identity[valid]
    if not len(rank):
        return np.zeros(len(query_time), np.int64)
    order = np.lexsort((time, identity, rank))
    rank, identity, time = rank[order], identity[order], time[order]
    same_value = (rank[1:] == rank[:-1]) & (identity[1:] == identity[:-1])
    continues = same_value & (time[1:] <= time[:-1] + window)
    starts = np.concatenate([[True], ~continues])
    ends = np.concatenate([~continues, [True]])
    start_keys = np.sort(index.keys_of(rank[starts], time[starts]))
    end_keys = np.sort(index.keys_of(rank[ends], time[ends] + window))
    query_keys = index.keys_of(index.query_rank, query_time)
    return (np.searchsorted(start_keys, query_keys, side="left")
            - np.searchsorted(end_keys, query_keys, side="left")).astype(np.int64)


def event_features(
    feature_set: FeatureSet,
    sources: Mapping[str, SourceConfig],
    frames: Mapping[str, DataFrame],
    dates: list[date],
    buckets: int,
) -> DataFrame:
    """The feature rows of every event of `dates` in the scored source (`feature_set.event_source`).

    Args:
        feature_set: the expanded definitions of an event-grain use case.
        sources: the use case's source configurations, by name.
        frames: the source tables, by name; only the partitions the windows reach are read.
        dates: the dates whose events are scored.
        buckets: how many groups of `per` values the history is split into; each is computed
            in one task, so more buckets mean smaller tasks.

    Returns:
        One row per event: its key, `ds` (its partition date), its timestamp, then `feature_set.names`.
    """
    assert feature_set.event_source is not None and feature_set.event_time is not None
    dates = sorted(set(dates))
    key = feature_set.keys[0]
    scored_source = sources[feature_set.event_source]
    scored = (
        prepared_events(frames[feature_set.event_source], scored_source, [key], dates[0], dates[-1])
        .where(F.col(scored_source.partition).isin(dates))
        .withColumn(DATE, F.col(scored_source.partition))
        .withColumn(_TIME, event_micros(F.col(feature_set.event_time)))
    )
    result = scored
    by_per: dict[tuple[str, ...], list[AggregateSpec]] = {}
    for spec in feature_set.aggregates:
        assert spec.per is not None  # `definitions.expand` requires it at the event grain
        by_per.setdefault(per_columns(spec.per), []).append(spec)
    for per, specs in by_per.items():
        windowed = _per_windows(list(per), specs, sources, frames, scored, key, dates, buckets)
        result = result.join(windowed, key, "left")
    result = result.fillna(0, subset=[s.name for s in feature_set.aggregates if s.function in ZERO_WHEN_EMPTY])
    for attribute in feature_set.attributes:
        result = result.withColumn(attribute.name, attribute_value(attribute))
    for ratio in feature_set.ratios:
        result = result.withColumn(ratio.name, ratio_value(ratio))
    return result.select(key, DATE, feature_set.event_time, *feature_set.names)


def per_columns(per: str | tuple[str, ...]) -> tuple[str, ...]:
    """The columns of a `per`: one, or several that together name a history (a card at a merchant)."""
    return (per,) if isinstance(per, str) else tuple(per)


def _per_windows(
    per: list[str],
    specs: list[AggregateSpec],
    sources: Mapping[str, SourceConfig],
    frames: Mapping[str, DataFrame],
    scored: DataFrame,
    key: str,
    dates: list[date],
    buckets: int,
) -> DataFrame:
    """The aggregates `per` some columns of the scored events: one cogroup of history and queries by bucket."""
    plan = plan_of(specs)
    scored_types = {f.name: f.dataType for f in scored.schema.fields}
    histories = []
    for stream in plan.streams:
        longest = max((spec.window for spec, tag, _ in plan.specs if tag == stream.tag), key=lambda w: w.micros)
        first_day = dates[0] - timedelta(days=longest.days_spanned)
        events = _stream_events(stream, per, sources, frames, first_day, dates[-1])
        measures = [m for m in plan.measures if m.stream == stream.tag]
        columns = [F.lit(stream.tag).alias(_TAG), _per_identity(per, scored_types).alias(_PER), F.col(_TIME)]
        types = dict(events.dtypes)
        for measure in plan.measures:
            if measure in measures:
                columns += _measure_columns(measure, types[measure.column], _scale_of(plan, measure))
            else:
                columns += [F.lit(0).cast("long").alias(measure.units), F.lit(None).cast("double").alias(measure.real),
                            F.lit(False).alias(measure.valid)]
        first_instant = F.unix_date(F.lit(dates[0])).cast("long") * F.lit(DAY_MICROS) - F.lit(longest.micros)
        histories.append(events.where(all_present(per) & (F.col(_TIME) >= first_instant)).select(*columns))
    history = histories[0]
    for other in histories[1:]:
        history = history.unionByName(other)
    queries = scored.where(all_present(per)).select(
        F.col(key).alias(_ID), _per_identity(per, scored_types).alias(_PER), F.col(_TIME))
    bucket = F.pmod(F.xxhash64(F.col(_PER)), F.lit(buckets))
    key_type = dict((f.name, f.dataType) for f in scored.schema.fields)[key]
    schema = T.StructType([T.StructField(_ID, key_type)] + [
        T.StructField(spec.name, T.LongType() if spec.function in ("count", "distinct_count") else T.DoubleType())
        for spec, _, _ in plan.specs
    ])
    scales = {spec.name: spec.scale for spec, _, _ in plan.specs}

    history_columns = history.columns

    def compute(history_rows: pd.DataFrame, query_rows: pd.DataFrame) -> pd.DataFrame:
        crashpoints.fail_task_once("features.events")  # tests: a retried task gives the same features
        if query_rows.empty:
            return pd.DataFrame({field.name: pd.Series([], dtype=object) for field in schema.fields})
        if history_rows.empty:
            # A bucket of scored events without history (new cards): empty windows.
            history_rows = pd.DataFrame({column: pd.Series([], dtype=np.int64 if column.startswith(("_u", "_t", "_p"))
                                                           else bool if column.startswith("_k") else np.float64)
                                         for column in history_columns})
        return window_features(history_rows, query_rows, plan, scales)

    return (
        history.withColumn(_BUCKET, bucket).groupBy(_BUCKET)
        .cogroup(queries.withColumn(_BUCKET, bucket).groupBy(_BUCKET))
        .applyInPandas(lambda h, q: compute(h.drop(columns=[_BUCKET]), q.drop(columns=[_BUCKET])), schema)
        .withColumnRenamed(_ID, key)
    )


def _scale_of(plan: Plan, measure: Measure) -> int:
    return next(spec.scale for spec, _, index in plan.specs if index == measure.index)


def _stream_events(stream: Stream, per: list[str], sources: Mapping[str, SourceConfig], frames: Mapping[str, DataFrame],
                   first_day: date, last_day: date) -> DataFrame:
    """The events of `stream` on days first_day..last_day, with `per` and their instant (`_TIME`)."""
    source = sources[stream.source]
    events = prepared_events(frames[stream.source], source, [], first_day, last_day)
    events = events.withColumn(_TIME, event_micros(F.col(source.timestamp)))
    for column, value in stream.filters:
        events = events.where(F.col(column) == F.lit(value))
    if stream.lookup is None:
        return events
    lookup_name, on, within = stream.lookup
    lookup_source = sources[lookup_name]
    looked_up = (
        prepared_events(frames[lookup_name], lookup_source, [on], first_day - timedelta(days=within.days_spanned), last_day)
        .select(F.col(on), *map(F.col, per), event_micros(F.col(lookup_source.timestamp)).alias("_looked_up_time"))
    )
    # A row looked up must precede its event, by at most `within`: a chargeback reported before
    # its transaction, or long after it, counts for nothing.
    return (
        events.drop(*per).join(looked_up, on, "inner")
        .where((F.col("_looked_up_time") <= F.col(_TIME))
               & (F.col(_TIME) - F.col("_looked_up_time") <= F.lit(within.micros)))
    )


def _per_identity(per: list[str], types: Mapping[str, T.DataType]) -> Column:
    """One 64-bit identity of each row's `per` columns: an integral column itself, else an xxhash64 of them all."""
    if len(per) == 1:
        return _identity(F.col(per[0]), types[per[0]])
    return F.xxhash64(*map(F.col, per))


def _identity(column: Column, data_type: T.DataType) -> Column:
    """A 64-bit identity of each value: integral values themselves, others their xxhash64."""
    return column.cast("long") if isinstance(data_type, _INTEGRAL) else F.xxhash64(column)


def _measure_columns(measure: Measure, type_name: str, scale: int) -> list[Column]:
    value = F.col(measure.column)
    if measure.distinct:
        data_type = T._parse_datatype_string(type_name)
        identity = _identity(value, data_type)
        return [F.coalesce(identity, F.lit(0)).alias(measure.units), F.lit(None).cast("double").alias(measure.real),
                value.isNotNull().alias(measure.valid)]
    real = value.cast("double")
    # NaN and infinity count as events, not values, as in the snapshot engine.
    is_value = real.isNotNull() & ~F.isnan(real) & (F.abs(real) != float("inf"))
    units = F.round(real * F.lit(10.0**scale)).cast("long")
    return [F.when(is_value, units).otherwise(F.lit(0)).alias(measure.units),
            F.when(is_value, real).alias(measure.real), is_value.alias(measure.valid)]
