"""Compute the `features` table for a date or a range of dates, or discover candidate features.

    ./spark-submit.sh features --date D            # one nightly date
    ./spark-submit.sh features --start S --end E   # a backfill, in one pass over the history
        [--force]     recompute dates already present
        [--rebuild]   replace the whole table (needed after the feature definitions changed)
    ./spark-submit.sh features discover [--sample N] [--date D] [--output FILE]
                      # featuretools DFS on a sample; writes candidate definitions to review

Each run replaces exactly the dates it computed, in one commit, and records the feature-set
fingerprint (definitions + engine version) with the commit and in `runs`. Before that, the
validation gate checks the source partitions of those dates (`validation.suites.source`) and
the computed features (`validation.suites.features`); a blocking failure exits 3 and writes nothing.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import yaml
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import discovery
from features.definitions import FeatureSet, check_columns, expand
from features.engine import DATE, compute_features
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT
from nightjar.errors import ConfigError, DataCheckError, MissingInputError, UsageError
from validation import gate

JOB = "features"


DEFAULT_DISCOVERY_OUTPUT = "build/discovered_features.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["compute", "discover"], default="compute")
    parser.add_argument("--rebuild", action="store_true", help="replace the whole feature table")
    parser.add_argument("--sample", type=int, default=1000, help="discover: entities in the sample")
    parser.add_argument("--output", default=DEFAULT_DISCOVERY_OUTPUT, help="discover: the YAML file to write")


def existing_feature_set(context: cli.JobContext) -> str | None:
    """The fingerprint of the feature set the table holds now, or None for a new table."""
    metadata = tables.last_commit_metadata(context.spark, context.config, context.config.tables.features)
    return (metadata or {}).get("feature_set")


def dates_to_compute(context: cli.JobContext, feature_set: FeatureSet) -> list[date]:
    """The requested dates less those already present (all of them with --force or --rebuild)."""
    config, spark, args = context.config, context.spark, context.args
    if args.rebuild or not tables.exists(spark, config, config.tables.features):
        return context.dates
    held = existing_feature_set(context)
    if held != feature_set.fingerprint:
        raise ConfigError(
            f"table {config.tables.features!r} holds feature set {held}, the configuration defines "
            f"{feature_set.fingerprint}: rerun with --rebuild to recompute the table with the new definitions"
        )
    if args.force:
        return context.dates
    present = present_dates(tables.read(spark, config, config.tables.features), DATE, context.dates)
    return [d for d in context.dates if d not in present]


def present_dates(frame: DataFrame, partition: str, dates: list[date]) -> set[date]:
    """Which of `dates` have rows in `frame`; the partition filter keeps Spark to those partitions."""
    return {row[0] for row in frame.where(F.col(partition).isin(dates)).select(partition).distinct().collect()}


def require_partitions(
    frame: DataFrame, table: str, partition: str, dates: list[date], present: set[date] | None = None,
) -> None:
    """MissingInputError naming the first date for which `table` has no rows.

    `present`: the dates that count as present, when known otherwise; the validation gate
    passes the partitions of the table's Delta log, so that a partition that exists but holds
    no rows is reported as empty by its expectations (exit 3) rather than as missing (exit 4).
    """
    present = present_dates(frame, partition, dates) if present is None else present
    missing = [d for d in dates if d not in present]
    if missing:
        more = f" (and {len(missing) - 1} more dates)" if len(missing) > 1 else ""
        raise MissingInputError(f"table {table!r} has no partition {partition}={missing[0]}{more}")


def require_source_columns(config: Config, frames: dict[str, DataFrame]) -> None:
    """ConfigError when a source lacks the key, timestamp or partition column its configuration names."""
    for name, frame in frames.items():
        source = config.use_case.sources[name]
        expected = {"entity.key": config.use_case.entity.key, "timestamp": source.timestamp, "partition": source.partition}
        for role, column in expected.items():
            if column not in frame.columns:
                raise ConfigError(
                    f"use_case.sources.{name} ({role}): table {source.table!r} has no column {column!r} "
                    f"(columns: {', '.join(frame.columns)})"
                )


def require_unique_entities(frame: DataFrame, table: str, key: str) -> None:
    """DataCheckError when an entities table lists an entity twice (its features would be doubled)."""
    duplicate = frame.where(F.col(key).isNotNull()).groupBy(key).count().where("count > 1").first()
    if duplicate is not None:
        raise DataCheckError(f"table {table!r}: {key}={duplicate[0]} appears {duplicate[1]} times")


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


def discover(context: cli.JobContext) -> None:
    """Run featuretools DFS on a sample of entities and write candidate definitions to review."""
    config, spark, args = context.config, context.spark, context.args
    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    key = config.use_case.entity.key
    last_day = context.dates[-1] if context.dates else None
    frames = {}
    entities_name, entities_source = config.use_case.source_of_kind("entities")
    entities = tables.read(spark, config, entities_source.table)
    # A deterministic sample: the entities with the smallest hashes of their keys.
    sample = entities.orderBy(F.xxhash64(key), key).limit(args.sample)
    frames[entities_name] = sample.toPandas()
    for name, source in config.use_case.sources.items():
        if source.kind != "events":
            continue
        events = tables.read(spark, config, source.table).join(sample.select(key), key, "left_semi")
        if last_day:
            events = events.where(F.col(source.partition) <= F.lit(last_day))
        frames[name] = events.toPandas()
    context.record.row_counts = {name: len(frame) for name, frame in frames.items()}
    context.progress(f"deep feature synthesis on {len(frames[entities_name]):,} entities "
                     f"({', '.join(f'{n}: {len(f):,} rows' for n, f in frames.items())})")
    with context.timed("discover"):
        es = discovery.entityset(config, frames)
        candidates = discovery.synthesize(config, es)
        proposal = discovery.to_definitions(config, candidates, es)
    output = Path(args.output)
    if not output.is_absolute():
        output = PROJECT_ROOT / output
    output.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Candidate features found by featuretools DFS on {len(frames[entities_name])} sampled entities.\n"
        "# Review, then merge the `features` block into conf/base.yaml (or an environment file).\n"
    )
    output.write_text(header + yaml.safe_dump(proposal, sort_keys=False))
    supported = sum(len(b["functions"]) for b in proposal["features"]["aggregates"]) + len(proposal["features"]["attributes"])
    context.progress(f"{len(candidates)} candidates: {supported} as Nightjar definitions, "
                     f"{len(proposal['unsupported'])} unsupported; written to {output}")


def compute(context: cli.JobContext, todo: list[date], rebuild: bool = False) -> int:
    """Compute the features of `todo` and replace those dates in the table; returns its new version.

    The scoring job calls this too, for dates whose features are missing when it runs.
    """
    config, spark = context.config, context.spark
    feature_set = expand(config)
    sources = config.use_case.sources
    entities_name, entities_source = config.use_case.source_of_kind("entities")
    frames = {name: tables.read(spark, config, sources[name].table) for name in {*feature_set.sources, entities_name}}
    require_source_columns(config, frames)
    for name in feature_set.sources:
        context.record.input_versions[sources[name].table] = tables.version(spark, config, sources[name].table) or 0
        if sources[name].kind == "events":
            source = sources[name]
            present = tables.partition_dates(config, source.table, source.partition)
            require_partitions(frames[name], source.table, source.partition, todo, present=present)
    with context.timed("validate_sources"):
        validate_sources(context, frames, todo)
    check_columns(feature_set, {name: frame.schema for name, frame in frames.items()})
    require_unique_entities(frames[entities_name], entities_source.table, config.use_case.entity.key)

    context.progress(
        f"computing {len(feature_set.names)} features (set {feature_set.fingerprint}) for {len(todo)} dates "
        f"{todo[0]}..{todo[-1]}"
    )
    with context.timed("features_compute_and_write"):
        features = compute_features(
            feature_set, sources,
            {name: frames[name] for name in feature_set.sources if sources[name].kind == "events"},
            frames[entities_name], entities_source, todo,
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
    context.record.output_versions[config.tables.features] = version
    written = tables.read(spark, config, config.tables.features).where(F.col(DATE).isin(todo)).count()
    context.record.row_counts[config.tables.features] = written
    context.progress(
        f"wrote {written:,} rows ({len(todo)} dates) to {config.lake.database}.{config.tables.features} "
        f"version {version} in {context.record.timings['features_compute_and_write']:.1f}s"
    )
    return version


def run(context: cli.JobContext) -> None:
    if context.args.action == "discover":
        discover(context)
        return
    if not context.dates:
        raise UsageError("a date is required: --date YYYY-MM-DD or --start/--end")
    feature_set = expand(context.config)
    todo = dates_to_compute(context, feature_set)
    context.record.checks.append({"feature_set": feature_set.fingerprint, "features": len(feature_set.names)})
    if not todo:
        context.progress(f"all {len(context.dates)} dates already computed; --force recomputes them")
        return
    compute(context, todo, rebuild=context.args.rebuild)


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
