"""Two use cases side by side in one lake: running one never changes the other's tables.

Maintenance runs its whole nightly path (generate, features, train, score) on small data beside a
trained churn lake: its end-to-end test as well.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from deltalake import DeltaTable as DeltaReader
from pyspark.sql import SparkSession

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from nightjar import tables
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.demo import demo_dates
from tests.conftest import FEATURES_END, run_in_process


def _config(lake: Path, use_case: str) -> Config:
    return load_config("test", [f"lake.root={lake}"], use_case=use_case)


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
    spark: SparkSession, trained_lake: Path, tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(trained_lake, lake)  # churn: generated, features, a champion
    churn, maintenance = _config(lake, "churn"), _config(lake, "maintenance")
    churn_before = _state(churn)
    assert {"customers", "transactions", "truth", "features", "training_set", "registry", "runs"} <= set(churn_before)
    assert not Path(tables.use_case_root(maintenance)).exists()

    first, logical = (day.isoformat() for day in demo_dates(maintenance))
    mine = ("--use-case", "maintenance")
    for job, argv in [
        (generate_job, ()),
        (features_job, ("--start", first, "--end", logical)),
        (train_job, ("--date", logical)),
        (score_job, ("--date", logical)),
    ]:
        assert run_in_process(job, lake, *mine, *argv) == 0, job.JOB
        assert _state(churn) == churn_before, f"{job.JOB} --use-case maintenance changed churn's lake"

    after = _state(maintenance)
    sources = {"machines", "telemetry", "errors", "maintenance", "failures", "truth"}
    assert sources | {"features", "training_set", "registry", "runs", "scores"} <= set(after)
    assert Path(tables.model_path(maintenance, "maintenance", 1), "model.txt").is_file()
    assert Path(tables.gx_root(maintenance)).is_dir()
    scores = tables.read(spark, maintenance, "scores").where(f"ds = '{logical}'")
    machines = tables.read(spark, maintenance, "machines").where(f"install_ts < date_add('{logical}', 1)")
    assert scores.count() == machines.count() > 0  # one score per machine in service
    assert scores.where("score < 0 OR score > 1 OR score IS NULL").count() == 0
    metadata = json.loads(tables.read_model_file(maintenance, "maintenance", 1, "metadata.json"))
    # Hour windows and the 48-hour label made it through: the model saw them and beat chance.
    assert "telemetry_voltage_mean_3h" in metadata["features"]
    assert metadata["holdout"]["metrics"]["auc"] > 0.55
    assert "scores" in tables.register_all(spark, maintenance)
    by_name = spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(maintenance, 'scores')}").first().n
    assert by_name == scores.count()

    # And the other way round: churn scoring leaves maintenance's lake as it was.
    assert run_in_process(score_job, lake, "--date", FEATURES_END) == 0
    assert _state(maintenance) == after
    assert sorted(p.name for p in lake.iterdir()) == ["churn", "maintenance"]
