"""A tiny run of `benchmarks/demand_nightly.py`: the benchmark still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS

BENCHMARK = PROJECT_ROOT / "benchmarks" / "demand_nightly.py"


def test_the_demand_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    # 20 items in 2 stores over 70 days: the backfill's first dates still see most of their
    # 35 days of windows, and every job runs as at scale, with the ensemble and intervals.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--series", "40", "--stores", "2", "--days", "70",
         "--lake", str(tmp_path / "lake"), "--driver-memory", "2g"],
        capture_output=True, text=True, timeout=1800, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (figures["series"], figures["stores"], figures["series_rows"]) == (40, 2, 40)
    assert 0 < figures["sales_rows"] <= 40 * 70
    assert set(figures["nightly_s"]) == {"features", "score"}
    assert figures["weekly_train_s"] > 0
    # A row per series and horizon, features and scores alike.
    assert figures["runs"]["features"]["rows"] == {"features": 40 * 7}
    assert figures["runs"]["score"]["rows"] == {"scores": 40 * 7}
    assert "nightly path (features + score, launcher to exit)" in completed.stdout


def test_the_benchmark_refuses_a_lake_it_did_not_make(tmp_path: Path) -> None:
    # It empties its lake before a run: a folder holding anything else must be left alone.
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "keep.txt").write_text("not the benchmark's")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--series", "40", "--stores", "2", "--lake", str(lake)],
        capture_output=True, text=True, timeout=300, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode != 0
    assert "no lake of this benchmark" in completed.stderr
    assert (lake / "keep.txt").read_text() == "not the benchmark's"
