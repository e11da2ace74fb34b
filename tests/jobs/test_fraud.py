"""Fraud end to end on small data: generate, event features, train with late labels and a
calibration period, score every transaction of a day with an interval; and its bad input."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from tests.conftest import run_in_process

LOGICAL = date(2026, 3, 31)
TRAINING = (date(2026, 1, 19), date(2026, 1, 30))  # matured: 60 days before the logical date
FRAUD = ("--use-case", "fraud")


def _config(lake: Path) -> Config:
    return load_config("test", [f"lake.root={lake}"], use_case="fraud")


@pytest.fixture(scope="module")
def fraud_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fraud lake through its nightly path: generated, features of the training dates and of the
    logical date, a calibrated champion, the logical date scored."""
    lake = tmp_path_factory.mktemp("fraud") / "lake"
    for job, argv in [
        (generate_job, ()),
        (features_job, ("--start", TRAINING[0].isoformat(), "--end", TRAINING[1].isoformat())),
        (features_job, ("--date", LOGICAL.isoformat())),
        (train_job, ("--date", LOGICAL.isoformat())),
        (score_job, ("--date", LOGICAL.isoformat())),
    ]:
        assert run_in_process(job, lake, *FRAUD, *argv) == 0, job.JOB
    return lake


def test_every_transaction_of_the_day_gets_a_calibrated_score_and_an_interval(
    spark: SparkSession, fraud_lake: Path,
) -> None:
    config = _config(fraud_lake)
    scores = tables.read(spark, config, "scores").where(F.col("ds") == F.lit(LOGICAL))
    day = tables.read(spark, config, "transactions").where(F.col("tx_date") == F.lit(LOGICAL))
    assert scores.count() == day.count() > 1000
    assertDataFrameEqual(scores.select("transaction_id", "ts"), day.select("transaction_id", "ts"))
    assert scores.where("NOT (score_low <= score AND score <= score_high) OR score_high > 1 OR score_low < 0").count() == 0
    # Reasons only for the day's top 1% of model scores (and their ties).
    explained = scores.where(F.col("reasons").isNotNull()).count()
    assert 0.01 * scores.count() <= explained <= 0.03 * scores.count()
    assert scores.where("model_score IS NULL").count() == 0
    metadata = json.loads(tables.read_model_file(config, "fraud", 1, "metadata.json"))
    assert metadata["calibration"]["method"] == "inductive_venn_abers"
    calibrated = metadata["holdout"]["calibrated"]
    assert calibrated["calibration_dates"] == ["2026-01-25", "2026-01-26", "2026-01-27"]
    assert [c["label"] for c in calibrated["conformal"]["coverage"]] == [0, 1]
    assert {"pr_auc", "top_per_day", "at_false_positive_rate"} <= set(calibrated["ranking"])
    # Event features made it into the model; the merchants' chargeback features, excluded, only into the table.
    assert "card_count_1h" in metadata["features"] and "merchant_count_30d" in metadata["features"]
    assert not [name for name in metadata["features"] if name.startswith("merchant_chargeback")]
    assert "merchant_chargeback_rate_30d" in tables.read(spark, config, "features").columns


def test_rescoring_a_day_gives_the_same_table(spark: SparkSession, fraud_lake: Path,
                                              tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(fraud_lake, lake)
    config = _config(lake)
    before = tables.read(spark, config, "scores").drop("run_id").collect()
    assert run_in_process(score_job, lake, *FRAUD, "--date", LOGICAL.isoformat(), "--force") == 0
    after = tables.read(spark, config, "scores").drop("run_id")
    assertDataFrameEqual(after, spark.createDataFrame(before, after.schema))


def _rewrite_day(spark: SparkSession, config: Config, table: str, partition: str, day: date, change) -> None:  # noqa: ANN001
    frame = tables.read(spark, config, table).where(F.col(partition) == F.lit(day)).toPandas()
    tables.replace_partitions(spark.createDataFrame(change(frame), tables.read(spark, config, table).schema),
                              config, table, partition, [day])


@pytest.mark.parametrize("case", ["duplicate_id", "outside_day"])
def test_blocking_bad_transactions_stop_features_and_leave_the_tables(
    spark: SparkSession, fraud_lake: Path, tmp_path: Path, case: str,
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(fraud_lake, lake)
    config = _config(lake)
    day = LOGICAL - timedelta(days=1)
    if case == "duplicate_id":
        def change(frame):  # noqa: ANN001, ANN202
            frame.loc[1, "transaction_id"] = frame.loc[0, "transaction_id"]
            return frame
    else:
        def change(frame):  # noqa: ANN001, ANN202
            frame.loc[0, "ts"] = frame.loc[0, "ts"] - timedelta(days=2)
            return frame
    _rewrite_day(spark, config, "transactions", "tx_date", day, change)
    before = tables.current_version(config, "features")
    assert run_in_process(features_job, lake, *FRAUD, "--date", day.isoformat()) == 3
    assert tables.current_version(config, "features") == before


def test_unknown_cards_and_chargebacks_of_unknown_transactions_are_warnings(
    spark: SparkSession, fraud_lake: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(fraud_lake, lake)
    config = _config(lake)
    day = LOGICAL - timedelta(days=1)

    def unknown_card(frame):  # noqa: ANN001, ANN202
        frame.loc[0, "card_id"] = 10**12
        return frame

    def unknown_transaction(frame):  # noqa: ANN001, ANN202
        frame.loc[0, "transaction_id"] = 10**15
        return frame

    _rewrite_day(spark, config, "transactions", "tx_date", day, unknown_card)
    # The chargebacks reported that day are checked with its transactions.
    _rewrite_day(spark, config, "chargebacks", "reported_date", day, unknown_transaction)
    assert run_in_process(features_job, lake, *FRAUD, "--date", day.isoformat()) == 0
    out = caplog.text
    features = tables.read(spark, config, "features").where(F.col("ds") == F.lit(day))
    # The unknown card's transaction is there, with the empty history it has.
    row = features.where(F.col("transaction_id") == F.lit(
        tables.read(spark, config, "transactions").where(F.col("card_id") == F.lit(10**12)).first()["transaction_id"])).first()
    assert row is not None and row["card_count_30d"] == 0
    assert "not in table 'cards'" in out and "not in table 'transactions'" in out
