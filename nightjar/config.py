"""The configuration of one run: its core sections, with each area's section from beside its code.

`Config` is what `nightjar.config_loader.load_config` validates the layered files into: frozen
pydantic models that reject unknown keys, so a typo is an error naming the key rather than a
silent default. The feature, training/scoring and validation sections are declared in
`features.config`, `models.config` and `validation.checks`; the sections every job shares
(lake, Spark, Dask, the use case, table names, the demo generator) are here.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from features.config import FeaturesConfig
from models.config import ScoringConfig, TrainingConfig, selection_metric
from nightjar.durations import Duration
from nightjar.errors import ConfigError
from nightjar.strict import IDENTIFIER, Scalar, Strict
from validation.checks import ValidationConfig

ENV_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # an environment's name, also its file's stem


class LakeConfig(Strict):
    """Where tables live and the catalog name analysts query them by.

    Each use case keeps its tables under `<root>/<use case>/`; jobs address them by path, and
    the `sql` job registers them in the catalog database `<database_prefix>_<use case>` (see
    `nightjar.tables`).
    """

    root: str = "./lake"
    database_prefix: str = Field("nightjar", pattern=IDENTIFIER)


class SparkConfig(Strict):
    """Session settings; `settings` passes any other `spark.*` key through unchanged."""

    master: str = "local[*]"
    app_name: str = "nightjar"
    driver_memory: str = "4g"
    executor_memory: str | None = None
    shuffle_partitions: int = Field(8, ge=1)
    # JVM options of the driver and the executors, after Nightjar's own (the log settings).
    java_options: list[str] = Field(default_factory=list)
    # Whether the driver uses the class data sharing archive `make setup` makes, when it exists.
    class_data_sharing: bool = True
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


class DaskConfig(Strict):
    """A running scheduler's address, or the shape of the `LocalCluster` started when it is null."""

    scheduler: str | None = None
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    connect_timeout_s: float = Field(30.0, gt=0)


class EntityConfig(Strict):
    """The thing that is scored: its name and its key, one column or several that together
    identify it (`key: [store_id, item_id]`).

    At the event grain (`use_case.grain: event`) the scored things are the events of `source`
    themselves, and `key` is their id column (`transaction_id`).
    """

    name: str = Field(pattern=IDENTIFIER)
    key: str | list[str]
    source: str | None = None

    @field_validator("key")
    @classmethod
    def _identifiers(cls, key: str | list[str]) -> str | list[str]:
        columns = [key] if isinstance(key, str) else key
        if not columns:
            raise ValueError("key names no column")
        for column in columns:
            if not re.fullmatch(IDENTIFIER, column):
                raise ValueError(f"key column {column!r} is not an identifier")
        if len(set(columns)) != len(columns):
            raise ValueError(f"key names a column twice: {columns}")
        return key

    @property
    def keys(self) -> list[str]:
        """The key's columns, in order (one for a single-column key)."""
        return [self.key] if isinstance(self.key, str) else list(self.key)


class SourceConfig(Strict):
    """A source table partitioned by the date of its events.

    `kind: events` tables hold timestamped events of an entity; `kind: entities` tables hold
    one row per entity, known from its timestamp (for example a signup) on. `kind:
    known_in_advance` tables hold facts about a future instant (`timestamp`: the day a planned
    price or promotion is for), each known from its `known_at` instant on and partitioned by
    that instant's date: a fact counts for date D only if it was known before D's cutoff.
    """

    table: str = Field(pattern=IDENTIFIER)
    kind: Literal["events", "entities", "known_in_advance"]
    timestamp: str = Field(pattern=IDENTIFIER)
    partition: str = Field(pattern=IDENTIFIER)
    known_at: str | None = Field(None, pattern=IDENTIFIER)
    # Sparse events (failures, repairs) have days without any: a date without a partition then
    # reads as no events rather than as a missing input (exit 4), which a dense source's would be.
    sparse: bool = False
    # A table shared on purpose with other use cases: a path relative to lake.root, or an
    # absolute path or URI. Unset, the table is the use case's own, <lake.root>/<use case>/<table>.
    path: str | None = Field(None, min_length=1)

    def content(self) -> dict[str, object]:
        """What computing from the source depends on, for fingerprints: every field but where it is
        stored (`path`), and no `known_at` unless set (sources hash as before it existed)."""
        return self.model_dump(exclude={"path", *(() if self.known_at else ("known_at",))})

    @model_validator(mode="after")
    def _known_at_when_known_in_advance(self) -> "SourceConfig":
        if (self.kind == "known_in_advance") != (self.known_at is not None):
            raise ValueError("a known_in_advance source needs a known_at column, and only such a source takes one")
        return self


class ForecastConfig(Strict):
    """Direct multi-horizon forecasts: for each entity and date D, one row per horizon h = 1 ..
    `horizon_days`, about the target date D + h; its label is the label of D + h - 1 (with a
    horizon of 1d: what happens on the target date)."""

    horizon_days: int = Field(ge=1, le=366)


class LabelConfig(Strict):
    """What is predicted for (entity, D), looking forward `horizon` from D's cutoff (the start of D + 1).

    The label window is [cutoff, cutoff + horizon), the instants the features of D never see;
    a horizon of whole days is days D + 1 .. D + horizon. `no_event`: 1 when the entity has no
    event in `source` in that window (churn); `any_event`: 1 when it has at least one (a
    failure, a fraud report); `sum`: the total of `column` over those events, a regression
    target (demand, spend).
    `where` keeps only the events whose columns equal the given values.
    """

    name: str = Field(pattern=IDENTIFIER)
    kind: Literal["no_event", "any_event", "sum"]
    source: str
    horizon: Duration  # `30d` (or 30), `48h`, `30m`
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


class UseCaseConfig(Strict):
    """Everything that makes one use case different from another; no job hard-codes any of it."""

    # The name of the use case's file, conf/use_cases/<name>.yaml, set by the loader.
    name: str = Field(pattern=IDENTIFIER)
    entity: EntityConfig
    sources: dict[str, SourceConfig]
    label: LabelConfig
    forecast: ForecastConfig | None = None
    # `snapshot`: one score per entity and date, as of the date's cutoff. `event`: one score per
    # event of `entity.source`, as of the instant before it; its label is `label.kind` of the
    # label source's rows with the event's id in [event time, event time + label.horizon): the
    # horizon is the labels' maturity (chargebacks reported within 60 days: `horizon: 60d`).
    grain: Literal["snapshot", "event"] = "snapshot"

    @model_validator(mode="after")
    def _event_grain_scores_a_source(self) -> "UseCaseConfig":
        source = self.entity.source
        if self.grain == "snapshot":
            if source is not None:
                raise ValueError("entity.source applies to grain: event only")
            return self
        if source is None or source not in self.sources or self.sources[source].kind != "events":
            raise ValueError(f"grain: event needs entity.source, one of the events sources "
                             f"{sorted(n for n, s in self.sources.items() if s.kind == 'events')}, not {source!r}")
        if len(self.entity.keys) != 1:
            raise ValueError("grain: event needs entity.key to be the events' id column, one column")
        if self.forecast is not None:
            raise ValueError("grain: event scores events, not forecasts: drop use_case.forecast")
        if self.label.kind == "sum":
            raise ValueError("grain: event needs an event label (any_event or no_event), not a sum")
        return self

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

    @property
    def label_reach(self) -> Duration:
        """How far past a date's cutoff its labels look: the label's horizon, and for a forecast
        the days to its last horizon's target date (horizon_days - 1) before that."""
        extra = self.forecast.horizon_days - 1 if self.forecast else 0
        return self.label.horizon.plus_days(extra) if extra else self.label.horizon

    def source_of_kind(self, kind: Literal["events", "entities"]) -> tuple[str, SourceConfig]:
        """Return the one source of `kind`; a configuration with several must name the one it means."""
        matches = [(name, source) for name, source in self.sources.items() if source.kind == kind]
        if len(matches) != 1:
            raise ConfigError(
                f"use_case.sources: expected exactly one source of kind {kind!r}, found {len(matches)}"
            )
        return matches[0]


class TablesConfig(Strict):
    """Names of the tables Nightjar writes, as directories under the use case's folder and catalog names."""

    features: str = Field("features", pattern=IDENTIFIER)
    # The features' stored partial aggregates, per entity and tile (`features.tiles`).
    partials: str = Field("feature_partials", pattern=IDENTIFIER)
    scores: str = Field("scores", pattern=IDENTIFIER)
    runs: str = Field("runs", pattern=IDENTIFIER)
    registry: str = Field("registry", pattern=IDENTIFIER)
    monitoring: str = Field("monitoring", pattern=IDENTIFIER)
    truth: str = Field("truth", pattern=IDENTIFIER)
    # The latest backtest's report (`jobs/backtest.py`), replaced whole by each run.
    backtest: str = Field("backtest", pattern=IDENTIFIER)
    # The latest training snapshot; each model records the Delta version it was trained on.
    training: str = Field("training_set", pattern=IDENTIFIER)


class DriftConfig(Strict):
    """A drift scenario for the demo: from date `from`, column `column` of the generated source
    `source` becomes `column * scale + shift` (on the rows whose partition date is `from` or later).

    Applied to what any generator writes, so every scenario has it. The simulation itself is
    unchanged, labels included: the features read from the column shift, and so does their
    relation to the label the model learned.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str                          # a source of use_case.sources that the generator writes
    column: str = Field(pattern=IDENTIFIER)  # a numeric column of it
    start: date = Field(alias="from")
    scale: float = 1.0
    shift: float = 0.0

    @model_validator(mode="after")
    def _changes_something(self) -> "DriftConfig":
        if self.scale == 1.0 and self.shift == 0.0:
            raise ValueError("a drift needs scale other than 1 or shift other than 0")
        return self


class GenerateConfig(Strict):
    """The demo data generator: a simulated population whose true probabilities are known
    (`nightjar.generators`)."""

    scenario: Literal["churn", "maintenance", "demand", "fraud"]
    seed: int = Field(7, ge=0)
    # The entities scored: customers, machines; for demand, (store, item) series.
    entities: int = Field(10_000, ge=1)
    # Demand only: the series are spread over this many stores, each selling the same
    # entities / stores items (unset: one store). Another scenario refuses it rather than ignore it.
    stores: int | None = Field(None, ge=1)
    days: int = Field(120, ge=1, le=3650)
    end_date: date = date(2026, 3, 31)
    # Entities are simulated in fixed blocks with one random stream each, so the data depend
    # on the seed and the block size only, never on how Spark schedules the blocks.
    block_size: int = Field(5_000, ge=1, le=1_000_000)
    # A shift of one input from a date on (README: Monitoring, the drift scenario); none by default.
    drift: DriftConfig | None = None

    @model_validator(mode="after")
    def _stores_for_demand(self) -> "GenerateConfig":
        if self.stores is not None and self.scenario != "demand":
            raise ValueError(f"stores applies to the demand scenario only, not {self.scenario!r}")
        if self.stores is not None and self.entities % self.stores:
            raise ValueError(f"entities ({self.entities}) must be a multiple of stores ({self.stores}): "
                             "every store sells the same items")
        return self


class BoundsConfig(Strict):
    """The values a feature may take; a value outside counts as out of range in `monitor`'s quality rows."""

    min: float | None = None
    max: float | None = None


class MonitoringConfig(Strict):
    """The `monitor` job: which numbers raise an alert, how far back it revisits dates, and whether
    an alert fails the job.

    Alerts are recorded in the `monitoring` table and printed; they fail the job (exit 3, after
    the rows are written) only with `fail_on_alert`.
    """

    # Population stability index of a feature (against the model's training rows) above this: drift.
    psi_max: float = Field(0.25, gt=0)
    # ...and of the score distribution against the holdout's scores.
    score_psi_max: float = Field(0.25, gt=0)
    # A feature's share of missing values (null or NaN) above its training share by more than this.
    null_share_increase_max: float = Field(0.1, ge=0, le=1)
    # The share of a feature's values outside `bounds` (or the training rows' range) above this.
    out_of_range_share_max: float = Field(0.05, ge=0, le=1)
    # Per feature: the values it may take. A feature without bounds is checked against the range
    # of the model's training rows (when the model's reference statistics hold it).
    bounds: dict[str, BoundsConfig] = Field(default_factory=dict)
    # Estimated or realized AUC below the holdout's AUC by more than this: an alert (classifiers).
    auc_drop_max: float = Field(0.05, ge=0, le=1)
    # The score at which estimated and realized precision and recall are measured; unset: the
    # model's alert threshold (`scoring.alert`), else 0.5.
    alert_threshold: float | None = Field(None, ge=0, le=1)
    # Quantile bins of the realized calibration table.
    calibration_bins: int = Field(10, ge=2, le=100)
    # `monitor --date D` revisits the scored dates of the last `lookback_days` before D whose
    # labels have matured (realized performance); older dates are left as they are.
    lookback_days: int = Field(90, ge=0, le=3660)
    # True: a run that raises an alert exits 3 (after writing its rows); false: alerts only inform.
    fail_on_alert: bool = False
    # The HTML report (`<lake root>/reports/<use case>/index.html`) shows the scored dates of the
    # last `report_days` up to the run's date.
    report_days: int = Field(90, ge=1, le=3660)


# Delta refuses to VACUUM with a retention shorter than its `delta.deletedFileRetentionDuration`
# (7 days by default): a reader or writer still on an older version may need the files.
MIN_RETENTION_HOURS = 168


class HousekeepingConfig(Strict):
    """The `maintain` job: compacting small files (`OPTIMIZE`) and deleting unreferenced ones (`VACUUM`)."""

    # Files that no version of the last `retention_hours` refers to are deleted; never below Delta's limit.
    retention_hours: int = Field(MIN_RETENTION_HOURS, ge=MIN_RETENTION_HOURS)


class Config(Strict):
    """The validated configuration of one run."""

    env: str
    lake: LakeConfig = Field(default_factory=LakeConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    use_case: UseCaseConfig
    tables: TablesConfig = Field(default_factory=TablesConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    generate: GenerateConfig | None = None  # a use case over data of its own has no generator
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    housekeeping: HousekeepingConfig = Field(default_factory=HousekeepingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @property
    def model_name(self) -> str:
        """The registry name of this use case's models."""
        return self.training.model_name or self.use_case.name

    @field_validator("env")
    @classmethod
    def _env_is_a_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must be letters, digits, '.', '-' or '_'")
        return value

    @model_validator(mode="after")
    def _suites_name_known_tables(self) -> "Config":
        # Suites are keyed by table name; a suite for a table no job writes or reads would never run.
        self.validation.check_suites({
            "source": sorted(source.table for source in self.use_case.sources.values()),
            "features": [self.tables.features],
            "scores": [self.tables.scores],
        })
        return self

    @model_validator(mode="after")
    def _reference_fits_the_label(self) -> "Config":
        reference, label = self.training.reference, self.use_case.label
        # A reference dated by its target day is summed over the label's days: whole days of a sum.
        if reference is not None and reference.dated == "target_date" and (
            label.kind != "sum" or label.horizon.whole_days is None
        ):
            raise ConfigError(
                "invalid configuration: training.reference.dated: target_date needs a sum label over whole days "
                f"(use_case.label is {label.kind!r} over {label.horizon})"
            )
        return self

    @model_validator(mode="after")
    def _metric_fits_the_label(self) -> "Config":
        try:
            selection_metric(self.training, self.use_case.label.task)
        except ValueError as error:
            raise ConfigError(f"invalid configuration: {error}") from None
        return self

    @model_validator(mode="after")
    def _alerts_fit_the_label(self) -> "Config":
        alert, label = self.scoring.alert, self.use_case.label
        if alert is None:
            return self
        if label.task != "classification":
            raise ConfigError(
                f"invalid configuration: scoring.alert: alerts apply to classification labels only "
                f"(use_case.label.kind is {label.kind!r})"
            )
        # An alert that must come a horizon or more before the event can never be raised by a
        # date whose label window holds the event.
        if alert.lead_time.micros >= label.horizon.micros:
            raise ConfigError(
                f"invalid configuration: scoring.alert.lead_time: {alert.lead_time} is not shorter than "
                f"use_case.label.horizon {label.horizon}"
            )
        return self
