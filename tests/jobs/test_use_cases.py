"""Two use cases side by side in one lake: running one never changes the other's tables.

The second use case, `other`, is churn's file under another name (a new use case is a file),
with its own seed, in a configuration folder of the test's own (`NIGHTJAR_CONF_DIR`).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deltalake import DeltaTable as DeltaReader
from pyspark.sql import SparkSession

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT, load_config
from tests.conftest import run_in_process
from tests.jobs.conftest import FEATURES_END, FEATURES_START, TRAIN_DATE


@pytest.fixture
def other_use_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's configuration plus `conf/use_cases/other.yaml`, sized for tests like churn."""
    directory = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", directory)
    shutil.copy(directory / "use_cases" / "churn.yaml", directory / "use_cases" / "other.yaml")
    test = yaml.safe_load((directory / "test.yaml").read_text())
    sizes = test["use_cases"]["churn"]
    test["use_cases"]["other"] = {**sizes, "generate": {**sizes["generate"], "seed": 8}}
    (directory / "test.yaml").write_text(yaml.safe_dump(test))
    monkeypatch.setenv("NIGHTJAR_CONF_DIR", str(directory))


def _config(lake: Path, metastore: Path, use_case: str) -> Config:
    return load_config("test", [f"lake.root={lake}", f"lake.metastore_dir={metastore}"], use_case=use_case)


def _state(config: Config) -> dict[str, Any]:
    """Everything a use case has in the lake: each table's Delta version and content, and every file."""
    root = Path(tables.use_case_root(config))
    state: dict[str, Any] = {}
    for log in sorted(root.glob("*/_delta_log")):
        table = DeltaReader(str(log.parent))
        frame = table.to_pandas()
        frame = frame[sorted(frame.columns)].astype(str)
        content = frame.sort_values(list(frame.columns)).to_csv(index=False)
        state[log.parent.name] = (table.version(), hashlib.sha256(content.encode()).hexdigest())
    state["files"] = sorted(
        (str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*") if path.is_file()
    )
    return state


def test_two_use_cases_in_one_lake_leave_each_other_untouched(
    spark: SparkSession, trained_lake: Path, tmp_path: Path, metastore_dir: Path, other_use_case: None,
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(trained_lake, lake)  # churn: generated, features, a champion
    churn, other = _config(lake, metastore_dir, "churn"), _config(lake, metastore_dir, "other")
    churn_before = _state(churn)
    assert {"customers", "transactions", "truth", "features", "training_set", "registry", "runs"} <= set(churn_before)
    assert not Path(tables.use_case_root(other)).exists()

    mine = ("--use-case", "other")
    for job, argv in [
        (generate_job, ()),
        (features_job, ("--start", FEATURES_START, "--end", FEATURES_END)),
        (train_job, ("--date", TRAIN_DATE)),
        (score_job, ("--date", FEATURES_END)),
    ]:
        assert run_in_process(job, lake, metastore_dir, *mine, *argv) == 0, job.JOB
        assert _state(churn) == churn_before, f"{job.JOB} --use-case other changed churn's lake"

    other_after = _state(other)
    assert {"customers", "transactions", "truth", "features", "training_set", "registry", "runs", "scores"} <= \
        set(other_after)
    assert Path(tables.model_path(other, "other", 1), "model.txt").is_file()
    assert Path(tables.gx_root(other)).is_dir()
    # Another seed: other's data are its own, not a copy of churn's.
    assert other_after["transactions"][1] != churn_before["transactions"][1]
    by_name = spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(other, 'scores')}").first().n
    assert by_name == tables.read(spark, other, "scores").count() > 0

    # And the other way round: churn scoring leaves other's lake as it was.
    assert run_in_process(score_job, lake, metastore_dir, "--date", FEATURES_END) == 0
    assert _state(other) == other_after
    assert sorted(p.name for p in lake.iterdir()) == ["churn", "other"]
