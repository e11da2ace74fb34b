"""Train a model on Dask, register it, and promote it only when it beats the champion.

    ./spark-submit.sh train --date T              # the feature dates whose label horizon ended by T
    ./spark-submit.sh train --start S --end E     # exactly these feature dates (every stride-th)
        [--force]                                 # retrain although these inputs were trained on
    ./spark-submit.sh train --promote VERSION --reason "why"   # make a version champion
    ./spark-submit.sh train --rollback --reason "why"          # the previous champion again

Spark assembles the training snapshot (features joined with labels that look past each date)
and writes it as a Delta table; Dask reads it, runs the hyperparameter trials in parallel on
rolling-origin time folds with early stopping, and fits the best configuration with
`lightgbm.dask`. The model is evaluated on the latest dates (the holdout), registered, and
becomes champion only when it beats the current champion on that same holdout.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any

import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import store
from features.definitions import HORIZON, expand, require_event_times
from models import alerts, calibration, distributed, evaluate, folds, intervals, promotion, registry, search
from models.config import Metric, Task, TrainingConfig, selection_metric
from models.ensemble import Ensemble
from models.training_set import (
    DATE, LABEL, REFERENCE, WEIGHT, label_dates, label_events, ordered, snapshot_rows,
)
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.dask_cluster import dask_client
from nightjar.errors import ConfigError, MissingInputError, UsageError
from validation import drift

JOB = "train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--promote", type=int, metavar="VERSION", help="make VERSION the champion")
    action.add_argument("--rollback", action="store_true", help="make the previous champion champion again")
    parser.add_argument("--reason", help="why the alias changes (recorded in the registry)")


def training_dates(context: cli.JobContext) -> list:
    """`--date T`: the configured days ending at T - horizon (a forecast's last); `--start/--end`: those dates, every stride-th."""
    training = context.config.training
    if context.args.date is not None:
        return label_dates(context.dates[0], context.config.use_case.label_reach, training.days,
                           training.date_stride_days)
    newest_first = sorted(context.dates, reverse=True)[:: training.date_stride_days]
    return sorted(newest_first)


def train(context: cli.JobContext) -> None:
    config, spark, record = context.config, context.spark, context.record
    if not context.dates:
        raise UsageError("a date is required: --date T (or --start/--end for explicit feature dates)")
    label, training = config.use_case.label, config.training
    task = label.task
    if task == "regression" and training.majority_sample_rate < 1:
        raise ConfigError("training.majority_sample_rate: down-sampling applies to classification labels only")
    if task == "classification" and training.intervals:
        raise ConfigError("training.intervals: prediction intervals apply to regression labels only")
    keys = config.use_case.entity.keys
    name = config.model_name
    dates = training_dates(context)
    if task != "classification" and (training.calibration or training.ranking):
        raise ConfigError("training.calibration and training.ranking apply to classification labels only")
    plan = folds.plan(dates, training.folds, training.holdout_days, training.gap_days,
                      training.calibration.days if training.calibration else 0)

    # Inputs: the feature partitions of the dates, and the label source through the last horizon.
    feature_set = expand(config)
    names = search.fitted_features(training, feature_set.names)
    search.require_offset_feature(training, names)
    store.require_feature_set(config, feature_set.fingerprint,
                              "recompute the features (features --rebuild) before training")
    features_frame = tables.read(spark, config, config.tables.features).where(F.col(DATE).isin(dates))
    tables.require_partitions(features_frame, config.tables.features, DATE, dates)
    missing_features = [n for n in feature_set.names if n not in features_frame.columns]
    if missing_features:
        raise ConfigError(f"table {config.tables.features!r} lacks configured features: {', '.join(missing_features)}")
    source = config.use_case.sources[label.source]
    events = tables.read(spark, config, source.table)
    reach = config.use_case.label_reach
    label_days = cli.date_range(dates[0] + timedelta(days=1), dates[-1] + timedelta(days=reach.days_spanned))
    tables.require_source_partitions(config, events, source, label_days)
    for column in [label.column, *(label.where or {})]:
        if column and column not in events.columns:
            raise ConfigError(f"use_case.label: table {source.table!r} has no column {column!r}")
    if label.horizon.whole_days is None:
        require_event_times(events.schema, label.source, source.timestamp, "use_case.label.horizon",
                            f"a {label.horizon} horizon")
    record.input_versions = {
        config.tables.features: tables.current_version(config, config.tables.features) or 0,
        source.table: tables.current_version(config, source.table) or 0,
    }
    trained_on = promotion.training_fingerprint(config, dates, record.input_versions, feature_set.fingerprint,
                                                record.code_version)
    rows = registry.history(config, name)
    existing = registry.find_by_fingerprint(rows, trained_on)
    if existing is not None and not context.args.force:
        record.model_version = str(existing)
        context.progress(f"these inputs were already trained as {name} version {existing}; --force retrains")
        return

    context.progress(
        f"training {name} ({task}, label {label.name}) on {len(dates)} dates {dates[0]}..{dates[-1]}: "
        f"{len(plan.folds)} folds, holdout {plan.holdout[0]}..{plan.holdout[-1]}"
    )
    # The cluster first: an unreachable scheduler (exit 5, worth retrying) must leave every table as it was.
    with dask_client(config) as client:
        with context.timed("snapshot"):
            row_keys = feature_set.row_keys
            reference = None
            if training.reference and tables.exists(spark, config, training.reference.table):
                reference = tables.read(spark, config, training.reference.table)
            # The holdout and the calibration dates are not down-sampled: both measure the population as it is.
            snapshot = snapshot_rows(
                features_frame, events, source, label, feature_set, training, dates,
                [*plan.calibration, *plan.holdout], reference,
            )
            # Sorted rows in files numbered in order: the same inputs give the same snapshot files.
            snapshot_version = tables.overwrite(
                snapshot.orderBy(DATE, *row_keys), config, config.tables.training,
                metadata={"run_id": record.run_id, "training_fingerprint": trained_on},
            )
        record.output_versions[config.tables.training] = snapshot_version
        frame = tables.read_snapshot(config, config.tables.training, snapshot_version)
        frame = ordered(frame, row_keys)
        record.row_counts = {"training_rows": len(frame), "holdout_rows": int(frame[DATE].isin(plan.holdout).sum())}
        fit_rows = frame[frame[DATE].isin(plan.fit)]
        holdout = frame[frame[DATE].isin(plan.holdout)].reset_index(drop=True)
        _require_both_classes(task, fit_rows, holdout)

        threads = config.dask.threads_per_worker
        with context.timed("search"):
            result = search.run_search(client, fit_rows, names, plan.folds, training, task, threads)
        best = result.best
        out_of_fold = search.out_of_fold(fit_rows, plan.folds, result.predictions)
        context.progress(
            f"search: {sum(t.complete for t in result.trials)}/{len(result.trials)} trials in {result.seconds:.1f}s; "
            f"best trial {best.index}: {result.metric} {best.score:.5f} over the folds at {best.rounds} rounds"
            + (f"; trials {result.cancelled} cancelled at training.search.time_budget_s" if result.cancelled else "")
        )
        params = {**search.base_params(training, task, threads, training.seed), **best.params}
        fs, files = tables.snapshot_files(config, config.tables.training, snapshot_version)
        data = dd.read_parquet(sorted(files), filesystem=fs, columns=[*names, LABEL, WEIGHT],
                               filters=[(DATE, "in", list(plan.fit))])
        data = data.astype({column: "float64" for column in [*names, LABEL, WEIGHT]})
        with context.timed("distributed_fit"):
            booster = distributed.fit_model(client, data, names, params, best.rounds, task, training)

    with context.timed("evaluate"):
        report = evaluate.report(task, booster, holdout, names, LABEL, training.top_k_percent)
        selected = selection_metric(training, task)
        metric = selected.name
        score = report["metrics"][metric]
        if REFERENCE in holdout.columns and holdout[REFERENCE].notna().any():
            known = holdout[holdout[REFERENCE].notna()]
            report["reference"] = {
                "table": training.reference.table if training.reference else None,
                "rows": len(known),
                "metrics": evaluate.metrics(task, known[LABEL].to_numpy(), known[REFERENCE].to_numpy(), training.top_k_percent),
            }
        if training.ensemble is not None:
            assert isinstance(booster, Ensemble)
            report["ensemble"] = ensemble_report(task, selected, booster, holdout, names, training.ensemble.members,
                                                 score)
        if training.intervals:
            # Calibrated on the folds' out-of-fold predictions, measured on the holdout (seen by neither).
            group = (lambda rows: rows[HORIZON].to_numpy()) if feature_set.horizon_days else (lambda rows: None)
            calibrated = intervals.calibrate(out_of_fold[LABEL].to_numpy(), out_of_fold[search.PREDICTION].to_numpy(),
                                             group(out_of_fold), training.intervals)
            report["intervals"] = {
                **calibrated, "method": "split conformal, residuals scaled by sqrt(prediction + 1), out-of-fold",
                "holdout_coverage": intervals.coverage(holdout[LABEL].to_numpy(), evaluate.predict(booster, holdout, names),
                                                       group(holdout), calibrated),
            }
        if feature_set.horizon_days:
            # Every row before the holdout: the seasonal-naive forecast reads the sales of the gap's days too.
            report["forecast"] = evaluate.forecast_metrics(
                holdout, evaluate.predict(booster, holdout, names), frame[frame[DATE] < min(plan.holdout)], keys, LABEL,
                REFERENCE if REFERENCE in holdout.columns else None,
            )
        if config.scoring.alert is not None:
            report["alert"] = alert_report(config, booster, names, holdout, list(plan.holdout), out_of_fold, events)
        if training.calibration is not None:
            report["calibrated"] = calibrated_report(
                training, booster, names, frame[frame[DATE].isin(plan.calibration)], holdout)

    # An ensemble's members, their parameters and holdout metrics go to the metadata's `ensemble`.
    ensemble = report.pop("ensemble", None)
    if ensemble is not None:
        context.progress(ensemble_line(ensemble, metric))
    metadata = registry.model_metadata(
        config=config, task=task, features=names, feature_set=feature_set.fingerprint, params=params,
        rounds=best.rounds, plan=plan, holdout_rows=len(holdout), report=report, search=result,
        training_data={
            "table": config.tables.training, "table_version": snapshot_version,
            "input_versions": record.input_versions, "dates": [d.isoformat() for d in dates],
            "fit_dates": [plan.fit[0].isoformat(), plan.fit[-1].isoformat()], "rows": len(frame),
            "fit_rows": len(fit_rows), "majority_sample_rate": training.majority_sample_rate,
            "weighted": training.majority_sample_rate < 1,
        },
        fingerprint=trained_on,
        # Weighted: with a down-sampled majority the rows alone describe another population.
        reference_statistics=drift.reference_statistics(fit_rows, names, weights=fit_rows[WEIGHT]),
        logical_date=context.dates[-1], run_id=record.run_id, code_version=record.code_version,
    )
    if ensemble is not None:
        metadata["ensemble"] = ensemble
    if training.offset is not None:
        metadata["offset"] = training.offset.model_dump()
    calibrated = report.pop("calibrated", None)
    if calibrated is not None:
        # The predictor scoring applies (`models.scoring`), and what it measured on the holdout.
        metadata["calibration"] = calibrated.pop("predictor")
        metadata["holdout"]["calibrated"] = calibrated
    # The holdout's scores as the scoring job writes them (calibrated when it calibrates): what
    # `monitor` compares each date's score distribution with.
    metadata["score_reference"] = score_reference(booster, holdout, names, metadata.get("calibration"))
    with context.timed("register"):
        registered = promotion.register(
            spark, config, booster, metadata,
            lambda history: promotion.challenge(config, history, task, holdout, names, score),
            trained_on, record.user, record.run_id, context.dates[-1],
        )
    record.model_version = str(registered.version)
    record.output_versions[config.tables.registry] = registered.registry_version
    change = registered.change
    record.checks.append({"holdout": report["metrics"], "alias": change.alias, "reason": change.reason})
    reference_note = ""
    if "reference" in report:
        reference_note = f" (best achievable, from {report['reference']['table']}: {report['reference']['metrics'][metric]:.4f})"
    context.progress(f"holdout {metric} {score:.4f}{reference_note} on {len(holdout):,} rows")
    if "intervals" in report:
        covered = report["intervals"]["holdout_coverage"]["overall"]
        context.progress("holdout interval coverage: " + ", ".join(
            f"{float(level):.0%} interval {share:.1%}" for level, share in covered.items()))
    if "forecast" in report:
        overall = report["forecast"]["overall"]
        context.progress("holdout forecast errors on {:,} rows (RMSE, WAPE, RMSSE): ".format(
            report["forecast"]["compared_rows"]) + "; ".join(
            f"{name} {e.get('rmse', float('nan')):.4f}, {e.get('wape', float('nan')):.4f}, {e.get('rmsse', float('nan')):.4f}"
            for name, e in overall.items()))
    if "alert" in report:
        for line in alert_lines(report["alert"], config.use_case.entity.name):
            context.progress(line)
    if calibrated is not None:
        for line in calibrated_lines(calibrated):
            context.progress(line)
    context.progress(f"registered {name} version {registered.version} as {change.alias}: {change.reason}  "
                     f"[{registered.path}]")


LOGIT_STEP = 0.01


def score_reference(model: Any, holdout: pd.DataFrame, names: list[str],
                    calibrated: dict[str, Any] | None) -> dict[str, Any]:
    """The reference statistics (`validation.drift`, one feature named `score`) of the holdout's
    scores: the model's predictions, through the Venn-Abers predictor when there is one."""
    predicted = evaluate.predict(model, holdout, names)
    if calibrated is not None:
        predicted = calibration.VennAbers.from_dict(calibrated).columns(predicted)["score"]
    return drift.reference_statistics(pd.DataFrame({"score": predicted}), ["score"])


def calibrated_report(
    training: TrainingConfig, model: Any, names: list[str], calibration_rows: pd.DataFrame, holdout: pd.DataFrame,
) -> dict[str, Any]:
    """The Venn-Abers predictor fitted on the calibration dates, and on the holdout: the merged
    probability's metrics, the calibration of both bounds, the class-conditional conformal sets'
    coverage per class, and with `training.ranking` what investigators read.

    Returns:
        The report, with the predictor's JSON form under "predictor".
    """
    assert training.calibration is not None
    labels = calibration_rows[LABEL].to_numpy()
    if len(set(labels.tolist())) < 2:
        raise MissingInputError(f"training.calibration: the {training.calibration.days} calibration dates hold "
                                f"{'no rows' if not len(labels) else 'one class only'}: more dates or more data")
    raw = evaluate.predict(model, calibration_rows, names)
    # On a logit grid of 0.01 (1% in the odds): the stored steps stay small, ranks barely merge.
    predictor = calibration.VennAbers.fit(raw, labels, logit_step=LOGIT_STEP)
    # On the model's own probability: the calibrated score ties, and ties make the sets conservative.
    conformal = calibration.MondrianConformal.fit(raw, labels)
    alpha = training.calibration.conformal_alpha
    held = holdout[LABEL].to_numpy()
    held_raw = evaluate.predict(model, holdout, names)
    p0, p1 = predictor.predict_bounds(held_raw)
    merged = calibration.merge(p0, p1)
    report: dict[str, Any] = {
        "predictor": predictor.to_dict(),
        "method": "inductive Venn-Abers on the calibration dates; score = p1 / (1 - p0 + p1), "
                  "score_low = p0, score_high = p1",
        "calibration_dates": [str(d) for d in sorted(set(calibration_rows[DATE]))],
        "calibration_rows": len(calibration_rows),
        "metrics": evaluate.metrics("classification", held, merged, training.top_k_percent),
        "expected_calibration_error": calibration.expected_calibration_error(merged, held),
        "bounds": calibration.bounds_calibration(p0, p1, held),
        "mean_width": float(np.mean(p1 - p0)),
        "conformal": {"alpha": alpha, "sets": conformal.at(alpha).to_dict(),
                      "coverage": calibration.conformal_coverage(
                          raw, labels, calibration_rows[DATE].to_numpy(), held_raw, held, holdout[DATE].to_numpy(),
                          alpha, training.calibration.bootstrap, training.seed),
                      "interval": f"bootstrap over the calibration and holdout dates, {training.calibration.bootstrap} resamples"},
    }
    ranking = training.ranking
    if ranking is not None:
        # In the order investigators work: by score, ties by the model's own score, which is the
        # model's order (calibration never reverses it); the calibrated score's PR-AUC, with its ties, beside it.
        ordered_by = held_raw
        reference = holdout[REFERENCE].to_numpy() if REFERENCE in holdout.columns and holdout[REFERENCE].notna().all() else None
        value = holdout[ranking.value].to_numpy() if ranking.value else None
        report["ranking"] = {
            "pr_auc": calibration.pr_auc_bootstrap(held, ordered_by, reference, ranking.bootstrap, training.seed),
            "pr_auc_of_calibrated_score": calibration.pr_auc_bootstrap(held, merged, None, 0)["pr_auc"]["value"],
            "top_per_day": calibration.precision_at_top_k_per_day(held, ordered_by, holdout[DATE].to_numpy(),
                                                                  ranking.top_per_day),
            "at_false_positive_rate": {"rate": ranking.false_positive_rate,
                                       **calibration.recall_at_fpr(held, ordered_by, ranking.false_positive_rate, value)},
        }
    return report


def calibrated_lines(report: dict[str, Any]) -> list[str]:
    """The calibrated holdout in a few lines: bounds, conformal coverage per class, ranking."""
    lines = [f"calibrated on {report['calibration_rows']:,} rows of {len(report['calibration_dates'])} dates: "
             f"holdout expected calibration error {report['expected_calibration_error']:.5f}, "
             f"mean interval width {report['mean_width']:.5f}"]
    def covered(c: dict[str, Any]) -> str:
        if c["coverage"] is None:
            return f"class {c['label']}: no holdout rows"
        interval = "" if c["coverage_low"] is None else f"95% interval {c['coverage_low']:.3f}..{c['coverage_high']:.3f}, "
        return f"class {c['label']} coverage {c['coverage']:.3f} ({interval}n {c['n']:,})"

    lines.append(f"conformal sets at {1 - report['conformal']['alpha']:.0%}, the interval over days: "
                 + "; ".join(covered(c) for c in report["conformal"]["coverage"]))
    ranking = report.get("ranking")
    if ranking:
        pr = ranking["pr_auc"]
        line = f"PR-AUC {pr['pr_auc']['value']:.4f} (95% {pr['pr_auc']['low']:.4f}..{pr['pr_auc']['high']:.4f})"
        if "ratio" in pr:
            line += (f", best achievable {pr['reference']['value']:.4f}, ratio {pr['ratio']['value']:.3f} "
                     f"(95% {pr['ratio']['low']:.3f}..{pr['ratio']['high']:.3f})")
        at = ranking["at_false_positive_rate"]
        line += (f"; precision of the top {ranking['top_per_day']['by_day'][0]['k'] if ranking['top_per_day']['by_day'] else 0}"
                 f" per day {ranking['top_per_day']['mean']:.3f}; at a {at['rate']:.1%} false-positive rate recall "
                 f"{at['recall']:.3f}" + (f", amount caught {at['amount_caught_share']:.3f}"
                                          if at.get("amount_caught_share") is not None else ""))
        lines.append(line)
    return lines


def ensemble_report(
    task: Task, selected: Metric, model: Ensemble, holdout: pd.DataFrame, names: list[str],
    overrides: list[dict[str, Any]], score: float,
) -> dict[str, Any]:
    """Each member's holdout metrics, and whether the ensemble beats the best member on the selection metric."""
    members = [
        {"params": dict(member_overrides),
         "holdout": evaluate.metrics(task, holdout[LABEL].to_numpy(), evaluate.predict(model.member(index), holdout, names), [])}
        for index, member_overrides in enumerate(overrides)
    ]
    scores = [member["holdout"][selected.name] for member in members]
    best = min(range(len(scores)), key=lambda index: (selected.best_first(scores[index]), index))
    return {"members": members, "best_member": best, "metric": selected.name, "ensemble": score,
            "beats_best_member": selected.beats(score, scores[best])}


def ensemble_line(report: dict[str, Any], metric: str) -> str:
    members = ", ".join(f"{m['holdout'][metric]:.4f}" for m in report["members"])
    verdict = "beats" if report["beats_best_member"] else "does not beat"
    return (f"ensemble of {len(report['members'])}: holdout {metric} {report['ensemble']:.4f}, members {members}; "
            f"it {verdict} its best member (member {report['best_member']})")


def alert_report(
    config: Config, booster: lgb.Booster, names: list[str], holdout: pd.DataFrame, holdout_dates: list[date],
    out_of_fold: pd.DataFrame, events: DataFrame,
) -> dict[str, Any]:
    """The alert threshold chosen on the folds' out-of-fold predictions, and what it does on the holdout.

    The same figures for the reference (the true probabilities), at its own threshold chosen
    the same way on the folds' rows where it is known; where it is known on no fold row, on the
    holdout rows (which flatters it a little: it is the best achievable anyway).
    """
    alert, label, training = config.scoring.alert, config.use_case.label, config.training
    keys = config.use_case.entity.keys
    source = config.use_case.sources[label.source]
    # "No event in the horizon" labels have no event instant to be early for.
    happened = None
    if label.kind == "any_event":
        happened = label_events(events, source, label, keys, holdout_dates).toPandas()
    threshold = alerts.choose_threshold(out_of_fold[LABEL].to_numpy(), out_of_fold[search.PREDICTION].to_numpy(),
                                        alert.min_precision, out_of_fold[WEIGHT].to_numpy())
    scored = holdout.assign(**{search.PREDICTION: evaluate.predict(booster, holdout, names)})
    result: dict[str, Any] = {
        "min_precision": alert.min_precision, "lead_time": str(alert.lead_time),
        **alerts.report(threshold, scored, keys, LABEL, search.PREDICTION, happened, label.horizon, alert.lead_time,
                        training.seed),
    }
    known = holdout[holdout[REFERENCE].notna()] if REFERENCE in holdout.columns else holdout.iloc[:0]
    if len(known):
        on_folds = out_of_fold[out_of_fold[REFERENCE].notna()] if REFERENCE in out_of_fold.columns else known.iloc[:0]
        chosen_from = on_folds if len(on_folds) else known
        reference_threshold = alerts.choose_threshold(chosen_from[LABEL].to_numpy(), chosen_from[REFERENCE].to_numpy(),
                                                      alert.min_precision, chosen_from[WEIGHT].to_numpy())
        result["reference"] = {
            "table": training.reference.table if training.reference else None,
            "threshold_dates": "folds" if len(on_folds) else "holdout",
            **alerts.report(reference_threshold, known, keys, LABEL, REFERENCE, happened, label.horizon,
                            alert.lead_time, training.seed),
        }
    return result


def alert_lines(alert: dict[str, Any], entity: str) -> list[str]:
    """The alert report in two lines: the model's figures at its threshold, then the PR-AUCs and the reference's."""
    chosen = (f"precision >= {alert['min_precision']:g} on the folds" if alert["rule"] == alerts.MIN_PRECISION
              else f"best F1 on the folds: no threshold reached precision {alert['min_precision']:g}")
    low, high = alert["pr_auc_95"]
    lines = [
        f"alert at score >= {alert['threshold']:.4f} ({chosen}): holdout precision {_rate(alert['precision'])}, "
        f"recall {_rate(alert['recall'])}{_early(alert, alert['lead_time'])}, "
        f"{alert['false_alarms_per_entity_30d']:.3f} false alarms per {entity} per 30 days; "
        f"accuracy {alert['accuracy']:.4f} (never alerting: {alert['always_negative_accuracy']:.4f})",
        f"PR-AUC {alert['pr_auc']:.4f} (95% {low:.4f}-{high:.4f})",
    ]
    reference = alert.get("reference")
    if reference:
        low, high = reference["pr_auc_95"]
        lines[-1] += (
            f"; best achievable ({reference['table']}): PR-AUC {reference['pr_auc']:.4f} (95% {low:.4f}-{high:.4f}), "
            f"at score >= {reference['threshold']:.4f} precision {_rate(reference['precision'])}, recall "
            f"{_rate(reference['recall'])}{_early(reference, alert['lead_time'])}, "
            f"{reference['false_alarms_per_entity_30d']:.3f} false alarms per {entity} per 30 days"
        )
    return lines


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _early(figures: dict[str, Any], lead_time: str) -> str:
    early = figures["early"]
    if early is None:
        return ""
    share = "n/a" if early["share"] is None else f"{early['share']:.0%}"
    return f", {share} of {early['events']:,} events alerted >= {lead_time} ahead"


def _require_both_classes(task: str, fit_rows: pd.DataFrame, holdout: pd.DataFrame) -> None:
    if task != "classification":
        return
    for part, rows in (("training", fit_rows), ("holdout", holdout)):
        classes = sorted(np.unique(rows[LABEL]).tolist())
        if classes != [0, 1]:
            raise ConfigError(f"the {part} dates hold labels {classes}: both classes are needed to train and evaluate")


def promote(context: cli.JobContext) -> None:
    """Make `--promote VERSION` the champion after verifying its files."""
    config = context.config
    name, version = config.model_name, context.args.promote
    registry.load(config, name, version)  # a missing or corrupt version is refused, exit 4
    rows = registry.history(config, name)
    if version not in {r["version"] for r in rows if r["action"] == registry.REGISTER}:
        raise MissingInputError(f"model {name} version {version} is not in the registry")
    if registry.champion_version(rows) == version:
        context.progress(f"{name} version {version} is already the champion")
        return
    reason = context.args.reason or "promoted by hand"
    _set_champion(context, version, registry.PROMOTE, reason)
    context.progress(f"{name} version {version} is now the champion: {reason}")


def _set_champion(context: cli.JobContext, version: int, action: str, reason: str) -> None:
    record = context.record
    promotion.set_champion(context.spark, context.config, version, action, reason, record.user, record.run_id,
                           context.dates[-1] if context.dates else None)
    record.model_version = str(version)


def rollback(context: cli.JobContext) -> None:
    """Make the champion before the current one champion again."""
    config = context.config
    name = config.model_name
    rows = registry.history(config, name)
    current, target = registry.champion_version(rows), registry.rollback_target(rows)
    if target is None:
        raise MissingInputError(f"model {name} has no earlier champion to roll back to (champion: {current})")
    registry.load(config, name, target)
    reason = context.args.reason or "rolled back by hand"
    _set_champion(context, target, registry.ROLLBACK, reason)
    context.progress(f"{name}: champion rolled back from version {current} to {target}: {reason}")


def run(context: cli.JobContext) -> None:
    if context.args.promote is not None:
        promote(context)
    elif context.args.rollback:
        rollback(context)
    else:
        train(context)


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="optional")
