"""Run a Spark SQL query against the use case's tables by name, with Nightjar's configuration.

    ./spark-submit.sh sql "SELECT ds, count(*), avg(score) FROM nightjar_churn.scores GROUP BY ds ORDER BY ds"
        [--use-case NAME] [--limit N]     # rows printed (default 50)

Before the query, every table of the use case is registered by its path as
`<lake.database_prefix>_<use case>.<table>` (default `nightjar_churn.<table>` for churn), in the
session's own in-memory catalog (or the shared metastore a cluster configuration names), so a
query needs no metastore and runs beside any other job. The session is the use case's jobs' own
(the same lake and Delta settings).
"""

from __future__ import annotations

import argparse

from pyspark.errors import AnalysisException

from nightjar import cli, tables
from nightjar.errors import UsageError

JOB = "sql"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help="the SQL statement")
    parser.add_argument("--limit", type=int, default=50, help="rows to print")


def run(context: cli.JobContext) -> None:
    if context.args.limit < 1:
        raise UsageError("--limit must be at least 1")
    tables.register_all(context.spark, context.config)
    try:
        result = context.spark.sql(context.args.query)
    except AnalysisException as error:  # a syntax error, an unknown table or column: the user's to fix
        raise UsageError(f"query: {str(error).strip().splitlines()[0]}") from None
    # Spark's own tabular print: exact values, no truncation of reason arrays.
    result.show(context.args.limit, truncate=False)


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="none", record_runs=False)
