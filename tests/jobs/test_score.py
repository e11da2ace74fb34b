"""The score job end to end: lineage, reruns, partial replacement, and bad inputs that write nothing."""

from __future__ import annotations

import json
import math
import shutil
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs import score as score_job
from jobs import sql as sql_job
from models import registry
from models.config import AlertConfig
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import ConfigError
from tests.conftest import run_in_process

D = "2026-03-01"


@pytest.fixture
def trained(trained_lake: Path, lake: Path, config: Config) -> Config:
    """This test's own copy of a lake with features and a champion."""
    shutil.copytree(trained_lake, lake)
    return config


def _score(lake: Path, *argv: str) -> int:
    return run_in_process(score_job, lake, *argv)


def _scores(spark: SparkSession, config: Config):  # noqa: ANN202
    return tables.read(spark, config, config.tables.scores)


def _last_run(spark: SparkSession, config: Config):  # noqa: ANN202
    return tables.read(spark, config, config.tables.runs).where(F.col("job") == "score").orderBy(
        F.col("started_at").desc()).first()


def test_scores_with_lineage_equal_plain_lightgbm_and_reruns_change_nothing(
    spark: SparkSession, trained: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _score(lake, "--date", D) == 0
    out = capsys.readouterr().out
    assert "top 5 customers on 2026-03-01" in out and "median" in out
    scores = _scores(spark, trained)
    assert scores.columns == ["customer_id", "ds", "score", "model_name", "model_version", "reasons", "run_id"]
    run = _last_run(spark, trained)
    features = tables.read(spark, trained, trained.tables.features).where(F.col("ds") == date(2026, 3, 1))
    assert scores.count() == features.count() == run.row_counts["scores"]
    assert {tuple(r) for r in scores.select("ds", "model_name", "model_version", "run_id").distinct().collect()} == {
        (date(2026, 3, 1), "churn", 1, run.run_id)}
    assert (run.model_version, run.input_versions) == ("1", {"features": 0})
    # By default the date's top 5% of scores are explained (scoring.reasons_top_percent): with
    # no ties at the cut, exactly ceil(5% of the rows), each with its 3 reasons, and none below.
    explained = scores.where(F.col("reasons").isNotNull())
    assert explained.count() == math.ceil(scores.count() * 5 / 100)
    assert explained.where(F.size("reasons") != 3).count() == 0
    lowest_explained = explained.agg(F.min("score")).first()[0]
    assert scores.where(F.col("reasons").isNull() & (F.col("score") >= lowest_explained)).count() == 0

    # The registered model.txt, loaded by plain LightGBM, gives the same scores on the same rows.
    model_dir = Path(tables.model_path(trained, "churn", 1))
    booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
    names = json.loads((model_dir / "metadata.json").read_text())["features"]
    joined = features.join(scores.select("customer_id", "score"), "customer_id").toPandas()
    expected = booster.predict(joined[names].to_numpy(dtype=np.float64))
    np.testing.assert_allclose(joined["score"], expected, rtol=0, atol=1e-9)

    before = scores.collect()
    assert _score(lake, "--date", D) == 0
    assert "already scored" in capsys.readouterr().out
    assert tables.current_version(trained, trained.tables.scores) == 0

    assert _score(lake, "--date", D, "--force") == 0
    rerun = _scores(spark, trained)
    assert tables.current_version(trained, trained.tables.scores) == 1
    # Identical rows; only run_id names the run that wrote them.
    assertDataFrameEqual(rerun.drop("run_id"), spark.createDataFrame(before, scores.schema).drop("run_id"))
    assert {r.run_id for r in rerun.select("run_id").distinct().collect()} == {_last_run(spark, trained).run_id}


def test_replacing_a_date_leaves_the_other_dates_untouched(
    spark: SparkSession, trained: Config, lake: Path,
) -> None:
    assert _score(lake, "--start", "2026-02-27", "--end", "2026-02-28") == 0
    assert tables.current_version(trained, trained.tables.scores) == 0  # one commit for the range
    other = _scores(spark, trained).where(F.col("ds") == date(2026, 2, 27)).collect()
    # The rescore also explains only the scores of at least 0.5 (scoring.reasons_min_score).
    assert _score(lake, "--date", "2026-02-28", "--force", "--set", "scoring.reasons_min_score=0.5") == 0
    assertDataFrameEqual(_scores(spark, trained).where(F.col("ds") == date(2026, 2, 27)),
                         spark.createDataFrame(other, _scores(spark, trained).schema))
    rescored = _scores(spark, trained).where(F.col("ds") == date(2026, 2, 28))
    assert rescored.where(F.col("reasons").isNull() != (F.col("score") < 0.5)).count() == 0
    assert 0 < rescored.where(F.col("reasons").isNull()).count() < rescored.count()


def test_missing_features_are_computed_when_configured(
    spark: SparkSession, trained: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _score(lake, "--date", "2026-03-05") == 4
    assert "table 'features' has no partition ds=2026-03-05" in capsys.readouterr().err
    assert not tables.exists(spark, trained, trained.tables.scores)
    assert _score(lake, "--date", "2026-03-05", "--set", "scoring.compute_missing_features=true") == 0
    assert _scores(spark, trained).count() == tables.read(spark, trained, trained.tables.features).where(
        F.col("ds") == date(2026, 3, 5)).count() > 0


def _corrupt(config: Config) -> None:
    path = Path(tables.model_path(config, "churn", 1)) / "model.txt"
    path.write_text(path.read_text()[:2000])


def _other_feature_set(config: Config) -> None:
    path = Path(tables.model_path(config, "churn", 1)) / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "feature_set": "0123456789abcdef"}))


def _no_champion(config: Config) -> None:
    shutil.rmtree(tables.table_path(config, config.tables.registry))


@pytest.mark.parametrize(
    "damage, argv, code, message",
    [
        (_no_champion, [], 4, "model churn has no champion"),
        (_corrupt, [], 4, "model churn version 1 (" ),
        (lambda config: None, ["--model-version", "9"], 4, "model churn version 9: "),
        (_other_feature_set, [], 3, "feature list mismatch: model churn version 1 was trained on feature set 0123456789abcdef"),
    ],
    ids=["no-champion", "corrupt-model", "unknown-version", "feature-set-mismatch"],
)
def test_bad_models_exit_with_their_code_and_write_nothing(
    spark: SparkSession, trained: Config, lake: Path, capsys: pytest.CaptureFixture[str],
    damage, argv: list[str], code: int, message: str,  # noqa: ANN001
) -> None:
    assert _score(lake, "--date", "2026-02-28") == 0
    damage(trained)
    capsys.readouterr()
    assert _score(lake, "--date", D, *argv) == code
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert tables.current_version(trained, trained.tables.scores) == 0
    run = _last_run(spark, trained)
    assert (run.status, run.exit_code) == ("failed", code)


def test_the_sql_job_queries_the_catalog_and_records_no_run(
    spark: SparkSession, trained: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _score(lake, "--date", D) == 0
    runs_version = tables.current_version(trained, trained.tables.runs)
    capsys.readouterr()
    query = "SELECT ds, count(*) AS n FROM nightjar_churn.scores GROUP BY ds"
    argv = ["--env", "test", "--set", f"lake.root={lake}", query]
    assert cli.run_job(sql_job.JOB, "", sql_job.add_arguments, sql_job.run, "none", argv, record_runs=False) == 0
    assert "|2026-03-01|" in capsys.readouterr().out
    assert cli.run_job(sql_job.JOB, "", sql_job.add_arguments, sql_job.run, "none", [*argv[:-1], "SELEC"],
                       record_runs=False) == 2
    assert tables.current_version(trained, trained.tables.runs) == runs_version


def test_a_blocking_check_failure_writes_nothing(
    spark: SparkSession, trained: Config, lake: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert _score(lake, "--date", "2026-02-28") == 0
    capsys.readouterr()
    # A suite no honest churn score passes: every score at most 0.01.
    strict = "validation.suites.scores.scores=[{expect: between, columns: [score], min: 0, max: 0.01}]"
    assert _score(lake, "--date", D, "--set", strict) == 3
    # Warnings (here the features' drift) go to stderr too; the job ends with its one error line.
    stderr = capsys.readouterr().err.strip().splitlines()
    error = [line for line in stderr if line.startswith("nightjar score: error:")]
    assert error == stderr[-1:] and "table 'scores'" in error[0] and "2026-03-01" in error[0] and "score" in error[0]
    assert tables.current_version(trained, trained.tables.scores) == 0
    run = _last_run(spark, trained)
    assert (run.status, run.exit_code) == ("failed", 3) and "scores.scores" in run.checks


def test_alerts_configured_for_a_model_without_a_threshold_exit_2_saying_to_retrain(config: Config) -> None:
    untrained: lgb.Booster = None  # type: ignore[assignment]  # never used: only the metadata matters
    model = registry.RegisteredModel("churn", 3, untrained, {"holdout": {"metrics": {}}}, "/lake/churn/models/churn/3")
    assert score_job.alert_threshold(config, model) is None  # no alerts configured
    alerting = config.model_copy(update={"scoring": config.scoring.model_copy(update={"alert": AlertConfig()})})
    with pytest.raises(ConfigError) as caught:
        score_job.alert_threshold(alerting, model)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert str(caught.value).startswith("scoring.alert is set but model churn version 3 was trained without an alert "
                                        "threshold: retrain")
    chosen = {"holdout": {"alert": {"threshold": 0.25}}}
    assert score_job.alert_threshold(alerting, registry.RegisteredModel("churn", 4, untrained, chosen, "")) == 0.25
