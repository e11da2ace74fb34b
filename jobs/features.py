"""Compute the `features` table for a date or a range of dates, or discover candidate features.

    ./spark-submit.sh features --date D            # one nightly date
    ./spark-submit.sh features --start S --end E   # a backfill, in one pass over the history
        [--force]     recompute dates already present
        [--rebuild]   replace the whole table (needed after the feature definitions changed)
    ./spark-submit.sh features discover [--sample N] [--date D] [--output FILE]
                      # featuretools DFS on a sample; writes candidate definitions to review

Each date's windows are assembled from partial aggregates stored per entity and tile in
`feature_partials` (computing first the tiles missing or made stale by a corrected source
partition), so a nightly date reads one day of events (README: "Incremental"). Each run
replaces exactly the dates it computed, in one commit, and records the feature-set
fingerprint (definitions + engine version) with the commit and in `runs`. Before that, the
validation gate checks the source partitions of those dates (`validation.suites.source`) and
the computed features (`validation.suites.features`); a blocking failure exits 3 and writes nothing.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import yaml
from pyspark.sql import functions as F

from features import store
from features.definitions import FeatureSet, expand
from features.engine import DATE
from nightjar import cli, tables
from nightjar.config_loader import PROJECT_ROOT
from nightjar.errors import UsageError

JOB = "features"


DEFAULT_DISCOVERY_OUTPUT = "build/discovered_features.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["compute", "discover"], default="compute")
    parser.add_argument("--rebuild", action="store_true", help="replace the whole feature table")
    parser.add_argument("--sample", type=int, default=1000, help="discover: entities in the sample")
    parser.add_argument("--output", default=DEFAULT_DISCOVERY_OUTPUT, help="discover: the YAML file to write")


def dates_to_compute(context: cli.JobContext, feature_set: FeatureSet) -> list[date]:
    """The requested dates less those already present (all of them with --force or --rebuild)."""
    config, spark, args = context.config, context.spark, context.args
    if args.rebuild or not tables.exists(spark, config, config.tables.features):
        return context.dates
    store.require_feature_set(config, feature_set.fingerprint,
                              "rerun with --rebuild to recompute the table with the new definitions")
    if args.force:
        return context.dates
    present = tables.partition_dates(config, config.tables.features, DATE)
    return [d for d in context.dates if d not in present]


def discover(context: cli.JobContext) -> None:
    """Run featuretools DFS on a sample of entities and write candidate definitions to review."""
    # Imported here: featuretools (with woodwork and scipy.stats) added 0.6-0.7 s to importing this
    # job (3.9-4.0 s against 4.5-4.7 s), which every nightly `features` run would pay for an action
    # it does not take.
    from features import discovery
    config, spark, args = context.config, context.spark, context.args
    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    if config.use_case.grain == "event":
        raise UsageError("features discover samples entities of an entities source: use cases at the snapshot grain only")
    keys = config.use_case.entity.keys
    last_day = context.dates[-1] if context.dates else None
    frames = {}
    entities_name, entities_source = config.use_case.source_of_kind("entities")
    entities = tables.read(spark, config, entities_source.table)
    # A deterministic sample: the entities with the smallest hashes of their keys.
    sample = entities.orderBy(F.xxhash64(*keys), *keys).limit(args.sample)
    frames[entities_name] = sample.toPandas()
    for name, source in config.use_case.sources.items():
        if source.kind != "events":
            continue
        events = tables.read(spark, config, source.table).join(sample.select(*keys), keys, "left_semi")
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
    store.compute_and_write(context, todo, rebuild=context.args.rebuild)


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
