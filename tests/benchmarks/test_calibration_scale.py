"""A tiny run of `benchmarks/calibration_scale.py`: the benchmark still runs from a fresh clone."""

from __future__ import annotations

import os
import subprocess
import sys

from nightjar.config_loader import PROJECT_ROOT


def test_the_calibration_benchmark_runs_at_a_tiny_size() -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "calibration_scale.py"), "--rows", "5000", "--resamples", "5"],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "5,000" in completed.stdout or "5000" in completed.stdout
