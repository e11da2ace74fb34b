"""The `features` table: which feature set it holds, and computing, checking and writing dates of it.

The features job runs this for the dates asked; the scoring job runs it for dates whose
features are missing when `scoring.compute_missing_features` is set. Each write replaces
exactly the dates computed, in one commit that records the feature-set fingerprint.
"""

from __future__ import annotations

from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import tiles
from features.definitions import FeatureSet, check_columns, expand
from features.engine import DATE, compute_features
from features.events import event_features
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import ConfigError, DataCheckError
from nightjar.keys import all_present
from validation import gate


def held_feature_set(config: Config) -> str | None:
    """The fingerprint of the feature set the table holds now, or None for a new table."""
    metadata = tables.last_commit_metadata(config, config.tables.features)
    return (metadata or {}).get("feature_set")


def require_feature_set(config: Config, fingerprint: str, remedy: str) -> None:
    """ConfigError when the table holds another feature set than `fingerprint` (a new table holds none).

    `remedy` tells the user what to run, which depends on the job that found the mismatch.
    """
    held = held_feature_set(config)
    if held is not None and held != fingerprint:
        raise ConfigError(
            f"table {config.tables.features!r} holds feature set {held}, the configuration defines "
            f"{fingerprint}: {remedy}"
        )


def require_source_columns(config: Config, frames: dict[str, DataFrame]) -> None:
    """ConfigError when a source lacks the key, timestamp or partition column its configuration names."""
    for name, frame in frames.items():
        source = config.use_case.sources[name]
        expected = [*(("entity.key", key) for key in config.use_case.entity.keys),
                    ("timestamp", source.timestamp), ("partition", source.partition)]
        for role, column in expected:
            if column not in frame.columns:
                raise ConfigError(
                    f"use_case.sources.{name} ({role}): table {source.table!r} has no column {column!r} "
                    f"(columns: {', '.join(frame.columns)})"
                )


def require_unique_entities(frame: DataFrame, table: str, keys: list[str]) -> None:
    """DataCheckError when an entities table lists an entity twice (its features would be doubled)."""
    duplicate = frame.where(all_present(keys)).groupBy(*keys).count().where("count > 1").first()
    if duplicate is not None:
        entity = ", ".join(f"{key}={duplicate[key]}" for key in keys)
        raise DataCheckError(f"table {table!r}: {entity} appears {duplicate['count']} times")


def tiled_features(
    spark: SparkSession, config: Config, feature_set: FeatureSet, frames: dict[str, DataFrame], todo: list[date],
) -> tiles.Assembly:
    """The features of `todo` assembled from the stored tiles, with the tiles missing or stale computed first."""
    sources = config.use_case.sources
    table = config.tables.partials
    # Maintenance commits (OPTIMIZE, VACUUM) carry no manifest: look past them.
    manifest = (tables.last_commit_metadata(config, table, key="manifest", depth=100) or {}).get("manifest") or {}
    signatures = {
        name: {
            tiles.epoch_day(day): signature
            for day, signature in tables.partition_signatures(config, sources[name].table, sources[name].partition).items()
        }
        for name in sorted({spec.source for spec in feature_set.aggregates})
    }
    held_before = _held(manifest)
    batches = tiles.day_batches(feature_set, sources, frames, todo, held_before, signatures)
    for batch in batches:
        days = [tiles.from_epoch_day(day) for day in batch.days]
        manifest = {**manifest, batch.source: batch.entry}
        tables.replace_where(
            # One file per day partition and write, for the nightly reads of few rows from many days.
            tiles.day_tiles(frames[batch.source], batch.plan, sources[batch.source], days).repartition(tiles.DAY),
            config, table, tiles.DAY, batch.replaced, metadata={"manifest": manifest}, add_columns=True,
        )
    entities_name, _ = config.use_case.source_of_kind("entities")
    assembly = tiles.assemble(
        feature_set, sources, frames, frames[entities_name], todo,
        held=_held(manifest),
        signatures=signatures,
        stored=tables.read(spark, config, table) if manifest else None,
    )
    for batch in batches:
        assembly.summary[batch.source]["days_computed"] += len(batch.days)
        before = held_before.get(batch.source)
        assembly.summary[batch.source]["recomputed_all"] = before is not None and before.fingerprint != batch.plan.fingerprint
    return assembly


def _held(manifest: dict) -> dict[str, tiles.Held | None]:
    return {name: tiles.Held.from_manifest(entry) for name, entry in manifest.items()}


def full_features(config: Config, feature_set: FeatureSet, frames: dict[str, DataFrame], todo: list[date]) -> tiles.Assembly:
    """The features of `todo` from all the events of their windows (`features.incremental: false`); no tiles."""
    sources = config.use_case.sources
    if feature_set.event_source is not None:
        # Buckets of keys per task: a few per shuffle partition keeps each task's history small.
        features = event_features(feature_set, sources, frames, todo, buckets=4 * config.spark.shuffle_partitions)
        return tiles.Assembly(features, None, "", {}, [], {})
    entities_name, entities_source = config.use_case.source_of_kind("entities")
    features = compute_features(
        feature_set, sources,
        {name: frames[name] for name in feature_set.sources if sources[name].kind != "entities"},
        frames[entities_name], entities_source, todo,
    )
    return tiles.Assembly(features, None, "", {}, [], {})


def validate_sources(context: cli.JobContext, frames: dict[str, DataFrame], dates: list[date]) -> None:
    """Run the validation gate on the source partitions of `dates`: one pass per table over all of them.

    Raises ValidationFailed (exit 3) on a blocking failure, before any feature is computed.
    """
    config = context.config
    for name, frame in sorted(frames.items()):
        source = config.use_case.sources[name]
        if gate.has_suite(config, "source", source.table):
            partitions = frame.where(F.col(source.partition).isin(dates))
            gate.validate_dates(context.spark, config, "source", source.table, partitions, dates,
                                context.record.run_id, checks=context.record.checks)


def compute_and_write(context: cli.JobContext, todo: list[date], rebuild: bool = False) -> int:
    """Compute the features of `todo` and replace those dates in the table; returns its new version.

    The scoring job calls this too, for dates whose features are missing when it runs.
    """
    config, spark = context.config, context.spark
    feature_set = expand(config)
    sources = config.use_case.sources
    # The rows: the entities of an entities source, or at the event grain the events scored.
    spine_name = feature_set.event_source or config.use_case.source_of_kind("entities")[0]
    frames = {name: tables.read(spark, config, sources[name].table) for name in {*feature_set.sources, spine_name}}
    require_source_columns(config, frames)
    for name in feature_set.sources:
        context.record.input_versions[sources[name].table] = tables.current_version(config, sources[name].table) or 0
        tables.require_source_partitions(config, frames[name], sources[name], todo)
    with context.timed("validate_sources"):
        validate_sources(context, frames, todo)
    check_columns(feature_set, {name: frame.schema for name, frame in frames.items()})
    spine = frames[spine_name]
    if feature_set.event_source is not None:
        spine = spine.where(F.col(sources[spine_name].partition).isin(todo))
    require_unique_entities(spine, sources[spine_name].table, config.use_case.entity.keys)

    context.progress(
        f"computing {len(feature_set.names)} features (set {feature_set.fingerprint}) for {len(todo)} dates "
        f"{todo[0]}..{todo[-1]}"
    )
    with context.timed("features_compute_and_write"):
        if config.features.incremental:
            assembly = tiled_features(spark, config, feature_set, frames, todo)
        else:
            assembly = full_features(config, feature_set, frames, todo)
        features = assembly.features
        if config.features.incremental:
            context.record.checks.append({"partials": assembly.summary})
        for name, done in assembly.summary.items():
            context.progress(
                f"partials of {name}: {done['days_computed']} days computed from events, {done['tiles_built']} "
                f"tiles built, {done['tiles_read']} stored tiles read"
                + (" (definitions changed: all recomputed)" if done["recomputed_all"] else "")
            )
        checked = gate.has_suite(config, "features", config.tables.features)
        if checked:
            # Computed once, checked, then written from the cache: the gate sees exactly what is written.
            features = features.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            if checked:
                with context.timed("validate_features"):
                    gate.validate_dates(spark, config, "features", config.tables.features, features, todo,
                                        context.record.run_id, checks=context.record.checks)
            if assembly.new_tiles is not None:
                # Before the features: a run killed between the two commits finds its tiles stored.
                context.record.output_versions[config.tables.partials] = tables.replace_where(
                    assembly.new_tiles.repartition(tiles.DAY), config, config.tables.partials, tiles.DAY, assembly.replaced,
                    metadata={"manifest": assembly.manifest, "run_id": context.record.run_id},
                    add_columns=True,
                )
            metadata = {
                "feature_set": feature_set.fingerprint,
                "dates": [d.isoformat() for d in todo],
                "run_id": context.record.run_id,
                "code_version": context.record.code_version,
            }
            if rebuild:
                version = tables.overwrite(features, config, config.tables.features, partition_by=DATE, metadata=metadata)
            else:
                version = tables.replace_partitions(features, config, config.tables.features, DATE, todo, metadata=metadata)
        finally:
            features.unpersist()
            assembly.release()
    context.record.output_versions[config.tables.features] = version
    written = tables.read(spark, config, config.tables.features).where(F.col(DATE).isin(todo)).count()
    context.record.row_counts[config.tables.features] = written
    context.progress(
        f"wrote {written:,} rows ({len(todo)} dates) to {tables.catalog_name(config, config.tables.features)} "
        f"version {version} in {context.record.timings['features_compute_and_write']:.1f}s"
    )
    return version
