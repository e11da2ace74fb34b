"""The model registry: versioned model directories and the `registry` table of every change.

A version is a directory `<lake>/models/<name>/<version>/` with `model.txt` (LightGBM's text
format) and `metadata.json` (parameters, holdout metrics, the ordered feature list and its
hash, the training data's table versions and dates, the seed, the code version, and the
SHA-256 of `model.txt`). The `registry` table records each registration and each alias
change (who, when, why) as one appended row: the champion is whatever the latest
`champion` row says, and its history is the table itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import lightgbm as lgb
import pyarrow.compute as pc
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from models.ensemble import MANIFEST_FILE, Ensemble, Model, manifest, member_file, offset_of, to_text
from models.folds import Plan
from models.search import SearchResult
from nightjar import tables
from nightjar.config import Config
from nightjar.errors import MissingInputError

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
CHAMPION, CHALLENGER = "champion", "challenger"
# Registry actions: a new version; an automatic promotion decision after training (stored as
# "gate" since the first release); a promotion or rollback by hand.
REGISTER, PROMOTION_DECISION, PROMOTE, ROLLBACK = "register", "gate", "promote", "rollback"

REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("sequence", T.LongType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("version", T.IntegerType(), False),
        # REGISTER: a new version; PROMOTION_DECISION / PROMOTE / ROLLBACK: an alias now points at `version`.
        T.StructField("action", T.StringType(), False),
        T.StructField("alias", T.StringType(), True),
        T.StructField("previous_version", T.IntegerType(), True),
        T.StructField("metric", T.StringType(), True),
        T.StructField("metric_value", T.DoubleType(), True),
        T.StructField("baseline_value", T.DoubleType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("user", T.StringType(), True),
        T.StructField("run_id", T.StringType(), True),
        T.StructField("logical_date", T.DateType(), True),
        T.StructField("training_fingerprint", T.StringType(), True),
        T.StructField("path", T.StringType(), True),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class RegisteredModel:
    """A loaded, verified model version."""

    name: str
    version: int
    booster: Model  # a Booster, or an Ensemble of them
    metadata: dict[str, Any]
    path: str

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])


@dataclass(frozen=True)
class AliasChange:
    """One row to record: `alias` now points at `version`."""

    alias: str
    version: int
    action: str
    reason: str
    metric: str | None = None
    metric_value: float | None = None
    baseline_value: float | None = None


def feature_hash(features: list[str]) -> str:
    """A short hash of the ordered feature list: scoring refuses a model whose hash differs."""
    return hashlib.sha256(json.dumps(list(features)).encode()).hexdigest()[:16]


def history(config: Config, name: str) -> list[dict[str, Any]]:
    """The registry rows of model `name`, oldest first (empty when there are none)."""
    # A few rows per training: read with delta-rs, without a Spark job (5.2 s as a job's first one).
    found = tables.read_rows(config, config.tables.registry, pc.field("model_name") == name)
    if found is None:
        return []
    return sorted(found.to_pylist(), key=lambda row: row["sequence"])


def champion_stack(rows: list[dict[str, Any]]) -> list[int]:
    """The champion's history as a stack: each promotion pushes, each rollback pops.

    The last element is the current champion; the one before it is where a rollback goes.
    """
    stack: list[int] = []
    for row in rows:
        if row["alias"] != CHAMPION:
            continue
        if row["action"] == ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != row["version"]:
                stack.append(row["version"])
        else:
            stack.append(row["version"])
    return stack


def champion_version(rows: list[dict[str, Any]]) -> int | None:
    """The current champion's version, or None before the first promotion."""
    stack = champion_stack(rows)
    return stack[-1] if stack else None


def rollback_target(rows: list[dict[str, Any]]) -> int | None:
    """The version a rollback would make champion again: the champion before the current one."""
    stack = champion_stack(rows)
    return stack[-2] if len(stack) >= 2 else None


def find_by_fingerprint(rows: list[dict[str, Any]], fingerprint: str) -> int | None:
    """The version already trained from exactly these inputs and settings, if any."""
    matches = [r["version"] for r in rows if r["action"] == REGISTER and r["training_fingerprint"] == fingerprint]
    return matches[-1] if matches else None


def next_version(config: Config, rows: list[dict[str, Any]], name: str) -> int:
    """One more than any version in the registry or on disk (a failed registration's leftovers included)."""
    known = [r["version"] for r in rows] + tables.model_versions(config, name)
    return max(known, default=0) + 1


def load(config: Config, name: str, version: int) -> RegisteredModel:
    """Load and verify a registered version.

    Raises:
        MissingInputError: the directory or a file is missing, the metadata is not valid JSON,
            `model.txt` does not match its recorded SHA-256, or LightGBM cannot parse it.
    """
    where = f"model {name} version {version} ({tables.model_path(config, name, version)})"
    metadata = load_metadata(config, name, version)
    expected_sha, features = metadata["model_sha256"], metadata["features"]
    if "ensemble" not in metadata and "offset" not in metadata:
        booster: Model = _verified(config, name, version, MODEL_FILE, expected_sha, features, where)
    else:
        manifest_text = tables.read_model_file(config, name, version, MANIFEST_FILE)
        if hashlib.sha256(manifest_text.encode()).hexdigest() != expected_sha:
            raise MissingInputError(f"{where}: {MANIFEST_FILE} is corrupt (its SHA-256 differs from the one registered)")
        contents = json.loads(manifest_text)
        booster = Ensemble(tuple(
            _verified(config, name, version, member["file"], member["model_sha256"], features, where)
            for member in contents["members"]
        ), offset_of(contents))
    return RegisteredModel(name, version, booster, metadata, tables.model_path(config, name, version))


def load_metadata(config: Config, name: str, version: int) -> dict[str, Any]:
    """A registered version's `metadata.json` alone, without reading or parsing its model (for
    what needs its statistics, not its trees).

    Raises:
        MissingInputError: the file is missing, not valid JSON, or lacks the model's hash or features.
    """
    text = tables.read_model_file(config, name, version, METADATA_FILE)
    try:
        metadata = json.loads(text)
        metadata["model_sha256"], metadata["features"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        where = f"model {name} version {version} ({tables.model_path(config, name, version)})"
        raise MissingInputError(f"{where}: {METADATA_FILE} is corrupt ({type(error).__name__}: {error})") from None
    return metadata


def _verified(
    config: Config, name: str, version: int, file: str, expected_sha: str, features: list[str], where: str,
) -> lgb.Booster:
    """One model file of a version, parsed, after checking its SHA-256 and its features."""
    text = tables.read_model_file(config, name, version, file)
    if hashlib.sha256(text.encode()).hexdigest() != expected_sha:
        raise MissingInputError(f"{where}: {file} is corrupt (its SHA-256 differs from the one registered)")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as error:
        raise MissingInputError(f"{where}: {file} is corrupt ({str(error).splitlines()[0]})") from None
    if booster.feature_name() != list(features):
        raise MissingInputError(f"{where}: {file} features differ from {METADATA_FILE}")
    return booster


def load_champion(config: Config, name: str) -> RegisteredModel:
    """Load the current champion; MissingInputError when there is none."""
    version = champion_version(history(config, name))
    if version is None:
        raise MissingInputError(f"model {name} has no {CHAMPION}: train one with ./spark-submit.sh train --date D")
    return load(config, name, version)


def append_changes(
    spark: SparkSession,
    config: Config,
    name: str,
    rows: list[dict[str, Any]],
    changes: list[AliasChange],
    user: str | None,
    run_id: str,
    logical_date: date | None,
    registered: tuple[int, str, str] | None = None,
) -> int | None:
    """Append a registration (version, path, fingerprint) and alias changes in one commit.

    `rows` is the model's history as the caller read it, and the new rows continue its
    sequence. The commit happens only if no row was added to the model's history since: two
    jobs registering at once cannot both take the same sequence or version.

    Returns:
        The registry table's new version, or None when the history moved on since `rows` were
        read (nothing written: read it again, decide again, and retry).

    Raises:
        tables.CommitConflict: another job committed to the registry at the same moment.
    """
    last = max((r["sequence"] for r in rows), default=0)
    sequence = last
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # audit time of the change, not data
    current = {CHAMPION: champion_version(rows)}
    for row in rows:
        if row["alias"] == CHALLENGER:
            current[CHALLENGER] = row["version"]
    new_rows = []
    if registered is not None:
        version, path, fingerprint = registered
        sequence += 1
        new_rows.append((sequence, name, version, REGISTER, None, None, None, None, None, None, user, run_id,
                         logical_date, fingerprint, path, now))
    for change in changes:
        sequence += 1
        new_rows.append((sequence, name, change.version, change.action, change.alias, current.get(change.alias),
                         change.metric, change.metric_value, change.baseline_value, change.reason, user, run_id,
                         logical_date, None, tables.model_path(config, name, change.version), now))
        current[change.alias] = change.version
    tables.create_if_missing(spark, config, config.tables.registry, REGISTRY_SCHEMA)
    frame = spark.createDataFrame(new_rows, REGISTRY_SCHEMA)
    # A model name is an identifier (the configuration checks it): safe inside the SQL condition.
    return tables.append_unless(
        frame, config, config.tables.registry, f"t.model_name = s.model_name AND t.sequence > {last}",
    )


# Parameters that describe the Dask workers' sockets of one run, not the model: LightGBM
# writes them into the text's parameter block, where they would make identical models differ.
_NETWORK_PARAMETERS = ("[machines:", "[local_listen_port:", "[machine_list_filename:")


def model_text(model: Model) -> str:
    """The model as one text (`ensemble.from_text` reads it back): a booster in LightGBM's text
    format without the run's network addresses, or an ensemble's members in that format."""
    if isinstance(model, Ensemble):
        return to_text([model_text(member) for member in model.members], model.offset)
    lines = model.model_to_string().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(_NETWORK_PARAMETERS))


def model_metadata(
    *,
    config: Config,
    task: str,
    features: list[str],
    feature_set: str,
    params: dict[str, Any],
    rounds: int,
    plan: Plan,
    holdout_rows: int,
    report: dict[str, Any],
    search: SearchResult,
    training_data: dict[str, Any],
    fingerprint: str,
    reference_statistics: dict[str, Any],
    logical_date: date,
    run_id: str,
    code_version: str,
) -> dict[str, Any]:
    """A new version's `metadata.json` (without its name and version): what it is, how it did, what it was made of."""
    return {
        "task": task,
        "label": config.use_case.label.model_dump(),
        "entity_key": config.use_case.entity.key,
        "features": features,
        "feature_hash": feature_hash(features),
        "feature_set": feature_set,
        "params": params,
        "num_boost_round": rounds,
        "seed": config.training.seed,
        "holdout": {"dates": [d.isoformat() for d in plan.holdout], "rows": holdout_rows, **report},
        "folds": [{"train": [d.isoformat() for d in f.train], "valid": [d.isoformat() for d in f.valid]} for f in plan.folds],
        "search": {"metric": search.metric, "seconds": round(search.seconds, 3), "stopped_by_time": search.stopped_by_time,
                   "cancelled_trials": search.cancelled, "best_trial": search.best.index,
                   "trials": [t.summary() for t in search.trials]},
        "training_data": training_data,
        "training_fingerprint": fingerprint,
        "reference_statistics": reference_statistics,
        "logical_date": logical_date.isoformat(),
        "run_id": run_id,
        "code_version": code_version,
    }


def model_files(model: Model, metadata: dict[str, Any]) -> dict[str, str]:
    """The files of a new version: the model text and its metadata with the text's SHA-256; for an
    ensemble, each member's text and the manifest (`ensemble.json`) with theirs, the metadata
    holding the manifest's (and the members' descriptions under `ensemble`; a booster with an
    offset is an ensemble of one, described by the metadata's `offset` alone)."""
    if isinstance(model, Ensemble):
        texts = [model_text(member) for member in model.members]
        hashes = [hashlib.sha256(text.encode()).hexdigest() for text in texts]
        described = metadata["ensemble"]["members"] if "ensemble" in metadata else [{}] * len(texts)
        manifest_text = json.dumps(manifest(hashes, described, model.offset), indent=2, default=str)
        files = {member_file(index): text for index, text in enumerate(texts)}
        files[MANIFEST_FILE] = manifest_text
    else:
        files = {MODEL_FILE: model_text(model)}
        manifest_text = files[MODEL_FILE]
    full = {**metadata, "model_sha256": hashlib.sha256(manifest_text.encode()).hexdigest()}
    # Key order kept: rankings (importance, SHAP) are written largest first.
    return {**files, METADATA_FILE: json.dumps(full, indent=2, default=str)}
