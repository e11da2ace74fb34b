"""featuretools discovery, and parity of Nightjar's values with featuretools' own."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import featuretools as ft
import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession

from features import discovery
from features.definitions import check_columns, expand
from features.engine import compute_features
from jobs import features as features_job
from nightjar import tables
from nightjar.config import Config
from nightjar.generators.churn import SCHEMAS, ChurnScenario, simulate_block
from tests.conftest import run_in_process
from tests.features.conftest import with_features

SCENARIO = ChurnScenario(seed=5, entities=120, start_date=date(2026, 1, 1), end_date=date(2026, 2, 28),
                         block_size=60, horizon_days=30)
DATES = [date(2026, 2, 10), date(2026, 2, 28)]
PRIMITIVES = {  # featuretools name -> Nightjar function, for the parity check
    "COUNT(transactions)": ("transactions", None, "count"),
    "SUM(transactions.amount)": ("transactions", "amount", "sum"),
    "MEAN(transactions.amount)": ("transactions", "amount", "mean"),
    "MIN(transactions.amount)": ("transactions", "amount", "min"),
    "MAX(transactions.amount)": ("transactions", "amount", "max"),
    "STD(transactions.amount)": ("transactions", "amount", "std"),
    "NUM_UNIQUE(transactions.merchant_category)": ("transactions", "merchant_category", "distinct_count"),
    "LAST(transactions.amount)": ("transactions", "amount", "last"),
    "COUNT(transactions WHERE channel = online)": ("online", None, "count"),
    "SUM(transactions.amount WHERE channel = online)": ("online", "amount", "sum"),
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    simulated = {
        output: pd.concat([pd.concat(simulate_block(SCENARIO, b, output)) for b in range(SCENARIO.blocks)], ignore_index=True)
        for output in ("customers", "transactions")
    }
    tx = simulated["transactions"]
    # featuretools' LAST takes the last row in time order: keep one event per instant per customer.
    simulated["transactions"] = tx.drop_duplicates(["customer_id", "ts"]).reset_index(drop=True)
    return simulated


@pytest.fixture
def parity_config(config: Config) -> Config:
    return with_features(config, {
        "windows": [7, 30],
        "aggregates": [
            {"source": "transactions", "functions": ["count"]},
            {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "min", "max", "std", "last"]},
            {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"]},
            {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"]},
            {"source": "transactions", "name": "online", "column": "amount", "where": {"channel": "online"},
             "functions": ["sum"]},
        ],
    })


def _featuretools(config: Config, frames: dict[str, pd.DataFrame], window: int) -> pd.DataFrame:
    es = discovery.entityset(config, frames, interesting_values=0, entity_time_index=False)
    es.add_interesting_values(dataframe_name="transactions", values={"channel": ["online"]})
    candidates = ft.dfs(entityset=es, target_dataframe_name="customers",
                        agg_primitives=["count", "sum", "mean", "min", "max", "std", "num_unique", "last"],
                        where_primitives=["count", "sum"], trans_primitives=[], max_depth=1, features_only=True)
    chosen = [f for f in candidates if f.get_name() in PRIMITIVES]
    assert len(chosen) == len(PRIMITIVES)
    results = []
    for d in DATES:
        known = frames["customers"][frames["customers"]["signup_date"] <= d]["customer_id"]
        # The end of day D is the start of D + 1; events at the cutoff instant are excluded.
        cutoff = pd.DataFrame({"customer_id": known, "time": pd.Timestamp(d + timedelta(days=1))})
        matrix = ft.calculate_feature_matrix(chosen, es, cutoff_time=cutoff, training_window=f"{window} days",
                                             include_cutoff_time=False)
        results.append(matrix.reset_index().assign(ds=d))
    return pd.concat(results, ignore_index=True)


def test_values_equal_featuretools(spark: SparkSession, parity_config: Config, frames: dict[str, pd.DataFrame]) -> None:
    sources = parity_config.use_case.sources
    nightjar = compute_features(
        expand(parity_config), sources,
        {"transactions": spark.createDataFrame(frames["transactions"], SCHEMAS["transactions"](SCENARIO))},
        spark.createDataFrame(frames["customers"], SCHEMAS["customers"](SCENARIO)), sources["customers"], DATES,
    ).toPandas().set_index(["customer_id", "ds"]).sort_index()
    compared = 0
    for window in (7, 30):
        theirs = _featuretools(parity_config, frames, window).set_index(["customer_id", "ds"]).sort_index()
        assert list(theirs.index) == list(nightjar.index)  # the same entities known at each date
        for ft_name, (base, column, function) in PRIMITIVES.items():
            ours = nightjar["_".join(p for p in (base, column, function) if p) + f"_{window}d"].astype(float)
            expected = theirs[ft_name].astype(float)
            if function in ("count", "distinct_count", "sum"):
                expected = expected.fillna(0)  # featuretools leaves some empty windows missing
            np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True,
                                       err_msg=f"{ft_name} over {window} days")
            compared += int(ours.notna().sum())
    assert compared > 2000


def test_discovered_definitions_are_valid_configuration(
    spark: SparkSession, config: Config, frames: dict[str, pd.DataFrame],
) -> None:
    es = discovery.entityset(config, frames)
    proposal = discovery.to_definitions(config, discovery.synthesize(config, es), es)
    functions = {f for block in proposal["features"]["aggregates"] for f in block["functions"]}
    assert {"count", "sum", "mean", "std", "distinct_count", "days_since_last", "trend"} <= functions
    assert any("where" in block for block in proposal["features"]["aggregates"])
    assert {a["column"] for a in proposal["features"]["attributes"]} >= {"segment", "plan", "region"}
    assert "MODE(transactions.merchant_category)" in proposal["unsupported"]
    discovered = with_features(config, proposal["features"])
    feature_set = expand(discovered)
    schemas = {name: SCHEMAS[name](SCENARIO) for name in ("customers", "transactions")}
    check_columns(feature_set, schemas)
    assert len(feature_set.names) > 50


def test_the_discover_job_writes_a_reviewable_file(
    spark: SparkSession, config: Config, lake: Path, tmp_path: Path,
    frames: dict[str, pd.DataFrame],
) -> None:
    tables.overwrite(spark.createDataFrame(frames["customers"], SCHEMAS["customers"](SCENARIO)), config, "customers",
                     partition_by="signup_date")
    tables.overwrite(spark.createDataFrame(frames["transactions"], SCHEMAS["transactions"](SCENARIO)), config,
                     "transactions", partition_by="event_date")
    output = tmp_path / "candidates.yaml"
    assert run_in_process(features_job, lake, "discover", "--sample", "50", "--output", str(output)) == 0
    proposal = yaml.safe_load(output.read_text())
    expand(with_features(config, proposal["features"]))
    assert proposal["unsupported"]
