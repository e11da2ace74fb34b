"""What the lake holds for a range of dates, read without Spark: for people and schedulers' sensors.

    ./spark-submit.sh status --date D | --start S --end E
        [--use-case NAME] [--json]          # one JSON document on stdout instead of the table

For each date: which partitions of each source exist (and whether the date needs one), and for
`features`, `scores` and `monitoring` whether the date is there and up to date: `stale` when an
input changed, after the Delta version its run read, in a partition at or before the date (see
`nightjar.status`). Reads the Delta logs and the `runs` table with delta-rs; no Spark session, no
JVM, and no run recorded. Exits 4, after printing, when a required source partition is missing.
"""

from __future__ import annotations

import argparse
import json
import logging

from nightjar import cli, status
from nightjar.errors import MissingInputError

JOB = "status"
SPARK = False  # read by the launcher: run in plain Python, without spark-submit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")


def run(context: cli.JobContext) -> None:
    report = status.collect(context.config, context.dates)
    if context.args.json:
        # stdout is the document alone: the closing `done` line would follow it there.
        logging.getLogger(f"jobs.{JOB}").setLevel(logging.WARNING)
        print(json.dumps(report.as_json(), indent=1), flush=True)
    else:
        print("\n".join(status.render(report)), flush=True)
    missing = report.missing_inputs
    if missing:
        day, source = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        what = f"has no partition {source.partition}={day}" if source.table_exists else "does not exist"
        raise MissingInputError(f"required input missing: table {source.table!r} {what}{more}")


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="required", record_runs=False, spark=SPARK)
