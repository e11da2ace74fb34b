"""A tiny run of `benchmarks/demo_jobs.py`: `make demo`'s jobs, timed from their `runs` rows, still run from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


def test_the_demo_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "demo_jobs.py"), "--env", "test",
         "--set", "generate.entities=200", "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, timeout=1200, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert [r["job"] for r in figures["jobs"]] == ["generate", "features", "features", "train", "score"]
    assert all(r["job_s"] > 0 and r["wall_s"] >= r["job_s"] for r in figures["jobs"])
    assert {"write"} <= set(figures["jobs"][-1]["timings"])
    assert figures["startup_jobs_s"] == sum(r["job_s"] for r in figures["jobs"] if r["job"] != "features")
    assert "generate + train + score:" in completed.stdout
