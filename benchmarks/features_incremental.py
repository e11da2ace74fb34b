"""Incremental features (stored tiles) against the full computation, DuckDB, and longer histories.

    .venv/bin/python benchmarks/features_incremental.py nightly  [--entities 1090000] [--lake DIR]
    .venv/bin/python benchmarks/features_incremental.py duckdb   [--entities 1090000] [--lake DIR] [--repeats 3]
    .venv/bin/python benchmarks/features_incremental.py history  [--entities 110000]  [--lake DIR] [--windows 30 365] [--repeats 3]
    .venv/bin/python benchmarks/features_incremental.py backfill [--entities 10000]   [--lake DIR] [--dates 90]

`nightly`: churn's demo data, about 0.92 transactions per customer and day (1,000,000 a day at
the default 1,090,000 customers), its 47 features over windows up to 90 days. Setup (not the
measured path): `generate` of 92 days, then `features --date D-1`, which stores the tiles of
the 90 days before D. Then, each its own JVM as a scheduler runs it: `features --date D`
(incremental: D's day tile from D's events, every window from stored tiles) and the same date
with `features.incremental=false` (every event of the 90 days), each into a table of its own
(neither runs the features suite; both run the source checks); the two are compared row for row.

`duckdb`: on the same lake, in one warm session with no validation and no write, the
computation alone of D for the ten features of `features_vs.py` from stored tiles (D's day tile
from its events, the rest stored by a setup run of D-1), against DuckDB (threads=2) computing
them from the raw events over the same Parquet files.

`history`: the same feature set with every window 30 days, then every window 365 days
(tiles stored up to D-1 for each), at about 100,000 transactions a day: the nightly
computation time (warm session, no write) of 365 over 30.

`backfill`: the demo (`make demo`: 10,000 customers, 180 days), its 90-date training backfill
`features --start --end` (the dates `make demo` computes) from tiles, with the features suite as
the demo runs it, against the same with `features.incremental=false` (the computation before
tiles) into a table of its own without the suite; each its own JVM.

Each prints its figures and a last line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._launcher import exit_now, job  # noqa: E402
from features import store  # noqa: E402
from features.config import FeaturesConfig  # noqa: E402
from features.definitions import expand  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config import Config  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.demo import demo_dates  # noqa: E402
from nightjar.session import get_spark  # noqa: E402

USE_CASE = "churn"
D = date(2026, 3, 31)
# The ten features of features_vs.py over one window, as DuckDB computes them below.
TEN_FEATURES = [
    {"source": "transactions", "functions": ["count"]},
    {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "min", "max", "std", "last"]},
    {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"]},
    {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"]},
    {"source": "transactions", "name": "online", "column": "amount", "where": {"channel": "online"},
     "functions": ["sum"]},
]


def last_run(config: Config, name: str) -> dict:
    runs = DeltaTable(tables.table_path(config, config.tables.runs)).to_pandas()
    run = runs[runs["job"] == name].sort_values("started_at").iloc[-1]
    return {"duration_s": round(float(run["duration_s"]), 1),
            "timings": {k: round(float(v), 1) for k, v in dict(run["timings"]).items()},
            "checks": run["checks"]}


def generate(settings: list[str], entities: int, days: int) -> float:
    # Without --force: a lake generated with the same parameters is reused.
    return job("generate", USE_CASE, settings, "--date", D.isoformat(), "--days", str(days), "--entities", str(entities))


def files_of(config: Config, name: str, first: date, last: date, partition: str) -> list[str]:
    """The Parquet files of `name`'s partitions first..last (for DuckDB)."""
    reader = DeltaTable(tables.table_path(config, name))
    actions = pa.table(reader.get_add_actions(flatten=True)).to_pandas()
    chosen = actions[(actions[f"partition.{partition}"] >= first) & (actions[f"partition.{partition}"] <= last)]
    root = tables.table_path(config, name)
    return [os.path.join(root, path) for path in chosen["path"]]


def duckdb_ten(config: Config, day: date, days: int) -> tuple[float, int]:
    """DuckDB computing TEN_FEATURES over `days` days for date `day` from the raw Parquet files."""
    events = files_of(config, "transactions", day - timedelta(days=days - 1), day, "event_date")
    customers = files_of(config, "customers", date(1970, 1, 1), day, "signup_date")
    query = f"""
        WITH tx AS (
            SELECT * FROM read_parquet({events!r}, hive_partitioning = true)
            WHERE customer_id IS NOT NULL AND CAST(ts AS DATE) = event_date
        ), agg AS (
            SELECT customer_id,
                   count(*) AS n, sum(amount) AS total, avg(amount) AS mean, min(amount) AS lo, max(amount) AS hi,
                   stddev_samp(amount) AS sd, count(DISTINCT merchant_category) AS categories,
                   arg_max(amount, ts) AS last_amount,
                   count(*) FILTER (WHERE channel = 'online') AS online_n,
                   sum(amount) FILTER (WHERE channel = 'online') AS online_total
            FROM tx GROUP BY customer_id
        )
        SELECT c.customer_id, coalesce(n, 0), coalesce(total, 0), mean, lo, hi, sd, coalesce(categories, 0),
               last_amount, coalesce(online_n, 0), coalesce(online_total, 0)
        FROM read_parquet({customers!r}, hive_partitioning = true) c
        LEFT JOIN agg ON agg.customer_id = c.customer_id
        WHERE CAST(c.signup_ts AS DATE) <= DATE '{day}'
    """
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    began = time.perf_counter()
    rows = len(connection.execute(query).fetchdf())
    return time.perf_counter() - began, rows


def with_features(config: Config, features: dict, partials: str) -> Config:
    tables_config = config.tables.model_copy(update={"partials": partials})
    return config.model_copy(update={"features": FeaturesConfig.model_validate(features), "tables": tables_config})


def store_tiles(spark, config: Config, day: date) -> None:  # noqa: ANN001
    """Store the tiles the windows of `day` read (setup: as `features --date day` would)."""
    feature_set = expand(config)
    frames = {name: tables.read(spark, config, config.use_case.sources[name].table)
              for name in (*feature_set.sources, "customers")}
    assembly = store.tiled_features(spark, config, feature_set, frames, [day])
    if assembly.new_tiles is not None:
        tables.replace_where(assembly.new_tiles, config, config.tables.partials, "day", assembly.replaced,
                             metadata={"manifest": assembly.manifest}, add_columns=True)
    assembly.release()


def nightly_computation(spark, config: Config, day: date, repeats: int = 3) -> tuple[float, int]:  # noqa: ANN001
    """The computation alone of `day` from stored tiles (D's day tile from its events): the best of `repeats`."""
    feature_set = expand(config)
    frames = {name: tables.read(spark, config, config.use_case.sources[name].table)
              for name in (*feature_set.sources, "customers")}
    best, rows = float("inf"), 0
    for _ in range(repeats):
        began = time.perf_counter()
        assembly = store.tiled_features(spark, config, feature_set, frames, [day])
        # Every column computed (a count alone would let Spark skip the aggregates).
        assembly.features.write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - began)
        rows = assembly.features.count()
        assembly.release()
    return best, rows


def session_config(lake: str, memory: str) -> Config:
    return load_config("local", [f"lake.root={lake}", "spark.master=local[2]", f"spark.driver_memory={memory}",
                                 "spark.shuffle_partitions=8"], use_case=USE_CASE)


def compare(config: Config, first: str, second: str, day: date) -> int:
    """Rows of `first` at `day` that `second` lacks, and the reverse (0: the same rows, bit for bit)."""
    def files(name: str) -> list[str]:
        return files_of(config, name, day, day, "ds")

    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    a, b = files(first), files(second)
    differing = 0
    for one, other in ((a, b), (b, a)):
        differing += int(connection.execute(
            f"SELECT count(*) FROM (SELECT * EXCLUDE (ds) FROM read_parquet({one!r}) EXCEPT ALL "
            f"SELECT * EXCLUDE (ds) FROM read_parquet({other!r}))"
        ).fetchone()[0])
    return differing


def nightly(args: argparse.Namespace) -> dict:
    settings = [f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
                "spark.shuffle_partitions=16", "generate.block_size=10000"]
    config = session_config(args.lake, args.driver_memory)
    setup = {"generate": generate(settings, args.entities, 92),
             "features D-1 (stores 90 days of tiles)": job("features", USE_CASE, [*settings, "features.incremental=true"],
                                                           "--force", "--date",
                                                           (D - timedelta(days=1)).isoformat())}
    # Both into tables of their own (with no features suite, which is keyed by the table's name):
    # the same work but for how the windows are computed.
    compared = [*settings, "validation.suites.features={}"]
    incremental = job("features", USE_CASE, [*compared, "features.incremental=true", "tables.features=features_tiles"],
                      "--force", "--date", D.isoformat())
    incremental_run = last_run(config, "features")
    full = job("features", USE_CASE, [*compared, "features.incremental=false", "tables.features=features_full"],
               "--force", "--date", D.isoformat())
    full_run = last_run(config, "features")
    mismatches = compare(config, "features_tiles", "features_full", D)
    per_day = transactions_on(config, D)
    print(f"\n{args.entities:,} customers, {per_day:,} transactions on D = {D}, 90-day windows")
    for step, seconds in setup.items():
        print(f"  setup  {step:<42} {seconds:>7.1f}s")
    print(f"  features --date D, incremental (tiles)        {incremental:>7.1f}s  steps {incremental_run['timings']}")
    print(f"  features --date D, full computation           {full:>7.1f}s  steps {full_run['timings']}")
    print(f"  full / incremental (job, launcher to exit)    {full / incremental:>7.2f}x  goal >= 5")
    compute_ratio = full_run["timings"]["features_compute_and_write"] / incremental_run["timings"]["features_compute_and_write"]
    print(f"  full / incremental (compute and write step)   {compute_ratio:>7.2f}x")
    print(f"  rows differing between the two tables          {mismatches}")
    return {"mode": "nightly", "entities": args.entities, "transactions_on_d": per_day, "setup_s": setup,
            "incremental_s": round(incremental, 1), "full_s": round(full, 1),
            "job_ratio": round(full / incremental, 2), "compute_ratio": round(compute_ratio, 2),
            "mismatched_rows": mismatches}


def against_duckdb(args: argparse.Namespace) -> dict:
    settings = [f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
                "spark.shuffle_partitions=16", "generate.block_size=10000"]
    setup = {"generate": generate(settings, args.entities, 92)}
    config = session_config(args.lake, args.driver_memory)
    spark = get_spark(config)
    ten = with_features(config, {"windows": [90], "aggregates": TEN_FEATURES}, "bench_partials_ten")
    began = time.perf_counter()
    store_tiles(spark, ten, D - timedelta(days=1))
    setup["tiles of D-1"] = round(time.perf_counter() - began, 1)
    tiles_s, tiles_rows = nightly_computation(spark, ten, D, args.repeats)
    spark.stop()
    duck_s, duck_rows = min(duckdb_ten(ten, D, 90) for _ in range(args.repeats))
    per_day = transactions_on(config, D)
    print(f"\n{args.entities:,} customers, {per_day:,} transactions on D = {D}, ten features over 90 days")
    for step, seconds in setup.items():
        print(f"  setup  {step:<16} {seconds:>7.1f}s")
    print(f"  computation alone (best of {args.repeats}): tiles {tiles_s:.2f}s ({tiles_rows:,} rows), "
          f"duckdb {duck_s:.2f}s ({duck_rows:,} rows): tiles / duckdb {tiles_s / duck_s:.2f}  goal <= 1.0")
    return {"mode": "duckdb", "entities": args.entities, "transactions_on_d": per_day, "setup_s": setup,
            "tiles_s": round(tiles_s, 2), "duckdb_s": round(duck_s, 2), "tiles_over_duckdb": round(tiles_s / duck_s, 2)}


def transactions_on(config: Config, day: date) -> int:
    return DeltaTable(tables.table_path(config, "transactions")).to_pandas(
        partitions=[("event_date", "=", day.isoformat())], columns=["customer_id"]).shape[0]


def history(args: argparse.Namespace) -> dict:
    settings = [f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
                "spark.shuffle_partitions=16", "generate.block_size=10000"]
    short, long = args.windows
    setup = {"generate": generate(settings, args.entities, long + 2)}
    config = session_config(args.lake, args.driver_memory)
    spark = get_spark(config)
    base = load_config("local", [], use_case=USE_CASE).features.model_dump(mode="json")
    measured = {}
    for days in (short, long):
        # Ratios name features of other windows: left out.
        features = {**base, "windows": [days], "ratios": [],
                    "aggregates": [{**block, "windows": [days]} for block in base["aggregates"]]}
        variant = with_features(config, features, f"bench_partials_{days}")
        began = time.perf_counter()
        store_tiles(spark, variant, D - timedelta(days=1))
        setup[f"tiles of {days} days"] = round(time.perf_counter() - began, 1)
        measured[days], rows = nightly_computation(spark, variant, D, args.repeats)
    spark.stop()
    per_day = transactions_on(config, D)
    ratio = measured[long] / measured[short]
    print(f"\n{args.entities:,} customers, {per_day:,} transactions on D, {rows:,} feature rows")
    for step, seconds in setup.items():
        print(f"  setup  {step:<24} {seconds:>7.1f}s")
    print(f"  nightly computation, every window {short}d   {measured[short]:>7.2f}s")
    print(f"  nightly computation, every window {long}d  {measured[long]:>7.2f}s")
    print(f"  {long}d / {short}d                              {ratio:>7.2f}  goal <= 2.0 (for 365d / 30d)")
    return {"mode": "history", "entities": args.entities, "transactions_on_d": per_day, "windows": [short, long],
            "short_window_s": round(measured[short], 2), "long_window_s": round(measured[long], 2),
            "ratio": round(ratio, 2)}


def backfill(args: argparse.Namespace) -> dict:
    settings = [f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}"]
    setup = {"generate": generate(settings, args.entities, 180)}
    first, last = demo_dates(load_config("local", [], use_case=USE_CASE))  # the dates `make demo` computes
    first = max(first, last - timedelta(days=args.dates - 1))
    start, end = first.isoformat(), last.isoformat()
    tiled = job("features", USE_CASE, [*settings, "features.incremental=true"], "--force", "--rebuild", "--start", start, "--end", end)
    full = job("features", USE_CASE, [*settings, "features.incremental=false", "tables.features=features_full",
                            "validation.suites.features={}"], "--force", "--rebuild", "--start", start, "--end", end)
    config = session_config(args.lake, args.driver_memory)
    dates = (last - first).days + 1
    mismatches = sum(compare(config, "features", "features_full", date.fromisoformat(end) - timedelta(days=n))
                     for n in sorted({0, dates // 2, dates - 1}))
    print(f"\n{args.entities:,} customers, {dates}-date backfill {start}..{end}")
    print(f"  from tiles         {tiled:>7.1f}s")
    print(f"  full computation   {full:>7.1f}s")
    print(f"  full / tiles       {full / tiled:>7.2f}x  goal >= 5 (the issue's baseline: 256 s on a fresh clone of 3652d6e)")
    print(f"  rows differing on three of the dates: {mismatches}")
    return {"mode": "backfill", "entities": args.entities, "dates": dates, "setup_s": setup, "tiles_s": round(tiled, 1),
            "full_s": round(full, 1), "ratio": round(full / tiled, 2), "mismatched_rows": mismatches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["nightly", "duckdb", "history", "backfill"])
    parser.add_argument("--entities", type=int)
    parser.add_argument("--lake")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--repeats", type=int, default=3,
                        help="duckdb, history: timed computations of which the best counts")
    parser.add_argument("--dates", type=int, default=90,
                        help="backfill: the last DATES of the demo's 90 training dates")
    parser.add_argument("--windows", type=int, nargs=2, default=[30, 365], metavar=("SHORT", "LONG"),
                        help="history: the two window lengths in days")
    args = parser.parse_args()
    args.entities = args.entities or {"nightly": 1_090_000, "duckdb": 1_090_000, "history": 110_000,
                                      "backfill": 10_000}[args.mode]
    # nightly and duckdb share a lake: same generation parameters, different partials tables.
    args.lake = args.lake or f"/tmp/nightjar-bench-{'nightly' if args.mode == 'duckdb' else args.mode}"
    modes = {"nightly": nightly, "duckdb": against_duckdb, "history": history, "backfill": backfill}
    figures = modes[args.mode](args)
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    exit_now(main())
