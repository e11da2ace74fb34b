"""The maintenance use case's nightly path at fleet scale, through the real launcher.

    .venv/bin/python benchmarks/maintenance_nightly.py [--machines 100000] [--lake DIR]
        [--driver-memory 12g]

Sets up a lake (not timed as the nightly path): `generate` of `--machines` machines over the 13
days up to D (2.4 million telemetry rows a day at 100,000 machines), the features of D-5 .. D-3
and a champion trained on them (`train --date D-1`: the smallest training that has a fold and a
holdout). Then times the nightly path of D, each step its own JVM as a scheduler runs it:
`features --date D` (7 days of hourly telemetry per machine, the source checks, the feature
checks, the write) and `score --date D` (the feature checks and drift, prediction, reasons, the
scores checks, the write). Prints each job's wall time (launcher to exit) and the step timings
of its `runs` row. Goal: the nightly path under 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._launcher import exit_now, job, last_run  # noqa: E402

USE_CASE = "maintenance"
D = date(2026, 3, 31)
HISTORY_DAYS = 7
SETUP_DAYS = HISTORY_DAYS + 6  # the history of D-5, the first training date, through D


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--lake", default="/tmp/nightjar-bench-maintenance")
    parser.add_argument("--driver-memory", default="12g")
    args = parser.parse_args()

    settings = [
        f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
        "generate.block_size=5000",
        # The smallest training with a fold and a holdout: three feature dates, D-5 .. D-3.
        "training.days=3", "training.holdout_days=1", "training.folds=1", "training.gap_days=0",
        "training.search.trials=1", "training.max_rounds=100",
    ]
    setup = {
        "generate": job("generate", USE_CASE, settings, "--force", "--date", D.isoformat(),
                        "--days", str(SETUP_DAYS), "--entities", str(args.machines)),
        "features D-5..D-3": job("features", USE_CASE, settings, "--force",
                                 "--start", (D - timedelta(days=5)).isoformat(),
                                 "--end", (D - timedelta(days=3)).isoformat()),
        "train": job("train", USE_CASE, settings, "--date", (D - timedelta(days=1)).isoformat()),
    }
    nightly = {
        "features": job("features", USE_CASE, settings, "--force", "--date", D.isoformat()),
        "score": job("score", USE_CASE, settings, "--force", "--date", D.isoformat()),
    }
    telemetry = last_run(args.lake, USE_CASE, "generate")["rows"].get("telemetry", 0)
    print(f"\nmachines={args.machines:,}  telemetry rows a day: {telemetry / SETUP_DAYS:,.0f}")
    for step, seconds in setup.items():
        print(f"  setup   {step:<20} {seconds:>7.1f}s")
    for step, seconds in nightly.items():
        run = last_run(args.lake, USE_CASE, step)
        print(f"  nightly {step:<20} {seconds:>7.1f}s  (in the job: {run['duration_s']:.1f}s; steps {run['timings']})")
    total = sum(nightly.values())
    print(f"  nightly path (features + score, launcher to exit): {total:.1f}s  goal < 300s")
    print(json.dumps({"machines": args.machines, "setup_s": setup, "nightly_s": nightly, "nightly_total_s": round(total, 1)}))
    return 0


if __name__ == "__main__":
    exit_now(main())
