"""The `runs` table: one row per job run, succeeded or failed.

Wall-clock times appear here and only here: they describe the run, not the data it wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from nightjar import tables
from nightjar.config import Config

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("env", T.StringType(), False),
        T.StructField("ds", T.DateType(), True),
        T.StructField("start_date", T.DateType(), True),
        T.StructField("end_date", T.DateType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("exit_code", T.IntegerType(), False),
        T.StructField("message", T.StringType(), True),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), False),
        T.StructField("duration_s", T.DoubleType(), False),
        T.StructField("row_counts", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("timings", T.MapType(T.StringType(), T.DoubleType()), False),
        T.StructField("input_versions", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("output_versions", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("model_version", T.StringType(), True),
        T.StructField("checks", T.StringType(), True),
        T.StructField("arguments", T.StringType(), False),
        T.StructField("code_version", T.StringType(), False),
        T.StructField("user", T.StringType(), True),
    ]
)


@dataclass
class RunRecord:
    """What one run did; filled in by the job as it goes and appended to `runs` at the end."""

    run_id: str
    job: str
    env: str
    arguments: list[str]
    code_version: str
    user: str | None
    started_at: datetime
    dates: list[date] = field(default_factory=list)
    status: str = "running"
    exit_code: int = 0
    message: str | None = None
    finished_at: datetime | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    model_version: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_row(self) -> tuple[Any, ...]:
        """The record in `RUNS_SCHEMA` order."""
        finished = self.finished_at or self.started_at
        single = self.dates[0] if len(self.dates) == 1 else None
        return (
            self.run_id,
            self.job,
            self.env,
            single,
            min(self.dates) if self.dates else None,
            max(self.dates) if self.dates else None,
            self.status,
            self.exit_code,
            self.message,
            self.started_at,
            finished,
            (finished - self.started_at).total_seconds(),
            self.row_counts,
            self.timings,
            self.input_versions,
            self.output_versions,
            self.model_version,
            json.dumps(self.checks, sort_keys=True, default=str) if self.checks else None,
            json.dumps(self.arguments),
            self.code_version,
            self.user,
        )


def record_run(spark: SparkSession, config: Config, record: RunRecord) -> int:
    """Append `record` to the `runs` table; returns the table's new version."""
    frame = spark.createDataFrame([record.as_row()], RUNS_SCHEMA)
    return tables.append(frame, config, config.tables.runs)
