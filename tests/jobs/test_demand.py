"""Demand forecasting end to end on a tiny chain (conf/test.yaml: 15 items in each of 2 stores,
90 days): generate, features, train and score through the real jobs, keyed by (store_id, item_id)
with a row per horizon, and the bad input its suites stop before any feature is written."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import backtest as backtest_job
from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from jobs import validate as validate_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.errors import UsageError
from nightjar.demo import demo_dates
from tests.conftest import run_in_process

MINE = ("--use-case", "demand")
KEYS = ["store_id", "item_id"]
DATE = "2026-03-31"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test chain's sources and truth, written once. Copy it before writing."""
    lake = tmp_path_factory.mktemp("demand") / "lake"
    assert run_in_process(generate_job, lake, *MINE) == 0
    return lake


@pytest.fixture
def lake(generated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(generated, copy)
    return copy


def _config(lake: Path) -> Config:
    return load_config("test", [f"lake.root={lake}"], use_case="demand")


def test_generate_features_train_and_score_seven_forecasts_per_series(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(lake)
    first, logical = demo_dates(config)
    assert (first.isoformat(), logical.isoformat()) == ("2026-03-04", DATE)
    for job, argv in [
        (features_job, ("--start", first.isoformat(), "--end", DATE)),
        (train_job, ("--date", DATE)),
        (score_job, ("--date", DATE)),
    ]:
        assert run_in_process(job, lake, *MINE, *argv) == 0, job.JOB
    assert "top 5 series on 2026-03-31:" in capsys.readouterr().out

    series = tables.read(spark, config, "series")
    known = series.where(F.col("introduced_date") <= DATE).select(*KEYS)
    assert known.count() == 30

    features = tables.read(spark, config, config.tables.features)
    assert features.columns[:4] == [*KEYS, "ds", "target_date"]
    assert {"sales_units_sum_1d_lag6d", "sales_units_mean_28d_lag7d", "zero_share_28d", "age_days", "horizon",
            "target_day_of_week", "target_planned_price", "target_planned_promo"} <= set(features.columns)
    last = features.where(F.col("ds") == DATE)
    assert last.count() == last.select(*KEYS, "horizon").distinct().count() == 7 * known.count()
    # The price planned for each target date, as the plans known by D's cutoff say (the generator
    # makes them 14 days ahead, so every target of the week has one).
    assert last.where("target_planned_price IS NULL").count() == 0

    # The label of (D, h) is the units of D + h; the reference (the best achievable) truth's mean of D + h.
    snapshot = tables.read(spark, config, config.tables.training)
    sales = tables.read(spark, config, "sales").select(*KEYS, F.col("sale_date").alias("target_date"), "units")
    truth = tables.read(spark, config, "truth").select(*KEYS, F.col("ds").alias("target_date"), "mean_units")
    checked = snapshot.join(sales, [*KEYS, "target_date"], "left").join(truth, [*KEYS, "target_date"], "left")
    assert checked.count() == snapshot.count() > 0
    assert checked.where("label != units OR units IS NULL").count() == 0
    assert checked.where("reference_score != mean_units OR reference_score IS NULL").count() == 0

    metadata = json.loads(tables.read_model_file(config, "demand", 1, "metadata.json"))
    assert metadata["task"] == "regression" and metadata["params"]["objective"] == "tweedie"
    assert metadata["entity_key"] == KEYS
    holdout, best = metadata["holdout"]["metrics"], metadata["holdout"]["reference"]["metrics"]
    assert holdout["rows"] == best["rows"] > 700  # 5 dates of 30 series and 7 horizons, less new ones
    # Poisson units: even the true mean misses by about its square root; the model cannot do better.
    assert 0 < best["rmse"] < holdout["rmse"] < 3 * best["rmse"]

    # One model of three members; errors beside the baselines per horizon; intervals that cover.
    assert len(metadata["ensemble"]["members"]) == 3
    assert metadata["ensemble"]["members"][2]["params"] == {"objective": "poisson"}
    forecast = metadata["holdout"]["forecast"]
    assert sorted(forecast["by_horizon"]) == [str(h) for h in range(1, 8)]
    assert set(forecast["overall"]) == {"model", "seasonal_naive", "true_mean"}
    assert forecast["overall"]["true_mean"]["rmse"] < forecast["overall"]["seasonal_naive"]["rmse"]
    coverage = metadata["holdout"]["intervals"]["holdout_coverage"]["overall"]
    assert 0.5 < coverage["0.8"] < coverage["0.95"] <= 1.0

    scores = tables.read(spark, config, config.tables.scores).where(F.col("ds") == DATE)
    assert scores.columns[:6] == [*KEYS, "ds", "horizon", "target_date", "score"]
    assert scores.count() == scores.select(*KEYS, "horizon").distinct().count() == 7 * known.count()
    bounds = scores.selectExpr("score", "intervals[0] AS i80", "intervals[1] AS i95").collect()
    assert all(r.i80.level == 0.8 and r.i95.level == 0.95 for r in bounds)
    assert all(0 <= r.i95.low <= r.i80.low <= r.i80.high <= r.i95.high for r in bounds)
    assert scores.join(known, KEYS, "left_anti").count() == 0
    assert scores.where("score IS NULL OR score < 0").count() == 0
    before = scores.collect()

    # A rerun writes the same rows; only run_id names the new run.
    assert run_in_process(score_job, lake, *MINE, "--date", DATE, "--force") == 0
    rerun = tables.read(spark, config, config.tables.scores).where(F.col("ds") == DATE)
    assertDataFrameEqual(rerun.drop("run_id"), spark.createDataFrame(before, scores.schema).drop("run_id"))


def _negative_units(day: DataFrame) -> DataFrame:
    # Another instant of the same day: only the units are wrong.
    return day.limit(1).withColumn("units", F.lit(-3)).withColumn("ts", F.col("ts") + F.expr("INTERVAL 1 HOUR"))


def _unknown_series(day: DataFrame) -> DataFrame:
    return day.limit(1).withColumn("item_id", F.lit(999_999).cast("bigint"))


def _same_day_twice(day: DataFrame) -> DataFrame:
    return day.limit(1).withColumn("units", F.col("units") + 1)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_negative_units, "column units: between failed"),
        (_unknown_series, "references failed"),
        (_same_day_twice, "unique failed"),
    ],
)
def test_bad_sales_stop_features_before_anything_is_written(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
    tamper, message: str,  # noqa: ANN001
) -> None:
    config = _config(lake)
    day = tables.read(spark, config, "sales").where(F.col("sale_date") == DATE)
    tables.append(tamper(day).localCheckpoint(), config, "sales")
    assert run_in_process(features_job, lake, *MINE, "--date", DATE) == 3
    err = capsys.readouterr().err
    assert f"table 'sales' sale_date={DATE}" in err and message in err, err
    assert not tables.exists(spark, config, config.tables.features)
    assert not tables.exists(spark, config, config.tables.partials)


def test_plans_are_known_before_their_day_and_pass_their_suite(
    spark: SparkSession, lake: Path,
) -> None:
    config = _config(lake)
    plans = tables.read(spark, config, "plans")
    assert plans.where(F.col("known_at") >= F.col("target_date").cast("timestamp")).count() == 0
    assert plans.groupBy(*KEYS, "target_date").count().where("count > 1").count() > 0  # revisions
    last_target = plans.agg(F.max("target_date")).first()[0]
    assert last_target == demo_dates(config)[1] + timedelta(days=14)  # plans reach 14 days past the window
    assert run_in_process(validate_job, lake, *MINE, "--table", "plans", "--date", DATE) == 0


def test_a_backtest_replays_retraining_against_the_model_of_the_first_origin(
    spark: SparkSession, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(lake)
    # Origins up to 2026-03-24: their forecasts' last target (D + 7) is the data's last day.
    assert run_in_process(features_job, lake, *MINE, "--start", "2026-02-19", "--end", "2026-03-24") == 0
    argv = ("--start", "2026-03-18", "--end", "2026-03-24", "--every", "3d")
    assert run_in_process(backtest_job, lake, *MINE, *argv) == 0
    assert "origin 2026-03-24: rmsse" in capsys.readouterr().out
    report = tables.read(spark, config, config.tables.backtest).toPandas()
    origins = [date(2026, 3, 18), date(2026, 3, 21), date(2026, 3, 24)]
    assert sorted(set(report["origin"])) == origins
    assert set(report["strategy"]) == {"retrained", "frozen", "seasonal_naive", "true_mean"}
    assert set(report["horizon"]) == {"all", *map(str, range(1, 8))}
    assert set(report["metric"]) == {"rmse", "mae", "wape", "rmsse", "series"}
    model = report[report["strategy"].isin(["retrained", "frozen"])]
    assert set(model.loc[model["strategy"] == "frozen", "trained_at"]) == {origins[0]}
    assert (model.loc[model["strategy"] == "retrained", "trained_at"] == model.loc[model["strategy"] == "retrained", "origin"]).all()

    def rmsse(origin: date, strategy: str) -> float:
        row = report[(report["origin"] == origin) & (report["strategy"] == strategy) & (report["horizon"] == "all")
                     & (report["metric"] == "rmsse")]
        return float(row["value"].iloc[0])

    # At the first origin both strategies are the same model; the true mean is the best achievable.
    assert rmsse(origins[0], "retrained") == rmsse(origins[0], "frozen")
    assert all(rmsse(o, "true_mean") < rmsse(o, "seasonal_naive") for o in origins)
    # A replay writes its report and nothing else.
    assert not tables.exists(spark, config, config.tables.scores)
    assert not tables.exists(spark, config, config.tables.registry)


def test_backtest_origins_are_whole_days_apart() -> None:
    assert backtest_job.origins(date(2026, 3, 1), date(2026, 3, 20), "7d") == [
        date(2026, 3, 1), date(2026, 3, 8), date(2026, 3, 15)]
    assert backtest_job.origins(date(2026, 3, 1), date(2026, 3, 2), "24h") == [date(2026, 3, 1), date(2026, 3, 2)]
    with pytest.raises(UsageError, match="--every must be whole days"):
        backtest_job.origins(date(2026, 3, 1), date(2026, 3, 20), "36h")
