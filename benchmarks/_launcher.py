"""What the benchmarks that time whole jobs share: run a job through the real launcher, read its
`runs` row back, and leave the interpreter without its teardown.

A scheduler starts every job as its own process (`./spark-submit.sh JOB ...`: a JVM of its own),
so these benchmarks do too, and time it from launch to exit; the `runs` row then says where
inside the job the time went.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nightjar import tables  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402


def job(name: str, use_case: str, settings: list[str], *argv: str, launcher: Path = ROOT / "spark-submit.sh") -> float:
    """Run job `name` of `use_case` with the launcher (this checkout's unless named), `settings`
    as `--set`s; its wall time in seconds.

    The job's own output is dropped (its progress lines would bury the benchmark's), its errors
    are not: a failing job ends the benchmark with its exit code.
    """
    command = [str(launcher), name, "--use-case", use_case, *argv,
               *[arg for setting in settings for arg in ("--set", setting)]]
    print("$", " ".join(command), flush=True)
    began = time.perf_counter()
    completed = subprocess.run(command, stdout=subprocess.DEVNULL)
    if completed.returncode:
        raise SystemExit(f"{name} failed with exit code {completed.returncode}")
    return time.perf_counter() - began


def last_run(lake: str, use_case: str, name: str) -> dict[str, Any]:
    """The latest `runs` row of job `name` in `use_case` on `lake`: its duration, row counts and step timings."""
    config = load_config("local", [f"lake.root={lake}"], use_case=use_case)
    runs = DeltaTable(tables.table_path(config, config.tables.runs)).to_pandas()
    run = runs[runs["job"] == name].sort_values("started_at").iloc[-1]
    return {"duration_s": round(float(run["duration_s"]), 1),
            "rows": {k: int(v) for k, v in dict(run["row_counts"]).items()},
            # An older commit's runs rows may have no step timings.
            "timings": {k: round(float(v), 1) for k, v in dict(run.get("timings") or {}).items()}}


def exit_now(code: int) -> NoReturn:
    """Flush and leave with `code`, skipping the interpreter's teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    # Now and then delta-rs' or Arrow's thread pools abort the interpreter's teardown with
    # "terminate called without an active exception" (SIGABRT; delta-rs #2184, arrow #34314),
    # after the work is done: leave without that teardown.
    os._exit(code)
