"""Nightjar's feature engine vs featuretools and DuckDB on the same data and feature list.

    .venv/bin/python benchmarks/features_vs.py --rows 100000 1000000 [--dates 1] [--no-featuretools]

For each size: demo transactions covering the 90-day windows of `--dates` consecutive dates
ending 2026-03-31 (Parquet files in a scratch folder; `--rows` source rows in all), the ten
features both engines support (count, sum, mean, min, max, std, distinct count, last, and a
count and a sum filtered on channel = online) over 90 days for every customer known at each
date: one date is the nightly run, many dates a training backfill (featuretools then gets one
cutoff time per customer and date). Spark's session start-up is excluded; each engine is
timed from its Parquet (or pandas, for featuretools) input to the computed feature matrix.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features import discovery  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.definitions import expand  # noqa: E402
from features.engine import compute_features  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.generators.churn import ChurnScenario, simulate_block  # noqa: E402
from nightjar.session import get_spark  # noqa: E402

DAYS = 90
END = date(2026, 3, 31)
FEATURES = {
    "windows": [DAYS],
    "aggregates": [
        {"source": "transactions", "functions": ["count"]},
        {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "min", "max", "std", "last"]},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"]},
        {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"]},
        {"source": "transactions", "name": "online", "column": "amount", "where": {"channel": "online"},
         "functions": ["sum"]},
    ],
}


def target_dates(count: int) -> list[date]:
    return [END - timedelta(days=back) for back in range(count - 1, -1, -1)]


def make_data(rows: int, dates: int, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    span = DAYS + dates - 1
    customers = max(100, math.ceil(rows / span / 0.92))  # about 0.92 transactions per customer-day
    scenario = ChurnScenario(seed=1, entities=customers, start_date=END - timedelta(days=span - 1), end_date=END,
                             block_size=5000, horizon_days=30)
    frames = {
        output: pd.concat([pd.concat(simulate_block(scenario, b, output)) for b in range(scenario.blocks)],
                          ignore_index=True)
        for output in ("customers", "transactions")
    }
    frames["transactions"]["ts"] = frames["transactions"]["ts"].astype("datetime64[us]")
    frames["customers"]["signup_ts"] = frames["customers"]["signup_ts"].astype("datetime64[us]")
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return frames["customers"], frames["transactions"]


def time_nightjar(spark, config, folder: Path, dates: list[date]) -> tuple[float, int]:  # noqa: ANN001
    sources = config.use_case.sources
    began = time.perf_counter()
    events = spark.read.parquet(str(folder / "transactions.parquet"))
    entities = spark.read.parquet(str(folder / "customers.parquet"))
    matrix = compute_features(expand(config), sources, {"transactions": events}, entities, sources["customers"], dates)
    count = len(matrix.toPandas())
    return time.perf_counter() - began, count


def time_featuretools(config, customers: pd.DataFrame, transactions: pd.DataFrame,  # noqa: ANN001
                      dates: list[date]) -> tuple[float, int]:
    import featuretools as ft

    began = time.perf_counter()
    es = discovery.entityset(config, {"customers": customers, "transactions": transactions}, interesting_values=0,
                             entity_time_index=False)
    es.add_interesting_values(dataframe_name="transactions", values={"channel": ["online"]})
    candidates = ft.dfs(entityset=es, target_dataframe_name="customers",
                        agg_primitives=["count", "sum", "mean", "min", "max", "std", "num_unique", "last"],
                        where_primitives=["count", "sum"], trans_primitives=[], max_depth=1, features_only=True)
    wanted = {"COUNT(transactions)", "SUM(transactions.amount)", "MEAN(transactions.amount)",
              "MIN(transactions.amount)", "MAX(transactions.amount)", "STD(transactions.amount)",
              "NUM_UNIQUE(transactions.merchant_category)", "LAST(transactions.amount)",
              "COUNT(transactions WHERE channel = online)", "SUM(transactions.amount WHERE channel = online)"}
    chosen = [f for f in candidates if f.get_name() in wanted]
    cutoff = pd.concat([
        pd.DataFrame({"customer_id": customers[customers["signup_date"] <= d]["customer_id"],
                      "time": pd.Timestamp(d + timedelta(days=1))})
        for d in dates
    ], ignore_index=True)
    matrix = ft.calculate_feature_matrix(chosen, es, cutoff_time=cutoff, training_window=f"{DAYS} days",
                                         include_cutoff_time=False, n_jobs=1)
    return time.perf_counter() - began, len(matrix)


def time_duckdb(folder: Path, dates: list[date]) -> tuple[float, int]:
    first = dates[0] - timedelta(days=DAYS - 1)
    query = f"""
        WITH days AS (
            SELECT CAST(unnest(generate_series(DATE '{dates[0]}', DATE '{dates[-1]}', INTERVAL 1 DAY)) AS DATE) AS ds
        ), tx AS (
            SELECT * FROM read_parquet('{folder}/transactions.parquet')
            WHERE event_date BETWEEN DATE '{first}' AND DATE '{END}' AND customer_id IS NOT NULL
              AND CAST(ts AS DATE) = event_date
        ), agg AS (
            SELECT customer_id, ds,
                   count(*) AS n, sum(amount) AS total, avg(amount) AS mean, min(amount) AS lo, max(amount) AS hi,
                   stddev_samp(amount) AS sd, count(DISTINCT merchant_category) AS categories,
                   arg_max(amount, ts) AS last_amount,
                   count(*) FILTER (WHERE channel = 'online') AS online_n,
                   sum(amount) FILTER (WHERE channel = 'online') AS online_total
            FROM tx JOIN days ON tx.event_date BETWEEN days.ds - {DAYS - 1} AND days.ds
            GROUP BY customer_id, ds
        )
        SELECT c.customer_id, days.ds, coalesce(n, 0), coalesce(total, 0), mean, lo, hi, sd, coalesce(categories, 0),
               last_amount, coalesce(online_n, 0), coalesce(online_total, 0)
        FROM read_parquet('{folder}/customers.parquet') c JOIN days ON c.signup_date <= days.ds
        LEFT JOIN agg ON agg.customer_id = c.customer_id AND agg.ds = days.ds
    """
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    began = time.perf_counter()
    rows = connection.execute(query).fetchdf()
    return time.perf_counter() - began, len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dates", type=int, default=1, help="consecutive dates computed (1: a nightly run)")
    parser.add_argument("--no-featuretools", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nightjar-bench-"))
    config = load_config("local", [f"lake.root={scratch / 'lake'}", "spark.master=local[2]",
                                   "spark.shuffle_partitions=4"])
    config = config.model_copy(update={"features": FeaturesConfig.model_validate(FEATURES)})
    spark = get_spark(config)
    try:
        for rows in args.rows:
            folder = scratch / str(rows)
            folder.mkdir()
            customers, transactions = make_data(rows, args.dates, folder)
            dates = target_dates(args.dates)
            time_nightjar(spark, config, folder, dates)  # warm up the JVM on this size once
            nightjar_s, nightjar_rows = time_nightjar(spark, config, folder, dates)
            duck_s, duck_rows = time_duckdb(folder, dates)
            print(f"\n{len(transactions):,} source rows, {len(customers):,} customers, 10 features over {DAYS} days, "
                  f"{len(dates)} dates {dates[0]}..{dates[-1]}")
            print(f"  nightjar (Spark local[2]) {nightjar_s:8.2f}s  {len(transactions) / nightjar_s:>12,.0f} rows/s  ({nightjar_rows:,} entity-dates)")
            print(f"  duckdb (2 threads)        {duck_s:8.2f}s  {len(transactions) / duck_s:>12,.0f} rows/s  ({duck_rows:,} entity-dates)")
            print(f"  nightjar / duckdb time    {nightjar_s / duck_s:8.2f}x")
            if not args.no_featuretools:
                ft_s, ft_rows = time_featuretools(config, customers, transactions, dates)
                print(f"  featuretools (pandas)     {ft_s:8.2f}s  {len(transactions) / ft_s:>12,.0f} rows/s  ({ft_rows:,} entity-dates)")
                print(f"  featuretools / nightjar   {ft_s / nightjar_s:8.2f}x")
            sys.stdout.flush()
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
