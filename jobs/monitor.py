"""Monitor the scored dates: drift, data quality, estimated and realized performance, into `monitoring`.

    ./spark-submit.sh monitor --date D               # the nightly run, after `score --date D`
    ./spark-submit.sh monitor --start S --end E      # a backfill of scored dates, one commit
        [--force]                                    # recompute what is already in the table

For each date, and each model version that scored it: the PSI of every feature against the
model's training rows and of the scores against its holdout's, the share of missing and
out-of-range values, and (classifiers) the performance expected from the scores alone (CBPE;
valid for calibrated probabilities, blind to concept drift). Then the scored dates of the last
`monitoring.lookback_days` whose labels have matured by the last date get their realized
performance, from labels built as training builds them. What the table already holds for a
(ds, model_version) is kept, as `score` keeps a scored date: a rerun, as a scheduler's retry or a
cleared run makes, changes nothing; `--force` recomputes it, each (ds, model_version, kind)
replacing its earlier rows in one commit. Alerts are printed and recorded; they exit 3
(after the rows are written) only with `monitoring.fail_on_alert`. A date without scores exits 4
and writes nothing. See README: Monitoring.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta
from functools import reduce
from typing import Any

import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.definitions import HORIZON, expand
from features.engine import DATE
from models import monitoring, registry, report
from models.monitoring import ESTIMATED, QUALITY, REALIZED, SCORE, VERSION, Measure
from models.training_set import LABEL, labels_of
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import DataCheckError, MissingInputError, UsageError

JOB = "monitor"
_log = logging.getLogger(f"jobs.{JOB}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`monitor` has only the shared options (`--force`: see the module's docstring)."""


def scored_dates(context: cli.JobContext) -> set[date]:
    """The dates the scores table holds; MissingInputError (exit 4) naming the first requested date it lacks."""
    config, spark = context.config, context.spark
    table = config.tables.scores
    if not tables.exists(spark, config, table):
        raise MissingInputError(f"table {table!r} not found: nothing is scored yet; run `score --date {context.dates[0]}` first")
    present = tables.partition_dates(config, table, DATE)
    missing = [d for d in context.dates if d not in present]
    if missing:
        more = f" (and {len(missing) - 1} more dates)" if len(missing) > 1 else ""
        raise MissingInputError(f"table {table!r} has no partition {DATE}={missing[0]}{more}: "
                                f"run `score --date {missing[0]}` first")
    return present


def matured(config: Config, present: set[date], first: date, last: date) -> list[date]:
    """The scored dates of the look-back window whose labels are final by the end of `last`.

    A date's label window ends `label_reach` after its cutoff (the start of the next day): its
    last day is ds + reach (rounded up to days), which must be `last` or earlier. Nothing here
    depends on the wall clock, so a rerun picks the same dates.
    """
    reach = config.use_case.label_reach.days_spanned
    oldest = first - timedelta(days=config.monitoring.lookback_days)
    return sorted(d for d in present if oldest <= d <= last and d + timedelta(days=reach) <= last)


def version_counts(config: Config, scores: DataFrame, dates: list[date]) -> dict[tuple[date, int], int]:
    """Scored rows per (date, model version) of `dates`: from the Delta log's file statistics when
    they settle it (`score` writes one version per date), else one small aggregation."""
    if not dates:
        return {}
    logged = tables.rows_per_value(config, config.tables.scores, DATE, VERSION, dates)
    if logged is not None:
        return {(day, int(version)): rows for (day, version), rows in logged.items()}
    found = scores.where(F.col(DATE).isin(dates)).groupBy(DATE, VERSION).count().collect()
    return {(row[DATE], int(row[VERSION])): int(row["count"]) for row in found}


def already_done(context: cli.JobContext, wanted: dict[str, list[date]]) -> dict[str, set[tuple[date, int]]]:
    """Per kind of `wanted` (kind -> dates), the (date, model version) pairs among its dates that
    have rows of that kind, in one read of the table (none with --force)."""
    config, spark = context.config, context.spark
    found: dict[str, set[tuple[date, int]]] = {kind: set() for kind in wanted}
    asked = [F.col(DATE).isin(dates) & (F.col("kind") == kind) for kind, dates in wanted.items() if dates]
    if context.args.force or not asked or not tables.exists(spark, config, config.tables.monitoring):
        return found
    done = (tables.read(spark, config, config.tables.monitoring)
            .where(reduce(lambda a, b: a | b, asked)).select("kind", DATE, VERSION).distinct().collect())
    for row in done:
        if row[DATE] in wanted[row["kind"]]:
            found[row["kind"]].add((row[DATE], int(row[VERSION])))
    return found


def threshold_of(config: Config, metadata: dict[str, Any]) -> float:
    """Where estimated and realized precision/recall are measured: `monitoring.alert_threshold`,
    else the model's alert threshold, else 0.5."""
    if config.monitoring.alert_threshold is not None:
        return config.monitoring.alert_threshold
    chosen = metadata.get("holdout", {}).get("alert")
    return float(chosen["threshold"]) if chosen else 0.5


def auc_floor(config: Config, metadata: dict[str, Any]) -> float | None:
    """The AUC below which estimated or realized AUC is an alert: the holdout's less `auc_drop_max`."""
    auc = metadata.get("holdout", {}).get("metrics", {}).get("auc")
    return None if auc is None else float(auc) - config.monitoring.auc_drop_max


def run(context: cli.JobContext) -> None:
    config, spark, record = context.config, context.spark, context.record
    if not context.dates:
        raise UsageError("a date is required: --date YYYY-MM-DD or --start/--end")
    present = scored_dates(context)
    scores = tables.read(spark, config, config.tables.scores)
    record.input_versions[config.tables.scores] = tables.current_version(config, config.tables.scores) or 0
    first, last = context.dates[0], context.dates[-1]
    task = config.use_case.label.task
    feature_set = expand(config)

    candidates = matured(config, present, first, last)
    with context.timed("count"):
        # One aggregation for both: the run's dates and the matured ones may overlap (a backfill).
        counts = version_counts(config, scores, sorted({*context.dates, *candidates}))
    # Every monitored (date, version) has quality rows (drift needs a reference, estimates a classifier).
    before = already_done(context, {QUALITY: context.dates, REALIZED: candidates})
    monitored_before, realized_before = before[QUALITY], before[REALIZED]
    monitored = {key: rows for key, rows in counts.items() if key[0] in context.dates and key not in monitored_before}
    # Realized once, when the labels have matured: they are final then.
    realize = {key: rows for key, rows in counts.items() if key[0] in candidates and key not in realized_before}
    if not monitored and not realize:
        context.progress(f"all {len(context.dates)} dates already monitored, and no scored date of the last "
                         f"{config.monitoring.lookback_days} days has newly matured labels; --force recomputes them")
        return
    versions = sorted({version for _, version in [*monitored, *realize]})
    models = {version: registry.load_metadata(config, config.model_name, version) for version in versions}
    record.model_version = ",".join(str(v) for v in versions)

    measures: list[Measure] = []
    with context.timed("drift_quality"):
        measures += drift_and_quality(context, scores, monitored, models)
    if task == "classification":
        with context.timed("estimated"):
            for version in sorted({v for _, v in monitored}):
                these = scores.where((F.col(VERSION) == version) & F.col(DATE).isin(sorted({d for d, v in monitored if v == version})))
                measures += monitoring.estimated_measures(these, threshold_of(config, models[version]),
                                                          {version: auc_floor(config, models[version])})
    if realize:
        with context.timed("realized"):
            measures += realized(context, scores, realize, models, feature_set.event_time)
    else:
        context.progress(f"realized performance: no scored date of the last {config.monitoring.lookback_days} days "
                         f"has newly matured labels (label reach {config.use_case.label_reach})")

    rows = monitoring.as_table(measures, config.model_name, record.input_versions, record.run_id)
    replaced = [(d, v, ("drift", "quality", ESTIMATED)) for d, v in sorted(monitored)]
    replaced += [(d, v, (REALIZED,)) for d, v in sorted(realize)]
    condition = " OR ".join(
        f"({DATE} = DATE '{d.isoformat()}' AND {VERSION} = {v} AND kind IN ({', '.join(repr(k) for k in kinds)}))"
        for d, v, kinds in replaced
    )
    with context.timed("write"):
        version = tables.replace_rows(
            config, config.tables.monitoring, rows, DATE, condition,
            metadata={"run_id": record.run_id, "input_versions": record.input_versions,
                      "dates": [d.isoformat() for d in context.dates],
                      "realized_dates": sorted({d.isoformat() for d, _ in realize})},
        )
    record.output_versions[config.tables.monitoring] = version
    record.row_counts[config.tables.monitoring] = len(measures)
    with context.timed("report"):
        page = write_report(context, last, models)
    alerts = [m for m in measures if m.alert]
    print_summary(context, measures, alerts, version)
    context.progress(f"report: {page}")
    if alerts and config.monitoring.fail_on_alert:
        raise DataCheckError(f"{len(alerts)} monitoring alerts (first: {describe(alerts[0])}); "
                             f"the rows are in table {config.tables.monitoring!r} version {version}, and "
                             "monitoring.fail_on_alert is set")


def write_report(context: cli.JobContext, through: date, models: dict[int, dict[str, Any]]) -> str:
    """Render the use case's report page from the monitoring table's last `report_days` and write it."""
    config = context.config
    since = through - timedelta(days=config.monitoring.report_days - 1)
    # A small table (a few hundred rows a day): read without a Spark job.
    read = tables.read_rows(config, config.tables.monitoring, (pc.field(DATE) >= since) & (pc.field(DATE) <= through))
    history = read.select([DATE, VERSION, "kind", "metric", "feature", "value", "threshold", "alert", "rows",
                           "label_coverage", "input_versions"]).to_pandas()
    latest = history[history[DATE] == history[DATE].max()] if len(history) else history
    version = int(latest[VERSION].max()) if len(latest) else None
    reference = None
    if version is not None:
        metadata = models.get(version) or registry.load_metadata(config, config.model_name, version)
        described = (metadata.get("score_reference") or {}).get("features", {}).get(SCORE)
        if described is not None:
            reference = report.ScoreReference(described["edges"], described["shares"])
    header = report.ReportHeader(
        config.use_case.name, config.model_name, version, through,
        dict(latest["input_versions"].iloc[0]) if len(latest) else {}, context.record.run_id,
    )
    return tables.write_report(config, report.render(history.drop(columns="input_versions"), header, reference))


def drift_and_quality(context: cli.JobContext, scores: DataFrame, monitored: dict[tuple[date, int], int],
                      models: dict[int, dict[str, Any]]) -> list[Measure]:
    """Score and feature drift and quality of each monitored (date, version)."""
    config, spark, record = context.config, context.spark, context.record
    features = None
    if tables.exists(spark, config, config.tables.features):
        features = tables.read(spark, config, config.tables.features)
        record.input_versions[config.tables.features] = tables.current_version(config, config.tables.features) or 0
    with_features = tables.partition_dates(config, config.tables.features, DATE) if features is not None else set()
    measures: list[Measure] = []
    for version in sorted({v for _, v in monitored}):
        metadata = models[version]
        scored = {d: rows for (d, v), rows in monitored.items() if v == version}
        reference, score_reference = metadata.get("reference_statistics"), metadata.get("score_reference")
        if reference is None:
            # One line, and the rest of the monitoring still runs: an old model is not an error.
            _log.warning("model %s version %s has no reference statistics in its metadata.json: feature drift not "
                         "computed (retrain to store them)", config.model_name, version)
        if score_reference is None:
            _log.warning("model %s version %s has no score reference in its metadata.json: score drift not "
                         "computed (retrain to store it)", config.model_name, version)
        mine = scores.where(F.col(VERSION) == version)
        measures += monitoring.score_measures(mine, scored, version, score_reference, config.monitoring)
        lacking = sorted(d for d in scored if d not in with_features)
        if lacking:
            context.progress(f"table {config.tables.features!r} has no partition {DATE}={lacking[0]}"
                             f"{' and more' if len(lacking) > 1 else ''}: no feature drift or quality for it")
        have = {d: rows for d, rows in scored.items() if d in with_features}
        if have and features is not None:
            measures += monitoring.feature_measures(features, have, version, metadata["features"], reference,
                                                    config.monitoring)
    return measures


def realized(context: cli.JobContext, scores: DataFrame, realize: dict[tuple[date, int], int],
             models: dict[int, dict[str, Any]], event_time: str | None) -> list[Measure]:
    """Realized performance of the matured (date, version) pairs, from labels built as training builds them."""
    config, spark, record = context.config, context.spark, context.record
    label = config.use_case.label
    source = config.use_case.sources[label.source]
    events = tables.read(spark, config, source.table)
    record.input_versions[source.table] = tables.current_version(config, source.table) or 0
    reach = config.use_case.label_reach.days_spanned
    held = tables.partition_dates(config, source.table, source.partition)
    usable = {}
    for (day, version), rows in sorted(realize.items()):
        needed = cli.date_range(day + timedelta(days=1), day + timedelta(days=reach))
        absent = [d for d in needed if d not in held]
        if absent:
            context.progress(f"realized performance of {day} not computed: table {source.table!r} has no "
                             f"partition {source.partition}={absent[0]} (labels incomplete)")
            continue
        usable[(day, version)] = rows
    if not usable:
        return []
    keys = config.use_case.entity.keys
    forecast = config.use_case.forecast is not None
    row_keys = [*keys, *([HORIZON] if forecast else [])]
    dates = sorted({d for d, _ in usable})
    pairs = spark.createDataFrame(sorted(usable), f"{DATE} date, {VERSION} int")
    chosen = scores.where(F.col(DATE).isin(dates)).join(F.broadcast(pairs), [DATE, VERSION])
    labelled = labels_of(chosen, events, source, label, keys, forecast, event_time)
    kept = [*row_keys, DATE, *([monitoring.TARGET_DATE] if forecast else []), VERSION, SCORE]
    joined = chosen.select(*kept).join(labelled, [*row_keys, DATE], "left")
    if label.task == "classification":
        versions = sorted({v for _, v in usable})
        return [m for version in versions for m in monitoring.realized_classification(
            joined.where(F.col(VERSION) == version), threshold_of(config, models[version]),
            {version: auc_floor(config, models[version])}, config.monitoring.calibration_bins)]
    return monitoring.realized_regression(joined.withColumn(LABEL, F.col(LABEL).cast("double")), keys)


def describe(measure: Measure) -> str:
    """One alert in a few words."""
    what = f"{measure.metric} of {measure.feature}" if measure.feature else measure.metric
    side = "below" if measure.below else "above"
    return (f"{measure.ds} version {measure.model_version}: {measure.kind} {what} {measure.value:.4f} "
            f"{side} {measure.threshold:.4f}")


def print_summary(context: cli.JobContext, measures: list[Measure], alerts: list[Measure], version: int) -> None:
    """What was computed, the estimated and realized AUCs, and the alerts (the first ones in full)."""
    config = context.config
    kinds: dict[str, int] = {}
    for m in measures:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    context.progress(f"wrote {len(measures):,} monitoring rows ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}) "
                     f"to {tables.catalog_name(config, config.tables.monitoring)} version {version}")
    for m in measures:
        if m.metric == "auc" and m.value is not None:
            coverage = f", {m.labelled_rows:,} of {m.rows:,} rows labelled" if m.labelled_rows is not None else ""
            context.progress(f"{m.ds} version {m.model_version}: {m.kind} AUC {m.value:.4f}{coverage}")
    if not alerts:
        context.progress("no alerts")
        return
    context.progress(f"{len(alerts)} alerts" + (" (monitoring.fail_on_alert: the job fails)"
                                                if config.monitoring.fail_on_alert else ""))
    shown = 20
    for m in alerts[:shown]:
        context.progress(f"  ALERT {describe(m)}")
    if len(alerts) > shown:
        context.progress(f"  ... and {len(alerts) - shown} more (query the table: kind, metric, feature where alert)")


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
