"""Scoring inside Spark: the model predicts over Arrow batches on the executors.

The model text travels once, as a broadcast variable, and each Python worker parses it once
and keeps the Booster for every later batch and task (Spark reuses its Python workers), so
nothing model-sized moves or is parsed per batch. Batches go from Arrow to one float64 NumPy
matrix and back without pandas, which keeps the Spark path close to LightGBM's own speed.
With `compiled`, the prediction is the model compiled to native code (`models.compiled`),
about 3x `Booster.predict` per thread; reason codes always come from the Booster's TreeSHAP,
for every row, the rows at least a minimum score, or each date's top percent
(`top_percent_thresholds`, an exact rank in Spark).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from features.engine import DATE
from models import compiled as compiled_models
from models.alerts import alerted
from models.calibration import VennAbers
from models.ensemble import Model, from_text
from models.intervals import bounds as interval_bounds
from nightjar import crashpoints

SCORE = "score"
SCORE_LOW = "score_low"    # a calibrated classifier's Venn-Abers bounds (`models.calibration`)
SCORE_HIGH = "score_high"
# A calibrated classifier's own probability: calibration is a step function of it, so it orders
# the transactions that share a calibrated score.
MODEL_SCORE = "model_score"
ALERT = "alert"
REASONS = "reasons"
INTERVALS = "intervals"
INTERVAL_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("level", T.DoubleType(), False),
            T.StructField("low", T.DoubleType(), True),
            T.StructField("high", T.DoubleType(), True),
        ]
    ),
    containsNull=False,
)
_RAW_REASONS = "_reasons"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("feature", T.StringType(), False),
            T.StructField("value", T.DoubleType(), True),
            T.StructField("contribution", T.DoubleType(), False),
        ]
    ),
    containsNull=False,
)
# One model per Python worker process: parsed on first use, reused afterwards.
_BOOSTERS: dict[str, Model] = {}


def _booster(model_text: str, digest: str) -> Model:
    booster = _BOOSTERS.get(digest)
    if booster is None:
        booster = _BOOSTERS[digest] = from_text(model_text)
    return booster


def _matrix(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    # One row-major float64 matrix, filled column by column: a float64 column without nulls is
    # read in place (no intermediate copy, unlike a cast to a new array or `np.column_stack`).
    # Nulls become NaN, which LightGBM treats as missing, as it did in training.
    matrix = np.empty((batch.num_rows, len(features)), dtype=np.float64)
    for index, name in enumerate(features):
        column = batch.column(name)
        if column.type != pa.float64():
            column = pc.cast(column, pa.float64())
        matrix[:, index] = column.to_numpy(zero_copy_only=False)
    return matrix


def _reasons(matrix: np.ndarray, contributions: np.ndarray, features: list[str], top: int) -> pa.Array:
    """The `top` features pushing each score up the most: name, value and SHAP contribution."""
    rows, count = matrix.shape
    top = min(top, count)
    # A stable sort on the negated contributions: ties keep the model's feature order.
    order = np.argsort(-contributions[:, :count], axis=1, kind="stable")[:, :top]
    picked = order.ravel()
    row_index = np.repeat(np.arange(rows), top)
    values = matrix[row_index, picked]
    structs = pa.StructArray.from_arrays(
        [
            pa.array(np.asarray(features, dtype=object)[picked], pa.string()),
            pa.array(values, pa.float64(), mask=np.isnan(values)),
            pa.array(contributions[row_index, picked], pa.float64()),
        ],
        fields=[pa.field("feature", pa.string(), False), pa.field("value", pa.float64()), pa.field("contribution", pa.float64(), False)],
    )
    return pa.ListArray.from_arrays(pa.array(np.arange(0, rows * top + 1, top, dtype=np.int32)), structs)


def _explained(booster: Model, matrix: np.ndarray, predictions: np.ndarray, features: list[str], top: int,
               min_score: float | np.ndarray | None) -> pa.Array:
    """Reasons for the rows scored at least `min_score` (all when None; per row when an array), null for the others."""
    if min_score is None:
        return _reasons(matrix, booster.predict(matrix, pred_contrib=True, num_threads=1), features, top)
    chosen = np.flatnonzero(predictions >= min_score)
    if len(chosen) == 0:
        return pa.nulls(len(predictions), _reasons(matrix[:0], np.empty((0, len(features) + 1)), features, top).type)
    explained = _reasons(matrix[chosen], booster.predict(matrix[chosen], pred_contrib=True, num_threads=1),
                         features, top)
    # Row i takes the reasons of its position among the chosen rows; the rest are null.
    position = np.full(len(predictions), -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    return explained.take(pa.array(position, mask=position < 0))


def score(
    features: DataFrame,
    model_text: str,
    feature_names: list[str],
    keys: list[str],
    reasons: int = 3,
    reasons_min_score: float | Mapping[date, float] | None = None,
    alert_threshold: float | None = None,
    carried: Sequence[str] = (),
    intervals: dict[str, Any] | None = None,
    interval_group: str | None = None,
    calibration: dict[str, Any] | None = None,
    compiled: bool = False,
    compiled_cache: str | None = None,
) -> DataFrame:
    """Score every row of `features` with the LightGBM model in `model_text`.

    Args:
        features: rows of the feature table: the key's columns, `ds` and at least `feature_names`.
        model_text: the model in LightGBM's text format (as registered).
        feature_names: the model's features, in the model's order.
        keys: the entity key's columns.
        reasons: how many reason codes to add (0 for none).
        reasons_min_score: add them only to rows scored at least this (None: every row); the
            other rows get null `reasons`, and no SHAP computation. A mapping gives each date its
            own minimum (`top_percent_thresholds`); a date it lacks gets no reasons.
        alert_threshold: the model's alert threshold; None: no `alert` column.
        carried: columns of `features` kept after `ds` (a forecast's horizon and target date).
        intervals: a regression's calibrated intervals (`models.intervals.calibrate`, as
            registered); None: no `intervals` column.
        interval_group: the column whose value picks each row's calibration group (a
            forecast's horizon); None: one group.
        calibration: a classifier's Venn-Abers predictor (`models.calibration.VennAbers.to_dict`,
            as registered): `score` is then its merged probability of the model's prediction,
            with the bounds `score_low` and `score_high`, and `model_score` the prediction itself;
            alerts read `score`, `reasons_min_score` the model's own score (which orders the same
            rows without the calibration's ties).
        compiled: predict with the model compiled to native code (`models.compiled`), compiled
            once in this driver (which also checks that it compiles) and once per executor
            process; Booster.predict, with one warning, when it cannot be compiled. Reasons
            always come from the Booster.
        compiled_cache: the local directory of compiled models (None: `models.compiled.default_cache()`).

    Returns:
        The key's columns, `ds`, the `carried` ones, `score` (the model's prediction: a probability for classifiers), with an
        alert threshold `alert` (score >= threshold), and, when `reasons` > 0, `reasons`: the
        features with the largest SHAP contributions (LightGBM's `pred_contrib`) to the score,
        largest first, with their values; with `intervals`, `intervals`: (level, low, high)
        per calibrated level.
    """
    spark = features.sparkSession
    timezone = spark.conf.get("spark.sql.session.timeZone") or "UTC"
    shipped = spark.sparkContext.broadcast(model_text)
    digest = hashlib.sha256(model_text.encode()).hexdigest()
    names = list(feature_names)
    kept = [*keys, DATE, *carried]
    fields = [*(T.StructField(column, features.schema[column].dataType) for column in kept),
              T.StructField(SCORE, T.DoubleType())]
    if calibration is not None:
        fields += [T.StructField(SCORE_LOW, T.DoubleType()), T.StructField(SCORE_HIGH, T.DoubleType()),
                   T.StructField(MODEL_SCORE, T.DoubleType())]
    if alert_threshold is not None:
        fields.append(T.StructField(ALERT, T.BooleanType(), False))
    if intervals is not None:
        fields.append(T.StructField(INTERVALS, INTERVAL_TYPE))
    if reasons:
        fields.append(T.StructField(REASONS, REASON_TYPE))

    # The predictor's runs are small (a few thousand numbers): shipped in the closure.
    calibrator = VennAbers.from_dict(calibration) if calibration is not None else None
    # Compiled here first: the driver warns once when it cannot be (executors then do not try),
    # and in local mode the executors' Python workers load the object it cached (~10 ms).
    use_compiled = compiled and compiled_models.predictor(model_text, digest, compiled_cache) is not None
    minimum_by_date = None
    if isinstance(reasons_min_score, Mapping):
        minimum_by_date = {np.datetime64(day, "D"): float(minimum) for day, minimum in reasons_min_score.items()}

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        crashpoints.fail_task_once("score.predict")  # tests: a retried task gives the same scores
        fast = compiled_models.predictor(shipped.value, digest, compiled_cache) if use_compiled else None
        # The Booster only when it predicts or explains: parsing a large model costs ~0.1 s per worker.
        booster = _booster(shipped.value, digest) if fast is None or reasons else None
        predictor = fast if fast is not None else booster
        for batch in batches:
            matrix = _matrix(batch, names)
            # One thread per task: Spark already runs one task per core (STACK.md).
            predictions = predictor.predict(matrix, num_threads=1)
            model_scores, bounds = predictions, []
            if calibrator is not None:
                calibrated = calibrator.columns(predictions)
                predictions = calibrated[SCORE]
                bounds = [pa.array(calibrated[SCORE_LOW], pa.float64()), pa.array(calibrated[SCORE_HIGH], pa.float64()),
                          pa.array(model_scores, pa.float64())]
            columns = [*(batch.column(column) for column in kept), pa.array(predictions, pa.float64()), *bounds]
            if alert_threshold is not None:
                columns.append(pa.array(alerted(predictions, alert_threshold), pa.bool_()))
            if intervals is not None:
                groups = batch.column(interval_group).to_numpy(zero_copy_only=False) if interval_group else None
                columns.append(_intervals(predictions, groups, intervals))
            if reasons:
                minimum = reasons_min_score if minimum_by_date is None else _minimum_by_row(batch, minimum_by_date)
                columns.append(_explained(booster, matrix, model_scores, names, reasons, minimum))
            yield pa.RecordBatch.from_arrays(columns, schema=_arrow_schema(fields, timezone))

    # A carried column may be a feature too (the horizon): selected once.
    selected = [*kept, *names, *([interval_group] if interval_group else [])]
    return features.select(*dict.fromkeys(selected)).mapInArrow(predict, T.StructType(fields))


def _minimum_by_row(batch: pa.RecordBatch, minimum_by_date: dict[np.datetime64, float]) -> np.ndarray:
    """Each row's minimum score for reasons, from its date's (infinite for a date without one)."""
    days = batch.column(DATE).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    minimum = np.full(len(days), np.inf)
    for day, value in minimum_by_date.items():
        minimum[days == day] = value
    return minimum


def top_percent_thresholds(scored: DataFrame, column: str, percent: float) -> dict[date, float]:
    """Per date, the lowest score among its top `percent`% of rows: exact, computed in Spark.

    For a date of n rows, k = ceil(n * percent / 100), at least one row (n * percent is divided
    by 100 last, so that 7% of 100 rows is 7, not the 8 that 0.07 * 100 = 7.000000000000001 would
    round up to); its threshold is the k-th largest value of `column`. Ties are ranked in an
    arbitrary order among themselves, but they share one value, so the threshold does not depend
    on it. Scores at or above the threshold get reasons: rows tied with the k-th are all included,
    so a date may explain more than k rows when scores tie at the cut, never fewer. Null scores
    are left out.

    Args:
        scored: rows with `ds` and `column` (`score`, or a calibrated classifier's `model_score`).
        column: the score that orders the rows.
        percent: the share of each date's rows to explain, in (0, 100].

    Returns:
        ds -> threshold, for every date with at least one non-null score.
    """
    by_date = Window.partitionBy(DATE)
    # Only (ds, score) is shuffled and sorted, one date per task: a million doubles sort in about a second.
    ranked = (scored.select(DATE, column).where(F.col(column).isNotNull())
              .withColumn("_rank", F.row_number().over(by_date.orderBy(F.col(column).desc())))
              .withColumn("_rows", F.count(F.lit(1)).over(by_date)))
    cut = ranked.where(F.col("_rank") == F.greatest(F.lit(1), F.ceil(F.col("_rows") * F.lit(float(percent)) / F.lit(100.0))))
    return {row[DATE]: float(row[column]) for row in cut.select(DATE, column).collect()}


def _intervals(predictions: np.ndarray, groups: np.ndarray | None, calibrated: dict[str, Any]) -> pa.Array:
    """Each row's (level, low, high) per calibrated level, as an Arrow list of structs."""
    levels = [float(level) for level in calibrated["levels"]]
    bounds = [interval_bounds(predictions, groups, calibrated, level) for level in levels]
    count = len(levels)
    level_values = np.tile(np.asarray(levels, dtype=np.float64), len(predictions))
    lows = np.column_stack([low for low, _ in bounds]).ravel() if count else np.empty(0)
    highs = np.column_stack([high for _, high in bounds]).ravel() if count else np.empty(0)
    items = pa.StructArray.from_arrays(
        [pa.array(level_values), pa.array(lows, from_pandas=True), pa.array(highs, from_pandas=True)],
        names=["level", "low", "high"],
    )
    offsets = pa.array(np.arange(0, (len(predictions) + 1) * count, count, dtype=np.int32) if count else
                       np.zeros(len(predictions) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, items)


def _arrow_schema(fields: list[T.StructField], timezone: str) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    # Carried timestamps (an event's instant) pass through as Spark sends them: in the session's zone.
    return to_arrow_schema(T.StructType(fields), timezone=timezone)


def with_lineage(scored: DataFrame, model_name: str, model_version: int, run_id: str) -> DataFrame:
    """The scores table's columns: the scores with the model and run that produced them."""
    columns = [c for c in scored.columns if c != REASONS]
    lineage = [F.lit(model_name).alias("model_name"), F.lit(model_version).alias("model_version")]
    tail = [F.col(REASONS)] if REASONS in scored.columns else []
    return scored.select(*columns, *lineage, *tail, F.lit(run_id).alias("run_id"))
