"""Write the use case's demo data (`generate.scenario`): its sources and `truth`, deterministic
for a seed.

    ./spark-submit.sh generate [--date END | --start S --end E] [--entities N] [--days N]
                               [--seed N] [--force]

`--date` is the last simulated day (with `--days` days before it); `--start/--end` gives the
window itself. A rerun with the same parameters finds the tables already written and skips
them unless `--force`. `generate.drift` shifts one column of one source from a date on (the
demo's drift scenario; README: Monitoring), whatever the scenario.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from nightjar import cli, tables
from nightjar.errors import UsageError
from nightjar.generators import Generator, Scenario, drift_source_known, drifted, generator, outputs

JOB = "generate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--entities", type=int, help="number of entities simulated (default: generate.entities)")
    parser.add_argument("--days", type=int, help="days simulated up to --date (default: generate.days)")
    parser.add_argument("--seed", type=int, help="random seed (default: generate.seed)")


def scenario_from(context: cli.JobContext, simulation: Generator) -> Scenario:
    """The scenario of the configured generator `simulation`, overridden by the command line."""
    config, args = context.config, context.args
    settings = config.generate
    assert settings is not None  # `generator` refuses a use case without one
    for option in ("entities", "days"):
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
    return simulation.scenario(
        config, start, end, args.entities or settings.entities, settings.seed if args.seed is None else args.seed
    )


def run(context: cli.JobContext) -> None:
    config, spark = context.config, context.spark
    simulation = generator(config)
    scenario = scenario_from(context, simulation)
    written = outputs(config, simulation)
    drift_source_known(config, simulation)
    parameters = scenario.parameters()
    drift = config.generate.drift if config.generate is not None else None
    if drift is not None:
        # Recorded with the tables: the same scenario without the drift is other data.
        parameters["drift"] = drift.model_dump(mode="json", by_alias=True)
    context.record.dates = [scenario.start_date, scenario.end_date]
    already = all(
        (tables.last_commit_metadata(config, output.table) or {}).get("generate") == parameters
        for output in written
    )
    if already and not context.args.force:
        context.progress(f"the tables already hold this scenario ({parameters}); --force regenerates")
    else:
        context.progress(
            f"simulating {scenario.entities:,} {simulation.simulated or cli.plural(config.use_case.entity.name)} "
            f"over {scenario.days} days "
            f"({scenario.start_date} to {scenario.end_date}) in {scenario.blocks} blocks"
        )
        metadata = {"generate": parameters, "run_id": context.record.run_id}
        for output in written:
            table = output.table
            with context.timed(f"write_{table}"):
                frame = drifted(simulation.generate(spark, scenario, output.name), output, drift)
                # One shuffle so each date is one file rather than one per simulated block.
                frame = frame.repartition(output.partition)
                context.record.output_versions[table] = tables.overwrite(
                    frame, config, table, partition_by=output.partition, metadata=metadata
                )
            context.progress(f"wrote {table} in {context.record.timings[f'write_{table}']:.1f}s")

    for output in written:
        table, partition = output.table, output.partition
        found = tables.summary(spark, config, table, partition)
        context.record.row_counts[table] = found.rows
        context.record.output_versions.setdefault(table, found.version)
        context.progress(
            f"{tables.catalog_name(config, table):<30} {found.rows:>12,} rows  {found.partitions:>5} partitions"
            f"  version {found.version}  {found.path}"
        )


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
