"""Scoring throughput inside Spark vs LightGBM's own `Booster.predict`, and the whole score job.

    .venv/bin/python benchmarks/score_vs.py [--entities 1000000] [--reason-rows 50000] [--features 60]
        [--rounds 200] [--threads 2] [--lake /tmp/nightjar-score-bench] [--job-reasons 0]

A LightGBM model (`--rounds` trees, 63 leaves) is trained on the synthetic data of
`benchmarks/train_vs.py`; then `--entities` rows with `--features` features are scored
1. by `Booster.predict` on one float64 NumPy matrix in this process with `--threads` threads,
2. by `models.scoring.score` in Spark `local[--threads]` (one LightGBM thread per task) from
   Parquet, written to Spark's `noop` sink so only the scoring is timed,
each without reason codes on all rows, and with reason codes (`pred_contrib`, top 3) on the
first `--reason-rows` rows: TreeSHAP costs far more per row than a prediction. Then a scratch
lake gets a `features` table of those rows for one date and the model registered as champion,
and `./spark-submit.sh score` runs on it with `scoring.reasons=--job-reasons`; its timings are
read back from the `runs` table.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from benchmarks._launcher import job, last_run  # noqa: E402
from train_vs import PARAMS, synthetic  # noqa: E402

from models import registry, scoring  # noqa: E402
from models.training_set import LABEL  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.session import get_spark  # noqa: E402

USE_CASE = "churn"
DAY = "2026-03-31"
# The checks `score` runs, for this lake: churn's suites name its own features (`*_count_*`,
# `online_share_30d`) and count its customers, which the synthetic table and lake do not have.
SYNTHETIC_SUITES = [
    'validation.suites.features.features=[{expect: unique, key: [customer_id]}, {expect: finite, columns: ["*"]}]',
    "validation.suites.scores.scores=[{expect: not_null, columns: [score]}, "
    "{expect: between, columns: [score], min: 0, max: 1}, {expect: unique, key: [customer_id]}]",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--reason-rows", type=int, default=50_000)
    parser.add_argument("--job-reasons", type=int, default=0)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lake", default="/tmp/nightjar-score-bench")
    args = parser.parse_args()

    lake = Path(args.lake)
    shutil.rmtree(lake, ignore_errors=True)
    train = synthetic(200_000, args.features, seed=5)
    names = [c for c in train.columns if c.startswith("f")]
    booster = lgb.train({**PARAMS, "num_threads": args.threads}, lgb.Dataset(train[names], train[LABEL]),
                        num_boost_round=args.rounds)
    rows = synthetic(args.entities, args.features, seed=6)[names]
    rows.insert(0, "customer_id", np.arange(args.entities, dtype=np.int64))
    matrix = rows[names].to_numpy(dtype=np.float64)
    print(f"model: {booster.num_trees()} trees, 63 leaves, {len(names)} features; {args.entities:,} rows; "
          f"{args.threads} threads")

    counts = {False: args.entities, True: min(args.reason_rows, args.entities)}
    plain = {}
    for reasons in (False, True):
        subset = matrix[: counts[reasons]]
        began = time.perf_counter()
        booster.predict(subset, num_threads=args.threads)
        if reasons:
            booster.predict(subset, pred_contrib=True, num_threads=args.threads)
        plain[reasons] = time.perf_counter() - began

    config = load_config("local", [f"lake.root={lake}", f"spark.master=local[{args.threads}]", "spark.driver_memory=8g"])
    spark = get_spark(config)
    parquet = lake.parent / f"{lake.name}-rows.parquet"
    shutil.rmtree(parquet, ignore_errors=True)
    rows.assign(ds=np.datetime64(DAY, "D")).to_parquet(parquet, index=False, row_group_size=100_000)
    frame = spark.read.parquet(str(parquet))
    frame = frame.withColumn("ds", frame["ds"].cast("date")).repartition(args.threads * 4).cache()
    frame.count()
    frames = {False: frame, True: frame.where(frame["customer_id"] < counts[True]).cache()}
    frames[True].count()
    text = booster.model_to_string()
    spark_s = {}
    for reasons in (False, True):
        scored = scoring.score(frames[reasons], text, names, ["customer_id"], reasons=3 if reasons else 0)
        scored.write.format("noop").mode("overwrite").save()  # warm the Python workers and their model
        began = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        spark_s[reasons] = time.perf_counter() - began
    for reasons in (False, True):
        label = "with reasons   " if reasons else "without reasons"
        print(f"{label} ({counts[reasons]:,} rows): Booster.predict {counts[reasons] / plain[reasons]:>10,.0f} rows/s   "
              f"Spark {counts[reasons] / spark_s[reasons]:>10,.0f} rows/s   ratio Spark/plain {plain[reasons] / spark_s[reasons]:.2f}")
    for cached in frames.values():
        cached.unpersist()

    # The whole job: a one-date features table and the model registered as champion.
    feature_set = "benchmark-features"
    tables.overwrite(spark.read.parquet(str(parquet)).selectExpr("*", "CAST(ds AS DATE) AS ds_").drop("ds")
                     .withColumnRenamed("ds_", "ds"), config, config.tables.features, partition_by="ds",
                     metadata={"feature_set": feature_set})
    # `holdout` as `train` writes it, without figures: `score` reads its intervals and alert from there.
    files = registry.model_files(booster, {"features": names, "feature_hash": registry.feature_hash(names),
                                           "feature_set": feature_set, "holdout": {}})
    path = tables.write_model(config, config.model_name, 1, files)
    registry.append_changes(spark, config, config.model_name, [], [registry.AliasChange(registry.CHAMPION, 1, registry.PROMOTE, "benchmark")],
                            "benchmark", "benchmark", None, registered=(1, path, "benchmark"))
    spark.stop()
    wall = job("score", USE_CASE, [f"lake.root={lake}", f"spark.master=local[{args.threads}]", "spark.driver_memory=8g",
                                   f"scoring.reasons={args.job_reasons}", *SYNTHETIC_SUITES], "--date", DAY)
    run = last_run(str(lake), USE_CASE, "score")
    timings = run["timings"]
    print(f"score job, {run['rows']['scores']:,} entities: {run['duration_s']:.1f} s in the job "
          f"({wall:.1f} s with JVM start-up); " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(json.dumps({"plain_s": plain, "spark_s": spark_s, "job_timings": timings}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
