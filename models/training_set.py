"""The training set: feature rows of (entity, D) joined with labels that look past D.

Features for D use events before D's cutoff, the start of D + 1 (UTC); the label of (entity, D)
uses only the events of [cutoff, cutoff + horizon), so every instant is on exactly one side
(a horizon of whole days: days D + 1 .. D + horizon). Both are computed by Spark, as pure
functions of DataFrames, so the same code builds the training snapshot on a laptop and on a
cluster.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.definitions import HORIZON, TARGET_DATE, FeatureSet
from features.engine import DATE, cutoff_micros, event_micros, prepared_events
from models.alerts import EVENT_TIME
from models.config import TrainingConfig
from nightjar.config import LabelConfig, SourceConfig
from nightjar.durations import DAY_MICROS, Duration

LABEL = "label"
WEIGHT = "weight"
REFERENCE = "reference_score"
_DAY = "_day"
_BUCKET = "_bucket"


def label_dates(last_date: date, horizon: Duration, days: int, stride_days: int) -> list[date]:
    """The feature dates whose label horizon has ended by `last_date`'s cutoff, newest included.

    `days` dates back from `last_date` minus the horizon's days (rounded up: a 36h horizon
    of D ends on D + 2), every `stride_days`-th of them.
    """
    newest = last_date - timedelta(days=horizon.days_spanned)
    return sorted(newest - timedelta(days=offset) for offset in range(0, days, stride_days))


def labels(
    spine: DataFrame,
    events: DataFrame,
    source: SourceConfig,
    label: LabelConfig,
    keys: list[str],
) -> DataFrame:
    """The label of every (key, ds) row of `spine`, from the events of [cutoff, cutoff + horizon).

    The cutoff of ds is the start of ds + 1 (UTC). Events are first counted per bucket of the
    horizon's grain (a day, an hour or a minute: the coarsest dividing it), so the window join
    multiplies buckets, not events; a bucket is inside the window exactly when its events are.

    Args:
        spine: the (key, ds) pairs to label, usually the feature rows.
        events: the label source; may hold more dates than needed (read by partition).
        source: its configuration (timestamp and partition columns).
        label: the label definition.
        keys: the entity key's columns.

    Returns:
        `spine`'s key and ds with a `label` column: 0/1 for event labels, a double for sums.
    """
    dates = sorted(row[0] for row in spine.select(DATE).distinct().collect())
    if not dates:
        return spine.select(*keys, DATE, F.lit(None).cast("double").alias(LABEL))
    horizon = label.horizon
    selected = _label_source(events, source, label, keys, dates)
    grain = horizon.grain_micros
    if grain == DAY_MICROS:
        # From the event's day, not its instant: a source whose timestamp is a date works too.
        bucket = F.unix_date(F.col(_DAY)).cast("long") * F.lit(DAY_MICROS)
    else:
        instant = event_micros(F.col(source.timestamp))
        bucket = instant - F.pmod(instant, F.lit(grain))
    measure = F.count(F.lit(1)) if label.kind != "sum" else F.sum(_finite(F.col(label.column)))
    buckets = selected.groupBy(*keys, bucket.alias(_BUCKET)).agg(measure.alias("_measure"))
    dates_frame = spine.sparkSession.createDataFrame([(d,) for d in dates], f"{DATE} date")
    cutoff = cutoff_micros(F.col(DATE))
    windows = buckets.join(
        F.broadcast(dates_frame),
        (F.col(_BUCKET) >= cutoff) & (F.col(_BUCKET) < cutoff + F.lit(horizon.micros)),
    ).groupBy(*keys, DATE).agg(F.sum("_measure").alias("_total"))
    joined = spine.select(*keys, DATE).join(windows, [*keys, DATE], "left")
    total = F.coalesce(F.col("_total"), F.lit(0))
    if label.kind == "no_event":
        value = (total == 0).cast("int")
    elif label.kind == "any_event":
        value = (total > 0).cast("int")
    else:
        value = total.cast("double")
    return joined.select(*keys, DATE, value.alias(LABEL))


def event_labels(spine: DataFrame, events: DataFrame, source: SourceConfig, label: LabelConfig, key: str,
                 event_time: str) -> DataFrame:
    """The label of every scored event of `spine` (event grain): from the label source's rows with
    its id, reported in [t, t + horizon), t the event's instant (`event_time`).

    A row reported before its event (impossible; bad input) or after the horizon (past the
    labels' maturity) does not count: `any_event` is 1 exactly when one is reported within the
    maturity, `no_event` when none is.

    Args:
        spine: the events to label: `key`, `ds` and `event_time`.
        events: the label source (chargebacks); may hold more dates than needed (read by partition).
        source: its configuration.
        label: the label definition; its horizon is the maturity.
        key: the events' id column, which the label source's rows carry too.
        event_time: the events' timestamp column.

    Returns:
        `spine`'s key and ds with a 0/1 `label` column.
    """
    dates = sorted(row[0] for row in spine.select(DATE).distinct().collect())
    if not dates:
        return spine.select(key, DATE, F.lit(None).cast("int").alias(LABEL))
    reported = prepared_events(events, source, [key], dates[0], dates[-1] + timedelta(days=label.horizon.days_spanned))
    for column, value in (label.where or {}).items():
        reported = reported.where(F.col(column) == F.lit(value))
    reported = reported.select(key, event_micros(F.col(source.timestamp)).alias("_reported"))
    instant = event_micros(F.col(event_time))
    within = (
        spine.select(key, DATE, instant.alias("_instant"))
        .join(reported, key, "inner")
        .where((F.col("_reported") >= F.col("_instant")) & (F.col("_reported") < F.col("_instant") + F.lit(label.horizon.micros)))
        .select(key, DATE).distinct().withColumn("_found", F.lit(1))
    )
    found = F.col("_found").isNotNull()
    value = (~found if label.kind == "no_event" else found).cast("int")
    return spine.select(key, DATE).join(within, [key, DATE], "left").select(key, DATE, value.alias(LABEL))


def labels_by_horizon(
    spine: DataFrame, events: DataFrame, source: SourceConfig, label: LabelConfig, keys: list[str],
) -> DataFrame:
    """The label of every (key, ds, horizon) row of a forecast's `spine`: the label of
    ds + horizon - 1, whose window starts at the target date's start (with a 1d horizon: what
    happens on the target date). Each such date is labelled once, however many rows share it."""
    anchored = spine.select(*keys, DATE, HORIZON, F.date_add(F.col(DATE), F.col(HORIZON) - 1).alias("_anchor"))
    anchors = anchored.select(*keys, F.col("_anchor").alias(DATE)).distinct()
    labelled = labels(anchors, events, source, label, keys).withColumnRenamed(DATE, "_anchor")
    return anchored.join(labelled, [*keys, "_anchor"], "left").select(*keys, DATE, HORIZON, LABEL)


def labels_of(
    rows: DataFrame, events: DataFrame, source: SourceConfig, label: LabelConfig, keys: list[str],
    forecast: bool, event_time: str | None,
) -> DataFrame:
    """The labels of `rows` (feature rows, or the scores of those rows) by the use case's grain:
    a forecast's per horizon (`labels_by_horizon`), an event's (`event_labels`, `event_time` its
    instant) or a snapshot's (`labels`). Training and monitoring both label rows here.

    Returns:
        The rows' key columns, `ds` (and a forecast's `horizon`) and `label`.
    """
    if forecast:
        return labels_by_horizon(rows.select(*keys, DATE, HORIZON), events, source, label, keys)
    if event_time is not None:
        return event_labels(rows.select(*keys, DATE, event_time), events, source, label, keys[0], event_time)
    return labels(rows.select(*keys, DATE), events, source, label, keys)


def _label_source(
    events: DataFrame, source: SourceConfig, label: LabelConfig, keys: list[str], dates: list[date],
) -> DataFrame:
    """The events of the label's source that its `where` keeps, on the days the label windows of `dates` touch."""
    last_day = dates[-1] + timedelta(days=label.horizon.days_spanned)
    selected = prepared_events(events, source, keys, dates[0] + timedelta(days=1), last_day)
    for column, value in (label.where or {}).items():
        selected = selected.where(F.col(column) == F.lit(value))
    return selected


def label_events(
    events: DataFrame, source: SourceConfig, label: LabelConfig, keys: list[str], dates: list[date],
) -> DataFrame:
    """The events that make labels of `dates`: the key's columns and the event's instant (EVENT_TIME, microseconds).

    Those of the label's source that its `where` keeps, in [first cutoff, last cutoff + horizon):
    the union of the label windows of `dates`. The alert report counts how many of them were
    alerted in time.
    """
    dates = sorted(dates)
    instant = event_micros(F.col(source.timestamp))
    first_cutoff, last_cutoff = (cutoff_micros(F.lit(d)) for d in (dates[0], dates[-1]))
    return (
        _label_source(events, source, label, keys, dates)
        .select(*keys, instant.alias(EVENT_TIME))
        .where((F.col(EVENT_TIME) >= first_cutoff) & (F.col(EVENT_TIME) < last_cutoff + F.lit(label.horizon.micros)))
    )


def _finite(value):  # noqa: ANN001, ANN202 - a Column in, a Column out
    # NaN and infinite amounts are not values, as in the features (see features.engine).
    return F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)


def training_rows(
    features: DataFrame,
    labelled: DataFrame,
    keys: list[str],
    majority_sample_rate: float,
    exempt_dates: list[date],
    seed: int,
) -> DataFrame:
    """Features joined with their labels, the majority class down-sampled outside `exempt_dates`.

    Sampling keeps a row when a hash of (seed, key, ds) falls below the rate, so the same
    seed keeps the same rows however Spark partitions the data; kept majority rows weigh
    1 / rate, so weighted statistics match the full data. The holdout is exempt: it is
    evaluated on the population as it is.
    """
    rows = features.join(labelled, [*keys, DATE], "inner")
    weight = F.lit(1.0)
    if majority_sample_rate < 1.0:
        majority = _majority_label(rows)
        in_majority = (F.col(LABEL) == F.lit(majority)) & ~F.col(DATE).isin(exempt_dates)
        # xxhash64 is stable across runs and machines; its residue mod 2**24 is a uniform draw.
        draw = F.pmod(F.xxhash64(F.lit(seed), *map(F.col, keys), F.col(DATE)), F.lit(1 << 24).cast("long")) / float(1 << 24)
        rows = rows.where(~in_majority | (draw < F.lit(majority_sample_rate)))
        weight = F.when(in_majority, F.lit(1.0 / majority_sample_rate)).otherwise(F.lit(1.0))
    return rows.withColumn(WEIGHT, weight)


def _majority_label(rows: DataFrame) -> int:
    counts = {row[0]: row[1] for row in rows.groupBy(LABEL).count().collect()}
    return max(counts, key=lambda value: (counts[value], value)) if counts else 0


def reference_dates(dates: list[date], target_days: int | None = None) -> list[date]:
    """The dates of a reference table that the references of feature dates `dates` read: the dates
    themselves, or with `target_days` (a table dated by the target day) the label days D + 1 .. D + target_days."""
    if target_days is None:
        return sorted(dates)
    return sorted({d + timedelta(days=k) for d in dates for k in range(1, target_days + 1)})


def with_reference(
    rows: DataFrame, reference: DataFrame, keys: list[str], column: str, target_days: int | None = None,
) -> DataFrame:
    """Add the known value of each (key, ds) from a reference table, null where it has none.

    Args:
        rows: the training rows, by key and feature date.
        reference: the reference table.
        keys: the entity key's columns.
        column: the reference's column.
        target_days: None: the reference row of ds belongs to feature date ds. A number h: the table is
            dated by the target day, and the reference of D is the sum of `column` over D + 1 .. D + h,
            null unless all h days have a row (a sum label over h whole days).
    """
    value = F.col(column).cast("double")
    if target_days is None:
        return rows.join(reference.select(*keys, DATE, value.alias(REFERENCE)), [*keys, DATE], "left")
    # Each target day's row counts for the h feature dates whose label window holds it.
    shifted = reference.select(*keys, F.explode(F.sequence(F.lit(1), F.lit(target_days))).alias("_lead"),
                               F.col(DATE).alias("_target"), value.alias("_value"))
    summed = (
        shifted.select(*keys, F.date_sub(F.col("_target"), F.col("_lead")).alias(DATE), "_value")
        .groupBy(*keys, DATE)
        .agg(F.sum("_value").alias("_total"), F.count("_value").alias("_days"))
        .select(*keys, DATE, F.when(F.col("_days") == target_days, F.col("_total")).alias(REFERENCE))
    )
    return rows.join(summed, [*keys, DATE], "left")


def ordered(rows: pd.DataFrame, row_keys: list[str]) -> pd.DataFrame:
    """Training rows read back in the snapshot's order (date, then the row's key), so that the same
    inputs give the same fits."""
    return rows.sort_values([DATE, *row_keys], kind="stable").reset_index(drop=True)


def snapshot_rows(
    features: DataFrame,
    events: DataFrame,
    source: SourceConfig,
    label: LabelConfig,
    feature_set: FeatureSet,
    training: TrainingConfig,
    dates: list[date],
    exempt_dates: list[date],
    reference: DataFrame | None,
) -> DataFrame:
    """The training rows of `dates` from the feature rows `features`: the key, `ds` (and a forecast's target
    date), the features, the label and the weight, the majority down-sampled outside
    `exempt_dates`; with a `reference` table, its column `training.reference.column` as REFERENCE.

    Every date's reference is joined, not only the holdout's: the reference's alert threshold is
    chosen on the folds. A row's reference is that of the date whose label it has: its own date,
    or a forecast row's D + horizon - 1 (`training.reference.dated` says how the table is dated).
    """
    keys, row_keys = list(feature_set.keys), feature_set.row_keys
    forecast = feature_set.horizon_days is not None
    spine = features.where(F.col(DATE).isin(dates)).select(
        *keys, DATE, *([TARGET_DATE] if forecast else []), *feature_set.names)
    timed = features.where(F.col(DATE).isin(dates)) if feature_set.event_time is not None else spine
    labelled = labels_of(timed, events, source, label, keys, forecast, feature_set.event_time)
    rows = training_rows(spine, labelled, row_keys, training.majority_sample_rate, exempt_dates, training.seed)
    if reference is not None and training.reference is not None:
        target_days = label.horizon.whole_days if training.reference.dated == "target_date" else None
        # The dates whose labels the rows have: a forecast row of D and h has the label of D + h - 1.
        labelled_dates = sorted({d + timedelta(days=h) for d in dates for h in range(feature_set.horizon_days or 1)})
        known = reference.where(F.col(DATE).isin(reference_dates(labelled_dates, target_days)))
        if not forecast:
            return with_reference(rows, known, keys, training.reference.column, target_days)
        anchored = rows.withColumn("_ds", F.col(DATE)).withColumn(DATE, F.date_add(F.col(DATE), F.col(HORIZON) - 1))
        rows = with_reference(anchored, known, keys, training.reference.column, target_days)
        rows = rows.withColumn(DATE, F.col("_ds")).drop("_ds")
    return rows
