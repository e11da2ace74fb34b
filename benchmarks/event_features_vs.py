"""Per-card event-time features, Nightjar's event engine against DuckDB window functions.

    .venv/bin/python benchmarks/event_features_vs.py [--entities 200000] [--days 31] [--data DIR]
        [--driver-memory 12g] [--shuffle-partitions N] [--duckdb-memory 8GB] [--repeat 1]

The features: count, sum, mean and max of `amount` per card over 1h, 24h, 7d and 30d before each
transaction, windows [t - w, t) that exclude the transaction itself and every event at the same
instant (conf/use_cases/fraud.yaml's definitions, 16 features). Computed for the transactions of
the last day D = 2026-03-31 only, every history row of the `--days` days up to D feeding the
windows (at the default 200,000 cards: about a million transactions a day, 31 million in all).

Input, written once outside the timed part: the fraud generator's transactions
(nightjar/generators/fraud.py, `generate.seed` of fraud.yaml) as Parquet files in `--data`
(default /tmp/nightjar-bench-event-features/<entities>x<days>), one per block of cards, reused
by a later run with the same parameters.

Timed, computation only (no checks, no Delta write), each engine reading the same Parquet files:

* Nightjar: `features.events.event_features` with a FeatureSet of only these 16 aggregates,
  forced with Spark's `noop` writer (every column computed, nothing stored), in a Spark session
  of the `features` job's settings (local[*], `spark.shuffle_partitions`, 4 buckets per shuffle
  partition). The session's start-up is not timed;
* DuckDB (`threads=2`): `count/sum/avg/max(...) OVER (PARTITION BY card_id ORDER BY ts RANGE
  BETWEEN INTERVAL w PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)`, materialised with
  `CREATE TEMP TABLE ... AS`. Timestamps are whole microseconds, so a frame ending 1 microsecond
  before t holds exactly the events before t: same-instant events are excluded. `check_frames`
  verifies this against a brute force on a small example with ties before anything is timed.
  A window function computes over every row it partitions, so DuckDB computes the windows of all
  the history's rows and keeps the last day's (`QUALIFY`): that is how window functions express it;
* DuckDB again, by a range join (`duckdb_join_query`): the last day's rows joined with their
  card's events of [t - 30d, t), each window an aggregate with a FILTER on its start. It computes
  only the rows kept, and was about 3 times faster than the window functions at the default size.
  Reported beside them; the goal is about the window functions.

Each engine (and formulation) first runs once untimed, writing its result to Parquet for the comparison (for
Spark this also warms the JVM and its Python workers), then `--repeat` timed runs; the ratio is
of the best of each. The results are compared row by row on `transaction_id` (in DuckDB): counts
must be equal, sums, means and maxima equal within 1e-9 relative (Nightjar adds amounts in fixed
point, DuckDB in doubles), missing values (an empty window's mean and max) missing on both sides,
and every row present on both sides; both DuckDB results are compared with Nightjar's. Goal:
Nightjar within 3x the time of DuckDB's window functions on 2 cores.

The last line of output is JSON with the figures; `mismatches` (of both comparisons) must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from features.definitions import AggregateSpec, FeatureSet, expand  # noqa: E402
from features.events import event_features  # noqa: E402
from nightjar.config import Config  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.durations import HOUR_MICROS  # noqa: E402
from nightjar.generators.fraud import scenario_for, simulate_block  # noqa: E402

USE_CASE = "fraud"
D = date(2026, 3, 31)
WINDOWS = "[1h, 24h, 7d, 30d]"
# Only the card's aggregates of amount: the merchant's, the distinct counts, the attributes and
# the ratios of fraud.yaml stay out, so both engines compute exactly the same 16 features.
FEATURE_SETTINGS = [
    f"features.windows={WINDOWS}",
    "features.aggregates=[{source: transactions, per: card_id, name: card, functions: [count]}, "
    "{source: transactions, per: card_id, name: card, column: amount, functions: [sum, mean, max]}]",
    "features.attributes=[]",
    "features.ratios=[]",
]
COLUMNS = ["transaction_id", "card_id", "ts", "amount", "tx_date"]
RELATIVE_TOLERANCE = 1e-9
# An empty window's sum is 0 in Nightjar (features.definitions.ZERO_WHEN_EMPTY), NULL in SQL.
DUCKDB_FUNCTION = {"count": "count(*) OVER {}", "sum": "coalesce(sum(amount) OVER {}, 0)", "mean": "avg(amount) OVER {}",
                   "max": "max(amount) OVER {}"}


def load() -> str:
    """The 1, 5 and 15-minute load averages, to print beside every figure (the machine is shared)."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def feature_config(lake: Path, driver_memory: str, shuffle_partitions: int | None = None) -> Config:
    """The fraud use case with only the 16 card aggregates, its lake in a scratch folder."""
    partitions = [f"spark.shuffle_partitions={shuffle_partitions}"] if shuffle_partitions else []
    return load_config("local", [f"lake.root={lake}", f"spark.driver_memory={driver_memory}", *partitions,
                                 *FEATURE_SETTINGS], use_case=USE_CASE)


def write_data(config: Config, entities: int, days: int, folder: Path) -> int:
    """The generator's transactions of `days` days up to D as Parquet files in `folder`; their row count.

    Reused when `folder` holds the same scenario: generating 31 million rows takes minutes.
    """
    scenario = scenario_for(config, D - timedelta(days=days - 1), D, entities, config.generate.seed)
    parameters = {**scenario.parameters(), "columns": COLUMNS}
    stamp = folder / "_parameters.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == parameters:
        return int(json.loads((folder / "_rows.json").read_text()))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    schema = pa.schema([("transaction_id", pa.int64()), ("card_id", pa.int64()),
                        ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64()), ("tx_date", pa.date32())])
    rows = 0
    for block in range(scenario.blocks):
        frame = pd.concat(simulate_block(scenario, block, "transactions"), ignore_index=True)[COLUMNS]
        frame["ts"] = frame["ts"].astype("datetime64[us]").dt.tz_localize("UTC")
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
                       folder / f"block-{block:05d}.parquet")
        rows += len(frame)
    (folder / "_rows.json").write_text(json.dumps(rows))
    # Written last: an interrupted run leaves no stamp, so the next one starts over.
    stamp.write_text(json.dumps(parameters))
    return rows


def interval(micros: int) -> str:
    """A DuckDB interval literal of `micros` microseconds (whole hours when it is)."""
    return f"INTERVAL {micros // HOUR_MICROS} HOUR" if micros % HOUR_MICROS == 0 else f"INTERVAL {micros} MICROSECOND"


def duckdb_query(source: str, specs: list[AggregateSpec], first_day: date, last_day: date) -> str:
    """The SELECT computing `specs` for the rows of `last_day`, with the history from `first_day` on.

    `source` is a table expression with `transaction_id, card_id, ts, amount, tx_date`. Rows are
    filtered as Nightjar filters events (`features.engine.prepared_events`): a card, and a
    timestamp on its partition's day.
    """
    frames = {}
    for spec in specs:
        frames.setdefault(spec.window.micros, f"w{len(frames)}")
    windows = ",\n            ".join(
        f"{name} AS (PARTITION BY card_id ORDER BY ts RANGE BETWEEN {interval(micros)} PRECEDING "
        "AND INTERVAL 1 MICROSECOND PRECEDING)"
        for micros, name in frames.items()
    )
    columns = ",\n               ".join(
        f"{DUCKDB_FUNCTION[spec.function].format(frames[spec.window.micros])} AS {spec.name}" for spec in specs
    )
    return f"""
        SELECT transaction_id,
               {columns}
        FROM {source}
        WHERE tx_date BETWEEN DATE '{first_day}' AND DATE '{last_day}'
          AND card_id IS NOT NULL AND CAST(ts AS DATE) = tx_date
        WINDOW {windows}
        QUALIFY tx_date = DATE '{last_day}'
    """


def duckdb_join_query(source: str, specs: list[AggregateSpec], first_day: date, last_day: date) -> str:
    """The same result as `duckdb_query` by a range join: each row of `last_day` joined with its
    card's events of [t - longest, t), every window an aggregate FILTERed on its own start.

    Window functions compute every history row's windows (31 times the rows kept at the default
    size); the join computes only the kept rows', so it is DuckDB's faster formulation here.
    """
    longest = max(spec.window.micros for spec in specs)
    join_functions = {"count": "count(h.ts)", "sum": "coalesce(sum(h.amount) FILTER (WHERE {}), 0)",
                      "mean": "avg(h.amount)", "max": "max(h.amount)"}
    columns = []
    for spec in specs:
        inside = f"h.ts >= q.ts - {interval(spec.window.micros)}"
        function = join_functions[spec.function]
        columns.append(f"{function.format(inside)} AS {spec.name}" if "{}" in function
                       else f"{function} FILTER (WHERE {inside}) AS {spec.name}")
    listed = ",\n               ".join(columns)
    return f"""
        WITH events AS (
            SELECT transaction_id, card_id, ts, amount, tx_date FROM {source}
            WHERE tx_date BETWEEN DATE '{first_day}' AND DATE '{last_day}'
              AND card_id IS NOT NULL AND CAST(ts AS DATE) = tx_date
        )
        SELECT q.transaction_id,
               {listed}
        FROM events q
        LEFT JOIN events h
          ON h.card_id = q.card_id AND h.ts >= q.ts - {interval(longest)} AND h.ts < q.ts
        WHERE q.tx_date = DATE '{last_day}'
        GROUP BY q.transaction_id
    """


# Each DuckDB formulation, by the name it is reported under.
FORMULATIONS = {"window": duckdb_query, "join": duckdb_join_query}


def check_frames(specs: list[AggregateSpec]) -> None:
    """Both DuckDB formulations against a brute force of [t - w, t) on a small example full of ties.

    Raises:
        AssertionError: some value differs (a frame that includes same-instant events, or t - w).
    """
    rng = np.random.default_rng(7)
    n = 600
    # Instants on a 10-minute grid over 3 days: many events share an instant, many sit exactly
    # on a window's start.
    seconds = rng.integers(0, 3 * 24 * 6, n) * 600
    example = pd.DataFrame({
        "transaction_id": np.arange(n, dtype=np.int64),
        "card_id": rng.integers(0, 6, n).astype(np.int64),
        "ts": pd.Timestamp("2026-03-29", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
        "amount": rng.integers(1, 100_000, n) / 100,
    })
    example["tx_date"] = example["ts"].dt.date
    last_day = date(2026, 3, 31)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("example", example)
    scored = example[example["tx_date"] == last_day]
    for name, formulation in FORMULATIONS.items():
        query = formulation("example", specs, last_day - timedelta(days=30), last_day)
        got = connection.execute(query).fetchdf().set_index("transaction_id").sort_index()
        assert len(got) == len(scored) > 0, name
        for row in scored.itertuples():
            for spec in specs:
                window = pd.Timedelta(microseconds=spec.window.micros)
                seen = example[(example["card_id"] == row.card_id) & (example["ts"] >= row.ts - window)
                               & (example["ts"] < row.ts)]["amount"]
                expected = {"count": len(seen), "sum": seen.sum(), "mean": seen.mean() if len(seen) else None,
                            "max": seen.max() if len(seen) else None}[spec.function]
                value = got.at[row.transaction_id, spec.name]
                if expected is None:
                    assert pd.isna(value), (name, spec.name, row, value)
                else:
                    assert abs(value - expected) <= 1e-9 * max(1.0, abs(expected)), (name, spec.name, row, value, expected)
    connection.close()
    ties = int(example.duplicated(["card_id", "ts"], keep=False).sum())
    print(f"DuckDB's {' and '.join(FORMULATIONS)} queries equal a brute force of [t - w, t) on {n} events ({ties} "
          f"share an instant with another of their card), {len(scored)} scored", flush=True)


def time_duckdb(query: str, memory: str, scratch: Path, repeat: int, output: Path) -> list[float]:
    """`query`'s result written to `output` (untimed), then `repeat` timed computations; their seconds."""
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    connection.execute(f"SET memory_limit = '{memory}'")
    connection.execute(f"SET temp_directory = '{scratch / 'duckdb_tmp'}'")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"COPY ({query}) TO '{output}' (FORMAT parquet)")
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        connection.execute(f"CREATE OR REPLACE TEMP TABLE timed AS {query}")
        seconds.append(time.perf_counter() - began)
        connection.execute("DROP TABLE timed")
    connection.close()
    return seconds


def time_nightjar(config: Config, feature_set: FeatureSet, data: Path, repeat: int, output: Path) -> list[float]:
    """Nightjar's result written to `output` (untimed, warms the JVM), then `repeat` timed noop runs; their seconds."""
    from nightjar.session import get_spark

    spark = get_spark(config)
    sources = config.use_case.sources
    # The bucket count the features job gives the engine (features.store.full_features).
    buckets = 4 * config.spark.shuffle_partitions

    def computed():  # noqa: ANN202
        frames = {"transactions": spark.read.parquet(str(data))}
        return event_features(feature_set, sources, frames, [D], buckets)

    try:
        computed().select("transaction_id", *feature_set.names).write.mode("overwrite").parquet(str(output))
        seconds = []
        for _ in range(repeat):
            began = time.perf_counter()
            computed().write.format("noop").mode("overwrite").save()
            seconds.append(time.perf_counter() - began)
    finally:
        spark.stop()
    return seconds


def compare(spark_output: Path, duckdb_output: Path, specs: list[AggregateSpec]) -> dict[str, Any]:
    """Row-by-row differences of the two results, by transaction id: per feature and in all."""

    def differs(spec: AggregateSpec) -> str:
        a, b = f"n.{spec.name}", f"d.{spec.name}"
        if spec.function == "count":
            return f"{a} IS DISTINCT FROM {b}"
        missing_a, missing_b = f"({a} IS NULL OR isnan({a}))", f"({b} IS NULL OR isnan({b}))"
        return (f"CASE WHEN {missing_a} OR {missing_b} THEN {missing_a} <> {missing_b} "
                f"ELSE abs({a} - {b}) > {RELATIVE_TOLERANCE} * greatest(abs({a}), abs({b})) END")

    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    joined = (f"read_parquet('{spark_output}/*.parquet') n FULL OUTER JOIN read_parquet('{duckdb_output}') d "
              "USING (transaction_id)")
    # Per feature, the rows on both sides only: a row on one side is counted once, apart.
    both = "n.transaction_id IS NOT NULL AND d.transaction_id IS NOT NULL"
    per_feature = ", ".join(f"count(*) FILTER (WHERE {both} AND ({differs(spec)})) AS {spec.name}" for spec in specs)
    any_differs = " OR ".join(f"({differs(spec)})" for spec in specs)
    row = connection.execute(f"""
        SELECT count(*) AS rows,
               count(*) FILTER (WHERE n.transaction_id IS NULL) AS only_duckdb,
               count(*) FILTER (WHERE d.transaction_id IS NULL) AS only_nightjar,
               count(*) FILTER (WHERE n.transaction_id IS NULL OR d.transaction_id IS NULL OR {any_differs}) AS mismatches,
               {per_feature}
        FROM {joined}
    """).fetchdf().iloc[0]
    examples = connection.execute(f"""
        SELECT transaction_id, {', '.join(f'n.{s.name} AS nightjar_{s.name}, d.{s.name} AS duckdb_{s.name}' for s in specs)}
        FROM {joined} WHERE n.transaction_id IS NULL OR d.transaction_id IS NULL OR {any_differs} LIMIT 3
    """).fetchdf()
    connection.close()
    result = {key: int(value) for key, value in row.items()}
    result["examples"] = examples.to_dict(orient="records")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=200_000, help="cards (about 5 transactions each a day)")
    parser.add_argument("--days", type=int, default=31, help="days of history up to D, D included")
    parser.add_argument("--data", help="folder of the Parquet input (default: /tmp/nightjar-bench-event-features/...)")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--duckdb-memory", default="8GB", help="DuckDB's memory_limit")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each engine after its untimed one")
    parser.add_argument("--shuffle-partitions", type=int,
                        help="spark.shuffle_partitions (default: the configuration's); the engine's buckets are "
                             "4 times as many, as in the features job")
    args = parser.parse_args(argv)
    if args.entities < 1 or args.days < 1 or args.repeat < 1:
        parser.error("--entities, --days and --repeat must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="nightjar-bench-events-"))
    try:
        config = feature_config(scratch / "lake", args.driver_memory, args.shuffle_partitions)
        feature_set = expand(config)
        specs = list(feature_set.aggregates)
        check_frames(specs)
        data = Path(args.data or f"/tmp/nightjar-bench-event-features/{args.entities}x{args.days}")
        began = time.perf_counter()
        rows = write_data(config, args.entities, args.days, data)
        print(f"input: {rows:,} transactions of {args.entities:,} cards over {args.days} days up to {D} in {data} "
              f"({time.perf_counter() - began:.1f}s, not timed)", flush=True)

        source, first_day = f"read_parquet('{data}/*.parquet')", D - timedelta(days=args.days - 1)
        duck: dict[str, list[float]] = {}
        loads: dict[str, str] = {}
        for name, formulation in FORMULATIONS.items():
            duck[name] = time_duckdb(formulation(source, specs, first_day, D), args.duckdb_memory, scratch,
                                     args.repeat, scratch / f"duckdb-{name}.parquet")
            loads[f"duckdb {name}"] = load()
            print(f"  duckdb {name} (threads=2)  {' '.join(f'{s:.2f}s' for s in duck[name])}  ({loads[f'duckdb {name}']})",
                  flush=True)
        # After DuckDB, whose connections are closed by then: the two never hold memory at once.
        nightjar = time_nightjar(config, feature_set, data, args.repeat, scratch / "nightjar")
        loads["nightjar"] = load()
        print(f"  nightjar (Spark {config.spark.master}) {' '.join(f'{s:.2f}s' for s in nightjar)}  ({loads['nightjar']})",
              flush=True)
        found = {name: compare(scratch / "nightjar", scratch / f"duckdb-{name}.parquet", specs) for name in FORMULATIONS}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    best_nightjar = min(nightjar)
    ratios = {name: best_nightjar / min(seconds) for name, seconds in duck.items()}
    scored = found["window"]["rows"] - found["window"]["only_duckdb"]
    print(f"\n{rows:,} transactions ({args.entities:,} cards, {args.days} days up to {D}); "
          f"{len(specs)} features of the {scored:,} transactions of {D}")
    print(f"  nightjar (event_features, noop write)  {best_nightjar:8.2f}s  ({loads['nightjar']})")
    print(f"  duckdb (window functions, 2 threads)   {min(duck['window']):8.2f}s  ({loads['duckdb window']})")
    print(f"  duckdb (range join, 2 threads)         {min(duck['join']):8.2f}s  ({loads['duckdb join']})")
    print(f"  nightjar / duckdb window functions     {ratios['window']:8.2f}x  goal <= 3x")
    print(f"  nightjar / duckdb range join           {ratios['join']:8.2f}x")
    mismatches = {}
    for name, result in found.items():
        per_feature = {spec.name: result[spec.name] for spec in specs if result[spec.name]}
        mismatches[name] = {"mismatches": result["mismatches"], "rows_compared": result["rows"],
                            "only_nightjar": result["only_nightjar"], "only_duckdb": result["only_duckdb"],
                            "by_feature": per_feature}
        print(f"  nightjar vs duckdb {name}: rows compared {result['rows']:,}, mismatches {result['mismatches']:,} "
              f"(only in nightjar {result['only_nightjar']:,}, only in duckdb {result['only_duckdb']:,}"
              + (f"; by feature {per_feature}" if per_feature else "") + ")")
        for example in result["examples"]:
            print(f"    e.g. {example}")
    print(json.dumps({
        "entities": args.entities, "days": args.days, "date": D.isoformat(), "input_rows": rows, "scored_rows": scored,
        "features": len(specs), "nightjar_s": [round(s, 2) for s in nightjar],
        "duckdb_s": {name: [round(s, 2) for s in seconds] for name, seconds in duck.items()},
        "ratio": round(ratios["window"], 2), "ratio_join": round(ratios["join"], 2),
        "mismatches": sum(m["mismatches"] for m in mismatches.values()), "comparisons": mismatches, "load": loads,
    }, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
