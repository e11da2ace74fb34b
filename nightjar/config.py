"""Layered configuration: `conf/base.yaml`, then `conf/<env>.yaml`, then `--set` overrides.

The merged document is validated once, at start-up, into frozen pydantic models that reject
unknown keys, so a typo is an error naming the key rather than a silent default. String
values may reference environment variables as `${NAME}` or `${NAME:-default}`, which keeps
secrets and per-machine addresses out of the repository.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nightjar.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Free-form mappings whose own keys contain dots: `--set spark.settings.spark.ui.enabled=false`
# sets the key `spark.ui.enabled` inside `spark.settings`.
_FREE_FORM_SECTIONS = ("spark.settings",)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Identifier = Field(pattern=IDENTIFIER)


class _Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConfig(_Strict):
    """Where tables live and how they are registered in the Spark catalog."""

    root: str = "./lake"
    database: str = Field("nightjar", pattern=IDENTIFIER)
    # An embedded Derby metastore needs a local folder; on a cluster with a shared Hive
    # metastore leave it unset and point spark.settings at the metastore instead.
    metastore_dir: str | None = None


class SparkConfig(_Strict):
    """Session settings; `settings` passes any other `spark.*` key through unchanged."""

    master: str = "local[*]"
    app_name: str = "nightjar"
    driver_memory: str = "4g"
    executor_memory: str | None = None
    shuffle_partitions: int = Field(8, ge=1)
    settings: dict[str, str] = Field(default_factory=dict)

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_as_strings(cls, value: object) -> object:
        # Spark takes every setting as a string; YAML reads `false` and `4` as other types.
        if not isinstance(value, dict):
            return value
        return {
            key: str(item).lower() if isinstance(item, bool) else item if item is None else str(item)
            for key, item in value.items()
        }


class DaskConfig(_Strict):
    """A running scheduler's address, or the shape of the `LocalCluster` started when it is null."""

    scheduler: str | None = None
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    connect_timeout_s: float = Field(30.0, gt=0)


class EntityConfig(_Strict):
    """The thing that is scored: its name and its key column."""

    name: str = Field(pattern=IDENTIFIER)
    key: str = Field(pattern=IDENTIFIER)


class SourceConfig(_Strict):
    """A source table partitioned by the date of its events.

    `kind: events` tables hold timestamped events of an entity; `kind: entities` tables hold
    one row per entity, known from its timestamp (for example a signup) on.
    """

    table: str = Field(pattern=IDENTIFIER)
    kind: Literal["events", "entities"]
    timestamp: str = Field(pattern=IDENTIFIER)
    partition: str = Field(pattern=IDENTIFIER)


Scalar = str | int | float | bool


class LabelConfig(_Strict):
    """What is predicted for (entity, D), looking forward `horizon_days` after D.

    `no_event`: 1 when the entity has no event in `source` during (D, D + horizon_days]
    (churn); `any_event`: 1 when it has at least one (a failure, a fraud report);
    `sum`: the total of `column` over those events, a regression target (demand, spend).
    `where` keeps only the events whose columns equal the given values.
    """

    name: str = Field(pattern=IDENTIFIER)
    kind: Literal["no_event", "any_event", "sum"]
    source: str
    horizon_days: int = Field(ge=1, le=3650)
    column: str | None = Field(None, pattern=IDENTIFIER)
    where: dict[str, Scalar] | None = None

    @model_validator(mode="after")
    def _column_for_sums(self) -> "LabelConfig":
        if (self.kind == "sum") != (self.column is not None):
            raise ValueError("a sum label needs a column, and only a sum label takes one")
        return self

    @property
    def task(self) -> Literal["classification", "regression"]:
        """Binary classification for event labels, regression for sums."""
        return "regression" if self.kind == "sum" else "classification"


class UseCaseConfig(_Strict):
    """Everything that makes one use case different from another; no job hard-codes any of it."""

    name: str = Field(pattern=IDENTIFIER)
    entity: EntityConfig
    sources: dict[str, SourceConfig]
    label: LabelConfig

    @model_validator(mode="after")
    def _label_reads_an_event_source(self) -> "UseCaseConfig":
        source = self.sources.get(self.label.source)
        if source is None:
            raise ValueError(
                f"label.source {self.label.source!r} is not one of the sources {sorted(self.sources)}"
            )
        if source.kind != "events":
            raise ValueError(f"label.source {self.label.source!r} must be an events source")
        return self

    def source_of_kind(self, kind: Literal["events", "entities"]) -> tuple[str, SourceConfig]:
        """Return the one source of `kind`; a configuration with several must name the one it means."""
        matches = [(name, source) for name, source in self.sources.items() if source.kind == kind]
        if len(matches) != 1:
            raise ConfigError(
                f"use_case.sources: expected exactly one source of kind {kind!r}, found {len(matches)}"
            )
        return matches[0]


AggregateFunction = Literal[
    "count", "sum", "mean", "min", "max", "std", "distinct_count", "last",
    "days_since_first", "days_since_last", "trend",
]
# Functions of a column's values; the others are functions of the events themselves
# (`trend` is the slope of daily event counts without a column, of daily totals with one).
VALUE_FUNCTIONS = frozenset({"sum", "mean", "min", "max", "std", "distinct_count", "last"})


def _windows_are_days(windows: list[int]) -> list[int]:
    if not windows or any(w < 1 or w > 3650 for w in windows):
        raise ValueError("windows must be a non-empty list of days between 1 and 3650")
    return windows


class BreakdownConfig(_Strict):
    """One feature per listed value of a categorical column; the list keeps the schema stable."""

    column: str = Field(pattern=IDENTIFIER)
    values: list[Scalar] = Field(min_length=1)


class AggregateConfig(_Strict):
    """Trailing-window aggregations of one events source, per entity and date."""

    source: str
    column: str | None = Field(None, pattern=IDENTIFIER)
    functions: list[AggregateFunction] = Field(min_length=1)
    windows: list[int] | None = None
    where: dict[str, Scalar] | None = None
    by: BreakdownConfig | None = None
    name: str | None = Field(None, pattern=IDENTIFIER)
    # Totals and sums of squares are added as integers of 10**-scale units, which makes them
    # exact and independent of the order Spark adds them in; |totals| must stay below
    # 9.2e18 units (9.2e12 at the default scale of 6).
    scale: int = Field(6, ge=0, le=12)

    @field_validator("windows")
    @classmethod
    def _windows_are_days(cls, value: list[int] | None) -> list[int] | None:
        return value if value is None else _windows_are_days(value)

    @model_validator(mode="after")
    def _consistent(self) -> "AggregateConfig":
        needs_column = sorted(VALUE_FUNCTIONS.intersection(self.functions))
        if needs_column and self.column is None:
            raise ValueError(f"{', '.join(needs_column)} need a column")
        if self.where and not self.name:
            raise ValueError("a filtered aggregate (where) needs a name to tell its features apart")
        return self


class RatioConfig(_Strict):
    """numerator / denominator of two other features; missing when the denominator is 0."""

    name: str = Field(pattern=IDENTIFIER)
    numerator: str
    denominator: str


class AttributeConfig(_Strict):
    """An attribute of the entity from an entities source.

    `category`: the index of the value in `values` (missing when not listed);
    `numeric`: the value itself; `tenure_days`: days from the entity's timestamp to D.
    """

    source: str
    kind: Literal["category", "numeric", "tenure_days"]
    column: str | None = Field(None, pattern=IDENTIFIER)
    values: list[Scalar] | None = None
    name: str | None = Field(None, pattern=IDENTIFIER)

    @model_validator(mode="after")
    def _consistent(self) -> "AttributeConfig":
        if self.kind != "tenure_days" and self.column is None:
            raise ValueError(f"a {self.kind} attribute needs a column")
        if self.kind == "category" and not self.values:
            raise ValueError("a category attribute needs its values listed")
        return self


class FeaturesConfig(_Strict):
    """The feature set: declared once, computed the same way for training and for scoring."""

    windows: list[int] = Field(default_factory=lambda: [1, 7, 30, 90])
    aggregates: list[AggregateConfig] = Field(default_factory=list)
    ratios: list[RatioConfig] = Field(default_factory=list)
    attributes: list[AttributeConfig] = Field(default_factory=list)

    @field_validator("windows")
    @classmethod
    def _windows_are_days(cls, value: list[int]) -> list[int]:
        return _windows_are_days(value)


class TablesConfig(_Strict):
    """Names of the tables Nightjar writes, as directories under the lake root and catalog names."""

    features: str = Field("features", pattern=IDENTIFIER)
    scores: str = Field("scores", pattern=IDENTIFIER)
    runs: str = Field("runs", pattern=IDENTIFIER)
    registry: str = Field("registry", pattern=IDENTIFIER)
    monitoring: str = Field("monitoring", pattern=IDENTIFIER)
    truth: str = Field("truth", pattern=IDENTIFIER)
    # The latest training snapshot; each model records the Delta version it was trained on.
    training: str = Field("training_set", pattern=IDENTIFIER)


class GenerateConfig(_Strict):
    """The demo data generator: a simulated population with known churn probabilities."""

    scenario: Literal["churn"] = "churn"
    seed: int = Field(7, ge=0)
    customers: int = Field(10_000, ge=1)
    days: int = Field(120, ge=1, le=3650)
    end_date: date = date(2026, 3, 31)
    # Customers are simulated in fixed blocks with one random stream each, so the data depend
    # on the seed and the block size only, never on how Spark schedules the blocks.
    block_size: int = Field(5_000, ge=1, le=1_000_000)


class SearchDimension(_Strict):
    """One hyperparameter's range: drawn uniformly, or log-uniformly with `log: true`."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "SearchDimension":
        if not self.low <= self.high:
            raise ValueError("low must not exceed high")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class SearchConfig(_Strict):
    """Random search: `trials` parameter sets drawn from `space`, evaluated on the time folds."""

    trials: int = Field(8, ge=1, le=10_000)
    # Trials still running when the budget is spent are cancelled; a search cut short by time
    # is the one thing that can make two runs with the same seed pick different parameters.
    time_budget_s: float = Field(900.0, gt=0)
    space: dict[str, SearchDimension] = Field(default_factory=dict)


class PromotionConfig(_Strict):
    """A new model becomes champion only when it beats the champion on the same holdout by `min_improvement`."""

    min_improvement: float = Field(0.0, ge=0)


class ReferenceConfig(_Strict):
    """A table of known probabilities per (entity, ds), such as the demo's `truth`: the best achievable."""

    table: str = Field(pattern=IDENTIFIER)
    column: str = Field(pattern=IDENTIFIER)


class TrainingConfig(_Strict):
    """How `train` builds its data, validates over time, searches and promotes."""

    model_name: str | None = Field(None, pattern=IDENTIFIER)  # default: use_case.name
    days: int = Field(60, ge=1, le=3650)  # feature dates used by `train --date T`, ending at T - horizon
    date_stride_days: int = Field(1, ge=1, le=365)  # every n-th date: neighbouring days are near-duplicates
    # Keep this share of the majority class outside the holdout; kept rows weigh 1/rate.
    majority_sample_rate: float = Field(1.0, gt=0, le=1)
    holdout_days: int = Field(7, ge=1)
    folds: int = Field(3, ge=1, le=20)
    # Days left out between a fold's training and validation dates. Labels look `horizon_days`
    # ahead, so a gap of the horizon removes every overlap of label windows across the cut.
    gap_days: int = Field(0, ge=0)
    seed: int = Field(42, ge=0)
    params: dict[str, Scalar] = Field(default_factory=dict)  # fixed LightGBM parameters
    max_rounds: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    search: SearchConfig = Field(default_factory=SearchConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    top_k_percent: list[float] = Field(default_factory=lambda: [1.0, 5.0, 10.0])
    fit_timeout_s: float = Field(1800.0, gt=0)  # a distributed fit can hang when a worker dies
    reference: ReferenceConfig | None = None


class ScoringConfig(_Strict):
    """How `score` runs: reason codes, and whether it computes features that are missing."""

    reasons: int = Field(3, ge=0, le=50)  # top features by SHAP contribution per score; 0 for none
    # Reasons only for scores at least this (None: every row). TreeSHAP costs far more than a
    # prediction (about 250x at 200 trees), so explaining only the entities acted on matters at scale.
    reasons_min_score: float | None = None
    compute_missing_features: bool = False  # else a date without features exits 4
    summary_top: int = Field(5, ge=0)  # top-scored entities printed in the run's summary

Severity = Literal["blocking", "warning"]
Stage = Literal["source", "features", "scores"]
# A column name, or a glob pattern (`*`, `?`, `[...]`) over the table's columns other than its
# entity key and date column: `"*"` is every feature, `"*_count_*"` every count.
ColumnPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?\[\]!]+$")]


class _Check(_Strict):
    """One configured expectation; a failed `blocking` one stops the job (exit 3), a `warning` is reported."""

    severity: Severity = "blocking"


class _ColumnCheck(_Check):
    columns: list[ColumnPattern] = Field(min_length=1)


class _Bounds(_Check):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "_Bounds":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class ColumnTypesCheck(_Check):
    """The table has these columns, with these Spark SQL types (`bigint`, `double`, `string`, `date`, ...)."""

    expect: Literal["columns"]
    types: dict[str, str] = Field(min_length=1)


class NotNullCheck(_ColumnCheck):
    """No null values in the columns."""

    expect: Literal["not_null"]


class NullFractionCheck(_ColumnCheck):
    """At most `max` of the rows are null or NaN in each column."""

    expect: Literal["null_fraction"]
    max: float = Field(ge=0, le=1)


class UniqueCheck(_Check):
    """No two rows share the same values of `key` (one column or several together); rows with a null key part are not compared."""

    expect: Literal["unique"]
    key: list[str] = Field(min_length=1)


class FiniteCheck(_ColumnCheck):
    """No NaN or infinite values in the (floating-point) columns."""

    expect: Literal["finite"]


class BetweenCheck(_ColumnCheck, _Bounds):
    """Every finite value lies in [min, max] (nulls, NaN and infinities are the other checks' business)."""

    expect: Literal["between"]


class InSetCheck(_ColumnCheck):
    """Every non-null value is one of `values`."""

    expect: Literal["in_set"]
    values: list[Scalar] = Field(min_length=1)


class NotConstantCheck(_ColumnCheck):
    """Each column holds at least two different non-null values."""

    expect: Literal["not_constant"]


class StdevCheck(_ColumnCheck, _Bounds):
    """The sample standard deviation of the finite values lies in [min, max] (a collapsed distribution fails `min`)."""

    expect: Literal["stdev"]


class TimestampInPartitionCheck(_Check):
    """Every row's timestamp falls on its partition's date (source tables: their configured columns)."""

    expect: Literal["timestamp_in_partition"]


class RowCountCheck(_Bounds):
    """The number of rows of each date lies in [min, max]; `min: 1` rejects an empty partition."""

    expect: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class RowCountHistoryCheck(_Check):
    """A date's row count lies within [min_ratio, max_ratio] times the median of the previous `days` dates.

    Checked once at least `min_days` of those dates hold rows; skipped before that.
    """

    expect: Literal["row_count_history"]
    days: int = Field(28, ge=1, le=3650)
    min_days: int = Field(7, ge=1)
    min_ratio: float = Field(0.2, ge=0)
    max_ratio: float = Field(5.0, gt=0)


class EntityCountCheck(_Check):
    """A date has exactly as many rows as the entities source knows entities at that date."""

    expect: Literal["entity_count"]


Check = Annotated[
    Union[
        ColumnTypesCheck, NotNullCheck, NullFractionCheck, UniqueCheck, FiniteCheck, BetweenCheck, InSetCheck,
        NotConstantCheck, StdevCheck, TimestampInPartitionCheck, RowCountCheck, RowCountHistoryCheck, EntityCountCheck,
    ],
    Field(discriminator="expect"),
]


class DriftConfig(_Strict):
    """Drift of the features against the champion's training data: the population stability index per feature."""

    psi_max: float = Field(0.25, gt=0)
    severity: Severity = "warning"


class ValidationConfig(_Strict):
    """The validation gate: suites per stage and table, drift, and where Great Expectations keeps its project."""

    # The file-backed GX project (suites, stored results, Data Docs); default <lake.root>/_gx.
    gx_root: str | None = None
    suites: dict[Stage, dict[str, list[Check]]] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    # Stored results (and their Data Docs pages) older than this many days are deleted when a
    # suite runs; None keeps every result. Each Data Docs update reads every stored result, so a
    # nightly lake without a bound slows its own validation down over the months.
    keep_results_days: int | None = Field(None, ge=0)


class Config(_Strict):
    """The validated configuration of one run."""

    env: str
    lake: LakeConfig = Field(default_factory=LakeConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    use_case: UseCaseConfig
    tables: TablesConfig = Field(default_factory=TablesConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)

    @property
    def model_name(self) -> str:
        """The registry name of this use case's models."""
        return self.training.model_name or self.use_case.name

    @field_validator("env")
    @classmethod
    def _env_is_a_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be letters, digits, '.', '-' or '_'")
        return value

    @model_validator(mode="after")
    def _suites_name_known_tables(self) -> "Config":
        # Suites are keyed by table name; a suite for a table no job writes or reads would never run.
        known = {
            "source": sorted(source.table for source in self.use_case.sources.values()),
            "features": [self.tables.features],
            "scores": [self.tables.scores],
        }
        for stage, suites in self.validation.suites.items():
            for table, checks in suites.items():
                where = f"validation.suites.{stage}.{table}"
                if table not in known[stage]:
                    raise ConfigError(f"invalid configuration: {where}: not a {stage} table (expected one of: {', '.join(known[stage])})")
                kinds = [check.expect for check in checks]
                if kinds.count("columns") > 1:
                    raise ConfigError(f"invalid configuration: {where}: more than one `columns` check")
                if stage != "source" and "timestamp_in_partition" in kinds:
                    raise ConfigError(f"invalid configuration: {where}: timestamp_in_partition applies to source tables only")
                if stage == "source" and "entity_count" in kinds:
                    raise ConfigError(f"invalid configuration: {where}: entity_count applies to features and scores only")
        return self


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay strings until pydantic validates them,
    so `2026-02-30` is reported against its key instead of crashing the YAML parser."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def conf_dir() -> Path:
    """The folder holding `base.yaml` and the environment files (`NIGHTJAR_CONF_DIR` overrides)."""
    return Path(os.environ.get("NIGHTJAR_CONF_DIR", PROJECT_ROOT / "conf")).resolve()


def default_env() -> str:
    """The environment used when `--env` is not given: `NIGHTJAR_ENV`, else `local`."""
    return os.environ.get("NIGHTJAR_ENV") or "local"


def load_config(
    env: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    directory: Path | None = None,
) -> Config:
    """Load, layer, interpolate and validate the configuration.

    Args:
        env: environment name; `conf/<env>.yaml` is layered over `conf/base.yaml`.
        overrides: `dotted.key=value` strings; values are parsed as YAML scalars.
        directory: the configuration folder (defaults to `conf_dir()`).

    Raises:
        ConfigError: a missing or malformed file, a bad override, an unset variable or an
            invalid value; the message names the file or key and the reason.
    """
    env = env or default_env()
    directory = directory or conf_dir()
    if not _ENV_NAME.match(env) or ".." in env:
        raise ConfigError(f"--env {env!r}: must be letters, digits, '.', '-' or '_'")
    env_file = directory / f"{env}.yaml"
    if not env_file.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"--env {env!r}: no file {env_file} (environments: {', '.join(known)})")
    document = _deep_merge(_read_yaml(directory / "base.yaml"), _read_yaml(env_file))
    for override in overrides:
        _apply_override(document, override)
    document = _interpolate(document, path="")
    document["env"] = env
    try:
        config = Config.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    return _resolve_paths(config, directory.parent)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        content = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({reason})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: must hold a mapping of keys, not {type(content).__name__}")
    return content


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(document: dict[str, Any], override: str) -> None:
    key, separator, raw_value = override.partition("=")
    if not separator or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {override!r}: expected dotted.key=value")
    try:
        value = yaml.load(raw_value, Loader=_Loader) if raw_value else ""
    except yaml.YAMLError:
        value = raw_value
    node = document
    parts = key.split(".")
    for section in _FREE_FORM_SECTIONS:
        if key.startswith(section + "."):
            parts = [*section.split("."), key[len(section) + 1 :]]
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _interpolate(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: references ${{{name}}}, which is not set in the environment")

    return _VARIABLE.sub(substitute, value)


def _describe(error: ValidationError) -> str:
    """One line naming each invalid key and why, from pydantic's structured errors."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        reason = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {reason}")
    return "invalid configuration: " + "; ".join(problems)


def _resolve_paths(config: Config, project_root: Path) -> Config:
    """Make local paths absolute against the project root, so a job behaves the same from any cwd."""

    def absolute(location: str) -> str:
        if "://" in location or location.startswith("file:"):
            return location
        path = Path(location).expanduser()
        return str(path if path.is_absolute() else (project_root / path).resolve())

    lake = config.lake.model_copy(
        update={
            "root": absolute(config.lake.root),
            "metastore_dir": absolute(config.lake.metastore_dir) if config.lake.metastore_dir else None,
        }
    )
    validation = config.validation
    if validation.gx_root:
        validation = validation.model_copy(update={"gx_root": absolute(validation.gx_root)})
    return config.model_copy(update={"lake": lake, "validation": validation})
