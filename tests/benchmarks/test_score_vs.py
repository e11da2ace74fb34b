"""A tiny run of `benchmarks/score_vs.py`: the benchmark, its `score` job included, still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


def test_the_scoring_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "score_vs.py"), "--entities", "3000",
         "--reason-rows", "300", "--rounds", "10", "--features", "10", "--batch-rows", "1000",
         "--lake", str(tmp_path / "lake")],
        capture_output=True, text=True, timeout=1200, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(figures["spark_s"]) == {"false", "true"} and all(s > 0 for s in figures["spark_s"].values())
    # Compiled scoring ran (lleaves importable), and every ratio was printed.
    assert figures["compiled"] and set(figures["compiled_ratio"]) == {"1000"} and figures["reasons_speedup"] > 0
    assert "compiled scoring in Spark rows/s / Booster.predict rows/s (same threads, data in memory)" in completed.stdout
    assert "reason codes, 300 rows in Spark" in completed.stdout
    # The job ran through its checks and wrote the scores.
    assert {"score", "check_features", "check_scores", "write"} <= set(figures["job_timings"])
    assert "score job (compiled), 3,000 entities" in completed.stdout
