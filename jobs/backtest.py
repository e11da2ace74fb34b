"""Replay retraining on history: is retraining every week worth it?

    ./spark-submit.sh backtest --use-case demand --start 2026-01-05 --end 2026-03-01 --every 7d

At each origin O (the start, then every `--every` days up to the end) it trains as `train
--date O` would (the same dates, folds, search and ensemble; only what was known by O's cutoff)
and forecasts O's rows: each entity's next `horizon_days` target dates for a forecast, or O's
labels otherwise. The same rows are also predicted by the model trained once at the first
origin ("frozen"), so the two strategies meet the same data, drift included. Forecasts are
measured like the training holdout (RMSE, MAE, WAPE, RMSSE, overall and per horizon, beside
the seasonal-naive forecast and the true mean); other tasks with `evaluate.metrics`.

It writes the `backtest` table, one row per (origin, strategy, horizon, metric), replaced whole
by each run, and nothing else: no registry entry, no scores, no training snapshot.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from features import store
from features.definitions import HORIZON, expand
from models import distributed, evaluate, folds, search
from models.config import selection_metric
from models.ensemble import Model
from models.training_set import DATE, LABEL, REFERENCE, WEIGHT, label_dates, ordered, snapshot_rows
from nightjar import cli, tables
from nightjar.dask_cluster import dask_client
from nightjar.durations import Duration
from nightjar.errors import UsageError

JOB = "backtest"
RETRAINED, FROZEN = "retrained", "frozen"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", default="7d", help="days between origins (whole days: 7d, 7 or 168h)")


def origins(start: date, end: date, every: str) -> list[date]:
    """The origins from `start` every `every` (whole days) up to `end`; UsageError otherwise."""
    try:
        step = Duration.parse(every).whole_days
    except ValueError as error:
        raise UsageError(f"--every: {error}") from None
    if step is None:
        raise UsageError(f"--every must be whole days, not {every}")
    return [start + timedelta(days=n) for n in range(0, (end - start).days + 1, step)]


def rows_of(origin: date, strategy: str, trained_at: date, task: str, found: dict[str, Any]) -> list[dict[str, Any]]:
    """The report rows of one strategy at one origin: one per (horizon, metric)."""
    rows = []
    for horizon, metrics in found.items():
        for metric, value in metrics.items():
            rows.append({"origin": origin, "strategy": strategy, "trained_at": trained_at, "task": task,
                         "horizon": horizon, "metric": metric, "value": float(value)})
    return rows


def origin_metrics(
    task: str, forecast: bool, target: pd.DataFrame, predicted: np.ndarray, history: pd.DataFrame, keys: list[str],
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict[str, float]]]]:
    """(the model's metrics, the baselines' metrics), each {predictor: {horizon or "all": {metric: value}}}."""
    if not forecast:
        return {"model": {"all": evaluate.metrics(task, target[LABEL].to_numpy(), predicted, [])}}, {}
    found = evaluate.forecast_metrics(target, predicted, history, keys, LABEL,
                                      REFERENCE if REFERENCE in target.columns else None)
    by_predictor: dict[str, dict[str, dict[str, float]]] = {}
    for name, metrics in found["overall"].items():
        by_predictor.setdefault(name, {})["all"] = metrics
    for horizon, predictors in found["by_horizon"].items():
        for name, metrics in predictors.items():
            by_predictor[name][horizon] = metrics
    model = {"model": by_predictor.pop("model")}
    return model, by_predictor


def run(context: cli.JobContext) -> None:
    config, spark, args = context.config, context.spark, context.args
    if args.start is None or args.end is None:
        raise UsageError("backtest replays a range: --start D1 --end D2 (and --every, default 7d)")
    training, label = config.training, config.use_case.label
    task = label.task
    points = origins(context.dates[0], context.dates[-1], args.every)
    feature_set = expand(config)
    names = search.fitted_features(training, feature_set.names)
    search.require_offset_feature(training, names)
    store.require_feature_set(config, feature_set.fingerprint,
                              "recompute the features (features --rebuild) before a backtest")
    keys = list(feature_set.keys)
    forecast = feature_set.horizon_days is not None
    # Each origin's line shows the metric models are selected on; a forecast's, its scaled error.
    headline = "rmsse" if forecast else selection_metric(training, task).name
    source = config.use_case.sources[label.source]
    events = tables.read(spark, config, source.table)
    features = tables.read(spark, config, config.tables.features)
    reference = None
    if training.reference and tables.exists(spark, config, training.reference.table):
        reference = tables.read(spark, config, training.reference.table)
    reach = config.use_case.label_reach
    context.record.input_versions = {
        config.tables.features: tables.current_version(config, config.tables.features) or 0,
        source.table: tables.current_version(config, source.table) or 0,
    }
    context.progress(f"backtest of {config.model_name}: {len(points)} origins {points[0]}..{points[-1]} "
                     f"every {args.every}, against the model trained at {points[0]}")
    report: list[dict[str, Any]] = []
    frozen: Model | None = None
    with dask_client(config) as client:
        for origin in points:
            dates = label_dates(origin, reach, training.days, training.date_stride_days)
            plan = folds.plan(dates, training.folds, training.holdout_days, training.gap_days)
            # What training at the origin reads, and the origin's own rows with the labels that came later.
            tables.require_partitions(features.where(F.col(DATE).isin([*dates, origin])), config.tables.features,
                                      DATE, [*dates, origin])
            label_days = cli.date_range(dates[0] + timedelta(days=1), origin + timedelta(days=reach.days_spanned))
            tables.require_source_partitions(config, events, source, label_days)
            with context.timed(f"train_{origin}"):
                history = ordered(snapshot_rows(features, events, source, label, feature_set, training, dates,
                                                 list(plan.holdout), reference).toPandas(), feature_set.row_keys)
                fit_rows = history[history[DATE].isin(plan.fit)]
                result = search.run_search(client, fit_rows, names, plan.folds, training, task,
                                           config.dask.threads_per_worker)
                params = {**search.base_params(training, task, config.dask.threads_per_worker, training.seed),
                          **result.best.params}
                data = dd.from_pandas(fit_rows[[*names, LABEL, WEIGHT]].astype("float64"), npartitions=1)
                model = distributed.fit_model(client, data, names, params, result.best.rounds, task, training)
            if frozen is None:
                frozen = model
            target = ordered(snapshot_rows(features, events, source, label, feature_set, training, [origin], [origin],
                                            reference).toPandas(), feature_set.row_keys)
            if forecast:
                # The seasonal-naive forecast reads the last week's sales, known by the origin's cutoff
                # but not yet the labels of training dates (those end a whole reach earlier).
                week = [origin - timedelta(days=n) for n in range(7, 0, -1)]
                recent = snapshot_rows(features, events, source, label, feature_set, training, week, week, None)
                history = pd.concat([history, recent.where(F.col(HORIZON) == 1).toPandas()], ignore_index=True)
            for strategy, chosen, trained_at in ((RETRAINED, model, origin), (FROZEN, frozen, points[0])):
                found, baselines = origin_metrics(task, forecast, target, evaluate.predict(chosen, target, names),
                                                  history, keys)
                report += rows_of(origin, strategy, trained_at, task, found["model"])
                if strategy == RETRAINED:
                    for name, metrics in baselines.items():
                        report += rows_of(origin, name, origin, task, metrics)
            context.progress(_origin_line(origin, report, headline))
    frame = spark.createDataFrame(pd.DataFrame(report), schema=(
        "origin date, strategy string, trained_at date, task string, horizon string, metric string, value double"))
    version = tables.overwrite(frame.orderBy("origin", "strategy", "horizon", "metric"), config, config.tables.backtest,
                               metadata={"run_id": context.record.run_id, "every": args.every,
                                         "origins": [d.isoformat() for d in points]})
    context.record.output_versions[config.tables.backtest] = version
    context.record.row_counts = {config.tables.backtest: len(report)}
    context.progress(f"wrote {len(report):,} rows to {tables.catalog_name(config, config.tables.backtest)} "
                     f"version {version}")


def _origin_line(origin: date, report: list[dict[str, Any]], metric: str) -> str:
    values = {row["strategy"]: row["value"] for row in report
              if row["origin"] == origin and row["horizon"] == "all" and row["metric"] == metric}
    shown = ", ".join(f"{strategy} {value:.4f}" for strategy, value in sorted(values.items()))
    return f"origin {origin}: {metric} {shown}"


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
