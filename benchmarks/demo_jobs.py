"""The jobs `make demo` runs, one after another, each its own JVM, timed from their `runs` rows.

    .venv/bin/python benchmarks/demo_jobs.py [--use-case churn] [--lake /tmp/nightjar-demo-bench]
        [--checkout PATH] [--env ENV] [--set KEY=VALUE ...]

What `make demo` runs after its set-up, on a scratch lake: `generate`; `features` over the
training dates; `features` of the logical date; `train` and `score` on it (the dates from
`python -m nightjar.demo`, as the Makefile takes them). `--checkout` runs another checkout's
launcher and configuration (a worktree of an older commit, with `.venv` and `.jars` beside
it), so two commits compare on the same machine; `--env` and `--set` go to every job (the
test's smoke run: `--env test`, a smaller `generate.entities`).

Printed: each job's seconds in the job (its `runs` row) and from launch to exit (the JVM and
Python start-up included), its steps, and the sum over `generate`, `train` and `score` (the
figure of the issue on the demo's start-up; `features` belongs to the incremental features).
The last line is the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from benchmarks._launcher import exit_now, job, last_run  # noqa: E402

# The jobs of issue 18's figure: what is not the features' own work.
STARTUP_JOBS = ("generate", "train", "score")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--use-case", default="churn")
    parser.add_argument("--lake", default="/tmp/nightjar-demo-bench")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout whose launcher runs the jobs")
    parser.add_argument("--env", default=None, help="the configuration environment of every job (default: local)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    checkout = args.checkout.resolve()
    shutil.rmtree(args.lake, ignore_errors=True)
    settings = [f"lake.root={args.lake}", *args.settings]
    environment = ["--env", args.env] if args.env else []
    # The dates the checkout's own Makefile would take.
    dates = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "nightjar.demo", "--use-case", args.use_case, *environment],
        cwd=checkout, capture_output=True, text=True, check=True,
    ).stdout.split()
    if len(dates) == 3:
        first, logical, last_training = dates
        features = [["--start", first, "--end", last_training], ["--date", logical]]
    else:
        # An older checkout's demo computed every feature date from the first to the logical one.
        first, logical = dates
        features = [["--start", first, "--end", logical]]
    steps = [("generate", []), *[("features", argv) for argv in features],
             ("train", ["--date", logical]), ("score", ["--date", logical])]
    print(f"checkout {checkout} ({_commit(checkout)}); use case {args.use_case}; dates {' '.join(dates)}", flush=True)
    results = []
    for name, argv in steps:
        wall = job(name, args.use_case, settings, *environment, *argv, launcher=checkout / "spark-submit.sh")
        run = last_run(args.lake, args.use_case, name)
        results.append({"job": name, "args": " ".join(argv), "job_s": run["duration_s"], "wall_s": round(wall, 1),
                        "timings": run["timings"]})
        print(f"{name} {' '.join(argv)}: {run['duration_s']:.1f} s in the job, {wall:.1f} s with start-up; "
              + ", ".join(f"{k} {v:.1f} s" for k, v in run["timings"].items()), flush=True)
    chosen = [r for r in results if r["job"] in STARTUP_JOBS]
    job_s, wall_s = sum(r["job_s"] for r in chosen), sum(r["wall_s"] for r in chosen)
    print(f"generate + train + score: {job_s:.1f} s in the jobs, {wall_s:.1f} s with start-up; "
          f"all jobs: {sum(r['wall_s'] for r in results):.1f} s with start-up")
    print(json.dumps({"commit": _commit(checkout), "jobs": results, "startup_jobs_s": job_s,
                      "startup_jobs_wall_s": wall_s}))
    return 0


def _commit(checkout: Path) -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


if __name__ == "__main__":
    exit_now(main())
