from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import roc_auc_score

from nightjar.generators.churn import SCHEMAS, ChurnScenario, generate, simulate_block

SCENARIO = ChurnScenario(
    seed=3, entities=900, start_date=date(2026, 1, 1), end_date=date(2026, 4, 30), block_size=300, horizon_days=30,
)


def _block(scenario: ChurnScenario, block: int, output: str) -> pd.DataFrame:
    return pd.concat(list(simulate_block(scenario, block, output)), ignore_index=True)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def simulated() -> dict[str, pd.DataFrame]:
    return {
        output: pd.concat([_block(SCENARIO, b, output) for b in range(SCENARIO.blocks)], ignore_index=True)
        for output in ("customers", "transactions", "truth")
    }


@pytest.mark.parametrize("output", ["customers", "transactions", "truth"])
def test_the_same_seed_gives_the_same_rows(output: str) -> None:
    pd.testing.assert_frame_equal(_block(SCENARIO, 1, output), _block(SCENARIO, 1, output))


def test_another_seed_gives_other_rows() -> None:
    other = replace(SCENARIO, seed=4)
    assert not _block(SCENARIO, 0, "transactions").equals(_block(other, 0, "transactions"))


def test_a_block_does_not_depend_on_the_population_size() -> None:
    # Adding customers appends blocks; the customers already there keep their histories.
    bigger = replace(SCENARIO, entities=1500)
    pd.testing.assert_frame_equal(_block(SCENARIO, 2, "transactions"), _block(bigger, 2, "transactions"))


def test_customers_are_unique_and_signed_up_by_the_end(simulated: dict[str, pd.DataFrame]) -> None:
    customers = simulated["customers"]
    assert customers["customer_id"].is_unique and len(customers) == SCENARIO.entities
    assert (customers["signup_date"] <= SCENARIO.end_date).all()
    signed_in_window = customers["signup_date"] >= SCENARIO.start_date
    assert 0.2 < signed_in_window.mean() < 0.4  # new customers keep arriving
    assert (customers["signup_ts"].dt.date == customers["signup_date"]).all()


def test_transactions_are_well_formed(simulated: dict[str, pd.DataFrame]) -> None:
    tx, customers = simulated["transactions"], simulated["customers"]
    assert tx["transaction_id"].is_unique
    assert (tx["ts"].dt.date == tx["event_date"]).all()
    assert tx["event_date"].between(SCENARIO.start_date, SCENARIO.end_date).all()
    signup = tx.merge(customers, on="customer_id")["signup_ts"]
    assert (tx["ts"].to_numpy() >= signup.to_numpy()).all()
    assert tx["customer_id"].notna().all()
    assert 0 < tx["merchant_category"].isna().mean() < 0.01  # a little realistic mess
    assert (tx["amount"] < 0).any()  # refunds
    assert tx["amount"].max() > 20 * tx["amount"].median()  # heavy tail and outliers


def test_weekends_are_busier_than_sundays(simulated: dict[str, pd.DataFrame]) -> None:
    per_weekday = simulated["transactions"].groupby(pd.to_datetime(simulated["transactions"]["event_date"]).dt.weekday).size()
    assert per_weekday[5] > 1.4 * per_weekday[6]


def test_churners_fade_before_they_leave(simulated: dict[str, pd.DataFrame]) -> None:
    truth = simulated["truth"]
    departed = truth.loc[truth["stage"] == "departed", "customer_id"].unique()
    assert len(departed) > 20
    tx = simulated["transactions"]
    last_seen = tx[tx["customer_id"].isin(departed)].groupby("customer_id")["event_date"].max()
    first_departed = truth[truth["stage"] == "departed"].groupby("customer_id")["ds"].min()
    # Nothing after departure.
    assert (last_seen < first_departed.reindex(last_seen.index)).all()


def _observed_labels(tx: pd.DataFrame, truth: pd.DataFrame, horizon: int) -> pd.Series:
    active_days = tx.groupby("customer_id")["event_date"].apply(lambda s: np.sort(pd.to_datetime(s.unique()).values))
    labels = []
    for customer, ds in zip(truth["customer_id"], pd.to_datetime(truth["ds"])):
        days = active_days.get(customer, np.array([], dtype="datetime64[ns]"))
        after = days[np.searchsorted(days, ds.to_datetime64(), side="right"):]
        labels.append(int(not (len(after) and after[0] <= (ds + pd.Timedelta(days=horizon)).to_datetime64())))
    return pd.Series(labels, index=truth.index)


def test_truth_is_calibrated_and_carries_signal(simulated: dict[str, pd.DataFrame]) -> None:
    truth = simulated["truth"]
    last_labelled = SCENARIO.end_date - timedelta(days=SCENARIO.horizon_days)
    sample = truth[truth["ds"] <= last_labelled].sample(6000, random_state=0)
    observed = _observed_labels(simulated["transactions"], sample, SCENARIO.horizon_days)
    assert 0 <= sample["churn_probability"].min() and sample["churn_probability"].max() <= 1
    assert (sample.loc[sample["stage"] == "departed", "churn_probability"] == 1).all()
    # Calibrated: the mean predicted rate matches the observed rate within sampling error.
    assert abs(sample["churn_probability"].mean() - observed.mean()) < 0.015
    not_departed = sample["stage"] != "departed"
    assert roc_auc_score(observed[not_departed], sample.loc[not_departed, "churn_probability"]) > 0.85


def test_spark_frames_match_the_simulation_and_schema(spark: SparkSession, simulated: dict[str, pd.DataFrame]) -> None:
    for output in ("customers", "truth"):
        frame = generate(spark, SCENARIO, output)  # type: ignore[arg-type]
        assert frame.schema == SCHEMAS[output](SCENARIO)
        assertDataFrameEqual(frame, spark.createDataFrame(simulated[output], SCHEMAS[output](SCENARIO)))
    tx = generate(spark, SCENARIO, "transactions")
    summary = tx.agg(F.count("*").alias("n"), F.sum("amount").alias("total")).first()
    assert summary.n == len(simulated["transactions"])
    assert summary.total == pytest.approx(simulated["transactions"]["amount"].sum())


def test_configured_column_names_are_used(spark: SparkSession) -> None:
    renamed = replace(SCENARIO, entities=50, key="account_id", event_ts="event_time", event_date="day")
    columns = generate(spark, renamed, "transactions").columns
    assert {"account_id", "event_time", "day"} <= set(columns)
