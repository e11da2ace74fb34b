"""Score a date with the champion model and publish it atomically to the `scores` table.

    ./spark-submit.sh score --date D                 # the nightly run
    ./spark-submit.sh score --start S --end E        # a backfill, one commit for the range
        [--model-version N]                          # a registered version instead of the champion
        [--force]                                    # rescore dates already in the table

For each date: read its features (computing them first when missing and
`scoring.compute_missing_features` is set), load and verify the model, refuse it when its
feature set differs from the table's, run the features suite (with drift against the
model's training data), score inside Spark over Arrow batches with reason codes, run the
scores suite, and replace the dates' partitions of `scores` in one commit with the model
and run that produced them. A blocking check failure exits 3 and writes nothing. Prints a summary: rows, the score distribution, the top-scored entities
and their reasons, and where the tables are.
"""

from __future__ import annotations

import argparse
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import store
from features.definitions import HORIZON, TARGET_DATE, expand
from features.engine import DATE
from models import registry, scoring
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.errors import ConfigError, DataCheckError, MissingInputError, UsageError
from validation import gate

JOB = "score"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", type=int, metavar="N", help="score with version N instead of the champion")


def load_model(context: cli.JobContext) -> registry.RegisteredModel:
    """The requested version, or the champion; exit 4 when missing or corrupt."""
    config = context.config
    if context.args.model_version is not None:
        return registry.load(config, config.model_name, context.args.model_version)
    return registry.load_champion(config, config.model_name)


def alert_threshold(config: Config, model: registry.RegisteredModel) -> float | None:
    """The model's alert threshold when `scoring.alert` is set, else None.

    Raises:
        ConfigError: alerts are configured but the model was trained without them; scoring it
            without the flag would silently change the table's columns.
    """
    if config.scoring.alert is None:
        return None
    chosen = model.metadata.get("holdout", {}).get("alert")
    if not chosen:
        raise ConfigError(
            f"scoring.alert is set but model {model.name} version {model.version} was trained without an alert "
            "threshold: retrain with scoring.alert set (train --date T --force), or unset scoring.alert"
        )
    return float(chosen["threshold"])


def require_matching_features(context: cli.JobContext, model: registry.RegisteredModel, features: DataFrame) -> None:
    """DataCheckError when the model was trained on another feature set than the table holds."""
    config = context.config
    where = f"model {model.name} version {model.version}"
    held = store.held_feature_set(config)
    trained_on = model.metadata.get("feature_set")
    if held != trained_on:
        raise DataCheckError(
            f"feature list mismatch: {where} was trained on feature set {trained_on}, "
            f"table {config.tables.features!r} holds {held}; retrain, or score with a matching --model-version"
        )
    absent = [name for name in model.features if name not in features.columns]
    if absent or registry.feature_hash(model.features) != model.metadata.get("feature_hash"):
        raise DataCheckError(
            f"feature list mismatch: {where} needs {', '.join(absent) or 'a different feature order'} "
            f"not in table {config.tables.features!r}"
        )


def features_for(context: cli.JobContext, dates: list[date]) -> DataFrame:
    """The feature rows of `dates`, computed first where missing if configured; exit 4 otherwise."""
    config, spark = context.config, context.spark
    table = config.tables.features
    # From the Delta log: a Spark job here would be the JVM's first, 4.9 s of warming up for a few dates.
    present = tables.partition_dates(config, table, DATE) if tables.exists(spark, config, table) else set()
    missing = [d for d in dates if d not in present]
    if missing and config.scoring.compute_missing_features:
        context.progress(f"features missing for {len(missing)} dates: computing them first")
        store.compute_and_write(context, missing)
    elif missing:
        more = f" (and {len(missing) - 1} more dates)" if len(missing) > 1 else ""
        raise MissingInputError(
            f"table {table!r} has no partition {DATE}={missing[0]}{more}: run `features --date {missing[0]}` "
            "first, or set scoring.compute_missing_features=true"
        )
    context.record.input_versions[table] = tables.current_version(config, table) or 0
    return tables.read(spark, config, table).where(F.col(DATE).isin(dates))


def dates_to_score(context: cli.JobContext) -> list[date]:
    """The requested dates less those already scored (all of them with --force)."""
    config, spark = context.config, context.spark
    if context.args.force or not tables.exists(spark, config, config.tables.scores):
        return context.dates
    present = tables.partition_dates(config, config.tables.scores, DATE)
    return [d for d in context.dates if d not in present]


def run(context: cli.JobContext) -> None:
    record = context.record
    if not context.dates:
        raise UsageError("a date is required: --date YYYY-MM-DD or --start/--end")
    todo = dates_to_score(context)
    if not todo:
        context.progress(f"all {len(context.dates)} dates already scored; --force rescores them")
        return
    model = load_model(context)
    record.model_version = str(model.version)
    threshold = alert_threshold(context.config, model)
    with context.timed("read"):
        features = features_for(context, todo)
        require_matching_features(context, model, features)
        # Read once: the features suite and the scoring below read the same rows.
        features = features.persist(StorageLevel.MEMORY_AND_DISK)
        features.count()
    try:
        _check_score_and_write(context, model, features, todo, threshold)
    finally:
        features.unpersist()


def _check_score_and_write(context: cli.JobContext, model: registry.RegisteredModel, features: DataFrame,
                           todo: list[date], threshold: float | None) -> None:
    config, spark, record = context.config, context.spark, context.record
    reports = []
    if gate.has_suite(config, "features", config.tables.features):
        with context.timed("check_features"):
            checked = gate.validate_dates(spark, config, "features", config.tables.features, features, todo, record.run_id,
                                          reference=model.metadata.get("reference_statistics"), checks=record.checks)
            reports.append(checked.data_docs)
    context.progress(f"scoring {len(todo)} dates {todo[0]}..{todo[-1]} with {model.name} version {model.version}")
    event_time = expand(config).event_time
    carried = [HORIZON, TARGET_DATE] if config.use_case.forecast else [event_time] if event_time else []

    def scored_with(reasons: int, reasons_min_score: float | dict[date, float] | None) -> DataFrame:
        return scoring.score(features, registry.model_text(model.booster), model.features,
                             config.use_case.entity.keys, reasons=reasons, reasons_min_score=reasons_min_score,
                             alert_threshold=threshold, carried=carried,
                             intervals=model.metadata["holdout"].get("intervals"),
                             interval_group=HORIZON if config.use_case.forecast else None,
                             calibration=model.metadata.get("calibration"), compiled=config.scoring.compiled,
                             compiled_cache=config.scoring.compiled_cache)

    reasons_min_score = config.scoring.reasons_min_score
    top_percent = config.scoring.reasons_top_percent
    if config.scoring.reasons and top_percent is not None:
        with context.timed("reasons_threshold"):
            # The run's own top scores: a first pass of predictions only, then SHAP for those.
            first = scored_with(0, None)
            # The model's own score: the calibrated one ties, and would explain whole tie groups.
            column = scoring.MODEL_SCORE if scoring.MODEL_SCORE in first.columns else scoring.SCORE
            # Per date, exact (a rank in Spark, not approxQuantile's sketch); ties at the cut all get reasons.
            reasons_min_score = scoring.top_percent_thresholds(first, column, top_percent)
        cuts = [f"{day} score >= {minimum:.6f}" for day, minimum in sorted(reasons_min_score.items())]
        context.progress(f"reasons for the top {top_percent:g}% of scores of each date: "
                         + ", ".join(cuts[:5]) + (f" and {len(cuts) - 5} more dates" if len(cuts) > 5 else ""))
    scored = scored_with(config.scoring.reasons, reasons_min_score)
    # Computed once: the checks and the write below read the same rows.
    rows = scoring.with_lineage(scored, model.name, model.version, record.run_id).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with context.timed("score"):
            counts = {row[DATE]: row["count"] for row in rows.groupBy(DATE).count().collect()}
        empty = [d for d in todo if not counts.get(d)]
        if empty:
            raise MissingInputError(f"table {config.tables.features!r} has no rows for {DATE}={empty[0]}")
        if gate.has_suite(config, "scores", config.tables.scores):
            with context.timed("check_scores"):
                checked = gate.validate_dates(spark, config, "scores", config.tables.scores, rows, todo,
                                              record.run_id, checks=record.checks)
                reports.append(checked.data_docs)
        with context.timed("write"):
            # Turning alerts on adds the `alert` column to a scores table written without it
            # (earlier dates read null: they were never alerted on).
            version = tables.replace_partitions(
                rows, config, config.tables.scores, DATE, todo,
                metadata={"run_id": record.run_id, "model_name": model.name, "model_version": model.version,
                          "input_versions": record.input_versions, "dates": [d.isoformat() for d in todo]},
                add_columns=True,
            )
        record.output_versions[config.tables.scores] = version
        record.row_counts[config.tables.scores] = sum(counts.values())
        print_summary(context, rows, model, todo, version, reports, threshold)
    finally:
        rows.unpersist()


def print_summary(
    context: cli.JobContext, rows: DataFrame, model: registry.RegisteredModel, dates: list[date], version: int,
    reports: list[str], threshold: float | None,
) -> None:
    """Rows scored, the score distribution and the top-scored entities of the last date, and where things are."""
    config = context.config
    keys = config.use_case.entity.keys
    last = rows.where(F.col(DATE) == F.lit(dates[-1]))
    quantiles = last.approxQuantile(scoring.SCORE, [0.0, 0.1, 0.5, 0.9, 0.99, 1.0], 0.0)
    mean = last.agg(F.avg(scoring.SCORE)).first()[0]
    context.progress(
        f"wrote {context.record.row_counts[config.tables.scores]:,} scores ({len(dates)} dates) to "
        f"{tables.catalog_name(config, config.tables.scores)} version {version}"
    )
    labels = ["min", "p10", "median", "p90", "p99", "max"]
    context.progress(
        f"scores on {dates[-1]}: mean {mean:.4f}; " + ", ".join(f"{n} {q:.4f}" for n, q in zip(labels, quantiles))
    )
    if threshold is not None:
        chosen = model.metadata["holdout"]["alert"]
        alerted = last.where(F.col(scoring.ALERT)).count()
        context.progress(
            f"alerts on {dates[-1]}: {alerted:,} {cli.plural(config.use_case.entity.name)} (score >= {threshold:.4f}, chosen in "
            f"training for precision >= {chosen['min_precision']:g}; holdout precision "
            f"{_share(chosen['precision'])}, recall {_share(chosen['recall'])})"
        )
    top = config.scoring.summary_top
    if top:
        context.progress(f"top {top} {cli.plural(config.use_case.entity.name)} on {dates[-1]}:")
        ties = [F.col(scoring.MODEL_SCORE).desc()] if scoring.MODEL_SCORE in last.columns else []
        for row in last.orderBy(F.col(scoring.SCORE).desc(), *ties, *keys).limit(top).collect():
            reasons = "; ".join(
                f"{r['feature']}={_value(r['value'])} ({r['contribution']:+.3f})" for r in (row[scoring.REASONS] or [])
            ) if scoring.REASONS in row.asDict() else ""
            entity = ", ".join(f"{key}={row[key]}" for key in keys)
            context.progress(f"  {entity}  score {row[scoring.SCORE]:.4f}  {reasons}")
    context.progress(f"tables under {tables.use_case_root(config)} (catalog database {tables.database(config)}); "
                     f"model {model.path} (metadata.json: holdout metrics, importance, SHAP summary)")
    for report in sorted(set(reports)):
        context.progress(f"validation reports (Data Docs): {report}")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _value(value: float | None) -> str:
    return "missing" if value is None else f"{value:g}"


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
