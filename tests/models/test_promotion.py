"""Promotion policy and registration: the champion decision, fingerprints, and registrations that race."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from sklearn import metrics as skm

from models import promotion, registry
from models.config import AlertConfig, ReferenceConfig
from models.training_set import LABEL
from nightjar import tables
from nightjar.config import Config

D = date(2026, 3, 31)


def _holdout(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame[LABEL] = (frame["a"] + 0.3 * rng.normal(size=rows) > 0).astype(int)
    return frame


def _booster(frame: pd.DataFrame, features: list[str], rounds: int = 10) -> lgb.Booster:
    return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 1},
                     lgb.Dataset(frame[features], frame[LABEL]), num_boost_round=rounds)


def _register_champion(spark: SparkSession, config: Config, booster: lgb.Booster, features: list[str]) -> None:
    files = registry.model_files(booster, {"features": features, "feature_hash": registry.feature_hash(features)})
    path = tables.write_model(config, config.model_name, 1, files)
    change = registry.AliasChange(registry.CHAMPION, 1, registry.PROMOTE, "test")
    assert registry.append_changes(spark, config, config.model_name, [], [change], "test", "run-0", D,
                                   registered=(1, path, "fp")) is not None


def test_the_first_model_is_champion(config: Config) -> None:
    change = promotion.challenge(config, [], "classification", _holdout(), ["a", "b"], 0.7)
    assert (change.alias, change.action, change.reason, change.metric_value) == ("champion", "gate", "first model", 0.7)


def test_a_model_must_beat_the_champion_on_the_same_holdout_by_the_margin(spark: SparkSession, config: Config) -> None:
    holdout = _holdout()
    champion = _booster(holdout, ["a", "b"])
    _register_champion(spark, config, champion, ["a", "b"])
    rows = registry.history(config, config.model_name)
    # The champion's AUC on this holdout, by the rank formula (no ties in continuous scores).
    scores = champion.predict(holdout[["a", "b"]].to_numpy())
    ranks = pd.Series(scores).rank().to_numpy()
    positives = holdout[LABEL].to_numpy() == 1
    auc = (ranks[positives].sum() - positives.sum() * (positives.sum() + 1) / 2) / (positives.sum() * (~positives).sum())

    worse = promotion.challenge(config, rows, "classification", holdout, ["a", "b"], auc - 0.01)
    assert (worse.alias, worse.baseline_value) == ("challenger", pytest.approx(auc))
    assert "does not beat it by more than 0" in worse.reason and "vs champion v1" in worse.reason
    better = promotion.challenge(config, rows, "classification", holdout, ["a", "b"], auc + 0.001)
    assert better.alias == "champion" and "beats it" in better.reason
    margin = config.model_copy(update={"training": config.training.model_copy(
        update={"promotion": config.training.promotion.model_copy(update={"min_improvement": 0.01})})})
    assert promotion.challenge(margin, rows, "classification", holdout, ["a", "b"], auc + 0.001).alias == "challenger"
    # A model fitted on fewer of the same features (training.exclude_features) is measured against it...
    fewer = promotion.challenge(config, rows, "classification", holdout, ["a"], 0.5)
    assert (fewer.alias, fewer.baseline_value) == ("challenger", pytest.approx(auc))
    # ...but a champion that needs a feature no longer computed cannot score: replaced, whatever the scores.
    other = promotion.challenge(config, rows, "classification", holdout.drop(columns=["b"]), ["a"], 0.5)
    assert other.alias == "champion" and "needs b, which the current features lack" in other.reason
    # ...and so is one without an alert threshold once alerts are configured (scoring refuses it).
    alerting = config.model_copy(update={"scoring": config.scoring.model_copy(
        update={"alert": AlertConfig(min_precision=0.5)})})
    tie = promotion.challenge(alerting, rows, "classification", holdout, ["a", "b"], auc)
    assert tie.alias == "champion" and "has no alert threshold" in tie.reason
    # With `training.metric`, the champion is measured on that metric; log loss: smaller is better.
    for metric, value in (("pr_auc", skm.average_precision_score(positives, scores)),
                          ("log_loss", skm.log_loss(positives, scores))):
        by_metric = config.model_copy(update={"training": config.training.model_copy(update={"metric": metric})})
        sign = -1 if metric == "log_loss" else 1
        beaten = promotion.challenge(by_metric, rows, "classification", holdout, ["a", "b"], value + sign * 0.001)
        assert (beaten.alias, beaten.metric, beaten.baseline_value) == ("champion", metric, pytest.approx(value))
        kept = promotion.challenge(by_metric, rows, "classification", holdout, ["a", "b"], value - sign * 0.001)
        assert kept.alias == "challenger" and kept.reason.startswith(f"{metric} ")


def test_the_training_fingerprint_follows_the_inputs(config: Config) -> None:
    fingerprint = promotion.training_fingerprint(config, [D], {"features": 3}, "fs", "code")
    assert fingerprint == promotion.training_fingerprint(config, [D], {"features": 3}, "fs", "code")
    assert fingerprint != promotion.training_fingerprint(config, [D], {"features": 4}, "fs", "code")
    assert fingerprint != promotion.training_fingerprint(config, [date(2026, 3, 30)], {"features": 3}, "fs", "code")


def test_a_reference_dated_by_the_feature_date_hashes_as_before_its_dating_existed(config: Config) -> None:
    # Written as before `dated` existed, the reference dumps (and so fingerprints) as it did then.
    assert config.training.model_dump()["reference"] == {"table": "truth", "column": "churn_probability"}
    spelled = config.model_copy(update={"training": config.training.model_copy(update={
        "reference": ReferenceConfig(table="truth", column="churn_probability", dated="feature_date")})})
    fingerprint = promotion.training_fingerprint(config, [D], {"features": 3}, "fs", "code")
    assert promotion.training_fingerprint(spelled, [D], {"features": 3}, "fs", "code") == fingerprint
    target = config.model_copy(update={"training": config.training.model_copy(update={
        "reference": ReferenceConfig(table="truth", column="churn_probability", dated="target_date")})})
    assert promotion.training_fingerprint(target, [D], {"features": 3}, "fs", "code") != fingerprint


def test_a_change_decided_on_a_stale_history_is_not_written(spark: SparkSession, config: Config) -> None:
    holdout = _holdout()
    _register_champion(spark, config, _booster(holdout, ["a", "b"]), ["a", "b"])
    before = tables.current_version(config, config.tables.registry)
    stale: list[dict[str, Any]] = []  # read before the champion above was registered
    change = registry.AliasChange(registry.CHAMPION, 1, registry.PROMOTE, "late")
    assert registry.append_changes(spark, config, config.model_name, stale, [change], "test", "run-1", D) is None
    assert tables.current_version(config, config.tables.registry) == before


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    if errors:
        raise errors[0]
    return results


def test_registrations_racing_each_other_take_distinct_versions(spark: SparkSession, config: Config, lake: Path) -> None:
    holdout = _holdout()
    boosters = [_booster(holdout, ["a", "b"], rounds=5 + index) for index in range(3)]

    def register(index: int) -> promotion.Registration:
        return promotion.register(
            spark, config, boosters[index], {"features": ["a", "b"], "feature_hash": registry.feature_hash(["a", "b"])},
            lambda rows: promotion.challenge(config, rows, "classification", holdout, ["a", "b"], 0.5 + index / 100),
            f"fingerprint-{index}", "test", f"run-{index}", D,
        )

    registrations = _race(3, register)
    assert sorted(r.version for r in registrations) == [1, 2, 3]
    rows = registry.history(config, config.model_name)
    assert [r["sequence"] for r in rows] == list(range(1, 7))  # one registration and one alias change each
    for registration in registrations:
        mine = [r for r in rows if r["run_id"] == f"run-{registrations.index(registration)}"]
        assert [(r["action"], r["version"]) for r in mine] == [("register", registration.version),
                                                              ("gate", registration.version)]
        # The files under the version are the ones this run registered.
        metadata = json.loads((lake / "churn" / "models" / config.model_name / str(registration.version) / "metadata.json").read_text())
        assert metadata["version"] == registration.version
        assert registry.load(config, config.model_name, registration.version).booster.num_trees() == \
            boosters[registrations.index(registration)].num_trees()
    assert tables.model_versions(config, config.model_name) == [1, 2, 3]
    assert not [p for p in (lake / "churn" / "models" / config.model_name).iterdir() if p.name.startswith(".")]
    # Each decision saw the champion of its moment: the first to commit was "first model".
    assert [r["reason"] for r in rows if r["action"] == "gate"][0] == "first model"
