from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from jobs import generate as generate_job
from nightjar import tables
from nightjar.config import Config
from nightjar.generators.churn import ChurnScenario, generate
from nightjar.submit import available_jobs
from tests.conftest import run_in_process, run_launcher

SMALL = ["--entities", "300", "--days", "20", "--date", "2026-03-31"]


def _run(lake: Path, *argv: str) -> int:
    return run_in_process(generate_job, lake, *argv)


def _scenario(config: Config, **changes: object) -> ChurnScenario:
    settings = {
        "seed": config.generate.seed, "entities": 300, "start_date": date(2026, 3, 12),
        "end_date": date(2026, 3, 31), "block_size": config.generate.block_size,
        "horizon_days": config.use_case.label.horizon.whole_days,
    }
    return ChurnScenario(**{**settings, **changes})  # type: ignore[arg-type]


def test_generate_writes_the_three_tables(spark: SparkSession, config: Config, lake: Path) -> None:
    assert _run(lake, *SMALL) == 0
    scenario = _scenario(config)
    for output, table in (("customers", "customers"), ("transactions", "transactions"), ("truth", "truth")):
        assertDataFrameEqual(tables.read(spark, config, table), generate(spark, scenario, output))
    run = tables.read(spark, config, config.tables.runs).first()
    assert (run.status, run.start_date, run.end_date) == ("succeeded", date(2026, 3, 12), date(2026, 3, 31))
    assert run.row_counts["transactions"] == tables.read(spark, config, "transactions").count()


def test_a_rerun_skips_and_force_rewrites_the_same_rows(
    spark: SparkSession, config: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(lake, *SMALL) == 0
    before = tables.read(spark, config, "transactions").collect()
    assert _run(lake, *SMALL) == 0
    assert "already hold this scenario" in capsys.readouterr().out
    assert tables.current_version(config, "transactions") == 0
    assert _run(lake, *SMALL, "--force") == 0
    assert tables.current_version(config, "transactions") == 1
    assertDataFrameEqual(tables.read(spark, config, "transactions"), spark.createDataFrame(before))


def test_a_range_sets_the_window(spark: SparkSession, config: Config, lake: Path) -> None:
    assert _run(lake, "--entities", "100", "--start", "2026-02-01", "--end", "2026-02-10") == 0
    dates = tables.read(spark, config, "transactions").selectExpr("min(event_date)", "max(event_date)").first()
    assert tuple(dates) == (date(2026, 2, 1), date(2026, 2, 10))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--entities", "0"], "--entities must be at least 1"),
        (["--seed", "-1"], "--seed must not be negative"),
        (["--start", "2026-01-01", "--end", "2026-01-05", "--days", "3"], "--days goes with --date"),
        (["--date", "2026-02-30"], "not a calendar date"),
        (["--entities", "ten"], "invalid int value"),
        (["--set", "use_case.label.horizon=36h"], "use_case.label.horizon: the churn generator simulates whole days"),
        (["--set", "generate=null"], "use case 'churn' has no demo generator (no generate section in its file)"),
        (["--use-case", "maintenance", "--set", "use_case.label.horizon=2850m"],
         "the maintenance generator simulates whole hours, not 2850m"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(
    spark: SparkSession, config: Config, lake: Path, argv: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(lake, *argv) == 2
    assert message in capsys.readouterr().err
    for table in ("customers", "transactions", "truth"):
        assert not tables.exists(spark, config, table)


def test_launcher_rejects_an_unknown_job() -> None:
    assert {"features", "generate", "train", "validate"} <= set(available_jobs())
    result = run_launcher("frobnicate", "--date", "2026-01-05")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"nightjar frobnicate: error: unknown job 'frobnicate' (jobs: {', '.join(available_jobs())})"
    ]


def test_launcher_rejects_bad_configuration_before_starting_spark() -> None:
    result = run_launcher("generate", "--env", "test", "--set", "spark.shuffle_partitions=lots")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "nightjar generate: error: invalid configuration: spark.shuffle_partitions: "
        "Input should be a valid integer, unable to parse string as an integer"
    )
