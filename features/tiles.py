"""Stored partial aggregates (tiles): a nightly date costs one day of events, not its longest window.

The full computation (`features.engine.compute_features`) reads every event of a date's
longest window. Its partials are associative, so this module stores them once, per entity and
*tile*, in the `feature_partials` table, and assembles each date's windows from a few tiles:

* a **day tile** (level 0) holds one day's partials; a tile of level k holds 2**k days and
  starts on an epoch day divisible by 2**k (aligned, so each day is in exactly one tile per
  level and a corrected day invalidates one tile per level). It is built from its two halves,
  never from events again;
* a source with sub-day windows (`3h`, `36h`) also keeps **sub-day buckets** (level -1) of each
  day, as long as the greatest common divisor of its windows' sub-day parts (an hour for `3h`);
* a date's windows ending at the same instant are nested, so they are cut into *bands*
  between consecutive lengths (as the full computation does), and each band into pieces:
  the buckets of a partial day at either end and the fewest aligned tiles for the whole days
  between. A window of w days reads at most about 2·log2(w) tiles, whatever the partial: the
  additive ones (counts, totals, squares) and those that cannot be subtracted (min, max, the
  latest value, distinct values, first and last times) alike, since the tiles are disjoint;
* a lagged window (`offset`) is the window of the date `offset` earlier, read from the same tiles.

Every partial combines exactly: counts and fixed-point totals are integers, min, max and the
latest (time, value) are selections, distinct values are sorted arrays of the values (a set
union: no bit domain that would depend on the data seen so far), and the trend's weighted sum is
kept relative to the tile's first day, sum((d - start) * y), which shifts exactly when tiles are
merged. So a date assembled from tiles equals the full computation bit for bit.

Which tiles are stored and valid is recorded in the table's commit metadata (`manifest`), per
source: a fingerprint of what its partials compute (measures, value types, bucket length, the
source's configuration), and for each computed day the signature of the source partition it
was read from (its data files, `tables.partition_signatures`). A day whose partition changed
since (a corrected partition: Delta writes new files) is computed again, and so is every tile
that holds it; a source whose fingerprint changed is computed again from its events; other
sources' tiles stay. Everything here is planning (plain Python) or DataFrame in, DataFrame out;
`features.store` reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterable

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.definitions import AggregateSpec, FeatureSet
from features.engine import (
    _BAND, _DAY, _TIME, DATE, _event_partials, _Measure, _measures, _windowed, complete_features, event_micros,
    prepared_events,
)
from nightjar.config import SourceConfig
from nightjar.durations import DAY_MICROS

# Bump when a change here changes what a stored partial holds: every source is then recomputed.
PARTIALS_VERSION = 2
SOURCE = "source"
DAY = "day"
LEVEL = "level"
BUCKET = "bucket"
SUB_DAY = -1  # the level of sub-day buckets
# 2**10 days: longer windows read a few more top-level tiles rather than keep even coarser ones.
TOP_LEVEL = 10
NO_PARTITION = "-"  # the signature of a day without a source partition
_END = "_end"  # the last day of a band's window (D, or D - offset)
_EPOCH = date(1970, 1, 1)
_ADDITIVE = ("events", "values", "total", "squares")


def epoch_day(day: date) -> int:
    """Days since 1970-01-01: tiles of level k start on multiples of 2**k of it."""
    return (day - _EPOCH).days


def from_epoch_day(number: int) -> date:
    return _EPOCH + timedelta(days=number)


@dataclass(frozen=True)
class Piece:
    """One stored row kind a band reads: a tile (level >= 0) or one sub-day bucket (level -1)."""

    day: int  # epoch day the tile starts on, or the bucket's day
    level: int
    bucket: int = 0


@dataclass(frozen=True)
class Band:
    """Part of one or more nested windows ending at the same instant: [start, end) in microseconds."""

    index: int
    offset_days: int
    start: int
    end: int


@dataclass
class SourceTiles:
    """What one events source's aggregates need stored, and how their windows are assembled."""

    source: str
    keys: list[str]  # the entity key's columns
    specs: list[AggregateSpec]
    measures: list[_Measure]
    of_spec: dict[str, _Measure]
    bucket_micros: int | None
    top_level: int
    fingerprint: str
    # (offset in days, window lengths in microseconds ascending, index of its first band)
    groups: list[tuple[int, list[int], int]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """The partial columns of this source in the table, in a fixed order."""
        return [m.prefix(p) for m in self.measures for p in sorted(m.needs)]

    def window_bands(self, spec: AggregateSpec) -> tuple[int, int]:
        """The bands (first, last) that make up `spec`'s window."""
        offset = spec.lag_days
        for group_offset, lengths, first in self.groups:
            if group_offset == offset:
                return first, first + lengths.index(spec.window.micros)
        raise KeyError(spec.name)  # pragma: no cover - groups are built from the same specs

    def bands(self, day: date) -> list[Band]:
        """The bands of date `day`'s windows, in band order."""
        cutoff = (epoch_day(day) + 1) * DAY_MICROS
        bands = []
        for offset, lengths, first in self.groups:
            end = cutoff - offset * DAY_MICROS
            previous = 0
            for position, length in enumerate(lengths):
                bands.append(Band(first + position, offset, end - length, end - previous))
                previous = length
        return bands

    def pieces(self, band: Band) -> list[Piece]:
        """The fewest stored pieces that hold exactly the instants of `band`."""
        first_day, first_rest = divmod(band.start, DAY_MICROS)
        last_day, last_rest = divmod(band.end, DAY_MICROS)
        if first_day == last_day:
            return self._buckets(first_day, first_rest, last_rest)
        pieces: list[Piece] = []
        whole_from = first_day
        if first_rest:
            pieces += self._buckets(first_day, first_rest, DAY_MICROS)
            whole_from += 1
        pieces += [Piece(day, level) for day, level in aligned_tiles(whole_from, last_day - 1, self.top_level)]
        if last_rest:
            pieces += self._buckets(last_day, 0, last_rest)
        return pieces

    def _buckets(self, day: int, start: int, end: int) -> list[Piece]:
        size = self.bucket_micros
        assert size is not None and start % size == 0 and end % size == 0, "bands end on bucket edges"
        return [Piece(day, SUB_DAY, bucket) for bucket in range(start // size, end // size)]


def aligned_tiles(first: int, last: int, top_level: int) -> list[tuple[int, int]]:
    """The aligned tiles (start, level) covering epoch days first..last exactly, fewest first-fit."""
    tiles = []
    day = first
    while day <= last:
        level = 0
        while (
            level < top_level
            and day % (2 ** (level + 1)) == 0
            and day + 2 ** (level + 1) - 1 <= last
        ):
            level += 1
        tiles.append((day, level))
        day += 2**level
    return tiles


def source_tiles(
    feature_set: FeatureSet, source_name: str, source: SourceConfig, value_types: dict[str, str],
    wide: Iterable[str] = (),
) -> SourceTiles:
    """Plan the stored partials of one events source from the expanded definitions.

    Args:
        feature_set: the expanded definitions.
        source_name: the source's name in `use_case.sources`.
        source: its configuration.
        value_types: the source's column types (`DataFrame.dtypes`): part of each measure's identity,
            since a column whose type changed holds other partials.
        wide: labels of the measures whose distinct values are kept as arrays, not bits (see `planned`).
    """
    specs = [spec for spec in feature_set.aggregates if spec.source == source_name]
    measures, of_spec = _measures(specs)
    source_content = source.content()
    # A single-column key hashes as its name, as before keys of several columns existed.
    key_identity = feature_set.keys[0] if len(feature_set.keys) == 1 else list(feature_set.keys)
    for measure in measures:
        identity = [source_name, source_content, key_identity, measure.column,
                    value_types.get(measure.column or ""), measure.filters, measure.scale, PARTIALS_VERSION]
        # A measure keeping distinct values as arrays names its columns apart ("a..."): the
        # same column holding bits before and arrays after would be a type change.
        measure.label = "p" + _digest(identity)[:10]
        if measure.label in set(wide):
            measure.label = "a" + measure.label[1:]
    sub_day = [spec.window.micros % DAY_MICROS for spec in specs if spec.window.micros % DAY_MICROS]
    bucket_micros = math.gcd(DAY_MICROS, *sub_day) if sub_day else None
    longest_whole_days = max(spec.window.micros // DAY_MICROS for spec in specs)
    top_level = min(TOP_LEVEL, max(0, longest_whole_days.bit_length() - 1))
    content = {
        "measures": sorted([measure.label, sorted(measure.needs)] for measure in measures),
        "bucket_micros": bucket_micros,
        "wide": sorted(set(wide)),
    }
    groups: list[tuple[int, list[int], int]] = []
    first_band = 0
    for offset in sorted({spec.lag_days for spec in specs}):
        lengths = sorted({spec.window.micros for spec in specs if spec.lag_days == offset})
        groups.append((offset, lengths, first_band))
        first_band += len(lengths)
    return SourceTiles(
        source_name, list(feature_set.keys), specs, measures, of_spec, bucket_micros, top_level,
        _digest(content)[:16], groups,
    )


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def plan_rows(tiles: SourceTiles, dates: Iterable[date]) -> list[tuple[date, int, date, date, int, int]]:
    """(ds, band, window end, piece day, level, bucket) for every piece each date's bands read."""
    rows = []
    for day in sorted(set(dates)):
        for band in tiles.bands(day):
            end = day - timedelta(days=band.offset_days)
            for piece in tiles.pieces(band):
                rows.append((day, band.index, end, from_epoch_day(piece.day), piece.level, piece.bucket))
    return rows


PLAN_SCHEMA = T.StructType([
    T.StructField(DATE, T.DateType(), False),
    T.StructField(_BAND, T.IntegerType(), False),
    T.StructField(_END, T.DateType(), False),
    T.StructField(DAY, T.DateType(), False),
    T.StructField(LEVEL, T.IntegerType(), False),
    T.StructField(BUCKET, T.IntegerType(), False),
])


@dataclass
class Held:
    """One source's stored tiles as the manifest lists them."""

    fingerprint: str
    days: dict[int, str]  # epoch day -> signature of the source partition it was computed from
    tiles: set[tuple[int, int]]  # (start, level >= 1)
    # Distinct values: each measure's values in the order of their bits (append-only), and the
    # measures with too many values for bits, kept as arrays.
    domains: dict[str, list[Any]] = field(default_factory=dict)
    wide: list[str] = field(default_factory=list)

    @classmethod
    def from_manifest(cls, entry: dict[str, Any] | None) -> Held | None:
        if not entry:
            return None
        return cls(
            entry["fingerprint"],
            {int(day): signature for day, signature in entry["days"].items()},
            {(int(start), int(level)) for level, starts in entry["tiles"].items() for start in starts},
            dict(entry.get("domains", {})),
            list(entry.get("wide", [])),
        )

    def to_manifest(self) -> dict[str, Any]:
        by_level: dict[str, list[int]] = defaultdict(list)
        for start, level in sorted(self.tiles):
            by_level[str(level)].append(start)
        return {
            "fingerprint": self.fingerprint,
            "days": {str(day): self.days[day] for day in sorted(self.days)},
            "tiles": dict(by_level),
            "domains": self.domains,
            "wide": sorted(self.wide),
        }


@dataclass
class Work:
    """What one run computes for a source, and the manifest entry after it."""

    days: list[int]  # day tiles (and their buckets) to compute from events
    tiles: dict[int, list[int]]  # level >= 1 -> starts to build from their halves
    stored: set[tuple[int, int]]  # (start, level) read from the table, level 0 for a day
    reset: bool  # the source's stored partials are of another fingerprint: replace them all
    after: Held

    @property
    def empty(self) -> bool:
        return not self.days and not self.tiles


def work(tiles: SourceTiles, pieces: Iterable[tuple[date, int]], held: Held | None, signatures: dict[int, str]) -> Work:
    """Which tiles to compute, from the pieces the dates read and what the table validly holds.

    Args:
        tiles: the source's plan.
        pieces: (piece day, level) of every piece read; a sub-day bucket needs its day computed.
        held: the manifest's entry for the source, None when it has none.
        signatures: epoch day -> signature of the source's partition now (absent: no partition).
    """
    reset = held is None or held.fingerprint != tiles.fingerprint
    valid_days = {} if reset else {
        day: signature for day, signature in held.days.items() if signatures.get(day, NO_PARTITION) == signature
    }
    valid_tiles = set() if reset else {
        (start, level) for start, level in held.tiles if all(d in valid_days for d in range(start, start + 2**level))
    }
    new_days: set[int] = set()
    new_tiles: dict[int, set[int]] = defaultdict(set)
    stored: set[tuple[int, int]] = set()

    def need(start: int, level: int) -> None:
        if level <= 0:
            if start in valid_days:
                stored.add((start, 0))
            else:
                new_days.add(start)
            return
        if (start, level) in valid_tiles:
            stored.add((start, level))
            return
        if start in new_tiles[level]:
            return
        new_tiles[level].add(start)
        half = 2 ** (level - 1)
        need(start, level - 1)
        need(start + half, level - 1)

    for day, level in {(epoch_day(d), level) for d, level in pieces}:
        need(day, level)
    built = {(start, level) for level, starts in new_tiles.items() for start in starts}
    after = Held(
        tiles.fingerprint,
        {**valid_days, **{day: signatures.get(day, NO_PARTITION) for day in new_days}},
        valid_tiles | built,
    )
    return Work(
        sorted(new_days), {level: sorted(starts) for level, starts in sorted(new_tiles.items()) if starts},
        stored, reset, after,
    )


# Column types whose values survive the manifest's JSON unchanged, so that a value keeps its bit.
_BIT_TYPES = ("string", "boolean", "tinyint", "smallint", "int", "bigint", "float", "double")
_BITS = 63


def planned(
    feature_set: FeatureSet,
    name: str,
    source: SourceConfig,
    events: DataFrame,
    dates: list[date],
    held: Held | None,
    signatures: dict[int, str],
) -> tuple[SourceTiles, list[tuple], Work]:
    """One source's plan, the pieces `dates` read, and the work to do, with its distinct values settled.

    A distinct count keeps one bit per value (a bitwise OR per tile, as the full computation
    does for small domains) while the values seen fit in 63 bits: each value keeps the bit it
    was given first (the manifest lists them in order), and a day with new values extends the
    list. A measure with more values, or of a type JSON would not give back unchanged, keeps
    its values as sorted arrays instead (slower to combine); a measure that outgrows its bits
    changes the source's fingerprint, so its tiles are computed again.
    """
    value_types = dict(events.dtypes)
    wide = set(held.wide) if held else set()
    while True:
        plan = source_tiles(feature_set, name, source, value_types, wide)
        rows = plan_rows(plan, dates)
        todo = work(plan, {(row[3], row[4]) for row in rows}, held, signatures)
        known = {} if todo.reset else held.domains  # type: ignore[union-attr]
        counted = [m for m in plan.measures if "distinct" in m.needs and m.label.startswith("p")]
        outgrown = {m.label for m in counted if value_types.get(m.column or "") not in _BIT_TYPES}
        new_days = [from_epoch_day(day) for day in todo.days]
        domains: dict[str, list[Any]] = {}
        for measure in counted:
            if measure.label in outgrown:
                continue
            domain = list(known.get(measure.label, []))
            if new_days:
                relevant = prepared_events(events, source, plan.keys, min(new_days), max(new_days)).where(
                    F.col(source.partition).isin(new_days)
                )
                value = measure.value(value_types)
                found = (
                    relevant.where(measure.selected() & value.isNotNull()).select(value.alias("v")).distinct()
                    .limit(_BITS + len(domain) + 1).collect()
                )
                domain += sorted({row["v"] for row in found} - set(domain))
            if len(domain) > _BITS:
                outgrown.add(measure.label)
            else:
                domains[measure.label] = domain
                measure.domain = tuple(domain)
        if not outgrown:
            todo.after.domains = domains
            todo.after.wide = sorted(wide)
            return plan, rows, todo
        wide |= outgrown


# A run missing more day tiles than this (a first run, a long gap, changed definitions) stores
# them first, this many days per commit: a run killed meanwhile keeps what it committed, and no
# single job holds the whole history's tiles at once.
BATCH_DAYS = 64


@dataclass
class DayBatch:
    """Day tiles of one source to compute and commit ahead of the assembly."""

    source: str
    plan: SourceTiles
    days: list[int]
    replaced: str  # SQL: the stored rows they replace
    entry: dict[str, Any]  # the source's manifest entry once they are stored


def day_batches(
    feature_set: FeatureSet,
    sources: dict[str, SourceConfig],
    frames: dict[str, DataFrame],
    dates: list[date],
    held: dict[str, Held | None],
    signatures: dict[str, dict[int, str]],
    batch_days: int | None = None,
) -> list[DayBatch]:
    """The missing day tiles of `dates`' windows in batches, for sources missing more than `batch_days`.

    Each batch's manifest entry holds what the table validly holds once it and the batches
    before it are stored; a rerun after a kill finds those days stored and skips them.
    `batch_days`: BATCH_DAYS by default.
    """
    batch_days = batch_days or BATCH_DAYS
    batches = []
    for name in sorted({spec.source for spec in feature_set.aggregates}):
        plan, _, todo = planned(feature_set, name, sources[name], frames[name], dates, held.get(name),
                                signatures.get(name, {}))
        if len(todo.days) <= batch_days:
            continue
        built = {(start, level) for level, starts in todo.tiles.items() for start in starts}
        days = {day: signature for day, signature in todo.after.days.items() if day not in set(todo.days)}
        for first in range(0, len(todo.days), batch_days):
            chunk = todo.days[first:first + batch_days]
            days.update({day: todo.after.days[day] for day in chunk})
            entry = Held(plan.fingerprint, dict(days), todo.after.tiles - built, todo.after.domains, todo.after.wide)
            replaced = _replaced(name, Work(chunk, {}, set(), todo.reset and first == 0, entry))
            batches.append(DayBatch(name, plan, chunk, replaced, entry.to_manifest()))
    return batches


def day_tiles(events: DataFrame, tiles: SourceTiles, source: SourceConfig, days: list[date]) -> DataFrame:
    """The day tiles (and sub-day buckets) of `days` from the source's events.

    Args:
        events: the source table; only the partitions of `days` are read.
    """
    relevant = prepared_events(events, source, tiles.keys, min(days), max(days)).where(F.col(source.partition).isin(days))
    needs_time = tiles.bucket_micros is not None or any(
        partial in m.needs for m in tiles.measures for partial in ("first_time", "last_time", "last_order")
    )
    if needs_time:
        relevant = relevant.withColumn(_TIME, event_micros(F.col(source.timestamp)))
    partials = _event_partials(relevant, source, tiles.keys, tiles.measures)
    daily = partials.groupBy(*tiles.keys, F.col(_DAY).alias(DAY)).agg(*_combined(tiles.measures, None))
    frames = [daily.withColumn(LEVEL, F.lit(0)).withColumn(BUCKET, F.lit(0))]
    if tiles.bucket_micros is not None:
        bucket = F.floor((F.col(_TIME) - F.unix_date(F.col(_DAY)).cast("long") * DAY_MICROS) / F.lit(tiles.bucket_micros))
        buckets = partials.groupBy(*tiles.keys, F.col(_DAY).alias(DAY), bucket.cast("int").alias(BUCKET)).agg(
            *_combined(tiles.measures, None)
        )
        frames.append(buckets.withColumn(LEVEL, F.lit(SUB_DAY)))
    return _union(frames).transform(lambda frame: _layout(frame, tiles))


def coarser_tiles(halves: DataFrame, tiles: SourceTiles, level: int, starts: list[int]) -> DataFrame:
    """The tiles of `level` starting on epoch days `starts`, from the tiles of level - 1 they hold."""
    span = 2**level
    start = F.date_sub(F.col(DAY), F.pmod(F.unix_date(F.col(DAY)), F.lit(span)))
    merged = (
        halves.where(F.col(LEVEL) == level - 1)
        .withColumn("_start", start)
        .where(F.col("_start").isin([from_epoch_day(s) for s in starts]))
        .groupBy(*tiles.keys, F.col("_start").alias(DAY))
        .agg(*_combined(tiles.measures, F.col("_start")))
    )
    return _layout(merged.withColumn(LEVEL, F.lit(level)).withColumn(BUCKET, F.lit(0)), tiles)


def _layout(frame: DataFrame, tiles: SourceTiles) -> DataFrame:
    # Source, level and bucket lead, so Delta's file statistics on them let a write replacing
    # some tiles skip files that hold none of them.
    return frame.select(
        F.lit(tiles.source).alias(SOURCE), F.col(LEVEL).cast("int"), F.col(BUCKET).cast("int"),
        *tiles.keys, F.col(DAY), *tiles.columns,
    )


def _union(frames: list[DataFrame]) -> DataFrame:
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _combined(measures: list[_Measure], start: Column | None) -> list[Column]:
    """Aggregates merging rows of partials into one: events into a day tile or bucket (`start`
    None), or tiles into a coarser one starting on day `start`.

    A tile keeps the instant of its latest value as `last_order` (a long): tiles are disjoint in
    time, so no two tiles' latest values tie, and only events need the full order (time, then
    value) that `features.engine` resolves ties at the same instant with.
    """
    aggregates: list[Column] = []
    for measure in measures:
        for partial in sorted(measure.needs):
            name = measure.prefix(partial)
            column = F.col(name)
            if partial in _ADDITIVE:
                aggregate = F.sum(column)
            elif partial in ("min", "first_day", "first_time"):
                aggregate = F.min(column)
            elif partial == "last_order" and start is None:
                aggregate = F.max(F.when(column.isNotNull(), F.col(_TIME)))
            elif partial in ("max", "last_order", "last_day", "last_time"):
                aggregate = F.max(column)
            elif partial == "last":
                aggregate = F.max_by(column, F.col(measure.prefix("last_order")))
            elif partial == "distinct" and measure.domain is not None:
                aggregate = F.bit_or(column)
            elif partial == "distinct":
                values = F.collect_set(column) if start is None else F.flatten(F.collect_list(column))
                aggregate = F.array_sort(F.array_distinct(values))
            elif partial == "weighted":
                # sum((d - start) * y) of the daily series the trend fits; a day tile's is 0.
                series = F.col(measure.prefix("total" if measure.column else "events"))
                aggregate = F.lit(0).cast("long") if start is None else F.sum(
                    column + F.datediff(F.col(DAY), start).cast("long") * series
                )
            else:  # pragma: no cover - `_measures` names no other partial
                raise ValueError(partial)
            aggregates.append(aggregate.alias(name))
    return aggregates


def windowed_features(stored: DataFrame, tiles: SourceTiles, plan: DataFrame) -> DataFrame:
    """The source's aggregate features per (entity, ds) from the pieces `plan` lists.

    Args:
        stored: rows of this source's tiles and buckets, holding at least those the plan reads.
        plan: `plan_rows` as a frame (PLAN_SCHEMA).
    """
    rows = stored.join(F.broadcast(plan), [DAY, LEVEL, BUCKET])
    for measure in tiles.measures:
        if "weighted" in measure.needs:
            # The full computation's sum(age * y), age = window end - day, from a piece's
            # total and its weights relative to its first day: (end - start) * y - weights.
            series = F.col(measure.prefix("total" if measure.column else "events"))
            weights = F.col(measure.prefix("weighted"))
            rows = rows.withColumn(
                measure.prefix("weighted"), F.datediff(F.col(_END), F.col(DAY)).cast("long") * series - weights,
            )
    return rows.groupBy(*tiles.keys, DATE).agg(*[
        _windowed(spec, tiles.of_spec[spec.name], *reversed(tiles.window_bands(spec))) for spec in tiles.specs
    ])


def plan_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, PLAN_SCHEMA)


@dataclass
class Assembly:
    """A run's features assembled from tiles, and the tiles it computed to store."""

    features: DataFrame
    new_tiles: DataFrame | None  # None when every tile read was stored and valid
    replaced: str  # SQL: the stored rows the new tiles replace
    manifest: dict[str, Any]  # the table's manifest once they are stored
    cached: list[DataFrame]
    # Per source: days computed from events, tiles built from halves, stored tiles read, and
    # whether its stored tiles were of another fingerprint (for the run's record).
    summary: dict[str, dict[str, Any]]

    def release(self) -> None:
        """Drop the cached tiles, once written."""
        for frame in self.cached:
            frame.unpersist()


def assemble(
    feature_set: FeatureSet,
    sources: dict[str, SourceConfig],
    frames: dict[str, DataFrame],
    entities: DataFrame,
    dates: list[date],
    held: dict[str, Held | None],
    signatures: dict[str, dict[int, str]],
    stored: DataFrame | None,
) -> Assembly:
    """The features of `dates` from tiles: the valid stored ones, and the others computed here.

    With nothing stored (`held` empty) this is a backfill from partials: each day's events are
    aggregated once into day tiles, coarser tiles are built from them, and every date's
    windows are assembled from a few tiles, without expanding events to dates.

    Args:
        feature_set: the expanded definitions.
        sources: the use case's sources, by name.
        frames: each source's table, by name (the events sources the aggregates read).
        entities: the entities source, the spine.
        dates: the dates to compute.
        held: each source's manifest entry (what `stored` validly holds).
        signatures: each source's partition signatures now, by epoch day.
        stored: the `feature_partials` table, None when there is none.

    The new tiles are cached (`Assembly.cached`): coarser tiles, the features and the write all read them.
    """
    spark = entities.sparkSession
    windowed: list[DataFrame] = []
    cached: list[DataFrame] = []
    new_frames: list[DataFrame] = []
    conditions: list[str] = []
    manifest = {name: entry.to_manifest() for name, entry in held.items() if entry is not None}
    summary: dict[str, dict[str, Any]] = {}
    for name in sorted({spec.source for spec in feature_set.aggregates}):
        source = sources[name]
        plan, rows, todo = planned(feature_set, name, source, frames[name], dates, held.get(name),
                                   signatures.get(name, {}))
        manifest[name] = todo.after.to_manifest()
        summary[name] = {
            "days_computed": len(todo.days), "tiles_built": sum(len(starts) for starts in todo.tiles.values()),
            "tiles_read": len(todo.stored), "recomputed_all": todo.reset and held.get(name) is not None,
        }
        held_rows = None
        if todo.stored and stored is not None:
            # The days alone first, as a filter of its own: Delta prunes partitions on whole
            # conjuncts, and the tiles' condition mixes the day with the level.
            days = sorted({from_epoch_day(start) for start, _ in todo.stored})
            held_rows = (
                stored.where(F.col(DAY).isin(days))
                .where((F.col(SOURCE) == name) & _tiles_in(todo.stored, plan))
                .select(*_row_columns(plan))
            )
        built = _built_tiles(frames[name], source, plan, todo, held_rows, cached)
        if built is not None:
            new_frames.append(built)
            conditions.append(_replaced(name, todo))
        available = [frame for frame in (held_rows, built) if frame is not None]
        if available:
            windowed.append(windowed_features(_union(available), plan, plan_frame(spark, rows)))
    _, entities_source = next((n, s) for n, s in sources.items() if s.kind == "entities")
    features = complete_features(feature_set, windowed, entities, entities_source, dates, sources, frames)
    new_tiles = None
    for frame in new_frames:
        new_tiles = frame if new_tiles is None else new_tiles.unionByName(frame, allowMissingColumns=True)
    return Assembly(features, new_tiles, " OR ".join(f"({c})" for c in conditions), manifest, cached, summary)


def _row_columns(plan: SourceTiles) -> list[str]:
    return [SOURCE, LEVEL, BUCKET, *plan.keys, DAY, *plan.columns]


def _tiles_in(which: set[tuple[int, int]], plan: SourceTiles) -> Column:
    """Rows of the tiles `which` ((start, level), level 0 for a day, with its sub-day buckets)."""
    by_level: dict[int, list[date]] = {}
    for start, level in which:
        by_level.setdefault(level, []).append(from_epoch_day(start))
        if level == 0 and plan.bucket_micros is not None:
            by_level.setdefault(SUB_DAY, []).append(from_epoch_day(start))
    condition = F.lit(False)
    for level, days in sorted(by_level.items()):
        condition = condition | ((F.col(LEVEL) == level) & F.col(DAY).isin(sorted(days)))
    return condition


def _replaced(name: str, work: Work) -> str:
    """SQL for the stored rows the new tiles of source `name` replace: all of the source's after a reset."""
    if work.reset:
        return f"{SOURCE} = '{name}'"
    parts = []
    by_level = {0: work.days, **work.tiles}
    for level, starts in sorted(by_level.items()):
        if not starts:
            continue
        levels = f"{LEVEL} IN (0, {SUB_DAY})" if level == 0 else f"{LEVEL} = {level}"
        days = ", ".join(f"DATE'{from_epoch_day(s).isoformat()}'" for s in starts)
        parts.append(f"({levels} AND {DAY} IN ({days}))")
    return f"{SOURCE} = '{name}' AND ({' OR '.join(parts)})"


def _built_tiles(
    events: DataFrame, source: SourceConfig, plan: SourceTiles, work: Work, stored: DataFrame | None,
    cached: list[DataFrame],
) -> DataFrame | None:
    """The tiles `work` lists, from events (days) and then level by level from their halves.

    Each level is cached (and listed in `cached`): the next level, the assembly and the write read it.
    """
    if work.empty:
        return None
    levels: list[DataFrame] = []
    if work.days:
        levels.append(day_tiles(events, plan, source, [from_epoch_day(d) for d in work.days]))
        cached.append(levels[-1].persist(StorageLevel.MEMORY_AND_DISK))
    for level, starts in work.tiles.items():
        halves = [frame.where(F.col(LEVEL) == level - 1) for frame in (*levels, stored) if frame is not None]
        levels.append(coarser_tiles(_union(halves), plan, level, starts))
        cached.append(levels[-1].persist(StorageLevel.MEMORY_AND_DISK))
    return _union(levels)


