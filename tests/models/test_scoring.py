from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models import compiled, registry, scoring
from models.ensemble import Ensemble, Offset

NAMES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.2 * x[:, 3] + 0.3 * rng.normal(size=3000) > 0).astype(int)
    return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 3},
                     lgb.Dataset(x, y, feature_name=NAMES), num_boost_round=30)


def _features(spark: SparkSession, rows: int = 500):  # noqa: ANN202
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 4))
    data = [(i, date(2026, 3, 1), *[None if (i % 7 == 0 and j == 1) else float(v) for j, v in enumerate(r)])
            for i, r in enumerate(x)]
    return spark.createDataFrame(data, "customer_id long, ds date, a double, b double, c double, d double")


def test_spark_scores_equal_booster_predict_and_reasons_are_the_top_contributions(
    spark: SparkSession, booster: lgb.Booster,
) -> None:
    frame = _features(spark).repartition(3)  # several tasks and batches
    scored = scoring.score(frame, booster.model_to_string(), NAMES, ["customer_id"], reasons=2).toPandas()
    scored = scored.sort_values("customer_id").reset_index(drop=True)
    plain = frame.toPandas().sort_values("customer_id").reset_index(drop=True)
    matrix = plain[NAMES].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(scored["score"], booster.predict(matrix), rtol=0, atol=1e-12)
    contributions = booster.predict(matrix, pred_contrib=True)
    # SHAP values and the bias add up to the raw score: they are the contributions to explain.
    np.testing.assert_allclose(contributions.sum(axis=1), booster.predict(matrix, raw_score=True), atol=1e-9)
    for index in (0, 1, 7, 250):
        reasons = scored.loc[index, "reasons"]
        by_name = dict(zip(NAMES, contributions[index, :4]))
        listed = [r["feature"] for r in reasons]
        assert len(listed) == 2 and [r["contribution"] for r in reasons] == pytest.approx([by_name[n] for n in listed])
        # Each listed feature pushes the score up at least as much as any other, larger first.
        assert by_name[listed[0]] >= by_name[listed[1]]
        assert all(by_name[n] <= by_name[listed[1]] for n in NAMES if n not in listed)
        for reason in reasons:
            value = plain.loc[index, reason["feature"]]
            assert reason["value"] == (None if np.isnan(value) else pytest.approx(value))
    assert scored["ds"].eq(date(2026, 3, 1)).all() and len(scored) == 500


def _stump(index: int, feature: int, low: float, high: float) -> str:
    """One LightGBM tree in model-text form: `low` if the feature is <= 0, else `high`, equal counts."""
    return (
        f"Tree={index}\nnum_leaves=2\nnum_cat=0\nsplit_feature={feature}\nsplit_gain=1\nthreshold=0\n"
        f"decision_type=2\nleft_child=-1\nright_child=-2\nleaf_value={low} {high}\nleaf_weight=1 1\n"
        "leaf_count=1 1\ninternal_value=0\ninternal_weight=2\ninternal_count=2\nis_linear=0\nshrinkage=1\n\n"
    )


# A model written by hand: one stump each on a (+-1), b (+-2) and c (+-0.5), none on d. With
# equal leaf counts the expected value is 0, so each feature's SHAP contribution is its leaf
# value and the raw score their sum.
HAND_MODEL = (
    "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\nmax_feature_idx=3\n"
    "objective=binary sigmoid:1\nfeature_names=a b c d\nfeature_infos=[-9:9] [-9:9] [-9:9] [-9:9]\n\n"
    + _stump(0, 0, -1, 1) + _stump(1, 1, -2, 2) + _stump(2, 2, -0.5, 0.5) + "end of trees\n"
)


def test_reasons_of_a_hand_written_model(spark: SparkSession) -> None:
    rows = [(1, 1.0, 1.0, 1.0, 0.0), (2, 1.0, -1.0, 1.0, 0.0), (3, -1.0, -1.0, -1.0, 7.0)]
    frame = spark.createDataFrame([(i, date(2026, 3, 1), *x) for i, *x in rows],
                                  "customer_id long, ds date, a double, b double, c double, d double")
    scored = scoring.score(frame, HAND_MODEL, NAMES, ["customer_id"], reasons=2).orderBy("customer_id").collect()
    sigmoid = lambda raw: 1 / (1 + np.exp(-raw))  # noqa: E731
    assert [row.score for row in scored] == pytest.approx([sigmoid(3.5), sigmoid(-0.5), sigmoid(-3.5)])
    reasons = [[(r.feature, r.value, r.contribution) for r in row.reasons] for row in scored]
    assert reasons == [
        [("b", 1.0, 2.0), ("a", 1.0, 1.0)],
        [("a", 1.0, 1.0), ("c", 1.0, 0.5)],
        # Every score-lowering feature but d, which the model ignores: d pushes it up the most.
        [("d", 7.0, 0.0), ("c", -1.0, -0.5)],
    ]


def test_scores_without_reasons(spark: SparkSession, booster: lgb.Booster) -> None:
    scored = scoring.score(_features(spark, 20), booster.model_to_string(), NAMES, ["customer_id"], reasons=0)
    assert scored.columns == ["customer_id", "ds", "score"]


@pytest.mark.parametrize("min_score", [0.6, 2.0])  # some rows explained; none
def test_reasons_only_for_scores_at_least_the_threshold(spark: SparkSession, booster: lgb.Booster,
                                                         min_score: float) -> None:
    frame = _features(spark).repartition(3)
    text = booster.model_to_string()
    every = scoring.score(frame, text, NAMES, ["customer_id"], reasons=2).toPandas().set_index("customer_id")
    some = scoring.score(frame, text, NAMES, ["customer_id"], reasons=2, reasons_min_score=min_score)
    some = some.toPandas().set_index("customer_id").loc[every.index]
    assert some["score"].tolist() == every["score"].tolist()
    above = some["score"] >= min_score
    assert some.loc[~above, "reasons"].isna().all()
    assert some.loc[above, "reasons"].map(list).tolist() == every.loc[above, "reasons"].map(list).tolist()
    assert above.any() == (min_score < 1)


def test_lineage_columns_follow_the_scores_contract(spark: SparkSession, booster: lgb.Booster) -> None:
    scored = scoring.score(_features(spark, 20), booster.model_to_string(), NAMES, ["customer_id"])
    rows = scoring.with_lineage(scored, "churn", 4, "run-1")
    assert rows.columns == ["customer_id", "ds", "score", "model_name", "model_version", "reasons", "run_id"]
    first = rows.first()
    assert (first.model_name, first.model_version, first.run_id, len(first.reasons)) == ("churn", 4, "run-1", 3)


def test_an_alert_threshold_adds_an_alert_flag_at_or_above_it(spark: SparkSession, booster: lgb.Booster) -> None:
    frame = _features(spark, 200)
    text = booster.model_to_string()
    plain = scoring.score(frame, text, NAMES, ["customer_id"], reasons=0).toPandas()
    threshold = float(plain["score"].sort_values().iloc[150])  # a score itself: equal to it alerts
    flagged = scoring.with_lineage(scoring.score(frame, text, NAMES, ["customer_id"], alert_threshold=threshold),
                                   "m", 1, "run-1")
    assert flagged.columns == [
        "customer_id", "ds", "score", "alert", "model_name", "model_version", "reasons", "run_id"]
    rows = flagged.toPandas()
    assert rows["alert"].tolist() == (rows["score"] >= threshold).tolist() and rows["alert"].sum() == 50


def test_a_forecast_keeps_its_horizon_and_target_date_after_ds(spark: SparkSession, booster: lgb.Booster) -> None:
    # Keyed by two columns, with the horizon both carried and a feature ("d" stands for it here).
    frame = (_features(spark, 50).withColumnRenamed("customer_id", "item_id")
             .withColumn("store_id", F.lit(3)).withColumn("horizon", F.col("d"))
             .withColumn("target_date", F.date_add("ds", 2)))
    names = ["a", "b", "c", "horizon"]
    scored = scoring.score(frame, booster.model_to_string(), names, ["store_id", "item_id"], reasons=0,
                           carried=["horizon", "target_date"])
    assert scored.columns == ["store_id", "item_id", "ds", "horizon", "target_date", "score"]
    plain = scoring.score(frame.withColumn("d", F.col("horizon")), booster.model_to_string(), NAMES,
                          ["store_id", "item_id"], reasons=0)
    assert sorted(r.score for r in scored.collect()) == sorted(r.score for r in plain.collect())
    assert {r.target_date for r in scored.collect()} == {date(2026, 3, 3)}


def test_an_ensemble_scores_its_members_mean_inside_spark(spark: SparkSession, booster: lgb.Booster) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 4))
    other = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 9, "num_leaves": 4},
                      lgb.Dataset(x, (x[:, 1] > 0).astype(int), feature_name=NAMES), num_boost_round=10)
    ensemble = Ensemble((booster, other))
    frame = _features(spark, 60).repartition(2)
    scored = scoring.score(frame, registry.model_text(ensemble), NAMES, ["customer_id"], reasons=2).toPandas()
    scored = scored.sort_values("customer_id").reset_index(drop=True)
    matrix = frame.toPandas().sort_values("customer_id")[NAMES].to_numpy(dtype=np.float64)
    expected = (booster.predict(matrix) + other.predict(matrix)) / 2
    np.testing.assert_allclose(scored["score"], expected, rtol=0, atol=1e-12)
    contributions = (booster.predict(matrix, pred_contrib=True) + other.predict(matrix, pred_contrib=True)) / 2
    top = [NAMES[int(np.argmax(row[:4]))] for row in contributions]
    assert [reasons[0]["feature"] for reasons in scored["reasons"]] == top


def _spark_scores(frame, text: str, cache: Path, **options) -> np.ndarray:  # noqa: ANN001
    scored = scoring.score(frame, text, NAMES, ["customer_id"], reasons=0, compiled=True, compiled_cache=str(cache),
                           **options).toPandas()
    return scored.sort_values("customer_id")["score"].to_numpy()


def test_compiled_scores_equal_booster_predict_for_a_booster_and_ensembles(
    spark: SparkSession, booster: lgb.Booster, tmp_path: Path,
) -> None:
    frame = _features(spark).repartition(3)
    matrix = frame.toPandas().sort_values("customer_id")[NAMES].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(_spark_scores(frame, booster.model_to_string(), tmp_path),
                               booster.predict(matrix), rtol=0, atol=1e-9)
    # An ensemble's mean, and a log-link ensemble with an offset: raw scores compiled, exp(raw + log offset) averaged.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 4))
    other = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 9, "num_leaves": 4},
                      lgb.Dataset(x, (x[:, 1] > 0).astype(int), feature_name=NAMES), num_boost_round=10)
    offset = Offset("c", 0.1)
    counts = rng.poisson(np.exp(0.5 * x[:, 0]) * np.fmax(np.abs(x[:, 2]), 0.1))
    tweedies = tuple(lgb.train({"objective": "tweedie", "verbosity": -1, "num_threads": 1, "seed": seed},
                               lgb.Dataset(x, counts, feature_name=NAMES, init_score=offset.log(x[:, 2])),
                               num_boost_round=15) for seed in (1, 2))
    for ensemble in (Ensemble((booster, other)), Ensemble(tweedies, offset)):
        np.testing.assert_allclose(_spark_scores(frame, registry.model_text(ensemble), tmp_path),
                                   ensemble.predict(matrix), rtol=1e-9, atol=1e-9)
    # One cache entry (object, its hash record, model text, lock) per booster compiled: never shared.
    assert len(list(tmp_path.glob("*.o"))) == 5 and len(list(tmp_path.glob("*.json"))) == 5


def test_a_stale_cached_object_is_rebuilt(booster: lgb.Booster, tmp_path: Path) -> None:
    text = booster.model_to_string()
    matrix = np.random.default_rng(2).normal(size=(300, 4))
    assert compiled.predictor(text, "stale-1", tmp_path) is not None
    (cached,) = tmp_path.glob("*.o")
    cached.write_bytes(b"not an object file")  # a truncated or foreign file: its hash no longer matches
    again = compiled.predictor(text, "stale-2", tmp_path)  # another process's first use
    np.testing.assert_allclose(again.predict(matrix), booster.predict(matrix), rtol=0, atol=1e-9)
    assert cached.read_bytes() != b"not an object file"


def test_two_processes_compiling_one_model_build_one_cache_entry(booster: lgb.Booster, tmp_path: Path) -> None:
    # Two Python workers of one executor start the same model at once: the file lock makes the
    # second wait for the first's object, which it loads; no partial file is left behind.
    source = tmp_path / "model.txt"
    source.write_text(booster.model_to_string())
    cache = tmp_path / "cache"
    script = (f"import json, numpy as np; from models import compiled; text = open({str(source)!r}).read(); "
              f"m = compiled.predictor(text, 'd', {str(cache)!r}); "
              "print(json.dumps(m.predict(np.linspace(-2, 2, 40).reshape(10, 4)).tolist()))")
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=environment)
               for _ in range(2)]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    expected = booster.predict(np.linspace(-2, 2, 40).reshape(10, 4))
    for output in outputs:
        np.testing.assert_allclose(json.loads(output), expected, rtol=0, atol=1e-9)
    assert len(list(cache.glob("*.o"))) == 1 and not list(cache.glob("*tmp*"))


def test_a_model_that_cannot_be_compiled_falls_back_to_booster_predict_with_a_warning(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # Linear trees: lleaves would ignore their leaf models, so compiling them is refused, for real, in the
    # driver and in every Python worker; the scores are Booster.predict's.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 4))
    linear = lgb.train({"objective": "regression", "linear_tree": True, "verbosity": -1, "num_threads": 1},
                       lgb.Dataset(x, 2 * x[:, 0] + x[:, 1] ** 2, feature_name=NAMES), num_boost_round=5)
    frame = _features(spark, 200).fillna(0.0)
    matrix = frame.toPandas().sort_values("customer_id")[NAMES].to_numpy(dtype=np.float64)
    with caplog.at_level(logging.WARNING, logger="models.compiled"):
        scores = _spark_scores(frame, linear.model_to_string(), tmp_path)
    np.testing.assert_allclose(scores, linear.predict(matrix), rtol=0, atol=1e-12)
    warnings = [r.getMessage() for r in caplog.records if r.name == "models.compiled"]
    assert warnings == ["compiled scoring unavailable, using Booster.predict: ValueError: lleaves does not compile linear trees"]
    assert not list(tmp_path.glob("*.o"))


def test_the_compiler_switched_off_in_a_process_falls_back(booster: lgb.Booster, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # NIGHTJAR_COMPILED=off stops the compiler's import in the process that reads it (an executor's
    # environment on a cluster: spark.executorEnv.NIGHTJAR_COMPILED).
    monkeypatch.setenv(compiled.DISABLE_VARIABLE, "off")
    assert compiled.predictor(booster.model_to_string(), "switched-off", tmp_path) is None
    assert not list(tmp_path.iterdir()) and os.environ[compiled.DISABLE_VARIABLE] == "off"


def test_reasons_for_the_top_percent_of_each_date_by_an_exact_rank(spark: SparkSession, booster: lgb.Booster) -> None:
    # Two dates of different sizes, and ties at the cut: every row tied with the k-th gets reasons.
    rows = [(i, date(2026, 3, 1), float(i % 10)) for i in range(100)]  # ten of each score 0..9
    rows += [(100 + i, date(2026, 3, 2), float(i)) for i in range(7)]
    rows += [(200 + i, date(2026, 3, 3), float(i)) for i in range(100)]  # distinct scores 0..99
    frame = spark.createDataFrame(rows, "customer_id long, ds date, score double").repartition(3)
    cuts = scoring.top_percent_thresholds(frame, "score", 7)
    # 7% of 100 rows is 7: the 7th largest is 9, tied with 3 more rows (all 9s are explained); of
    # distinct scores 0..99 the 7th largest is 93 (not 92, as 0.07 * 100 = 7.000000000000001 would
    # give rounded up); 7% of 7 rows is 0.49, rounded up to one row: the largest.
    assert cuts == {date(2026, 3, 1): 9.0, date(2026, 3, 2): 6.0, date(2026, 3, 3): 93.0}
    assert set(scoring.top_percent_thresholds(frame, "score", 100).values()) == {0.0}
    # Scoring with the per-date thresholds explains exactly the rows at or above their date's.
    features = _features(spark, 400).withColumn("ds", F.expr("date_add(ds, CAST(customer_id % 2 AS INT))"))
    text = booster.model_to_string()
    first = scoring.score(features, text, NAMES, ["customer_id"], reasons=0)
    cuts = scoring.top_percent_thresholds(first, "score", 5)
    scored = scoring.score(features, text, NAMES, ["customer_id"], reasons=2, reasons_min_score=cuts).toPandas()
    for day, group in scored.groupby("ds"):
        explained = group["reasons"].notna()
        assert explained.tolist() == (group["score"] >= cuts[day]).tolist()
        # 5% of 200 is 10 rows: the 10th largest is the cut, so fewer than 10 score above it, and
        # at least 10 at or above it (more when scores tie with the 10th: this small model's do).
        assert (group["score"] > cuts[day]).sum() < 10 <= explained.sum()
        assert group.loc[explained, "score"].min() > group.loc[~explained, "score"].max()
    assert set(scored["ds"]) == {date(2026, 3, 1), date(2026, 3, 1) + timedelta(days=1)}
