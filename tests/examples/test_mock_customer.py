"""Bring your own data: the README's walkthrough on featuretools' mock customers, end to end.

The example's script (the user's ETL, no Nightjar code) writes small Delta tables into a
temporary lake; then the real jobs run on them with nothing but `conf/use_cases/mock_customer.yaml`
(training sized by `conf/test.yaml`): features, validate, train, score.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from deltalake import write_deltalake
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import features as features_job
from jobs import score as score_job
from jobs import train as train_job
from jobs import validate as validate_job
from nightjar import tables
from nightjar.config_loader import PROJECT_ROOT, load_config
from tests.conftest import run_in_process

SCRIPT = PROJECT_ROOT / "examples" / "mock_customer" / "write_tables.py"
USE_CASE = ("--use-case", "mock_customer")
CUSTOMERS = 200
# 80,000 transactions, one every 65 s from 2014-01-01, end on 2014-03-02 at 04:26: 2014-03-01 is
# the last complete day. With the 14-day horizon, `train --date 2014-03-01` trains on the feature
# dates 2014-02-02 .. 2014-02-15 (conf/test.yaml: 14 days).
SIZES = ("--customers", str(CUSTOMERS), "--sessions", "1200", "--transactions", "80000", "--seed", "3")
LAST_DAY = "2014-03-01"


def test_the_mock_customer_walkthrough_scores_every_customer(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    lake = tmp_path / "lake"
    written = subprocess.run([sys.executable, str(SCRIPT), "--lake", str(lake), *SIZES],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert f"customers: {CUSTOMERS:,} rows" in written.stdout and "transactions: 80,000 rows" in written.stdout
    config = load_config("test", [f"lake.root={lake}"], use_case="mock_customer")
    assert sorted(p.name for p in Path(tables.use_case_root(config)).iterdir()) == \
        ["customers", "products", "sessions", "transactions"]

    for job, argv in [
        (features_job, ("--start", "2014-02-02", "--end", LAST_DAY)),
        (validate_job, ("--table", "transactions", "--date", LAST_DAY)),
        (train_job, ("--date", LAST_DAY)),
        (score_job, ("--date", LAST_DAY)),
    ]:
        assert run_in_process(job, lake, *USE_CASE, *argv) == 0, job.JOB

    scores = tables.read(spark, config, "scores").where(F.col("ds") == date.fromisoformat(LAST_DAY)).toPandas()
    customers = tables.read(spark, config, "customers").select("customer_id").toPandas()
    assert len(scores) == CUSTOMERS and set(scores.customer_id) == set(customers.customer_id)
    assert scores.score.between(0, 1).all() and scores.score.std() > 0
    assert (scores.model_name == "mock_customer").all() and (scores.model_version == 1).all()

    # Every run passed the gate, and together they checked each source, the features and the scores.
    runs = tables.read(spark, config, config.tables.runs).toPandas()
    assert sorted(runs.job) == ["features", "score", "train", "validate"] and (runs.exit_code == 0).all()
    suites = [check for text in runs.checks.dropna() for check in json.loads(text) if "validation" in check]
    assert all(check["success"] for check in suites)
    assert {check["validation"] for check in suites} == {
        "source.customers", "source.sessions", "source.transactions", "features.features", "scores.scores",
    }
    metadata = json.loads(Path(tables.model_path(config, "mock_customer", 1), "metadata.json").read_text())
    assert metadata["holdout"]["dates"] == ["2014-02-13", "2014-02-14", "2014-02-15"]
    assert metadata["holdout"]["rows"] == 3 * CUSTOMERS

    # The suites fit this data: a transaction whose session does not exist stops validation (exit 3).
    orphan = pd.DataFrame({
        "transaction_id": [10**9], "session_id": [10**9],
        "transaction_time": [pd.Timestamp(f"{LAST_DAY} 12:00", tz="UTC")], "product_id": [1], "amount": [10.0],
        "customer_id": [1], "transaction_day": [date.fromisoformat(LAST_DAY)],
    }).astype({"transaction_time": "datetime64[us, UTC]"})
    write_deltalake(tables.table_path(config, "transactions"), orphan, mode="append")
    capsys.readouterr()
    argv = ("--table", "transactions", "--date", LAST_DAY)
    assert run_in_process(validate_job, lake, *USE_CASE, *argv) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"nightjar validate: error: validation failed: table 'transactions' transaction_day={LAST_DAY}: "
        "column session_id: references failed: 1 row whose session_id is not in table 'sessions', expected none"
    )
