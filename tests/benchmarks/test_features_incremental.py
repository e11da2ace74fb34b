"""Tiny runs of `benchmarks/features_incremental.py`: each mode still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder for the module: `nightly` and `duckdb` share their lake (generated once), as they do at scale.
    return tmp_path_factory.mktemp("benchmark-lakes")


@pytest.mark.parametrize(
    ("mode", "entities", "lake", "extra"),
    # One timed repeat instead of the best of three, and the backfill's last 8 dates instead of 90:
    # each mode runs all its steps, for less of the test suite's time.
    [("nightly", 1500, "shared", []), ("duckdb", 1500, "shared", ["--repeats", "1"]),
     ("history", 200, "history", ["--windows", "7", "40", "--repeats", "1"]),  # 30 and 365 days, shortened
     ("backfill", 300, "backfill", ["--dates", "8"])],
)
def test_each_mode_runs_at_a_tiny_size(lakes: Path, mode: str, entities: int, lake: str, extra: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "features_incremental.py"), mode,
         "--entities", str(entities), "--lake", str(lakes / lake), "--driver-memory", "2g", *extra],
        capture_output=True, text=True, timeout=1500, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["mode"] == mode and figures["entities"] == entities
    # The tiles and the full computation wrote the same rows, bit for bit.
    assert figures.get("mismatched_rows", 0) == 0
    assert "goal" in completed.stdout
