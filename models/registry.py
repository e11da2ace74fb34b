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
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from nightjar import tables
from nightjar.config import Config
from nightjar.errors import MissingInputError

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
CHAMPION, CHALLENGER = "champion", "challenger"

REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("sequence", T.LongType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("version", T.IntegerType(), False),
        # register: a new version; promote / gate / rollback: an alias now points at `version`.
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
    booster: lgb.Booster
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


def history(spark: SparkSession, config: Config, name: str) -> list[dict[str, Any]]:
    """The registry rows of model `name`, oldest first (empty when there are none)."""
    if not tables.exists(spark, config, config.tables.registry):
        return []
    rows = (
        tables.read(spark, config, config.tables.registry)
        .where(F.col("model_name") == name)
        .orderBy("sequence")
        .collect()
    )
    return [row.asDict() for row in rows]


def champion_stack(rows: list[dict[str, Any]]) -> list[int]:
    """The champion's history as a stack: each promotion pushes, each rollback pops.

    The last element is the current champion; the one before it is where a rollback goes.
    """
    stack: list[int] = []
    for row in rows:
        if row["alias"] != CHAMPION:
            continue
        if row["action"] == "rollback":
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
    matches = [r["version"] for r in rows if r["action"] == "register" and r["training_fingerprint"] == fingerprint]
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
    metadata_text = tables.read_model_file(config, name, version, METADATA_FILE)
    try:
        metadata = json.loads(metadata_text)
        expected_sha = metadata["model_sha256"]
        features = metadata["features"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise MissingInputError(f"{where}: {METADATA_FILE} is corrupt ({type(error).__name__}: {error})") from None
    text = tables.read_model_file(config, name, version, MODEL_FILE)
    if hashlib.sha256(text.encode()).hexdigest() != expected_sha:
        raise MissingInputError(f"{where}: {MODEL_FILE} is corrupt (its SHA-256 differs from the one registered)")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as error:
        raise MissingInputError(f"{where}: {MODEL_FILE} is corrupt ({str(error).splitlines()[0]})") from None
    if booster.feature_name() != list(features):
        raise MissingInputError(f"{where}: {MODEL_FILE} features differ from {METADATA_FILE}")
    return RegisteredModel(name, version, booster, metadata, tables.model_path(config, name, version))


def load_alias(spark: SparkSession, config: Config, name: str, alias: str = CHAMPION) -> RegisteredModel:
    """Load the version an alias points at; MissingInputError when it points nowhere."""
    rows = history(spark, config, name)
    if alias == CHAMPION:
        version = champion_version(rows)
    else:
        matches = [r["version"] for r in rows if r["alias"] == alias]
        version = matches[-1] if matches else None
    if version is None:
        raise MissingInputError(f"model {name} has no {alias}: train one with ./spark-submit.sh train --date D")
    return load(config, name, version)


def record(
    spark: SparkSession,
    config: Config,
    name: str,
    rows: list[dict[str, Any]],
    changes: list[AliasChange],
    user: str | None,
    run_id: str,
    logical_date: date | None,
    registered: tuple[int, str, str] | None = None,
) -> int:
    """Append a registration (version, path, fingerprint) and alias changes in one commit."""
    sequence = max((r["sequence"] for r in rows), default=0)
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # audit time of the change, not data
    current = {CHAMPION: champion_version(rows)}
    for row in rows:
        if row["alias"] == CHALLENGER:
            current[CHALLENGER] = row["version"]
    new_rows = []
    if registered is not None:
        version, path, fingerprint = registered
        sequence += 1
        new_rows.append((sequence, name, version, "register", None, None, None, None, None, None, user, run_id,
                         logical_date, fingerprint, path, now))
    for change in changes:
        sequence += 1
        new_rows.append((sequence, name, change.version, change.action, change.alias, current.get(change.alias),
                         change.metric, change.metric_value, change.baseline_value, change.reason, user, run_id,
                         logical_date, None, tables.model_path(config, name, change.version), now))
        current[change.alias] = change.version
    frame = spark.createDataFrame(new_rows, REGISTRY_SCHEMA)
    return tables.append(frame, config, config.tables.registry)


# Parameters that describe the Dask workers' sockets of one run, not the model: LightGBM
# writes them into the text's parameter block, where they would make identical models differ.
_NETWORK_PARAMETERS = ("[machines:", "[local_listen_port:", "[machine_list_filename:")


def model_text(booster: lgb.Booster) -> str:
    """The booster in LightGBM's text format, without the run's network addresses."""
    lines = booster.model_to_string().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(_NETWORK_PARAMETERS))


def model_files(booster: lgb.Booster, metadata: dict[str, Any]) -> dict[str, str]:
    """The files of a new version: the model text and its metadata with the text's SHA-256."""
    text = model_text(booster)
    full = {**metadata, "model_sha256": hashlib.sha256(text.encode()).hexdigest()}
    # Key order kept: rankings (importance, SHAP) are written largest first.
    return {MODEL_FILE: text, METADATA_FILE: json.dumps(full, indent=2, default=str)}
