"""A tiny run of `benchmarks/event_features_vs.py`, and its comparison on results made to differ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import event_features_vs as bench
from features.definitions import expand
from nightjar.config_loader import PROJECT_ROOT
from tests.conftest import SHORT_LIVED_JVMS


def test_the_event_features_benchmark_runs_at_a_tiny_size_and_both_engines_agree(tmp_path: Path) -> None:
    # A subprocess: the benchmark starts and stops a SparkSession of its own, which in this
    # process would be the test suite's.
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "event_features_vs.py"), "--entities", "300",
         "--days", "5", "--data", str(tmp_path / "data"), "--driver-memory", "2g", "--duckdb-memory", "1GB"],
        capture_output=True, text=True, timeout=600, env=SHORT_LIVED_JVMS,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["features"] == 16
    assert 0 < figures["scored_rows"] < figures["input_rows"]
    # Both DuckDB formulations, row by row against Nightjar's result.
    assert set(figures["comparisons"]) == {"window", "join"}
    for compared in figures["comparisons"].values():
        assert compared["rows_compared"] == figures["scored_rows"]
        assert compared["mismatches"] == 0, compared
    assert figures["mismatches"] == 0
    assert figures["nightjar_s"] and figures["duckdb_s"]["window"] and figures["duckdb_s"]["join"]
    assert "queries equal a brute force of [t - w, t)" in completed.stdout


def _results(tmp_path: Path) -> tuple[list, pd.DataFrame]:
    config = bench.feature_config(tmp_path / "lake", "1g")
    specs = list(expand(config).aggregates)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"transaction_id": np.arange(50, dtype=np.int64)})
    for spec in specs:
        frame[spec.name] = rng.integers(0, 9, 50) if spec.function == "count" else rng.random(50) * 1000
    # An empty window's mean: NaN on one side, NULL on the other, is no difference.
    frame.loc[0, "card_amount_mean_1h"] = np.nan
    return specs, frame


def test_the_comparison_finds_every_kind_of_difference(tmp_path: Path) -> None:
    specs, frame = _results(tmp_path)
    (tmp_path / "nightjar").mkdir()
    frame.to_parquet(tmp_path / "nightjar" / "part-0.parquet", index=False)
    other = frame.copy()
    other["card_amount_mean_1h"] = other["card_amount_mean_1h"].astype(object).where(other.index != 0, None)
    other.to_parquet(tmp_path / "same.parquet", index=False)
    assert bench.compare(tmp_path / "nightjar", tmp_path / "same.parquet", specs)["mismatches"] == 0

    changed = frame.copy()
    changed.loc[1, "card_count_7d"] += 1                         # a count off by one
    changed.loc[2, "card_amount_sum_30d"] *= 1 + 1e-7            # a sum beyond the tolerance
    changed.loc[3, "card_amount_max_1h"] *= 1 + 1e-12            # within it
    changed.loc[4, "card_amount_mean_24h"] = np.nan              # a value on one side only
    changed = changed.drop(index=5)                              # a row on one side only
    changed.to_parquet(tmp_path / "changed.parquet", index=False)
    found = bench.compare(tmp_path / "nightjar", tmp_path / "changed.parquet", specs)
    assert found["mismatches"] == 4
    assert (found["only_nightjar"], found["only_duckdb"]) == (1, 0)
    assert (found["card_count_7d"], found["card_amount_sum_30d"], found["card_amount_max_1h"],
            found["card_amount_mean_24h"]) == (1, 1, 0, 1)
