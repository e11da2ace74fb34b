"""Run a table's validation suite on its own, for a date or a range of dates.

    ./spark-submit.sh validate --table transactions --date D         # a source table's partition D
    ./spark-submit.sh validate --table features --start S --end E    # one pass over the range
    ./spark-submit.sh validate --table scores --date D

The suite is `validation.suites.<stage>.<table>`: a source table's partitions, the `features`
table (with drift against the champion's training data when there is a champion) or the
`scores` table. Each run stores its Great Expectations result and updates Data Docs under the
lake; `runs.checks` points at both. A blocking failure exits 3, a missing partition 4. It
writes no table (only the run record).
"""

from __future__ import annotations

import argparse
from typing import Any

from pyspark.sql import functions as F

from models import registry
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import MissingInputError, UsageError
from validation import gate
from validation.checks import Stage

JOB = "validate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", required=True, help="the table to validate (one with a suite in validation.suites)")


def stage_of(config: Config, table: str) -> Stage:
    """The stage whose suite covers `table`; UsageError listing the tables that have suites."""
    for stage, suites in config.validation.suites.items():
        if table in suites:
            return stage
    known = sorted(t for suites in config.validation.suites.values() for t in suites)
    raise UsageError(f"--table {table!r}: no validation suite for it (tables with suites: {', '.join(known)})")


def champion_reference(context: cli.JobContext) -> dict[str, Any] | None:
    """The champion model's training statistics for drift, or None (no champion, or none stored)."""
    config, spark = context.config, context.spark
    if not tables.exists(spark, config, config.tables.registry):
        return None
    version = registry.champion_version(registry.history(config, config.model_name))
    if version is None:
        return None
    try:
        metadata = registry.load_metadata(config, config.model_name, version)
    except MissingInputError as error:
        # Validation does not need the model itself; the scoring job refuses a broken one.
        context.progress(f"drift not checked: {error}")
        return None
    context.record.model_version = str(version)
    return metadata.get("reference_statistics")


def run(context: cli.JobContext) -> None:
    config, spark, table = context.config, context.spark, context.args.table
    if not context.dates:
        raise UsageError("a date is required: --date YYYY-MM-DD or --start/--end")
    stage = stage_of(config, table)
    frame = tables.read(spark, config, table)
    context.record.input_versions[table] = tables.current_version(config, table) or 0
    partition, source = gate.target(config, stage, table)
    if partition not in frame.columns:
        raise UsageError(f"--table {table!r}: the table has no date column {partition!r}")
    if source is None:
        present = tables.partition_dates(config, table, partition)
        tables.require_partitions(frame, table, partition, context.dates, present=present)
    else:
        tables.require_source_partitions(config, frame, source, context.dates)
    reference = champion_reference(context) if stage == "features" else None
    if stage == "features" and reference is None:
        context.progress("no champion reference statistics: drift not checked")
    with context.timed("validate"):
        result = gate.validate_dates(
            spark, config, stage, table, frame.where(F.col(partition).isin(context.dates)), context.dates,
            context.record.run_id, reference=reference, checks=context.record.checks,
        )
    context.progress(
        f"{stage}.{table}: {len(result.outcomes)} checks passed"
        f"{f' with {len(result.warnings)} warnings' if result.warnings else ''}; Data Docs: {result.data_docs}"
    )


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
