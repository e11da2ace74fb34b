"""A task that fails once and is retried (`local[2,4]`: 4 attempts per task) changes nothing that
`features` and `score` write: the tables equal those of a run without failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deltalake import DeltaTable

from jobs import score as score_job
from nightjar import tables
from nightjar.config import Config
from tests.conftest import run_in_process, run_launcher

D = "2026-03-02"  # the day after the trained lake's features: computed by `score`, then scored
POINTS = ("writing:features", "score.predict", "writing:scores")


def _rows(config: Config, name: str, drop: tuple[str, ...] = ()) -> list[str]:
    rows = DeltaTable(tables.table_path(config, name)).to_pyarrow_table().to_pylist()
    return sorted(json.dumps({k: v for k, v in row.items() if k not in drop}, sort_keys=True, default=str)
                  for row in rows)


def test_features_and_scores_with_a_task_failed_once_equal_a_clean_run(
    trained_lake: Path, tmp_path: Path, make_config,  # noqa: ANN001
) -> None:
    clean, retried = tmp_path / "clean", tmp_path / "retried"
    for lake in (clean, retried):
        shutil.copytree(trained_lake, lake)
    missing = "scoring.compute_missing_features=true"
    assert run_in_process(score_job, clean, "--date", D, "--set", missing) == 0

    markers = tmp_path / "markers"
    markers.mkdir()
    done = run_launcher(
        "score", "--env", "test", "--set", f"lake.root={retried}", "--date", D, "--set", missing,
        "--set", "spark.master=local[2,4]",
        NIGHTJAR_FAIL_TASK_ONCE=",".join(POINTS), NIGHTJAR_CRASH_DIR=str(markers),
    )

    assert done.returncode == 0, done.stderr[-4000:]
    # Each point failed one task, once: the write of features, a scoring task, the write of scores.
    failed = sorted(path.name for path in markers.iterdir())
    assert failed == sorted(f"failed-{point.replace(':', '-')}" for point in POINTS)
    assert "InjectedTaskFailure" in done.stderr
    a, b = make_config(clean), make_config(retried)
    assert _rows(b, b.tables.features) == _rows(a, a.tables.features)
    assert _rows(b, b.tables.scores, drop=("run_id",)) == _rows(a, a.tables.scores, drop=("run_id",))
    # One commit each: the failed attempts' files are in no version.
    for name in (b.tables.features, b.tables.scores):
        assert DeltaTable(tables.table_path(b, name)).version() == DeltaTable(tables.table_path(a, name)).version()
