"""The train job end to end on generated data: registry, promotion, rollback, failures, real Dask processes."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import score as score_job
from jobs import train as train_job
from jobs import validate as validate_job
from models import registry
from nightjar import tables
from nightjar.config import Config
from tests.conftest import run_in_process
from tests.features.conftest import event, events_frame
from tests.conftest import TRAIN_DATE as T


@pytest.fixture
def ready(prepared_lake: Path, lake: Path, config: Config) -> Config:
    """This test's own copy of the prepared lake."""
    shutil.copytree(prepared_lake, lake)
    return config


def _train(lake: Path, *argv: str) -> int:
    return run_in_process(train_job, lake, *argv)


def _registry(spark: SparkSession, config: Config) -> list[dict]:
    return registry.history(config, config.model_name)


def _model_text(config: Config, version: int) -> str:
    return tables.read_model_file(config, config.model_name, version, registry.MODEL_FILE)


def _psi_by_hand(column: pd.Series, reference: dict) -> float:
    """PSI of `column` against stored bins, counted as "edges at or below the value" (NaN: last bin)."""
    values = np.asarray(column, dtype="float64")
    edges = np.asarray(reference["edges"])
    bins = np.where(np.isnan(values), len(edges) + 1, (values[:, None] >= edges[None, :]).sum(axis=1))
    new = np.maximum([np.mean(bins == i) for i in range(len(edges) + 2)], 1e-4)  # drift.SHARE_FLOOR
    old = np.maximum(reference["shares"], 1e-4)
    return float(sum((n - o) * np.log(n / o) for n, o in zip(new, old)))


def test_train_registers_a_champion_reruns_are_idempotent_and_deterministic(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _train(lake, "--date", T) == 0
    rows = _registry(spark, ready)
    assert [(r["action"], r["version"], r["alias"]) for r in rows] == [("register", 1, None), ("gate", 1, "champion")]
    assert rows[1]["reason"] == "first model" and rows[1]["user"] and rows[1]["metric"] == "auc"

    model = registry.load(ready, ready.model_name, 1)
    meta = model.metadata
    assert meta["features"] == model.booster.feature_name() and meta["feature_hash"] == registry.feature_hash(meta["features"])
    assert meta["training_data"]["table_version"] == tables.current_version(ready, ready.tables.training)
    assert meta["training_data"]["dates"][0] == "2026-02-16" and meta["training_data"]["dates"][-1] == "2026-03-01"
    assert meta["holdout"]["dates"] == ["2026-02-27", "2026-02-28", "2026-03-01"]
    holdout = meta["holdout"]["metrics"]
    assert {"auc", "pr_auc", "log_loss", "brier", "precision_at_5pct", "recall_at_5pct"} <= set(holdout)
    assert 0.5 < holdout["auc"] <= 1.0 and rows[1]["metric_value"] == pytest.approx(holdout["auc"])
    assert meta["holdout"]["reference"]["metrics"]["auc"] > 0.5  # the generator's true probabilities
    assert meta["holdout"]["calibration"] and set(meta["holdout"]["shap_mean_abs"]) == set(meta["features"])
    shap = list(meta["holdout"]["shap_mean_abs"].values())
    assert shap == sorted(shap, reverse=True) and shap[0] > 0  # largest first, as written
    assert meta["num_boost_round"] == meta["search"]["trials"][meta["search"]["best_trial"]]["rounds"]
    assert meta["seed"] == ready.training.seed and meta["code_version"]
    run = tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "train").first()
    assert (run.status, run.model_version) == ("succeeded", "1")
    assert run.input_versions == {ready.tables.features: 0, "transactions": 0}
    # Drift reference: the training rows' bins per feature, against which the features are validated.
    assert list(meta["reference_statistics"]["features"]) == meta["features"]
    assert meta["reference_statistics"]["rows"] == meta["training_data"]["fit_rows"]
    assert run_in_process(validate_job, lake, "--table", "features", "--date", "2026-03-01") == 0
    check = json.loads(tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "validate").first().checks)[0]
    day = tables.read(spark, ready, ready.tables.features).where(F.col("ds") == "2026-03-01").toPandas()
    by_hand = {name: _psi_by_hand(day[name], bins) for name, bins in meta["reference_statistics"]["features"].items()}
    largest = max(by_hand, key=by_hand.__getitem__)
    assert check["success"] and check["largest_psi"] == {"column": largest, "value": pytest.approx(by_hand[largest])}

    # The snapshot joins each feature row with a label that only looks after its date.
    snapshot = tables.read(spark, ready, ready.tables.training)
    assert snapshot.count() == tables.read(spark, ready, ready.tables.features).count()
    assert snapshot.where(F.col("label").isNull()).count() == 0

    assert _train(lake, "--date", T) == 0
    assert "already trained as churn version 1" in capsys.readouterr().out
    assert len(_registry(spark, ready)) == 2

    # Retrained from the same data and seed: the same model, which does not beat its twin.
    assert _train(lake, "--date", T, "--force") == 0
    rows = _registry(spark, ready)
    assert [(r["action"], r["version"], r["alias"]) for r in rows[2:]] == [("register", 2, None), ("gate", 2, "challenger")]
    assert _model_text(ready, 2) == _model_text(ready, 1)
    assert registry.champion_version(rows) == 1


def test_a_better_model_is_promoted_and_people_can_roll_back_and_promote(
    spark: SparkSession, ready: Config, lake: Path,
) -> None:
    weak = ["--set", "training.max_rounds=1", "--set", "training.params.num_leaves=2", "--set", "training.search.space={}"]
    assert _train(lake, "--date", T, *weak) == 0
    assert _train(lake, "--date", T) == 0
    rows = _registry(spark, ready)
    assert registry.champion_version(rows) == 2
    assert rows[-1]["baseline_value"] < rows[-1]["metric_value"] and "beats" in rows[-1]["reason"]
    assert rows[-1]["previous_version"] == 1

    assert _train(lake, "--rollback", "--reason", "v2 misbehaves in production") == 0
    rows = _registry(spark, ready)
    assert (rows[-1]["action"], rows[-1]["version"], rows[-1]["previous_version"]) == ("rollback", 1, 2)
    assert rows[-1]["reason"] == "v2 misbehaves in production" and rows[-1]["recorded_at"] is not None
    assert registry.champion_version(rows) == 1
    assert _train(lake, "--rollback") == 4  # nothing before v1
    assert _train(lake, "--promote", "7") == 4
    assert _train(lake, "--promote", "2", "--reason", "fixed upstream") == 0
    assert registry.champion_version(_registry(spark, ready)) == 2
    # The weak model loses to the champion on the same holdout: it is registered as challenger only.
    assert _train(lake, "--date", T, *weak, "--force") == 0
    rows = _registry(spark, ready)
    assert (rows[-1]["version"], rows[-1]["alias"]) == (3, "challenger")
    assert registry.champion_version(rows) == 2


def test_a_corrupt_champion_stops_training_and_registers_nothing(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _train(lake, "--date", T) == 0
    version = tables.current_version(ready, ready.tables.registry)
    model_file = Path(tables.model_path(ready, ready.model_name, 1)) / registry.MODEL_FILE
    model_file.write_text(model_file.read_text()[:1000])
    capsys.readouterr()
    assert _train(lake, "--date", T, "--force") == 4
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("nightjar train: error: model churn version 1") and "model.txt is corrupt" in error
    assert tables.current_version(ready, ready.tables.registry) == version
    assert tables.model_versions(ready, ready.model_name) == [1]
    assert _train(lake, "--promote", "1") == 4


def test_training_on_real_dask_processes_gives_the_local_model(
    spark: SparkSession, ready: Config, lake: Path, dask_scheduler: str,
) -> None:
    assert _train(lake, "--date", T, "--set", f"dask.scheduler={dask_scheduler}") == 0
    assert _train(lake, "--date", T, "--force") == 0  # a LocalCluster
    assert _model_text(ready, 1) == _model_text(ready, 2)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (lambda: ["training.fit_timeout_s=0.01"], "did not finish within training.fit_timeout_s"),
    ],
    ids=["fit-timeout"],
)
def test_a_failed_training_registers_nothing(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
    overrides: Callable[[], list[str]], message: str,
) -> None:
    arguments = [part for item in overrides() for part in ("--set", item)]
    assert _train(lake, "--date", T, *arguments) == 1
    assert message in capsys.readouterr().err
    assert not tables.exists(spark, ready, ready.tables.registry)
    assert tables.model_versions(ready, ready.model_name) == []
    run = tables.read(spark, ready, ready.tables.runs).where(F.col("job") == "train").first()
    assert (run.status, run.exit_code, run.model_version) == ("failed", 1, None)


@pytest.mark.parametrize(
    "argv, message",
    [
        # A 40-day horizon for dates up to 2026-03-01 needs transactions the data do not have yet.
        (["--start", "2026-02-16", "--end", "2026-03-01", "--set", "use_case.label.horizon=40"],
         "table 'transactions' has no partition event_date=2026-04-01"),
        (["--date", "2026-03-20"], "table 'features' has no partition ds=2026-02-05"),
    ],
    ids=["labels-not-ripe", "features-missing"],
)
def test_missing_inputs_exit_4(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
    argv: list[str], message: str,
) -> None:
    assert _train(lake, *argv) == 4
    assert message in capsys.readouterr().err
    assert not tables.exists(spark, ready, ready.tables.registry)
    assert not tables.exists(spark, ready, ready.tables.training)


def test_a_lake_root_given_as_a_file_uri_trains_registers_and_scores_in_the_lake(
    spark: SparkSession, ready: Config, lake: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # pathlib once wrote the models of `file:///...` under the working directory
    uri = ["--set", f"lake.root=file://{lake}"]
    assert _train(lake, "--date", T, *uri) == 0
    assert sorted(p.name for p in (lake / "churn" / "models" / ready.model_name / "1").iterdir()) == ["metadata.json", "model.txt"]
    assert registry.history(ready, ready.model_name)[0]["path"] == f"file://{lake}/churn/models/{ready.model_name}/1"
    assert run_in_process(score_job, lake, "--date", "2026-03-01", *uri) == 0
    assert tables.read(spark, ready, ready.tables.scores).count() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]  # nothing beside the lake: no `file:` folder


def test_alerts_are_chosen_on_the_folds_reported_on_the_holdout_and_flagged_by_score(
    spark: SparkSession, ready: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    alert = ["--set", "scoring.alert.min_precision=0.5"]
    assert _train(lake, "--date", T, *alert) == 0
    out = capsys.readouterr().out
    model = registry.load(ready, ready.model_name, 1)
    report = model.metadata["holdout"]["alert"]
    assert (report["min_precision"], report["lead_time"], report["rule"]) == (0.5, "24h", "min_precision")
    assert report["chosen_on"]["precision"] >= 0.5 and report["early"] is None  # churn's no_event label
    assert f"alert at score >= {report['threshold']:.4f} (precision >= 0.5 on the folds): holdout precision" in out
    assert "false alarms per customer per 30 days" in out and "best achievable (truth): PR-AUC" in out

    # The figures, by hand from the holdout rows of the snapshot and the registered model.
    snapshot = tables.read(spark, ready, ready.tables.training).toPandas()
    holdout = snapshot[snapshot["ds"].astype(str).isin(model.metadata["holdout"]["dates"])]
    score = model.booster.predict(holdout[model.features].to_numpy(dtype=np.float64))
    alerted, label = score >= report["threshold"], holdout["label"].to_numpy() == 1
    assert report["alerts"] == alerted.sum() > 0 and report["rows"] == len(holdout)
    assert report["precision"] == pytest.approx((alerted & label).sum() / alerted.sum())
    assert report["recall"] == pytest.approx((alerted & label).sum() / label.sum())
    assert report["false_alarms_per_entity_30d"] == pytest.approx((alerted & ~label).sum() / len(holdout) * 30)
    assert report["always_negative_accuracy"] == pytest.approx(1 - label.mean())
    assert report["pr_auc"] == pytest.approx(model.metadata["holdout"]["metrics"]["pr_auc"])
    assert report["pr_auc_95"][0] < report["pr_auc"] < report["pr_auc_95"][1]
    reference = report["reference"]
    assert (reference["table"], reference["threshold_dates"], reference["rows"]) == ("truth", "folds", len(holdout))
    assert reference["pr_auc"] == pytest.approx(model.metadata["holdout"]["reference"]["metrics"]["pr_auc"])

    # A date scored before alerts were turned on keeps its rows; the column is added, null there.
    assert run_in_process(score_job, lake, "--date", "2026-02-28") == 0
    assert "alert" not in tables.read(spark, ready, ready.tables.scores).columns
    assert run_in_process(score_job, lake, "--date", "2026-03-01", *alert) == 0
    every = tables.read(spark, ready, ready.tables.scores).toPandas()
    before, scores = every[every["ds"].astype(str) == "2026-02-28"], every[every["ds"].astype(str) == "2026-03-01"]
    assert len(before) > 0 and before["alert"].isna().all()
    assert scores["alert"].tolist() == (scores["score"] >= report["threshold"]).tolist()
    assert 0 < scores["alert"].sum() < len(scores)
    assert "alerts on 2026-03-01: " in capsys.readouterr().out


class _ScoresAreX:
    """A stand-in model whose score is the feature `x` itself, so the figures can be worked out by hand."""

    def predict(self, matrix: np.ndarray, num_threads: int) -> np.ndarray:
        return matrix[:, 0]


@pytest.mark.parametrize("reference_on_folds", [False, True])
def test_the_alert_report_of_an_event_label_by_hand(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path, reference_on_folds: bool,
) -> None:
    config = make_config(lake, "use_case.label.kind=any_event", "use_case.label.horizon=48h",
                         "scoring.alert.min_precision=0.9", "scoring.alert.lead_time=24h")
    first, second = date(2026, 3, 1), date(2026, 3, 2)  # cutoffs 03-02 00:00 and 03-03 00:00
    holdout = pd.DataFrame({
        "customer_id": [1, 1, 2, 2, 3, 3], "ds": [first, second] * 3,
        "x": [0.85, 0.2, 0.9, 0.1, 0.5, 0.95], "label": [1, 1, 0, 0, 1, 1], "weight": 1.0,
        "reference_score": [0.9, 0.9, 0.1, 0.1, 0.9, 0.9],
    })
    # On the folds the model reaches precision 0.9 down to 0.8 (recall 1).
    out_of_fold = pd.DataFrame({"label": [1, 1, 0, 0], "prediction": [0.9, 0.8, 0.7, 0.1], "weight": 1.0,
                                "reference_score": [0.9, 0.8, 0.2, 0.1] if reference_on_folds else np.nan})
    events = events_frame(spark, [
        event(1, "2026-03-03 00:00:00", 1.0),  # early only from 03-01 (alerted, 0.85)
        event(3, "2026-03-04 12:00:00", 1.0),  # early only from 03-02 (alerted, 0.95)
        event(3, "2026-03-03 06:00:00", 1.0),  # early only from 03-01 (0.5: missed)
        event(1, "2026-03-02 00:00:00", 1.0),  # early only from 02-28, not in the holdout: not counted
        event(2, "2026-03-05 00:00:00", 1.0),  # after the last label window
    ])
    report = train_job.alert_report(config, _ScoresAreX(), ["x"], holdout, [first, second],  # type: ignore[arg-type]
                                    out_of_fold, events)
    assert (report["threshold"], report["rule"], report["min_precision"], report["lead_time"]) == (
        0.8, "min_precision", 0.9, "24h")
    # Alerts: (1, 03-01) right, (2, 03-01) wrong, (3, 03-02) right; 1 false alarm in 6 entity-days.
    assert (report["alerts"], report["precision"], report["recall"]) == (3, pytest.approx(2 / 3), 0.5)
    assert report["false_alarms_per_entity_30d"] == pytest.approx(5.0)
    assert report["early"] == {"events": 3, "alerted": 2, "share": pytest.approx(2 / 3)}
    reference = report["reference"]
    # Chosen on the folds' reference where known (0.8 reaches 0.9), else on the holdout's (0.9 does).
    assert (reference["threshold"], reference["threshold_dates"]) == (
        (0.8, "folds") if reference_on_folds else (0.9, "holdout"))
    assert (reference["precision"], reference["recall"], reference["early"]["alerted"]) == (1.0, 1.0, 3)
    lines = train_job.alert_lines(report, config.use_case.entity.name)
    assert len(lines) == 2 and "67% of 3 events alerted >= 24h ahead" in lines[0]
    assert "5.000 false alarms per customer per 30 days" in lines[0] and "best achievable (truth)" in lines[1]


def test_an_ensemble_is_trained_registered_scored_and_rolled_back_as_one_version(
    spark: SparkSession, ready: Config, lake: Path,
) -> None:
    assert _train(lake, "--date", T) == 0  # a single booster: version 1
    members = "training.ensemble.members=[{seed: 1}, {seed: 2, feature_fraction: 0.6}, {seed: 3, num_leaves: 7}]"
    assert _train(lake, "--date", T, "--force", "--set", members) == 0
    model = registry.load(ready, ready.model_name, 2)
    ensemble = model.metadata["ensemble"]
    assert len(ensemble["members"]) == 3 and ensemble["members"][1]["params"] == {"seed": 2, "feature_fraction": 0.6}
    # The ensemble's holdout AUC is the one registered, and is compared with its members'.
    member_aucs = [m["holdout"]["auc"] for m in ensemble["members"]]
    assert ensemble["ensemble"] == model.metadata["holdout"]["metrics"]["auc"]
    assert ensemble["beats_best_member"] == (ensemble["ensemble"] > max(member_aucs))
    assert len({round(a, 12) for a in member_aucs}) == 3  # three different members

    # Champion by hand if it lost the gate (then it is the challenger): scored inside Spark as the
    # mean of its three members, like the registry's model.
    assert _train(lake, "--promote", "2", "--reason", "the ensemble") == 0
    scored = "2026-03-01"  # the prepared lake's last feature date
    assert run_in_process(score_job, lake, "--date", scored) == 0
    scores = tables.read(spark, ready, ready.tables.scores).where(F.col("ds") == scored).toPandas()
    assert set(scores["model_version"]) == {2}
    features = tables.read(spark, ready, ready.tables.features).where(F.col("ds") == scored).toPandas()
    merged = features.merge(scores[["customer_id", "score"]], on="customer_id")
    expected = model.booster.predict(merged[model.features].to_numpy(dtype=np.float64))
    np.testing.assert_allclose(merged["score"], expected, rtol=0, atol=1e-12)
    assert _train(lake, "--rollback") == 0
    assert registry.champion_version(_registry(spark, ready)) == 1
