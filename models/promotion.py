"""Promotion policy: what a trained model is a function of, whether it beats the champion, and
registering it so that jobs running at the same time never take the same version.

A new model becomes champion only when it beats the current champion on the same holdout by
`training.promotion.min_improvement` (or when there is none, or the champion cannot score the
current features); otherwise it is registered as challenger. People change the champion by
hand with `promote` and `rollback`; every change is one registry row saying who, when and why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import pandas as pd
from pyspark.sql import SparkSession

from models import evaluate, registry
from models.config import Task, selection_metric
from models.ensemble import Model
from models.training_set import LABEL
from nightjar import crashpoints, runs, tables
from nightjar.config import Config
from nightjar.errors import MissingInputError

# Registration retries when another job registered or changed an alias in between.
ATTEMPTS = 5
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """A model version as registered: where its files are, which alias it got, the registry's version."""

    version: int
    path: str
    change: registry.AliasChange
    registry_version: int


def training_fingerprint(config: Config, dates: list[date], input_versions: dict[str, int], feature_set: str,
                         code: str) -> str:
    """What a model is a function of; the same fingerprint twice means nothing new to learn."""
    content: dict[str, Any] = {
        "dates": [d.isoformat() for d in dates],
        "inputs": input_versions,
        "feature_set": feature_set,
        "label": config.use_case.label.model_dump(),
        "training": config.training.model_dump(),
        "code": code,
    }
    # The alert threshold is chosen in training: another min_precision is another model's metadata.
    # Only when set, so the fingerprints of models without alerts stay as they were.
    if config.scoring.alert is not None:
        content["alert"] = config.scoring.alert.model_dump()
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def challenge(
    config: Config, rows: list[dict[str, Any]], task: Task, holdout: pd.DataFrame, features: list[str], score: float,
) -> registry.AliasChange:
    """Champion when the new model beats the current champion on the same holdout by the margin, else challenger.

    Args:
        config: the run's configuration (model name, promotion margin).
        rows: the model's registry history.
        task: classification or regression (with `training.metric`: which metric, which way is better).
        holdout: the holdout rows, with the label.
        features: the new model's ordered features.
        score: the new model's selection metric (`models.config.selection_metric`) on `holdout`.

    Returns:
        The alias change to record; its version is 0 until the new version's number is known.

    Raises:
        MissingInputError: the champion's files are missing or corrupt.
    """
    selected = selection_metric(config.training, task)
    metric = selected.name
    margin = config.training.promotion.min_improvement
    champion_version = registry.champion_version(rows)
    decision = registry.PROMOTION_DECISION
    if champion_version is None:
        return registry.AliasChange(registry.CHAMPION, 0, decision, "first model", metric, score)
    champion = registry.load(config, config.model_name, champion_version)
    # A champion fitted on more of the same features (another training.exclude_features) still
    # scores the holdout and must be beaten; one that needs a feature no longer computed cannot.
    absent = [name for name in champion.features if name not in holdout.columns]
    if absent:
        return registry.AliasChange(
            registry.CHAMPION, 0, decision,
            f"champion v{champion_version} needs {', '.join(absent)}, which the current features lack, and cannot score them",
            metric, score,
        )
    if config.scoring.alert is not None and not champion.metadata.get("holdout", {}).get("alert"):
        # Scoring refuses such a champion while alerts are configured: a candidate that merely
        # ties it must not leave the use case without a model that can score.
        return registry.AliasChange(
            registry.CHAMPION, 0, decision,
            f"champion v{champion_version} has no alert threshold and cannot score with scoring.alert set",
            metric, score,
        )
    incumbent = evaluate.metrics(
        task, holdout[LABEL].to_numpy(), evaluate.predict(champion.booster, holdout, champion.features), []
    )[metric]
    beats = selected.beats(score, incumbent, margin)
    reason = (
        f"{metric} {score:.5f} vs champion v{champion_version} {incumbent:.5f} on the same holdout "
        f"({'beats' if beats else 'does not beat'} it by more than {margin:g})"
    )
    alias = registry.CHAMPION if beats else registry.CHALLENGER
    return registry.AliasChange(alias, 0, decision, reason, metric, score, incumbent)


def register(
    spark: SparkSession,
    config: Config,
    booster: Model,
    metadata: dict[str, Any],
    decide: Callable[[list[dict[str, Any]]], registry.AliasChange],
    fingerprint: str,
    user: str | None,
    run_id: str,
    logical_date: date | None,
) -> Registration:
    """Write the model's files as the next version and record it with its alias, in one registry commit.

    Another job may register or move an alias at the same time. The version directory is
    claimed by creating it (a local rename that fails when it exists), and the registry commit
    happens only if the model's history is still the one read; otherwise the run reads the
    history again and decides again (`decide` sees the new champion). If it gives up, its files
    are removed. See the README for what holds on an object store.

    Args:
        metadata: the version's metadata, without `version`, which is added here.
        decide: the alias decision given the current registry history (see `challenge`).

    Raises:
        tables.CommitConflict: still colliding after `ATTEMPTS` tries (exit 5: worth retrying).
    """
    name = config.model_name
    version, path = _claim_version(config, booster, metadata)
    crashpoints.reached("model-written")
    try:
        committed = _append_until_committed(
            spark, config, lambda rows: dataclasses.replace(decide(rows), version=version),
            user, run_id, logical_date, registered=(version, path, fingerprint),
        )
    except BaseException:
        tables.delete_model(config, name, version)  # not in the registry: it must not exist at all
        raise
    if committed is None:
        tables.delete_model(config, name, version)
        raise tables.CommitConflict(
            f"model {name}: {ATTEMPTS} attempts to register collided with other jobs registering at the same time"
        )
    change, registry_version = committed
    return Registration(version, path, change, registry_version)


def _append_until_committed(
    spark: SparkSession,
    config: Config,
    decide: Callable[[list[dict[str, Any]]], registry.AliasChange],
    user: str | None,
    run_id: str,
    logical_date: date | None,
    registered: tuple[int, str, str] | None = None,
) -> tuple[registry.AliasChange, int] | None:
    """Read the history, decide the alias change on it and commit it, again while another job got there first.

    Returns:
        The change committed and the registry's new version; None after `ATTEMPTS` collisions.
    """
    name = config.model_name
    for _ in range(ATTEMPTS):
        rows = registry.history(config, name)
        change = decide(rows)
        try:
            committed = registry.append_changes(
                spark, config, name, rows, [change], user, run_id, logical_date, registered=registered,
            )
        except tables.CommitConflict:
            committed = None
        if committed is not None:
            return change, committed
    return None


def _claim_version(config: Config, booster: Model, metadata: dict[str, Any]) -> tuple[int, str]:
    """Write the model's files as the next free version; returns (version, path).

    Creating the directory is the claim: it fails when another run created it first (see
    `tables.write_model`), and this run then takes the next number. The version held this way
    is not registered by anyone else, so registry commits can be retried with it.
    """
    name = config.model_name
    _reclaim_interrupted(config, registry.history(config, name))
    for _ in range(ATTEMPTS):
        version = registry.next_version(config, registry.history(config, name), name)
        files = registry.model_files(booster, {"name": name, "version": version, **metadata})
        try:
            return version, tables.write_model(config, name, version, files)
        except FileExistsError:
            continue
    raise tables.CommitConflict(f"model {name}: {ATTEMPTS} attempts to claim a version collided with other jobs")


def _reclaim_interrupted(config: Config, rows: list[dict[str, Any]]) -> None:
    """Remove the version directories that a run recorded `interrupted` wrote without registering them.

    Such a run was killed between its files and its registry row; its version number goes to
    the next model, as it would have had the run never started. A directory of a run that may
    still be running (`started`) is another job's claim in progress and stays.
    """
    name = config.model_name
    registered = {row["version"] for row in rows}
    writers: dict[int, str] = {}
    for version in tables.model_versions(config, name):
        if version in registered:
            continue
        try:
            writers[version] = json.loads(tables.read_model_file(config, name, version, registry.METADATA_FILE))["run_id"]
        except (MissingInputError, ValueError, KeyError, TypeError):
            continue  # not a whole version: nothing says whose it is
    killed = runs.interrupted(config, set(writers.values()))
    for version, run_id in sorted(writers.items()):
        if run_id in killed:
            _log.warning("model %s version %d: removing the files of interrupted run %s, never registered",
                         name, version, run_id)
            tables.delete_model(config, name, version)


def set_champion(
    spark: SparkSession, config: Config, version: int, action: str, reason: str, user: str | None, run_id: str,
    logical_date: date | None,
) -> None:
    """Record by hand that `version` is the champion now (one registry row: who, when, why).

    Raises:
        tables.CommitConflict: the history kept changing under this run for `ATTEMPTS` tries.
    """
    change = registry.AliasChange(registry.CHAMPION, version, action, reason)
    if _append_until_committed(spark, config, lambda rows: change, user, run_id, logical_date) is None:
        raise tables.CommitConflict(
            f"model {config.model_name}: {ATTEMPTS} attempts to change the champion collided with other jobs"
        )
