"""Write the demo data: `customers`, `transactions` and `truth`, deterministic for a seed.

    ./spark-submit.sh generate [--date END | --start S --end E] [--customers N] [--days N]
                               [--seed N] [--force]

`--date` is the last simulated day (with `--days` days before it); `--start/--end` gives the
window itself. A rerun with the same parameters finds the tables already written and skips
them unless `--force`.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from nightjar import cli, tables
from nightjar.errors import ConfigError, UsageError
from nightjar.generators.churn import ChurnScenario, generate

JOB = "generate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, help="number of customers (default: generate.customers)")
    parser.add_argument("--days", type=int, help="days simulated up to --date (default: generate.days)")
    parser.add_argument("--seed", type=int, help="random seed (default: generate.seed)")


def scenario_from(context: cli.JobContext) -> ChurnScenario:
    """The scenario named by the configuration, overridden by the command line."""
    settings, args, use_case = context.config.generate, context.args, context.config.use_case
    for option in ("customers", "days"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise UsageError(f"--{option} must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise UsageError("--seed must not be negative")
    if len(context.dates) > 1:
        if args.days is not None:
            raise UsageError("--days goes with --date, not with --start/--end")
        start, end = context.dates[0], context.dates[-1]
    else:
        end = context.dates[0] if context.dates else settings.end_date
        start = end - timedelta(days=(args.days or settings.days) - 1)
    _, entities = use_case.source_of_kind("entities")
    _, events = use_case.source_of_kind("events")
    horizon_days = use_case.label.horizon.whole_days
    if horizon_days is None:
        # The simulation steps in days: its true probabilities exist for whole-day horizons only.
        raise ConfigError(
            f"use_case.label.horizon: the churn generator simulates whole days, not {use_case.label.horizon}"
        )
    return ChurnScenario(
        seed=settings.seed if args.seed is None else args.seed,
        customers=args.customers or settings.customers,
        start_date=start,
        end_date=end,
        block_size=settings.block_size,
        horizon_days=horizon_days,
        key=use_case.entity.key,
        signup_ts=entities.timestamp,
        signup_date=entities.partition,
        event_ts=events.timestamp,
        event_date=events.partition,
    )


def run(context: cli.JobContext) -> None:
    config, spark = context.config, context.spark
    scenario = scenario_from(context)
    _, entities = config.use_case.source_of_kind("entities")
    _, events = config.use_case.source_of_kind("events")
    outputs = [
        ("customers", entities.table, entities.partition),
        ("transactions", events.table, events.partition),
        ("truth", config.tables.truth, "ds"),
    ]
    parameters = scenario.parameters()
    context.record.dates = [scenario.start_date, scenario.end_date]
    already = all(
        (tables.last_commit_metadata(spark, config, table) or {}).get("generate") == parameters
        for _, table, _ in outputs
    )
    if already and not context.args.force:
        context.progress(f"the tables already hold this scenario ({parameters}); --force regenerates")
    else:
        context.progress(
            f"simulating {scenario.customers:,} customers over {scenario.days} days "
            f"({scenario.start_date} to {scenario.end_date}) in {scenario.blocks} blocks"
        )
        metadata = {"generate": parameters, "run_id": context.record.run_id}
        for output, table, partition in outputs:
            with context.timed(f"write_{table}"):
                frame = generate(spark, scenario, output)
                # One shuffle so each date is one file rather than one per simulated block.
                frame = frame.repartition(partition)
                context.record.output_versions[table] = tables.overwrite(
                    frame, config, table, partition_by=partition, metadata=metadata
                )
            context.progress(f"wrote {table} in {context.record.timings[f'write_{table}']:.1f}s")

    for _, table, partition in outputs:
        found = tables.summary(spark, config, table, partition)
        context.record.row_counts[table] = found.rows
        context.record.output_versions.setdefault(table, found.version)
        context.progress(
            f"{tables.catalog_name(config, table):<24} {found.rows:>12,} rows  {found.partitions:>5} partitions"
            f"  version {found.version}  {found.path}"
        )


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
