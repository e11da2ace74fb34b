"""Write featuretools' mock customer data as Delta tables for the `mock_customer` use case.

This stands for your own ETL: it is not part of Nightjar and uses none of its code. It loads
`featuretools.demo.load_mock_customer` and writes, with delta-rs (no Spark), the tables that
`conf/use_cases/mock_customer.yaml` reads from `<lake>/mock_customer/`:

    customers     one row per customer, partitioned by join_day (the day of join_date)
    sessions      partitioned by session_day (the day of session_start)
    transactions  partitioned by transaction_day (the day of transaction_time); carries its
                  session's customer_id, because Nightjar aggregates events by the entity key
    products      not partitioned; only the validation's `references` check reads it

    .venv/bin/python examples/mock_customer/write_tables.py [--lake PATH] [--customers N]
        [--sessions N] [--transactions N] [--seed N]

The mock data place one transaction every 65 seconds from 2014-01-01 00:00 UTC, so
`--transactions` sets the time span: the default 240,000 run to 2014-06-30 13:18 (2014-06-29
is the last complete day). Sessions go to customers uniformly at random. A rerun replaces the
tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import featuretools as ft
import pandas as pd
from deltalake import write_deltalake

USE_CASE = "mock_customer"  # the tables' folder under the lake: conf/use_cases/<this>.yaml
DEFAULT_LAKE = Path(__file__).resolve().parents[2] / "lake"  # conf/base.yaml's lake.root


def utc(times: pd.Series) -> pd.Series:
    """The mock data's naive times, read as UTC, in microseconds: a Delta `timestamp` column."""
    return times.dt.tz_localize("UTC").astype("datetime64[us, UTC]")


def tables(customers: int, sessions: int, transactions: int, seed: int) -> dict[str, tuple[pd.DataFrame, str | None]]:
    """The tables to write, each with its partition column (None: not partitioned)."""
    data = ft.demo.load_mock_customer(n_customers=customers, n_products=5, n_sessions=sessions,
                                      n_transactions=transactions, random_seed=seed)
    people = data["customers"].assign(join_date=lambda f: utc(f.join_date), birthday=lambda f: f.birthday.dt.date)
    visits = data["sessions"].assign(session_start=lambda f: utc(f.session_start))
    sales = (
        data["transactions"].merge(data["sessions"][["session_id", "customer_id"]], on="session_id")
        .assign(transaction_time=lambda f: utc(f.transaction_time), product_id=lambda f: f.product_id.astype("int64"))
    )
    return {
        "customers": (people.assign(join_day=people.join_date.dt.date), "join_day"),
        "sessions": (visits.assign(session_day=visits.session_start.dt.date), "session_day"),
        "transactions": (sales.assign(transaction_day=sales.transaction_time.dt.date), "transaction_day"),
        "products": (data["products"].astype({"product_id": "int64"}), None),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, default=DEFAULT_LAKE, help="the lake root (default: ./lake)")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=12_000)
    parser.add_argument("--transactions", type=int, default=240_000, help="one every 65 s from 2014-01-01")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = args.lake.resolve() / USE_CASE
    for name, (frame, partition) in tables(args.customers, args.sessions, args.transactions, args.seed).items():
        write_deltalake(folder / name, frame, mode="overwrite", partition_by=partition, schema_mode="overwrite")
        span = f", {frame[partition].min()} .. {frame[partition].max()}" if partition else ""
        print(f"{name}: {len(frame):,} rows{span} -> {folder / name}")


if __name__ == "__main__":
    main()
