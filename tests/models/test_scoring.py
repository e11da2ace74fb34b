from __future__ import annotations

from datetime import date

import lightgbm as lgb
import numpy as np
import pytest
from pyspark.sql import SparkSession

from models import scoring

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
    scored = scoring.score(frame, booster.model_to_string(), NAMES, "customer_id", reasons=2).toPandas()
    scored = scored.sort_values("customer_id").reset_index(drop=True)
    plain = frame.toPandas().sort_values("customer_id").reset_index(drop=True)
    matrix = plain[NAMES].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(scored["score"], booster.predict(matrix), rtol=0, atol=1e-12)
    contributions = booster.predict(matrix, pred_contrib=True)[:, :4]
    for index in (0, 1, 7, 250):
        reasons = scored.loc[index, "reasons"]
        expected = np.argsort(-contributions[index], kind="stable")[:2]
        assert [r["feature"] for r in reasons] == [NAMES[i] for i in expected]
        assert [r["contribution"] for r in reasons] == pytest.approx(contributions[index, expected].tolist())
        for reason in reasons:
            value = plain.loc[index, reason["feature"]]
            assert reason["value"] == (None if np.isnan(value) else pytest.approx(value))
    assert scored["ds"].eq(date(2026, 3, 1)).all() and len(scored) == 500


def test_scores_without_reasons(spark: SparkSession, booster: lgb.Booster) -> None:
    scored = scoring.score(_features(spark, 20), booster.model_to_string(), NAMES, "customer_id", reasons=0)
    assert scored.columns == ["customer_id", "ds", "score"]


@pytest.mark.parametrize("min_score", [0.6, 2.0])  # some rows explained; none
def test_reasons_only_for_scores_at_least_the_threshold(spark: SparkSession, booster: lgb.Booster,
                                                         min_score: float) -> None:
    frame = _features(spark).repartition(3)
    text = booster.model_to_string()
    every = scoring.score(frame, text, NAMES, "customer_id", reasons=2).toPandas().set_index("customer_id")
    some = scoring.score(frame, text, NAMES, "customer_id", reasons=2, reasons_min_score=min_score)
    some = some.toPandas().set_index("customer_id").loc[every.index]
    assert some["score"].tolist() == every["score"].tolist()
    above = some["score"] >= min_score
    assert some.loc[~above, "reasons"].isna().all()
    assert some.loc[above, "reasons"].map(list).tolist() == every.loc[above, "reasons"].map(list).tolist()
    assert above.any() == (min_score < 1)


def test_lineage_columns_follow_the_scores_contract(spark: SparkSession, booster: lgb.Booster) -> None:
    scored = scoring.score(_features(spark, 20), booster.model_to_string(), NAMES, "customer_id")
    rows = scoring.with_lineage(scored, "churn", 4, "run-1")
    assert rows.columns == ["customer_id", "ds", "score", "model_name", "model_version", "reasons", "run_id"]
    first = rows.first()
    assert (first.model_name, first.model_version, first.run_id, len(first.reasons)) == ("churn", 4, "run-1", 3)
