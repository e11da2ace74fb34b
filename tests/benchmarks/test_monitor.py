"""A tiny run of `benchmarks/monitor.py`: the benchmark, its `score` and `monitor` jobs included, still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


def test_the_monitoring_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "monitor.py"), "--entities", "3000", "--rounds", "10",
         "--features", "10", "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, timeout=1200, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(figures["job_s"]) == {"score", "monitor"} and figures["ratio"] > 0
    assert {"drift_quality", "estimated", "write"} <= set(figures["monitor_timings"])
    assert figures["realized_s"] > 0 and "monitor drift and quality" in completed.stdout
