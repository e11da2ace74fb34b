"""Bad source partitions through the `features` and `validate` jobs: exit codes, messages, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.transaction import AddAction
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import features as features_job
from jobs import validate as validate_job
from nightjar import tables
from nightjar.config import Config
from tests.conftest import run_in_process
from tests.features.conftest import entities_frame, entity, event, events_frame

D = "2026-01-11"
HISTORY = [date(2026, 1, 1) + timedelta(days=offset) for offset in range(10)]  # 2026-01-01 .. 2026-01-10
TABLES = ("customers", "transactions", "features")


def _day(day: date | str, count: int = 3) -> list[tuple]:
    """`count` ordinary events on `day`, three customers, allowed categories and channels."""
    categories, channels = ("grocery", "fuel", "dining"), ("online", "in_store", "mobile")
    return [
        event(1 + i % 3, f"{day} {8 + i % 12:02d}:{i % 60:02d}:00", 10.0 + i, categories[i % 3], channels[i % 3])
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def prepared_lake(
    spark: SparkSession, make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Ten ordinary days of events and D's, customers, and the features of the last ordinary day."""
    lake = tmp_path_factory.mktemp("validate-sources") / "lake"
    config = make_config(lake)
    customers = [entity(c, "2025-12-20 09:00:00") for c in (1, 2, 3)]
    tables.overwrite(entities_frame(spark, customers), config, "customers", partition_by="signup_date")
    rows = [row for day in [*HISTORY, D] for row in _day(day)]
    tables.overwrite(events_frame(spark, rows), config, "transactions", partition_by="event_date")
    assert run_in_process(features_job, lake, "--date", "2026-01-10") == 0
    return lake


@pytest.fixture
def ready(prepared_lake: Path, lake: Path, config: Config) -> Config:
    shutil.copytree(prepared_lake, lake)
    return config


def _replace_d(spark: SparkSession, config: Config, rows: list[tuple]) -> None:
    tables.replace_partitions(events_frame(spark, rows), config, "transactions", "event_date", [date.fromisoformat(D)])


def _add_empty_partition(spark: SparkSession, config: Config) -> None:
    """D's partition as an upstream writer can leave it: in the Delta log, with a data file of no rows."""
    _replace_d(spark, config, [])
    path = tables.table_path(config, "transactions")
    reader = DeltaTable(path)
    schema = pa.schema(reader.schema())
    relative = f"event_date={D}/part-{uuid.uuid4().hex}.parquet"
    os.makedirs(f"{path}/event_date={D}", exist_ok=True)
    pq.write_table(pa.schema([f for f in schema if f.name != "event_date"]).empty_table(), f"{path}/{relative}")
    action = AddAction(relative, os.path.getsize(f"{path}/{relative}"), {"event_date": D},
                       int(time.time() * 1000), True, '{"numRecords":0}')
    reader.create_write_transaction([action], mode="append", schema=reader.schema(), partition_by=["event_date"])


def _rewrite_table(spark: SparkSession, config: Config, change: Callable) -> None:  # noqa: ANN001
    frame = tables.read(spark, config, "transactions")
    tables.overwrite(change(frame).localCheckpoint(), config, "transactions", partition_by="event_date")


CATEGORIES = "['grocery', 'fuel', 'dining', 'travel', 'electronics', 'apparel', 'health', 'entertainment']"
BAD_INPUTS = {
    "missing": (lambda s, c: _replace_d(s, c, []), 4,
                "table 'transactions' has no partition event_date=2026-01-11"),
    "empty": (_add_empty_partition, 3,
              "table 'transactions' event_date=2026-01-11: row_count failed: 0 rows, expected at least 1"),
    "missing a column": (lambda s, c: _rewrite_table(s, c, lambda f: f.drop("merchant_category")), 3,
                         "table 'transactions' event_date=2026-01-11: column merchant_category: columns failed: missing, expected string"),
    "a column of the wrong type": (lambda s, c: _rewrite_table(s, c, lambda f: f.withColumn("amount", F.col("amount").cast("string"))), 3,
                                   "table 'transactions' event_date=2026-01-11: column amount: columns failed: type string, expected double"),
    "nulls in the key": (lambda s, c: _replace_d(s, c, [*_day(D), event(None, f"{D} 10:00:00", 1.0)]), 3,
                         "table 'transactions' event_date=2026-01-11: column customer_id: not_null failed: 1 null value, expected none"),
    "the same event twice": (lambda s, c: _replace_d(s, c, [*_day(D), _day(D)[0]]), 3,
                             "table 'transactions' event_date=2026-01-11: column transaction_id: unique failed: 1 duplicate row, expected none"),
    "a NaN amount": (lambda s, c: _replace_d(s, c, [*_day(D), event(1, f"{D} 10:00:00", float("nan"))]), 3,
                     "table 'transactions' event_date=2026-01-11: column amount: finite failed: 1 NaN or infinite value, expected none"),
    "an infinite amount": (lambda s, c: _replace_d(s, c, [*_day(D), event(1, f"{D} 10:00:00", float("-inf"))]), 3,
                           "table 'transactions' event_date=2026-01-11: column amount: finite failed: 1 NaN or infinite value, expected none"),
    "an unknown category": (lambda s, c: _replace_d(s, c, [*_day(D), event(1, f"{D} 10:00:00", 1.0, "casino")]), 3,
                            f"table 'transactions' event_date=2026-01-11: column merchant_category: in_set failed: 1 value not in {CATEGORIES}, expected none"),
    "a timestamp on another day": (lambda s, c: _replace_d(s, c, [*_day(D), event(1, "2026-01-10 23:30:00", 1.0, partition=D)]), 3,
                                   "table 'transactions' event_date=2026-01-11: column ts: timestamp_in_partition failed: "
                                   "1 row whose ts is not on the partition's date, expected none"),
    "ten times the usual row count": (lambda s, c: _replace_d(s, c, _day(D, 30)), 3,
                                      "table 'transactions' event_date=2026-01-11: row_count_history failed: "
                                      "30 rows, 10.00 x the median 3 of 10 previous dates, expected 0.2-5 x the median of the previous 28 dates"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_source_partition_stops_both_jobs_and_writes_nothing(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str], case: str,
) -> None:
    spoil, code, message = BAD_INPUTS[case]
    spoil(spark, ready)
    before = {table: tables.current_version(ready, table) for table in TABLES}
    capsys.readouterr()
    for job in (features_job, validate_job):
        extra = ("--table", "transactions") if job is validate_job else ()
        assert run_in_process(job, lake, "--date", D, *extra) == code
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith(f"nightjar {job.JOB}: error: {'validation failed: ' if code == 3 else ''}{message}")
        assert {table: tables.current_version(ready, table) for table in TABLES} == before
    if code == 3:  # the failed run points at its stored result and Data Docs, which list it
        run = tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "validate").first()
        summary = next(check for check in json.loads(run.checks) if check.get("validation") == "source.transactions")
        assert not summary["success"] and summary["failed"][0] == message
        assert Path(summary["result"]).is_file() and run.run_id in Path(summary["data_docs"]).read_text()


def test_clean_partitions_pass_and_the_runs_point_at_data_docs(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_in_process(validate_job, lake, "--table", "transactions", "--start", "2026-01-08", "--end", D) == 0
    assert "source.transactions: 20 checks passed" in capsys.readouterr().out
    assert run_in_process(validate_job, lake, "--table", "features", "--date", "2026-01-10") == 0
    assert "no champion reference statistics: drift not checked" in capsys.readouterr().out
    runs = tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "validate").orderBy("started_at").collect()
    index = Path(tables.data_docs_dir(ready)) / "index.html"
    for run, name in zip(runs, ("source.transactions", "features.features")):
        (summary,) = json.loads(run.checks)
        assert summary["validation"] == name and summary["success"] and summary["data_docs"] == str(index)
        assert run.run_id in index.read_text() and Path(summary["page"]).is_file()
    # The features job recorded its own checks: the feature set, both sources, then the features it
    # wrote (the full computation, the default, stores no partials and records none).
    features_run = tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "features").first()
    checks = json.loads(features_run.checks)
    assert [c.get("validation") for c in checks] == [None, "source.customers", "source.transactions", "features.features"]
    assert "feature_set" in checks[0] and not any("partials" in c for c in checks)


def test_a_blocking_feature_check_keeps_the_features_table_as_it_was(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    strict = "validation.suites.features.features=[{expect: between, columns: [transactions_count_1d], max: 0}]"
    before = tables.current_version(ready, "features")
    assert run_in_process(features_job, lake, "--date", D, "--set", strict) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "nightjar features: error: validation failed: table 'features' ds=2026-01-11: column transactions_count_1d: "
        "between failed: 3 values above 0, expected none"
    )
    assert tables.current_version(ready, "features") == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--table", "clicks", "--date", D), "--table 'clicks': no validation suite for it (tables with suites: customers, features, scores, transactions)"),
        (("--table", "transactions"), "a date is required"),
        (("--date", D), "the following arguments are required: --table"),
    ],
)
def test_validate_usage_errors_exit_2(
    lake: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str,
) -> None:
    assert run_in_process(validate_job, lake, *argv) == 2
    assert message in capsys.readouterr().err
