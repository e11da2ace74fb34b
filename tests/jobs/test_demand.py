"""Demand forecasting end to end on a tiny chain (conf/test.yaml: 15 items in each of 2 stores,
90 days): generate, features, train and score through the real jobs, keyed by (store_id, item_id),
and the bad input its suites stop before any feature is written."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from jobs import validate as validate_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.demo import demo_dates
from tests.conftest import run_in_process

MINE = ("--use-case", "demand")
KEYS = ["store_id", "item_id"]
DATE = "2026-03-31"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, metastore_dir: Path) -> Path:
    """The test chain's sources and truth, written once. Copy it before writing."""
    lake = tmp_path_factory.mktemp("demand") / "lake"
    assert run_in_process(generate_job, lake, metastore_dir, *MINE) == 0
    return lake


@pytest.fixture
def lake(generated: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "lake"
    shutil.copytree(generated, copy)
    return copy


def _config(lake: Path, metastore: Path) -> Config:
    return load_config("test", [f"lake.root={lake}", f"lake.metastore_dir={metastore}"], use_case="demand")


def test_generate_features_train_and_score_one_forecast_per_series(
    spark: SparkSession, lake: Path, metastore_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(lake, metastore_dir)
    first, logical = demo_dates(config)
    assert (first.isoformat(), logical.isoformat()) == ("2026-03-10", DATE)
    for job, argv in [
        (features_job, ("--start", first.isoformat(), "--end", DATE)),
        (train_job, ("--date", DATE)),
        (score_job, ("--date", DATE)),
    ]:
        assert run_in_process(job, lake, metastore_dir, *MINE, *argv) == 0, job.JOB
    assert "top 5 series on 2026-03-31:" in capsys.readouterr().out

    series = tables.read(spark, config, "series")
    known = series.where(F.col("introduced_date") <= DATE).select(*KEYS)
    assert known.count() == 30

    features = tables.read(spark, config, config.tables.features)
    assert features.columns[:3] == [*KEYS, "ds"]
    assert {"sales_units_sum_1d_lag6d", "sales_units_mean_28d_lag7d", "zero_share_28d", "age_days"} <= set(features.columns)
    last = features.where(F.col("ds") == DATE)
    assert last.count() == last.select(*KEYS).distinct().count() == known.count()

    # The label of D is the units of D + 1; the reference (the best achievable) truth's mean of D + 1.
    snapshot = tables.read(spark, config, config.tables.training)
    sales = tables.read(spark, config, "sales").select(*KEYS, F.date_sub("sale_date", 1).alias("ds"), "units")
    truth = tables.read(spark, config, "truth").select(*KEYS, F.date_sub("ds", 1).alias("ds"), "mean_units")
    checked = snapshot.join(sales, [*KEYS, "ds"], "left").join(truth, [*KEYS, "ds"], "left")
    assert checked.count() == snapshot.count() > 0
    assert checked.where("label != units OR units IS NULL").count() == 0
    assert checked.where("reference_score != mean_units OR reference_score IS NULL").count() == 0

    metadata = json.loads(tables.read_model_file(config, "demand", 1, "metadata.json"))
    assert metadata["task"] == "regression" and metadata["params"]["objective"] == "tweedie"
    assert metadata["entity_key"] == KEYS
    holdout, best = metadata["holdout"]["metrics"], metadata["holdout"]["reference"]["metrics"]
    assert holdout["rows"] == best["rows"] > 100  # 5 dates of 30 series, less any introduced meanwhile
    # Poisson units: even the true mean misses by about its square root; the model cannot do better.
    assert 0 < best["rmse"] < holdout["rmse"] < 3 * best["rmse"]

    scores = tables.read(spark, config, config.tables.scores).where(F.col("ds") == DATE)
    assert scores.columns[:3] == [*KEYS, "ds"]
    assert scores.count() == scores.select(*KEYS).distinct().count() == known.count()
    assert scores.join(known, KEYS, "left_anti").count() == 0
    assert scores.where("score IS NULL OR score < 0").count() == 0
    before = scores.collect()

    # A rerun writes the same rows; only run_id names the new run.
    assert run_in_process(score_job, lake, metastore_dir, *MINE, "--date", DATE, "--force") == 0
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
    spark: SparkSession, lake: Path, metastore_dir: Path, capsys: pytest.CaptureFixture[str],
    tamper, message: str,  # noqa: ANN001
) -> None:
    config = _config(lake, metastore_dir)
    day = tables.read(spark, config, "sales").where(F.col("sale_date") == DATE)
    tables.append(tamper(day).localCheckpoint(), config, "sales")
    assert run_in_process(features_job, lake, metastore_dir, *MINE, "--date", DATE) == 3
    err = capsys.readouterr().err
    assert f"table 'sales' sale_date={DATE}" in err and message in err, err
    assert not tables.exists(spark, config, config.tables.features)
    assert not tables.exists(spark, config, config.tables.partials)


def test_plans_are_known_before_their_day_and_pass_their_suite(
    spark: SparkSession, lake: Path, metastore_dir: Path,
) -> None:
    config = _config(lake, metastore_dir)
    plans = tables.read(spark, config, "plans")
    assert plans.where(F.col("known_at") >= F.col("target_date").cast("timestamp")).count() == 0
    assert plans.groupBy(*KEYS, "target_date").count().where("count > 1").count() > 0  # revisions
    last_target = plans.agg(F.max("target_date")).first()[0]
    assert last_target == demo_dates(config)[1] + timedelta(days=14)  # plans reach 14 days past the window
    assert run_in_process(validate_job, lake, metastore_dir, *MINE, "--table", "plans", "--date", DATE) == 0
