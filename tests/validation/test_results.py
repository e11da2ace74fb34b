"""The GX project under the lake: stored results, Data Docs, and their retention."""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from nightjar.config import Config
from validation import results

STATISTICS = pd.DataFrame({results.STAT_DATE: ["2026-01-10", "2026-01-10"], results.STAT_COLUMN: ["a", "b"], "nulls": [0, 0]})


def _run(config: Config, run_id: str) -> results.StoredRun:
    expectations = [gxe.ExpectColumnValuesToBeBetween(column="nulls", min_value=0, max_value=0)]
    return results.run_suite(config, "features.features", expectations, STATISTICS, run_id)


def _keeping(config: Config, days: int | None) -> Config:
    return config.model_copy(update={"validation": config.validation.model_copy(update={"keep_results_days": days})})


def test_results_are_kept_by_default_and_pruned_with_their_pages_past_keep_results_days(config: Config) -> None:
    first, second = _run(config, "run-a"), _run(_keeping(config, 1), "run-b")  # both newer than a day
    assert all(Path(run.result_path).is_file() and Path(run.page).is_file() for run in (first, second))
    assert {"run-a", "run-b"} <= set(_index_runs(second))

    third = _run(_keeping(config, 0), "run-c")  # 0 days: every earlier result goes
    assert not any(Path(p).exists() for p in (first.result_path, first.page, second.result_path, second.page))
    assert Path(third.result_path).is_file() and Path(third.page).is_file()
    assert _index_runs(third) == ["run-c"]


def _index_runs(run: results.StoredRun) -> list[str]:
    html = Path(run.index).read_text()
    return sorted(name for name in ("run-a", "run-b", "run-c") if name in html)
