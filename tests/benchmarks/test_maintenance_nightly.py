"""A tiny run of `benchmarks/maintenance_nightly.py`: the benchmark still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


def test_the_maintenance_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "maintenance_nightly.py"),
         "--machines", "400", "--lake", str(tmp_path / "lake"), "--driver-memory", "2g"],
        capture_output=True, text=True, timeout=1200, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["machines"] == 400
    assert set(figures["nightly_s"]) == {"features", "score"}
    assert "nightly path (features + score, launcher to exit)" in completed.stdout
