"""The `monitor` job on the session lakes: what it writes, when labels count, bad input, reruns,
two model versions, an old model, and the demo's drift scenario."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Callable

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import monitor as monitor_job
from jobs import score as score_job
from models import registry
from nightjar import tables
from nightjar.config import Config
from tests.conftest import FEATURES_END, run_in_process, run_killed_at
from tests.render import IMAGES_DRAWN, render

D = FEATURES_END  # the date the scored lake holds scores for (2026-03-01)
MONITORING = "monitoring"


def _copy(source: Path, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    shutil.copytree(source, lake)
    return lake


def _table(spark: SparkSession, config: Config) -> DataFrame:
    return tables.read(spark, config, config.tables.monitoring)


def _metadata_path(config: Config, version: int) -> Path:
    return Path(tables.model_path(config, config.model_name, version)) / registry.METADATA_FILE


@pytest.fixture(scope="module")
def monitored(scored_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scored lake after `monitor --date D`. Tests here may rerun monitor on it; copy it to change inputs."""
    lake = _copy(scored_lake, tmp_path_factory.mktemp("monitored"))
    assert run_in_process(monitor_job, lake, "--date", D) == 0
    return lake


def test_monitor_writes_drift_quality_and_estimates_without_realized_before_labels_mature(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path,
) -> None:
    config = make_config(monitored)
    table = _table(spark, config)
    assert set(table.columns) >= {"ds", "model_name", "model_version", "kind", "metric", "feature", "value",
                                  "threshold", "alert", "rows", "labelled_rows", "label_coverage",
                                  "input_versions", "run_id"}
    rows = table.collect()
    # D's labels look 30 days ahead: not mature on D, so no realized row at all (not zeros).
    assert {r.kind for r in rows} == {"drift", "quality", "estimated"}
    assert {(str(r.ds), r.model_version, r.model_name) for r in rows} == {(D, 1, "churn")}
    features = json.loads(_metadata_path(config, 1).read_text())["features"]
    psi = {r.feature: r for r in rows if r.metric == "psi"}
    assert sorted(psi) == sorted(features)
    assert all(r.value is not None and r.value >= 0 and r.threshold == 0.25 for r in psi.values())
    assert [r.metric for r in rows if r.metric == "score_psi"] == ["score_psi"]
    shares = {r.feature: r.value for r in rows if r.metric == "score_share"}
    reference = json.loads(_metadata_path(config, 1).read_text())["score_reference"]["features"]["score"]
    assert len(shares) == len(reference["shares"]) and "missing" in shares and sum(shares.values()) == pytest.approx(1)
    scored = spark.read.format("delta").load(tables.table_path(config, "scores")).count()
    assert all(r.rows == scored for r in rows)
    estimated = {r.metric: r.value for r in rows if r.kind == "estimated"}
    assert 0.5 < estimated["auc"] <= 1 and 0 <= estimated["positive_rate"] <= 1
    assert set(rows[0].input_versions) == {"scores", "features"}
    # The model's training dates come before the 30- and 90-day windows of the test data filled
    # up, so some features drift: alerts are recorded, and the run still exited 0 (`monitored`).
    assert any(r.alert for r in rows)


def test_fail_on_alert_exits_3_after_writing_the_rows(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path, capsys: pytest.CaptureFixture,
) -> None:
    config = make_config(monitored)
    version = tables.current_version(config, MONITORING)
    capsys.readouterr()
    assert run_in_process(monitor_job, monitored, "--date", D, "--force", "--set", "monitoring.fail_on_alert=true") == 3
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("nightjar monitor: error: ") and "monitoring alerts" in last and "fail_on_alert" in last
    # The rows are what the alert is about: written (the same rows as before), not rolled back.
    assert tables.current_version(config, MONITORING) == version + 1


def test_a_rerun_changes_nothing_and_a_forced_one_recomputes_the_same_rows(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path, capsys: pytest.CaptureFixture,
) -> None:
    config = make_config(monitored)
    before = _table(spark, config).collect()
    version = tables.current_version(config, MONITORING)
    capsys.readouterr()
    # As a scheduler's retry or a cleared run: the date is monitored already, nothing is written.
    assert run_in_process(monitor_job, monitored, "--date", D) == 0
    assert "already monitored" in capsys.readouterr().out
    assert tables.current_version(config, MONITORING) == version
    assertDataFrameEqual(_table(spark, config), spark.createDataFrame(before, _table(spark, config).schema))
    assert run_in_process(monitor_job, monitored, "--date", D, "--force") == 0
    assert tables.current_version(config, MONITORING) == version + 1
    # The run id names the run that wrote a row; every other column is a function of the inputs.
    assertDataFrameEqual(_table(spark, config).drop("run_id"),
                         spark.createDataFrame(before, _table(spark, config).schema).drop("run_id"))


def test_a_date_without_scores_exits_4_and_writes_nothing(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path, capsys: pytest.CaptureFixture,
) -> None:
    config = make_config(monitored)
    version = tables.current_version(config, MONITORING)
    capsys.readouterr()
    assert run_in_process(monitor_job, monitored, "--date", "2026-03-02") == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("nightjar monitor: error: table 'scores' has no partition ds=2026-03-02: "
                       "run `score --date 2026-03-02` first")
    assert tables.current_version(config, MONITORING) == version


def test_a_model_without_reference_statistics_is_monitored_without_drift(
    spark: SparkSession, make_config: Callable[..., Config], scored_lake: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    lake = _copy(scored_lake, tmp_path)
    config = make_config(lake)
    path = _metadata_path(config, 1)
    metadata = json.loads(path.read_text())
    del metadata["reference_statistics"], metadata["score_reference"]  # a model from before they were stored
    path.write_text(json.dumps(metadata))
    capsys.readouterr()
    assert run_in_process(monitor_job, lake, "--date", D) == 0
    err = capsys.readouterr().err
    assert "model churn version 1 has no reference statistics in its metadata.json: feature drift not computed" in err
    rows = _table(spark, config).collect()
    assert {r.kind for r in rows} == {"quality", "estimated"}  # no drift rows: neither psi, score_psi nor score_share
    assert {r.metric for r in rows if r.kind == "quality"} == {"rows", "feature_rows", "null_share"}


def test_a_date_scored_by_two_model_versions_has_rows_for_each(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path, tmp_path: Path,
) -> None:
    lake = _copy(monitored, tmp_path)
    config = make_config(lake)
    # Version 2: the same model registered again (a retrain's directory), scored with --model-version.
    shutil.copytree(tables.model_path(config, config.model_name, 1), tables.model_path(config, config.model_name, 2))
    assert run_in_process(score_job, lake, "--date", D, "--force", "--model-version", "2") == 0
    assert run_in_process(monitor_job, lake, "--date", D) == 0
    rows = _table(spark, config).collect()
    # Version 1's rows stay: they describe the scores D had before it was rescored.
    by_version = {v: {(r.kind, r.metric, r.feature) for r in rows if r.model_version == v} for v in (1, 2)}
    assert by_version[1] and by_version[1] == by_version[2]
    values = {(r.model_version, r.metric, r.feature): r.value for r in rows if r.kind == "drift"}
    assert all(values[(1, m, f)] == pytest.approx(values[(2, m, f)]) for (v, m, f) in values if v == 2)


def test_rows_per_model_version_are_counted_when_the_log_cannot_tell_them(
    spark: SparkSession, make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    config = make_config(tmp_path / "lake")
    day = date(2026, 3, 1)
    # One file holding two versions of the date (a table written by other means than `score`).
    scores = spark.createDataFrame([(i, day, 1 + i % 3 // 2, 0.5) for i in range(9)],
                                   "customer_id long, ds date, model_version int, score double")
    tables.overwrite(scores.coalesce(1), config, config.tables.scores, partition_by="ds")
    assert tables.rows_per_value(config, config.tables.scores, "ds", "model_version", [day]) is None
    read = tables.read(spark, config, config.tables.scores)
    assert monitor_job.version_counts(config, read, [day]) == {(day, 1): 6, (day, 2): 3}
    tables.overwrite(scores.where("model_version = 1").repartition(2), config, config.tables.scores, partition_by="ds")
    assert monitor_job.version_counts(config, read, [day]) == {(day, 1): 6}


def test_drift_scenario_alerts_from_the_drift_date_and_realized_performance_once_labels_mature(
    spark: SparkSession, make_config: Callable[..., Config], scored_lake: Path, tmp_path: Path,
) -> None:
    lake = _copy(scored_lake, tmp_path)
    config = make_config(lake)
    before, drifted = "2026-03-30", "2026-03-31"
    # Every transaction amount is 10 times larger from the drift date on; nothing else changes.
    drift = f"generate.drift={{source: transactions, column: amount, from: {drifted}, scale: 10}}"
    assert run_in_process(generate_job, lake, "--set", drift) == 0
    assert run_in_process(features_job, lake, "--start", before, "--end", drifted) == 0
    assert run_in_process(score_job, lake, "--start", before, "--end", drifted) == 0
    assert run_in_process(monitor_job, lake, "--start", before, "--end", drifted) == 0
    rows = _table(spark, config).collect()

    alerted = {day: {r.feature for r in rows if str(r.ds) == day and r.kind == "drift" and r.alert}
               for day in (before, drifted)}
    new = alerted[drifted] - alerted[before]
    amount_features = {r.feature for r in rows if r.metric == "psi" and "amount" in r.feature}
    # The drifted input's features alert from the drift date, and only they are new: the features
    # alerting on both dates do so because the test data begin on 2026-02-15, so windows of 30 and
    # 90 days filled up between the model's training dates and these.
    assert new and new <= amount_features
    # The features that see the drift date's transactions most: the last amount, and the 7-day
    # window's maximum and spread (PSI 0.16, 0.03 and 0.04 the day before; 0.71, 0.42, 0.38 on it).
    assert {"transactions_amount_last_30d", "transactions_amount_max_7d", "transactions_amount_std_7d"} <= new
    # The score's distribution does not move enough to alert: the model leans on counts, not amounts.
    assert [r.alert for r in rows if r.metric == "score_psi"] == [False, False]
    # D (2026-03-01) was scored in the scored lake; its labels (days D + 1 .. D + 30) matured by 2026-03-31.
    realized = [r for r in rows if r.kind == "realized"]
    assert {str(r.ds) for r in realized} == {D}
    values = {r.metric: r for r in realized if r.feature is None}
    assert {"auc", "pr_auc", "brier", "precision", "recall", "positive_rate"} <= set(values)
    assert 0.5 < values["auc"].value <= 1 and values["auc"].label_coverage == 1.0
    assert any(r.metric == "calibration_observed" for r in realized)
    assert rows[0].input_versions.keys() >= {"scores", "features"}
    assert {"transactions"} <= {k for r in realized for k in r.input_versions}
    assert {str(r.ds) for r in rows if r.kind == "estimated"} == {before, drifted}

    # The report, as a person sees it: every plot drawn, and the drift in the alert table on the
    # drift date only (the cells of a row: date, model, kind, metric, feature, value, threshold).
    page = Path(tables.report_path(config))
    assert page.stat().st_size < 2 * 2**20
    shown = render(page, tmp_path / "report.png", height=2400, probe=IMAGES_DRAWN)
    assert not shown.image().blank()
    assert dict(shown.probe) == {f"plot-{key}": True for key in ("performance", "score-distribution", "psi", "quality")}
    cells = shown.cells()
    listed = {(cells[i - 4], cell) for i, cell in enumerate(cells) if cell in new}
    assert {(drifted, feature) for feature in new} == listed
    assert "2026-03-01" in shown.dom and f"{config.model_name} version 1" in shown.dom


def test_a_monitor_killed_mid_write_leaves_the_table_as_it_was(
    spark: SparkSession, make_config: Callable[..., Config], monitored: Path, tmp_path: Path,
) -> None:
    lake = _copy(monitored, tmp_path)
    config = make_config(lake)
    version = tables.current_version(config, MONITORING)
    before = _table(spark, config).collect()
    # Killed with data files of the new version in the table's folder, before its commit.
    run_killed_at("writing:monitoring", "monitor", "--env", "test", "--set", f"lake.root={lake}", "--date", D, "--force")
    assert tables.current_version(config, MONITORING) == version
    assertDataFrameEqual(_table(spark, config), before)
    runs = spark.read.format("delta").load(tables.table_path(config, config.tables.runs))
    assert runs.where((F.col("job") == "monitor") & (F.col("status") == "started")).count() == 1
