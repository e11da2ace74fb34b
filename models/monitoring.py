"""What `monitor` measures for each scored date and model version, computed in Spark over all rows.

Four kinds of numbers, each a row of the long `monitoring` table (`MONITORING_SCHEMA`):

- `drift`: the population stability index (`validation.drift`) of every feature of the scored
  date against the model's training rows (`reference_statistics` in its `metadata.json`), and
  of the score distribution against the holdout's scores (`score_reference`), with the score's
  share of rows in each of that reference's bins (`score_share`).
- `quality`: the date's row count, and per feature the share of missing values (null or NaN)
  and of values out of range (outside configured `monitoring.bounds`, else outside the
  training rows' range).
- `estimated`: a classifier's expected performance from its scores alone, before labels exist:
  confidence-based performance estimation (CBPE, as in NannyML). Each row is taken to be a
  positive with probability p, its score; the expected AUC is then the expected number of
  concordant (positive, negative) pairs over the expected number of pairs, exactly, from the
  scores grouped by value; expected precision and recall at a threshold and the expected Brier
  score follow the same way. **Valid only when the scores are calibrated probabilities** (the
  model's probabilities, or Venn-Abers calibrated ones), and **blind to concept drift**: when
  the relation between the inputs and the label changes while the scores do not, the estimate
  does not move. It measures what the model believes about its own scores on today's inputs,
  which is what covariate shift changes.
- `realized`: once a scored date's labels have matured, the labels are built by the same
  functions as training's (`models.training_set.labels_of`) for the date's scored rows, and a
  classifier gets AUC, PR-AUC (average precision), the Brier score, precision and recall at the
  threshold and a calibration table (rows per quantile bin of the score, `feature` naming the
  bin); a regression or forecast gets RMSE, WAPE and RMSSE.

Every statistic is computed in Spark over all rows (one `mapInArrow` pass of counters per table
for drift and quality, one task per date and model version that ranks its scores for performance,
grouped aggregations for the rest); the driver only receives per-date aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.definitions import HORIZON, TARGET_DATE
from features.engine import DATE
from models.training_set import LABEL
from nightjar.config import MonitoringConfig
from validation import drift, metrics
from validation.metrics import Metric

DRIFT, QUALITY, ESTIMATED, REALIZED = "drift", "quality", "estimated", "realized"
SCORE = "score"
# Drift rows of the score's share per reference bin (`feature`: the bin's index, or `missing`).
SCORE_SHARE = "score_share"
VERSION = "model_version"
# The monitoring table: one row per (ds, model_version, kind, metric, feature). Written with
# delta-rs (`nightjar.tables.replace_rows`), so in Arrow's types.
MONITORING_SCHEMA = pa.schema(
    [
        pa.field(DATE, pa.date32(), False),
        pa.field("model_name", pa.string(), False),
        pa.field(VERSION, pa.int32(), False),
        pa.field("kind", pa.string(), False),
        pa.field("metric", pa.string(), False),
        # The feature (drift, quality) or segment (a calibration bin); null for whole-model metrics.
        pa.field("feature", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("alert", pa.bool_(), False),
        # The scored rows of (ds, model_version); for a calibration bin, the (labelled) rows in the bin.
        pa.field("rows", pa.int64(), False),
        # Realized rows only: the scored rows that have a label, and their share.
        pa.field("labelled_rows", pa.int64()),
        pa.field("label_coverage", pa.float64()),
        # The Delta versions of the tables the run read (scores, features, the label source).
        pa.field("input_versions", pa.map_(pa.string(), pa.int64()), False),
        pa.field("run_id", pa.string(), False),
    ]
)


@dataclass(frozen=True)
class Measure:
    """One number of one scored date and model version (a row of the table, less its lineage)."""

    ds: date
    model_version: int
    kind: str
    metric: str
    feature: str | None
    value: float | None
    threshold: float | None = None
    # True when the value is above the threshold; `below` flips it (a performance floor).
    below: bool = False
    rows: int = 0
    labelled_rows: int | None = None

    @property
    def alert(self) -> bool:
        """Whether the value crosses its threshold (never without both)."""
        if self.value is None or self.threshold is None:
            return False
        return self.value < self.threshold if self.below else self.value > self.threshold


def as_table(measures: list[Measure], model_name: str, input_versions: dict[str, int], run_id: str) -> pa.Table:
    """The measures as rows of `MONITORING_SCHEMA`, with their lineage."""
    versions = [(table, int(version)) for table, version in sorted(input_versions.items())]
    rows = [
        {DATE: m.ds, "model_name": model_name, VERSION: int(m.model_version), "kind": m.kind, "metric": m.metric,
         "feature": m.feature, "value": _number(m.value), "threshold": _number(m.threshold), "alert": m.alert,
         "rows": int(m.rows), "labelled_rows": m.labelled_rows,
         "label_coverage": None if m.labelled_rows is None or not m.rows else m.labelled_rows / m.rows,
         "input_versions": versions, "run_id": run_id}
        for m in measures
    ]
    return pa.Table.from_pylist(rows, MONITORING_SCHEMA)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def feature_measures(
    features: DataFrame, scored: dict[date, int], model_version: int, names: list[str],
    reference: dict[str, Any] | None, settings: MonitoringConfig,
) -> list[Measure]:
    """Drift and quality of the features of the dates in `scored` (date -> scored rows), in one pass.

    Args:
        features: rows of the features table (more dates are filtered out).
        scored: the dates this model version scored, with its scored row counts.
        model_version: the version the rows are about.
        names: the model's features.
        reference: the model's `reference_statistics`; None: no drift rows, and out-of-range
            shares only for features with configured bounds.
        settings: thresholds and bounds.
    """
    described = (reference or {}).get("features", {})
    plan: list[Metric] = [Metric("rows")]
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for name in names:
        plan.append(Metric("missing", name))
        bound = settings.bounds.get(name)
        low, high = (bound.min, bound.max) if bound else (described.get(name, {}).get("min"), described.get(name, {}).get("max"))
        if low is not None or high is not None:
            ranges[name] = (low, high)
            plan.append(Metric("outside", name, (low, high)))
        if name in described:
            plan.append(drift.bin_metric(reference, name))
    found = metrics.compute(features.where(F.col(DATE).isin(sorted(scored))), DATE, plan)
    measures = []
    for day in sorted(scored):
        values = found.get(day)
        if values is None:
            continue
        rows = int(values[Metric("rows")])
        measures.append(Measure(day, model_version, QUALITY, "feature_rows", None, float(rows), rows=scored[day]))
        for name in names:
            missing = values[Metric("missing", name)] / rows if rows else None
            shares = described.get(name, {}).get("shares")
            # A feature often missing in training may be as often missing now: compared with its own share.
            allowed = None if shares is None else min(1.0, shares[-1] + settings.null_share_increase_max)
            measures.append(Measure(day, model_version, QUALITY, "null_share", name, missing, allowed, rows=scored[day]))
            if name in ranges:
                outside = values[Metric("outside", name, ranges[name])] / rows if rows else None
                measures.append(Measure(day, model_version, QUALITY, "out_of_range_share", name, outside,
                                        settings.out_of_range_share_max, rows=scored[day]))
            if name in described:
                psi = drift.psi_from_counts(shares, values[drift.bin_metric(reference, name)])
                measures.append(Measure(day, model_version, DRIFT, "psi", name, psi, settings.psi_max, rows=scored[day]))
    return measures


def score_measures(scores: DataFrame, scored: dict[date, int], model_version: int,
                   reference: dict[str, Any] | None, settings: MonitoringConfig) -> list[Measure]:
    """Per date: the scored rows, and the PSI of the scores against the holdout's (`reference`,
    the model's `score_reference`; None: no PSI row). `scores`: this version's rows."""
    plan = [Metric("rows"), Metric("missing", SCORE)]
    if reference is not None:
        plan.append(drift.bin_metric(reference, SCORE))
    found = metrics.compute(scores.where(F.col(DATE).isin(sorted(scored))), DATE, plan)
    measures = []
    for day in sorted(scored):
        values = found.get(day, {})
        rows = int(values.get(Metric("rows"), 0))
        measures.append(Measure(day, model_version, QUALITY, "rows", None, float(rows), rows=rows))
        if rows:
            measures.append(Measure(day, model_version, QUALITY, "null_share", SCORE,
                                    values[Metric("missing", SCORE)] / rows, rows=rows))
        if reference is not None and rows:
            counts = values[drift.bin_metric(reference, SCORE)]
            psi = drift.psi_from_counts(reference["features"][SCORE]["shares"], counts)
            measures.append(Measure(day, model_version, DRIFT, "score_psi", None, psi, settings.score_psi_max, rows=rows))
            # The distribution itself, for the report's plot beside the reference's shares:
            # `feature` is the reference bin's index, the last one `missing`.
            for index, count in enumerate(counts):
                segment = "missing" if index == len(counts) - 1 else str(index)
                measures.append(Measure(day, model_version, DRIFT, SCORE_SHARE, segment, count / rows, rows=rows))
    return measures


_RANKING_SCHEMA = T.StructType(
    [
        T.StructField(DATE, T.DateType()), T.StructField(VERSION, T.IntegerType()), T.StructField("rows", T.LongType()),
        T.StructField("positives", T.DoubleType()), T.StructField("flagged", T.LongType()),
        *[T.StructField(name, T.DoubleType()) for name in ("self_pairs", "auc", "pr_auc", "precision", "recall")],
    ]
)


def ranking(frame: DataFrame, positive: Column, threshold: float) -> DataFrame:
    """AUC, average precision, precision and recall at `threshold`, per (ds, model_version), where
    each row of `frame` counts `positive` (a 0/1 label, or a probability: an expected count) as
    positive and 1 - `positive` as negative.

    Rows are grouped by distinct score first, so ties are exact: a tied (positive, negative)
    pair counts one half, and a row is never paired with itself (its own p(1 - p) is taken out
    of the pairs). With probabilities this is CBPE's expected AUC: expected concordant pairs
    over expected pairs; with labels it is the Mann-Whitney AUC.

    Each (ds, model_version) is ranked in one Python task with NumPy (its scores and positives:
    16 bytes a row, 16 MB for a million rows): a sort there is about 3x faster than Spark's
    group-by-score and window, measured on a million rows (`benchmarks/monitor.py`).

    Returns:
        ds, model_version, rows, positives, flagged (rows at or above the threshold), self_pairs
        (the sum of p(1 - p): an expected Brier score's numerator), auc, pr_auc, precision, recall.
    """
    p = F.least(F.greatest(positive.cast("double"), F.lit(0.0)), F.lit(1.0))
    rows = frame.where(F.col(SCORE).isNotNull() & positive.isNotNull()).select(
        DATE, VERSION, F.col(SCORE).cast("double").alias(SCORE), p.alias("_p"))
    return rows.groupBy(DATE, VERSION).applyInPandas(lambda group: _ranked(group, threshold), _RANKING_SCHEMA)


def _ranked(group: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """`ranking`'s one row for the rows of one (ds, model_version)."""
    distinct, index = np.unique(group[SCORE].to_numpy(), return_inverse=True)
    p = group["_p"].to_numpy()
    # Per distinct score, ascending: positives, rows, negatives, and the rows' own p(1 - p).
    pos = np.bincount(index, p, len(distinct))
    count = np.bincount(index, None, len(distinct))
    neg = count - pos
    own = np.bincount(index, p * (1 - p), len(distinct))
    # Pairs with the positive at this score: above every lower negative; half of the ties, less itself.
    concordant = pos * (np.cumsum(neg) - neg) + 0.5 * (pos * neg - own)
    # Average precision: the precision at each distinct score (of the rows at or above it), weighted by its positives.
    precision_mass = pos * np.cumsum(pos[::-1])[::-1] / np.cumsum(count[::-1])[::-1]
    positives, negatives, self_pairs = float(pos.sum()), float(neg.sum()), float(own.sum())
    at = distinct >= threshold
    true_positives, flagged = float(pos[at].sum()), int(count[at].sum())
    pairs = positives * negatives - self_pairs
    return pd.DataFrame({
        DATE: [group[DATE].iloc[0]], VERSION: [group[VERSION].iloc[0]], "rows": [len(group)],
        "positives": [positives], "flagged": [flagged], "self_pairs": [self_pairs],
        "auc": [float(concordant.sum()) / pairs if pairs > 0 else None],
        "pr_auc": [float(precision_mass.sum()) / positives if positives > 0 else None],
        "precision": [true_positives / flagged if flagged > 0 else None],
        "recall": [true_positives / positives if positives > 0 else None],
    })


def estimated_measures(scores: DataFrame, threshold: float, auc_floor: dict[int, float | None]) -> list[Measure]:
    """A classifier's CBPE estimates per (ds, model_version) of `scores` (ds, model_version, score:
    a calibrated probability): expected AUC, precision and recall at `threshold`, positive rate
    and Brier score. `auc_floor`: per version, the AUC below which the estimate is an alert."""
    measures = []
    for row in ranking(scores, F.col(SCORE), threshold).collect():
        day, version, rows = row[DATE], int(row[VERSION]), int(row["rows"])
        values = {
            "auc": row["auc"], "precision": row["precision"], "recall": row["recall"],
            "positive_rate": row["positives"] / rows if rows else None,
            # E[(p - y)^2] with y ~ Bernoulli(p) is p(1 - p).
            "brier": row["self_pairs"] / rows if rows else None,
        }
        for metric, value in values.items():
            floor = auc_floor.get(version) if metric == "auc" else None
            measures.append(Measure(day, version, ESTIMATED, metric, None, value, floor, below=True, rows=rows))
        measures.append(Measure(day, version, ESTIMATED, "threshold", None, threshold, rows=rows))
    return sorted(measures, key=_order)


def realized_classification(labelled: DataFrame, threshold: float, auc_floor: dict[int, float | None],
                            bins: int) -> list[Measure]:
    """Realized AUC, PR-AUC, Brier score, positive rate, precision and recall at `threshold` and a
    calibration table per (ds, model_version) of `labelled` (ds, model_version, score, label; a
    null label: not labelled)."""
    keys = [DATE, VERSION]
    counts = {(r[DATE], int(r[VERSION])): (int(r["rows"]), int(r["labelled"]), r["brier"])
              for r in labelled.groupBy(*keys).agg(
                  F.count(F.lit(1)).alias("rows"), F.count(LABEL).alias("labelled"),
                  F.avg((F.col(SCORE) - F.col(LABEL)) ** 2).alias("brier")).collect()}
    measures = []
    for row in ranking(labelled, F.col(LABEL), threshold).collect():
        day, version = row[DATE], int(row[VERSION])
        rows, labelled_rows, brier = counts[(day, version)]
        values = {"auc": row["auc"], "pr_auc": row["pr_auc"], "brier": brier, "precision": row["precision"],
                  "recall": row["recall"], "positive_rate": row["positives"] / row["rows"] if row["rows"] else None}
        for metric, value in values.items():
            floor = auc_floor.get(version) if metric == "auc" else None
            measures.append(Measure(day, version, REALIZED, metric, None, value, floor, below=True, rows=rows,
                                    labelled_rows=labelled_rows))
    for row in calibration_rows(labelled.where(F.col(LABEL).isNotNull()), bins).collect():
        day, version = row[DATE], int(row[VERSION])
        segment = f"score_bin_{int(row['_bin']) + 1:02d}"
        # A bin holds labelled rows only: its rows are all labelled.
        for metric, column in (("calibration_predicted", "predicted"), ("calibration_observed", "observed")):
            measures.append(Measure(day, version, REALIZED, metric, segment, row[column], rows=int(row["count"]),
                                    labelled_rows=int(row["count"])))
    return sorted(measures, key=_order)


def calibration_rows(labelled: DataFrame, bins: int) -> DataFrame:
    """Mean score against the observed positive rate per quantile bin of the score, per (ds,
    model_version): `models.calibration.calibration_table`'s rule (quantile edges, repeated
    edges merged, tied scores in one bin) with Spark's approximate quantiles as the edges.

    Returns:
        ds, model_version, `_bin` (0-based), count, predicted, observed.
    """
    keys = [DATE, VERSION]
    inner = [i / bins for i in range(1, bins)]
    edges = labelled.groupBy(*keys).agg(F.array_distinct(F.percentile_approx(SCORE, inner, 10_000)).alias("_edges"))
    # Bin b holds the scores with b interior edges at or below them (searchsorted, side="right").
    binned = labelled.join(edges, keys).withColumn(
        "_bin", F.size(F.filter(F.col("_edges"), lambda edge: edge <= F.col(SCORE))))
    return binned.groupBy(*keys, "_bin").agg(
        F.count(F.lit(1)).alias("count"), F.avg(SCORE).alias("predicted"), F.avg(F.col(LABEL).cast("double")).alias("observed"),
    )


def realized_regression(labelled: DataFrame, keys: list[str]) -> list[Measure]:
    """Realized RMSE, WAPE and RMSSE per (ds, model_version) of `labelled` (the entity `keys`, ds,
    model_version, score: the prediction, label; a forecast's `horizon` and `target_date` too).

    RMSSE scales each series' mean squared error by the mean squared change between consecutive
    target days of its own labels in the same rows (M5's denominator, over the date's horizons,
    not over the training history), averaged over the series whose scale is not zero; without
    target dates (one row per series and date) there is no scale and no RMSSE row.
    """
    group = [DATE, VERSION]
    known = labelled.where(F.col(LABEL).isNotNull() & F.col(SCORE).isNotNull())
    error = F.col(SCORE) - F.col(LABEL)
    totals = {(r[DATE], int(r[VERSION])): r for r in labelled.groupBy(*group).agg(
        F.count(F.lit(1)).alias("rows"), F.count(LABEL).alias("labelled")).collect()}
    errors = {(r[DATE], int(r[VERSION])): r for r in known.groupBy(*group).agg(
        F.sqrt(F.avg(error * error)).alias("rmse"), F.sum(F.abs(error)).alias("_abs"),
        F.sum(F.abs(F.col(LABEL))).alias("_total")).collect()}
    rmsse: dict[tuple[date, int], float | None] = {}
    if TARGET_DATE in labelled.columns:
        series = Window.partitionBy(*group, *keys).orderBy(TARGET_DATE)
        change = F.col(LABEL) - F.lag(LABEL).over(series)
        consecutive = F.datediff(F.col(TARGET_DATE), F.lag(TARGET_DATE).over(series)) == 1
        per_series = known.select(*group, *keys, (error * error).alias("_square"),
                                  F.when(consecutive, change * change).alias("_change")).groupBy(*group, *keys).agg(
            F.avg("_square").alias("_mse"), F.avg("_change").alias("_scale"))
        rmsse = {(r[DATE], int(r[VERSION])): r["rmsse"] for r in per_series.where(F.col("_scale") > 0).groupBy(*group).agg(
            F.avg(F.sqrt(F.col("_mse") / F.col("_scale"))).alias("rmsse")).collect()}
    measures = []
    for (day, version), row in sorted(totals.items()):
        found = errors.get((day, version))
        values = {"rmse": found["rmse"] if found else None,
                  "wape": found["_abs"] / found["_total"] if found and found["_total"] else None}
        if (day, version) in rmsse:
            values["rmsse"] = rmsse[(day, version)]
        for metric, value in values.items():
            measures.append(Measure(day, version, REALIZED, metric, None, value, rows=int(row["rows"]),
                                    labelled_rows=int(row["labelled"])))
    return measures


def _order(measure: Measure) -> tuple:
    return (measure.ds, measure.model_version, measure.kind, measure.metric, measure.feature or "")


# Carried by a forecast's scores: its rows are labelled per horizon.
FORECAST_COLUMNS = (HORIZON, TARGET_DATE)
