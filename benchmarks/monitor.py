"""The `monitor` job for one date against the predict-only `score` job on the same date.

    .venv/bin/python benchmarks/monitor.py [--entities 1000000] [--features 60] [--rounds 200]
        [--threads 2] [--lake /tmp/nightjar-monitor-bench]

A LightGBM model (`--rounds` trees, 63 leaves) is trained on the synthetic data of
`benchmarks/train_vs.py` and registered as champion with its reference statistics (the training
rows' bins) and its score reference (a holdout's scores), as `train` stores them. A scratch lake
gets a `features` table of `--entities` rows with `--features` features for one date; then
`./spark-submit.sh score` (no reason codes: predictions only) and `./spark-submit.sh monitor` run
on that date, each its own JVM as a scheduler starts them. Printed: each job's seconds (in the
job, from its `runs` row, and with JVM start-up), monitor's drift-and-quality step and the
ratio monitor / score. The issue's goal: monitor at most 0.5x the score job.

Realized performance reads the label window's events, which this synthetic lake has not; it is
measured apart, in this process: `models.monitoring.realized_classification` (AUC, PR-AUC, Brier,
precision/recall and the calibration table) over the scored rows with the synthetic labels.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from benchmarks._launcher import exit_now, job, last_run  # noqa: E402
from score_vs import DAY, SYNTHETIC_SUITES, USE_CASE  # noqa: E402
from train_vs import PARAMS, synthetic  # noqa: E402

from models import monitoring, registry  # noqa: E402
from models.training_set import LABEL  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.session import get_spark  # noqa: E402
from validation import drift  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lake", default="/tmp/nightjar-monitor-bench")
    args = parser.parse_args()

    lake = Path(args.lake)
    shutil.rmtree(lake, ignore_errors=True)
    train = synthetic(min(200_000, max(args.entities, 2_000)), args.features, seed=5)
    names = [c for c in train.columns if c.startswith("f")]
    booster = lgb.train({**PARAMS, "num_threads": args.threads}, lgb.Dataset(train[names], train[LABEL]),
                        num_boost_round=args.rounds)
    holdout = synthetic(max(args.entities // 10, 1_000), args.features, seed=7)
    held_scores = booster.predict(holdout[names].to_numpy(dtype=np.float64), num_threads=args.threads)
    rows = synthetic(args.entities, args.features, seed=6)
    labels = rows[LABEL].to_numpy()
    rows = rows[names]
    rows.insert(0, "customer_id", np.arange(args.entities, dtype=np.int64))
    print(f"model: {booster.num_trees()} trees, 63 leaves, {len(names)} features; {args.entities:,} rows; "
          f"{args.threads} threads", flush=True)

    settings = [f"lake.root={lake}", f"spark.master=local[{args.threads}]", "spark.driver_memory=8g"]
    config = load_config("local", settings)
    spark = get_spark(config)
    parquet = lake.parent / f"{lake.name}-rows.parquet"
    shutil.rmtree(parquet, ignore_errors=True)
    rows.assign(ds=np.datetime64(DAY, "D")).to_parquet(parquet, index=False, row_group_size=100_000)
    feature_set = "benchmark-features"
    tables.overwrite(spark.read.parquet(str(parquet)).selectExpr("*", "CAST(ds AS DATE) AS ds_").drop("ds")
                     .withColumnRenamed("ds_", "ds"), config, config.tables.features, partition_by="ds",
                     metadata={"feature_set": feature_set})
    # What `train` stores and `monitor` reads: the reference bins, the holdout's scores and AUC.
    metadata = {
        "task": "classification", "features": names, "feature_hash": registry.feature_hash(names),
        "feature_set": feature_set, "holdout": {"metrics": {"auc": 0.8}},
        "reference_statistics": drift.reference_statistics(train, names),
        "score_reference": drift.reference_statistics(pd.DataFrame({"score": held_scores}), ["score"]),
    }
    path = tables.write_model(config, config.model_name, 1, registry.model_files(booster, metadata))
    registry.append_changes(spark, config, config.model_name, [],
                            [registry.AliasChange(registry.CHAMPION, 1, registry.PROMOTE, "benchmark")],
                            "benchmark", "benchmark", None, registered=(1, path, "benchmark"))
    spark.stop()

    walls = {}
    walls["score"] = job("score", USE_CASE, [*settings, "scoring.reasons=0", *SYNTHETIC_SUITES], "--date", DAY)
    walls["monitor"] = job("monitor", USE_CASE, settings, "--date", DAY)
    runs = {name: last_run(str(lake), USE_CASE, name) for name in walls}
    for name, run in runs.items():
        print(f"{name} job: {run['duration_s']:.1f} s in the job ({walls[name]:.1f} s with JVM start-up); "
              + ", ".join(f"{k} {v:.1f} s" for k, v in run["timings"].items()))
    timings = runs["monitor"]["timings"]
    ratio = runs["monitor"]["duration_s"] / runs["score"]["duration_s"]
    print(f"monitor drift and quality: {timings.get('drift_quality', float('nan')):.1f} s; "
          f"estimated: {timings.get('estimated', float('nan')):.1f} s; monitor / score (in the jobs): {ratio:.2f}")

    # Realized, apart: the scored rows with their synthetic labels, in this process.
    spark = get_spark(config)
    scored = tables.read(spark, config, config.tables.scores).select("customer_id", "ds", "model_version", "score")
    truth = spark.createDataFrame(pd.DataFrame({"customer_id": np.arange(args.entities, dtype=np.int64),
                                                LABEL: labels.astype(np.int32)}))
    labelled = scored.join(truth, "customer_id").cache()
    labelled.count()
    began = time.perf_counter()
    realized = monitoring.realized_classification(labelled, 0.5, {1: None}, 10)
    realized_s = time.perf_counter() - began
    auc = next(m.value for m in realized if m.metric == "auc")
    print(f"realized metrics over {args.entities:,} labelled rows (labels already joined): {realized_s:.1f} s; AUC {auc:.4f}")
    print(json.dumps({"job_s": {k: v["duration_s"] for k, v in runs.items()}, "wall_s": walls,
                      "monitor_timings": timings, "ratio": ratio, "realized_s": realized_s}, default=str))
    spark.stop()
    return 0


if __name__ == "__main__":
    exit_now(main())
