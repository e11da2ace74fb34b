"""A tiny run of `benchmarks/fraud_nightly.py`: the benchmark still runs from a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS

BENCHMARK = PROJECT_ROOT / "benchmarks" / "fraud_nightly.py"


def test_the_fraud_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    # 1,000 cards (about 5,000 transactions a day) over 14 days: the 4 training dates and their
    # 10-day label horizon, then D. At this size the 5% sample of legitimate transactions leaves
    # too few rows to split on and the champion would be constant (its scores fail the stdev
    # check): every transaction is kept. Two shuffle partitions: base.yaml's 8 would make 32
    # buckets of a few cards, each a task.
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), "--entities", "1000", "--days", "14", "--lake", str(tmp_path / "lake"),
         "--driver-memory", "2g", "--shuffle-partitions", "2", "--set", "training.majority_sample_rate=1"],
        capture_output=True, text=True, timeout=1800, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["entities"] == 1000 and figures["transactions"] > 0
    assert set(figures["nightly_s"]) == {"features", "score"}
    # Every transaction of D has its features and its score.
    featured = figures["runs"]["features"]["rows"]["features"]
    assert 0 < featured == figures["runs"]["score"]["rows"]["scores"] < figures["transactions"]
    assert "nightly path (features + score, launcher to exit)" in completed.stdout
    assert "not the demo's model" in completed.stdout
    assert figures["champion"]["size"]["rounds"] >= 1


def test_the_benchmark_refuses_a_lake_it_did_not_make(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "keep.txt").write_text("not the benchmark's")
    completed = subprocess.run([sys.executable, str(BENCHMARK), "--entities", "100", "--lake", str(lake)],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0
    assert "no lake of this benchmark" in completed.stderr
    assert (lake / "keep.txt").read_text() == "not the benchmark's"
