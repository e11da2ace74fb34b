from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import features as features_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import run_in_process
from tests.features.conftest import entities_frame, entity, event, events_frame

D = date(2026, 1, 10)
ENTITIES = [entity(1, "2026-01-01 08:00:00"), entity(2, "2026-01-05 09:00:00", segment="enterprise")]
EVENTS = [
    event(1, "2026-01-08 10:00:00", 10.0),
    event(1, "2026-01-09 10:00:00", 20.0, "fuel"),
    event(2, "2026-01-10 11:00:00", 5.0, channel="in_store"),
    event(1, "2026-01-10 12:00:00", 7.5),
]


@pytest.fixture
def sources(spark: SparkSession, config: Config) -> Config:
    tables.overwrite(entities_frame(spark, ENTITIES), config, "customers", partition_by="signup_date")
    tables.overwrite(events_frame(spark, EVENTS), config, "transactions", partition_by="event_date")
    return config


def _run(lake: Path, *argv: str) -> int:
    return run_in_process(features_job, lake, *argv)


def _features(spark: SparkSession, config: Config):  # noqa: ANN202
    return tables.read(spark, config, config.tables.features)


def test_features_for_a_range_and_a_rerun(
    spark: SparkSession, sources: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(lake, "--start", "2026-01-08", "--end", "2026-01-10") == 0
    written = _features(spark, sources)
    assert written.count() == 2 + 2 + 2  # both customers are known on all three dates
    assert written.where((F.col("customer_id") == 1) & (F.col("ds") == D)).first()["transactions_count_7d"] == 3
    before = written.collect()

    assert _run(lake, "--date", "2026-01-10") == 0
    assert "already computed" in capsys.readouterr().out
    assert tables.current_version(sources, sources.tables.features) == 0

    assert _run(lake, "--date", "2026-01-10", "--force") == 0
    assert tables.current_version(sources, sources.tables.features) == 1
    assertDataFrameEqual(_features(spark, sources), spark.createDataFrame(before, written.schema))
    run = tables.read(spark, sources, sources.tables.runs).orderBy(F.col("started_at").desc()).first()
    assert run.row_counts == {"features": 2} and run.input_versions == {"transactions": 0, "customers": 0}
    assert '"feature_set"' in run.checks


def test_replacing_a_date_leaves_the_others_untouched(
    spark: SparkSession, sources: Config, lake: Path,
) -> None:
    assert _run(lake, "--start", "2026-01-09", "--end", "2026-01-10") == 0
    ninth = _features(spark, sources).where(F.col("ds") == date(2026, 1, 9)).collect()
    tables.append(events_frame(spark, [event(2, "2026-01-10 20:00:00", 100.0)]), sources, "transactions")
    assert _run(lake, "--date", "2026-01-10", "--force") == 0
    assertDataFrameEqual(_features(spark, sources).where(F.col("ds") == date(2026, 1, 9)), spark.createDataFrame(ninth, _features(spark, sources).schema))
    tenth = _features(spark, sources).where((F.col("ds") == D) & (F.col("customer_id") == 2)).first()
    assert tenth["transactions_amount_sum_7d"] == 105.0


def _unchanged(spark: SparkSession, config: Config, version: int | None) -> None:
    assert tables.current_version(config, config.tables.features) == version


def test_a_missing_partition_exits_4_and_writes_nothing(
    spark: SparkSession, sources: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(lake, "--start", "2026-01-10", "--end", "2026-01-12") == 4
    assert capsys.readouterr().err.strip().endswith(
        "table 'transactions' has no partition event_date=2026-01-11 (and 1 more dates)"
    )
    _unchanged(spark, sources, None)


def test_changed_definitions_need_a_rebuild(
    spark: SparkSession, sources: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(lake, "--date", "2026-01-10") == 0
    changed = ("--set", "features.windows=[1, 7, 30]")
    assert _run(lake, "--date", "2026-01-09", *changed) == 2
    assert "rerun with --rebuild" in capsys.readouterr().err
    _unchanged(spark, sources, 0)
    assert _run(lake, "--date", "2026-01-09", "--rebuild", *changed) == 0
    rebuilt = _features(spark, sources)
    assert "transactions_count_90d" not in rebuilt.columns
    assert {row.ds for row in rebuilt.select("ds").distinct().collect()} == {date(2026, 1, 9)}


@pytest.mark.parametrize(
    ("override", "code", "message"),
    [
        ("features.attributes=[{source: customers, kind: numeric, column: income}]", 2,
         "features.attributes[0] (income): source 'customers' has no column 'income'"),
        ("features.aggregates=[{source: transactions, column: channel, functions: [sum], windows: [7]}]", 3,
         "transactions.channel is string, not numeric"),
        ("use_case.sources.transactions.timestamp=event_time", 2,
         "use_case.sources.transactions (timestamp): table 'transactions' has no column 'event_time'"),
    ],
)
def test_definitions_that_do_not_fit_the_data(
    spark: SparkSession, sources: Config, lake: Path, capsys: pytest.CaptureFixture[str],
    override: str, code: int, message: str,
) -> None:
    assert _run(lake, "--date", "2026-01-10", "--set", override, "--set", "features.ratios=[]") == code
    assert message in capsys.readouterr().err
    _unchanged(spark, sources, None)


def test_duplicate_entities_exit_3(
    spark: SparkSession, sources: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tables.append(entities_frame(spark, [entity(2, "2026-01-06 09:00:00")]), sources, "customers")
    assert _run(lake, "--date", "2026-01-10") == 3
    assert "table 'customers': customer_id=2 appears 2 times" in capsys.readouterr().err
    _unchanged(spark, sources, None)


def test_a_date_is_required(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(lake) == 2
    assert "a date is required" in capsys.readouterr().err


def test_a_nightly_run_does_not_import_featuretools(tmp_path: Path) -> None:
    # featuretools (with woodwork and scipy.stats) adds 0.6-0.7 s to the job's imports; only `discover` needs it.
    # A script file, not `python -c`: pyspark.sql.connect (which GX imports) exits a process whose
    # main module has no file, taking it for a doctest run.
    script = tmp_path / "imports.py"
    script.write_text("import sys\nimport jobs.features\nprint('featuretools' in sys.modules)\n")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=PROJECT_ROOT,
                               env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, check=True)
    assert completed.stdout.strip() == "False"
