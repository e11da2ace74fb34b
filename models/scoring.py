"""Scoring inside Spark: the model predicts over Arrow batches on the executors.

The model text travels once, as a broadcast variable, and each Python worker parses it once
and keeps the Booster for every later batch and task (Spark reuses its Python workers), so
nothing model-sized moves or is parsed per batch. Batches go from Arrow to one float64 NumPy
matrix and back without pandas, which keeps the Spark path close to LightGBM's own speed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.engine import DATE
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
    # Nulls become NaN, which LightGBM treats as missing, as it did in training.
    columns = [pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False) for name in features]
    return np.column_stack(columns) if columns else np.empty((batch.num_rows, 0))


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
               min_score: float | None) -> pa.Array:
    """Reasons for the rows scored at least `min_score` (all when None), null for the others."""
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
    reasons_min_score: float | None = None,
    alert_threshold: float | None = None,
    carried: Sequence[str] = (),
    intervals: dict[str, Any] | None = None,
    interval_group: str | None = None,
    calibration: dict[str, Any] | None = None,
) -> DataFrame:
    """Score every row of `features` with the LightGBM model in `model_text`.

    Args:
        features: rows of the feature table: the key's columns, `ds` and at least `feature_names`.
        model_text: the model in LightGBM's text format (as registered).
        feature_names: the model's features, in the model's order.
        keys: the entity key's columns.
        reasons: how many reason codes to add (0 for none).
        reasons_min_score: add them only to rows scored at least this (None: every row); the
            other rows get null `reasons`, and no SHAP computation.
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

    def predict(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        crashpoints.fail_task_once("score.predict")  # tests: a retried task gives the same scores
        booster = _booster(shipped.value, digest)
        for batch in batches:
            matrix = _matrix(batch, names)
            # One thread per task: Spark already runs one task per core (STACK.md).
            predictions = booster.predict(matrix, num_threads=1)
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
                columns.append(_explained(booster, matrix, model_scores, names, reasons, reasons_min_score))
            yield pa.RecordBatch.from_arrays(columns, schema=_arrow_schema(fields, timezone))

    # A carried column may be a feature too (the horizon): selected once.
    selected = [*kept, *names, *([interval_group] if interval_group else [])]
    return features.select(*dict.fromkeys(selected)).mapInArrow(predict, T.StructType(fields))


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
