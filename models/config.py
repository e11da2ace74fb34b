"""The `training` and `scoring` sections of the configuration: how models are built, promoted and applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from nightjar.durations import Duration
from nightjar.strict import IDENTIFIER, Scalar, Strict


Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Metric:
    """A metric models are selected on: by early stopping, the search, and promotion on the holdout."""

    name: str  # as `models.evaluate.metrics` reports it
    lightgbm: str  # LightGBM's name for the same metric, which early stopping computes
    larger_is_better: bool
    task: Task

    def beats(self, candidate: float, incumbent: float, margin: float = 0.0) -> bool:
        """Whether `candidate` is better than `incumbent` by more than `margin`."""
        # Strictly better: a retrained twin of the champion does not replace it.
        return candidate - incumbent > margin if self.larger_is_better else incumbent - candidate > margin

    def best_first(self, value: float) -> float:
        """A sort key that puts the better of two values first."""
        return -value if self.larger_is_better else value


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("auc", "auc", True, "classification"),
    # Average precision: where the positives are rare and only the top of the ranking is acted
    # on (fraud), ROC-AUC saturates early and stops the fit long before the top is learnt.
    Metric("pr_auc", "average_precision", True, "classification"),
    Metric("log_loss", "binary_logloss", False, "classification"),
    Metric("rmse", "rmse", False, "regression"),
)}
# What a task is selected on unless `training.metric` names another.
DEFAULT_METRIC: dict[str, str] = {"classification": "auc", "regression": "rmse"}


class SearchDimension(Strict):
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


class SearchConfig(Strict):
    """Random search: `trials` parameter sets drawn from `space`, evaluated on the time folds."""

    trials: int = Field(8, ge=1, le=10_000)
    # Trials still running when the budget is spent are cancelled; a search cut short by time
    # is the one thing that can make two runs with the same seed pick different parameters.
    time_budget_s: float = Field(900.0, gt=0)
    space: dict[str, SearchDimension] = Field(default_factory=dict)


class PromotionConfig(Strict):
    """A new model becomes champion only when it beats the champion on the same holdout by `min_improvement`."""

    min_improvement: float = Field(0.0, ge=0)


class ReferenceConfig(Strict):
    """A table of known probabilities per (entity, ds), such as the demo's `truth`: the best achievable.

    `dated: feature_date` (the default): the row of ds is the reference of feature date ds.
    `dated: target_date`: ds is the day the value is about (demand's true mean units sold on ds),
    and the reference of feature date D is the sum of `column` over the label window's days,
    D + 1 .. D + horizon (a `sum` label over whole days; null unless every day has a row).
    """

    table: str = Field(pattern=IDENTIFIER)
    column: str = Field(pattern=IDENTIFIER)
    dated: Literal["feature_date", "target_date"] = "feature_date"

    @model_serializer(mode="wrap")
    def _default_unwritten(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The training fingerprint hashes this section: a reference dated as before hashes as before.
        dumped = handler(self)
        if self.dated == "feature_date":
            dumped.pop("dated", None)
        return dumped


class EnsembleConfig(Strict):
    """Members fitted with the searched parameters and rounds, each with its own overrides (a
    seed, an objective, a feature fraction), whose predictions are averaged into one model."""

    members: list[dict[str, Scalar]] = Field(min_length=2)


# LightGBM objectives whose prediction is exp(raw score): an offset adds to the log of the mean.
LOG_LINK_OBJECTIVES = frozenset({"poisson", "tweedie", "gamma"})


class OffsetConfig(Strict):
    """Fit the log of the label's ratio to `feature` (`models.ensemble.Offset`): for counts whose
    scale differs by series, a multiplicative effect (a weekday, a promotion) is then one split
    for all of them. Values below `floor` (and missing ones) count as `floor`."""

    feature: str = Field(pattern=IDENTIFIER)
    floor: float = Field(0.1, gt=0)


class CalibrationConfig(Strict):
    """Calibration of a classifier's probabilities on the `days` dates between the fit and the
    holdout (`models.calibration`): an inductive Venn-Abers predictor, whose merged probability
    becomes the score and whose pair (p0, p1) its `score_low` and `score_high`, and
    class-conditional conformal prediction sets at 1 - `conformal_alpha`, measured on the holdout."""

    days: int = Field(ge=1)
    conformal_alpha: float = Field(0.1, gt=0, lt=1)
    bootstrap: int = Field(200, ge=0, le=10_000)  # resamples of the coverage's 95% interval, over days; 0: none


class RankingConfig(Strict):
    """What investigators who review the top scores read in the training report: the precision of
    the `top_per_day` scores of each day, the recall at a false-positive rate, and with `value`
    (a feature, the amount) the share of the positives' value caught at that rate."""

    top_per_day: int = Field(100, ge=1)
    false_positive_rate: float = Field(0.005, gt=0, lt=1)
    value: str | None = Field(None, pattern=IDENTIFIER)
    bootstrap: int = Field(200, ge=0, le=10_000)  # resamples of the PR-AUC's 95% interval; 0: none


class TrainingConfig(Strict):
    """How `train` builds its data, validates over time, searches and promotes."""

    model_name: str | None = Field(None, pattern=IDENTIFIER)  # default: use_case.name
    days: int = Field(60, ge=1, le=3650)  # feature dates used by `train --date T`, ending at T - horizon
    date_stride_days: int = Field(1, ge=1, le=365)  # every n-th date: neighbouring days are near-duplicates
    # Keep this share of the majority class outside the holdout; kept rows weigh 1/rate.
    majority_sample_rate: float = Field(1.0, gt=0, le=1)
    holdout_days: int = Field(7, ge=1)
    folds: int = Field(3, ge=1, le=20)
    # Days left out between a fold's training and validation dates. Labels look `horizon`
    # ahead, so a gap of the horizon removes every overlap of label windows across the cut.
    gap_days: int = Field(0, ge=0)
    seed: int = Field(42, ge=0)
    # The metric of early stopping, of the search and of promotion (one of METRICS, of the
    # label's task); None: DEFAULT_METRIC of the task.
    metric: str | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)  # fixed LightGBM parameters
    # Features computed, stored and checked but not fitted on (names or fnmatch patterns, e.g.
    # "merchant_chargeback*"): a feature may be wanted in the table and still hurt the model.
    exclude_features: list[str] = Field(default_factory=list)
    max_rounds: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    search: SearchConfig = Field(default_factory=SearchConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    top_k_percent: list[float] = Field(default_factory=lambda: [1.0, 5.0, 10.0])
    fit_timeout_s: float = Field(1800.0, gt=0)  # a distributed fit can hang when a worker dies
    reference: ReferenceConfig | None = None
    ensemble: EnsembleConfig | None = None  # None: one booster
    # Prediction intervals of a regression at these levels (e.g. [0.8, 0.95]), from the folds'
    # conformal residuals (`models.intervals`); scores then carry `intervals`.
    intervals: list[float] = Field(default_factory=list)
    offset: OffsetConfig | None = None  # None: every member fits the label itself
    calibration: CalibrationConfig | None = None  # classification only; None: the model's own probabilities
    ranking: RankingConfig | None = None  # classification only

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str | None) -> str | None:
        if name is not None and name not in METRICS:
            raise ValueError(f"unknown metric {name!r} (one of: {', '.join(METRICS)})")
        return name

    @field_validator("params")
    @classmethod
    def _metric_not_in_params(cls, params: dict[str, Scalar]) -> dict[str, Scalar]:
        # One place says what models are selected on: early stopping and promotion must agree.
        if "metric" in params:
            raise ValueError("the metric is training.metric, not a LightGBM parameter")
        return params

    @field_validator("intervals")
    @classmethod
    def _levels(cls, levels: list[float]) -> list[float]:
        if any(not 0 < level < 1 for level in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"interval levels must be distinct and between 0 and 1 (exclusive), not {levels}")
        return sorted(levels)

    @model_validator(mode="after")
    def _offset_on_a_log_link(self) -> "TrainingConfig":
        if self.offset is None:
            return self
        overrides = self.ensemble.members if self.ensemble else [{}]
        for objective in {str(member.get("objective", self.params.get("objective", "regression"))) for member in overrides}:
            if objective not in LOG_LINK_OBJECTIVES:
                raise ValueError(f"training.offset needs a log-link objective ({', '.join(sorted(LOG_LINK_OBJECTIVES))}) "
                                 f"in training.params and every ensemble member, not {objective!r}")
        return self


def selection_metric(training: TrainingConfig, task: Task) -> Metric:
    """The metric `training` selects models of `task` on.

    Raises:
        ValueError: `training.metric` belongs to the other task (the configuration's validation
            reports it as a ConfigError).
    """
    metric = METRICS[training.metric or DEFAULT_METRIC[task]]
    if metric.task != task:
        names = ", ".join(name for name, known in METRICS.items() if known.task == task)
        raise ValueError(f"training.metric: {metric.name!r} does not measure a {task} label (one of: {names})")
    return metric


class AlertConfig(Strict):
    """An `alert` flag on each score: at a threshold chosen in training for this precision.

    `train` picks the threshold on the folds' out-of-fold predictions (see `models.alerts`) and
    reports on the holdout how often alerts are right, how many events they catch `lead_time`
    or more ahead, and how many false alarms an entity gets; `score` flags scores at or above it.
    """

    min_precision: float = Field(0.9, gt=0, le=1)
    lead_time: Duration = Duration(24, "h")  # how early an alert must come to be acted on


class ScoringConfig(Strict):
    """How `score` runs: reason codes, alerts, and whether it computes features that are missing."""

    reasons: int = Field(3, ge=0, le=50)  # top features by SHAP contribution per score; 0 for none
    # Reasons only for each date's top scores, this percentage of them (5: the top 5%), however
    # scores shift from day to day; found in a first pass of predictions, which cost little.
    # TreeSHAP costs far more than a prediction (about 250x at 200 trees), so by default only
    # what is acted on is explained. None: every row.
    reasons_top_percent: float | None = Field(5, gt=0, le=100)
    # Or reasons only for scores at least this: set, it takes the place of the default top
    # percent (setting both is an error).
    reasons_min_score: float | None = None
    # Predict with the model compiled to native code (lleaves; `models.compiled`): about 3x
    # Booster.predict per thread, equal within 1e-15. Off by default: compiling a 200-tree model
    # takes ~15 s once per model version and machine (then cached), which a first run earns back
    # only above ~4 million rows on 2 cores (README, `score`).
    # Falls back to Booster.predict, with a warning, when the model cannot be compiled.
    compiled: bool = False
    # Local directory of compiled models (None: ~/.cache/nightjar/compiled): not the lake, which
    # may be remote, and the code is specific to the machine's CPU.
    compiled_cache: str | None = None
    compute_missing_features: bool = False  # else a date without features exits 4
    summary_top: int = Field(5, ge=0)  # top-scored entities printed in the run's summary
    alert: AlertConfig | None = None  # classification labels only; None: scores carry no `alert`

    @model_validator(mode="before")
    @classmethod
    def _min_score_replaces_the_default_top_percent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("reasons_min_score") is not None and "reasons_top_percent" not in data:
            return {**data, "reasons_top_percent": None}
        return data

    @model_validator(mode="after")
    def _one_reasons_limit(self) -> "ScoringConfig":
        if self.reasons_min_score is not None and self.reasons_top_percent is not None:
            raise ValueError("set reasons_min_score or reasons_top_percent, not both "
                             "(set the other to null)")
        return self
