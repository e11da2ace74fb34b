"""Measure the demo generator at scale through the real launcher.

    .venv/bin/python benchmarks/generate_scale.py [--use-case churn] --entities 1000000 --days 90 [--lake /tmp/nightjar-bench]
    .venv/bin/python benchmarks/generate_scale.py --use-case fraud --entities 200000 --days 2   # ~1M transactions a day

Runs `./spark-submit.sh generate` on the embedded default (local[*]) into a scratch lake, then
reads the tables and the run's timings back with delta-rs and prints rows per second.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nightjar import tables  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--use-case", default="churn")
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--lake", default="/tmp/nightjar-bench-lake")
    parser.add_argument("--driver-memory", default="12g")
    args = parser.parse_args()

    command = [
        str(ROOT / "spark-submit.sh"), "generate", "--force", "--use-case", args.use_case,
        "--entities", str(args.entities), "--days", str(args.days),
        "--set", f"lake.root={args.lake}", "--set", f"spark.driver_memory={args.driver_memory}",
        "--set", "spark.shuffle_partitions=16",
        "--set", "generate.block_size=10000",
    ]
    print("$", " ".join(command), flush=True)
    began = time.perf_counter()
    completed = subprocess.run(command)
    wall = time.perf_counter() - began
    if completed.returncode:
        print(f"generate failed with exit code {completed.returncode}", file=sys.stderr)
        return completed.returncode

    config = load_config("local", [f"lake.root={args.lake}"], use_case=args.use_case)
    runs = DeltaTable(tables.table_path(config, config.tables.runs)).to_pandas()
    run = runs[runs["job"] == "generate"].sort_values("started_at").iloc[-1]
    timings = dict(run["timings"])
    counts = dict(run["row_counts"])
    print(f"\n{args.use_case}: entities={args.entities:,} days={args.days} wall (launcher to exit) {wall:.1f}s")
    written = [table for table in counts if f"write_{table}" in timings]
    for table in written:
        seconds = timings[f"write_{table}"]
        rows = counts[table]
        print(f"  {table:<13} {rows:>13,} rows  {seconds:>7.1f}s  {rows / seconds:>12,.0f} rows/s")
    generated = sum(counts.values())
    spent = sum(timings[f"write_{t}"] for t in written)
    print(f"  all tables    {generated:>13,} rows  {spent:>7.1f}s  {generated / spent:>12,.0f} rows/s")
    largest = max(written, key=lambda table: counts[table])
    print(f"  {largest} per day: {counts[largest] / args.days:,.0f}")
    print(json.dumps({"wall_s": round(wall, 1), "timings": timings, "row_counts": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
