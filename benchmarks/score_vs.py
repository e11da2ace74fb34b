"""Scoring throughput inside Spark vs LightGBM's own `Booster.predict`, reason codes, and the whole score job.

    .venv/bin/python benchmarks/score_vs.py [--entities 1000000] [--reason-rows 50000] [--features 60]
        [--rounds 200] [--threads 2] [--top-percent 5] [--batch-rows 10000 100000]
        [--lake /tmp/nightjar-score-bench] [--job-reasons 0]

A LightGBM model (`--rounds` trees, 63 leaves) is trained on the synthetic data of
`benchmarks/train_vs.py`; then `--entities` rows with `--features` features are scored
1. by `Booster.predict` on one float64 NumPy matrix in this process with `--threads` threads
   (and by the same model compiled with lleaves, `models.compiled`, for reference),
2. by `models.scoring.score` in Spark `local[--threads]` (one thread per task) from cached rows,
   written to Spark's `noop` sink so only the scoring is timed: with `Booster.predict`, and
   compiled (`scoring.compiled`) at each Arrow batch size of `--batch-rows`
   (`spark.sql.execution.arrow.maxRecordsPerBatch`; Spark's default is 10,000),
3. stage by stage on the same Arrow batches in this process, one thread: Arrow to the NumPy
   matrix, the prediction (Booster, compiled), the output batch; per-row microseconds.
Reason codes (`pred_contrib`, top 3): on the first `--reason-rows` rows, all explained, then
only each date's top `--top-percent`% (`scoring.reasons_top_percent`: an exact per-date rank in
Spark, then SHAP for those rows), the throughput of scoring the same rows.
Then a scratch lake gets a `features` table of those rows for one date and the model registered
as champion, and `./spark-submit.sh score` runs on it with `scoring.reasons=--job-reasons`, compiled (from the
compiled model cached above) when compilation is available; its timings are read back from the
`runs` table.

The last line is a JSON object of every figure.
"""

from __future__ import annotations

import argparse
import hashlib
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
import pyarrow as pa  # noqa: E402
from pyspark.sql import DataFrame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from benchmarks._launcher import job, last_run  # noqa: E402
from train_vs import PARAMS, synthetic  # noqa: E402

from models import compiled, registry, scoring  # noqa: E402
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
    parser.add_argument("--top-percent", type=float, default=5.0)
    parser.add_argument("--batch-rows", type=int, nargs="+", default=[10_000, 100_000])
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
    text = booster.model_to_string()
    digest = hashlib.sha256(text.encode()).hexdigest()
    cache = lake.parent / f"{lake.name}-compiled"
    began = time.perf_counter()
    fast = compiled.predictor(text, digest, cache)
    compile_s = time.perf_counter() - began
    plain, plain_compiled = {}, None
    for reasons in (False, True):
        subset = matrix[: counts[reasons]]
        began = time.perf_counter()
        booster.predict(subset, num_threads=args.threads)
        if reasons:
            booster.predict(subset, pred_contrib=True, num_threads=args.threads)
        plain[reasons] = time.perf_counter() - began
    if fast is not None:
        began = time.perf_counter()
        fast.predict(matrix, num_threads=args.threads)
        plain_compiled = time.perf_counter() - began
    stages = _stages(rows.assign(ds=np.datetime64(DAY, "D")), names, booster, fast, args.batch_rows[0])

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

    def timed(scored: DataFrame) -> float:
        scored.write.format("noop").mode("overwrite").save()  # warm the Python workers and their model
        began = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - began

    spark_s = {reasons: timed(scoring.score(frames[reasons], text, names, ["customer_id"], reasons=3 if reasons else 0))
               for reasons in (False, True)}
    batch_key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    default_batch = spark.conf.get(batch_key)
    compiled_s = {}
    for batch_rows in args.batch_rows:
        spark.conf.set(batch_key, str(batch_rows))
        compiled_s[batch_rows] = timed(scoring.score(frame, text, names, ["customer_id"], reasons=0, compiled=True,
                                                     compiled_cache=str(cache)))
    spark.conf.set(batch_key, default_batch)
    # Reasons for each date's top percent only: the exact per-date cut (a first, prediction-only
    # pass) and then the scoring whose SHAP covers only those rows, as `score` runs them.
    began = time.perf_counter()
    first = scoring.score(frames[True], text, names, ["customer_id"], reasons=0, compiled=True, compiled_cache=str(cache))
    cuts = scoring.top_percent_thresholds(first, scoring.SCORE, args.top_percent)
    cut_s = time.perf_counter() - began
    top_s = cut_s + timed(scoring.score(frames[True], text, names, ["customer_id"], reasons=3, reasons_min_score=cuts,
                                        compiled=True, compiled_cache=str(cache)))
    for reasons in (False, True):
        label = "with reasons   " if reasons else "without reasons"
        print(f"{label} ({counts[reasons]:,} rows): Booster.predict {counts[reasons] / plain[reasons]:>10,.0f} rows/s   "
              f"Spark {counts[reasons] / spark_s[reasons]:>10,.0f} rows/s   ratio Spark/plain {plain[reasons] / spark_s[reasons]:.2f}")
    if fast is None:
        print("compiled scoring unavailable (see the warning above): its Spark runs used Booster.predict")
    else:
        print(f"compiled model: {compile_s:.1f} s to compile or load; in this process "
              f"{args.entities / plain_compiled:,.0f} rows/s ({plain[False] / plain_compiled:.2f}x Booster.predict)")
    for batch_rows, seconds in compiled_s.items():
        print(f"compiled scoring in Spark rows/s / Booster.predict rows/s (same threads, data in memory), "
              f"{batch_rows:,}-row Arrow batches: {args.entities / seconds:,.0f} / {args.entities / plain[False]:,.0f} "
              f"= {plain[False] / seconds:.2f}")
    print("stages, one thread, microseconds per row: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    every_rps, top_rps = counts[True] / spark_s[True], counts[True] / top_s
    print(f"reason codes, {counts[True]:,} rows in Spark: all explained {every_rps:,.0f} rows/s, top {args.top_percent:g}% "
          f"of the date explained {top_rps:,.0f} rows/s: speed-up {top_rps / every_rps:.1f}x")
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
                                   f"scoring.reasons={args.job_reasons}", f"scoring.compiled={str(fast is not None).lower()}",
                                   f"scoring.compiled_cache={cache}", *SYNTHETIC_SUITES], "--date", DAY)
    run = last_run(str(lake), USE_CASE, "score")
    timings = run["timings"]
    print(f"score job{' (compiled)' if fast is not None else ''}, {run['rows']['scores']:,} entities: {run['duration_s']:.1f} s in the job "
          f"({wall:.1f} s with JVM start-up); " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(json.dumps({"plain_s": plain, "spark_s": spark_s, "compiled": fast is not None, "compile_s": compile_s,
                      "plain_compiled_s": plain_compiled, "spark_compiled_s": compiled_s,
                      "compiled_ratio": {k: plain[False] / v for k, v in compiled_s.items()},
                      "stages_us_per_row": stages, "reasons_all_s": spark_s[True], "reasons_top_s": top_s,
                      "reasons_speedup": top_rps / every_rps, "job_timings": timings}, default=str))
    return 0


def _stages(rows: pd.DataFrame, names: list[str], booster: lgb.Booster, fast: compiled.CompiledModel | None,
            batch_rows: int) -> dict[str, float]:
    """Per-row microseconds of each step of a scoring task, on Arrow batches as Spark sends them, one thread."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    batches = table.to_batches(max_chunksize=batch_rows)
    spent = {"arrow_to_numpy": 0.0, "booster_predict": 0.0, "compiled_predict": 0.0, "output_batch": 0.0}
    for batch in batches:
        began = time.perf_counter()
        matrix = scoring._matrix(batch, names)
        spent["arrow_to_numpy"] += time.perf_counter() - began
        began = time.perf_counter()
        predictions = booster.predict(matrix, num_threads=1)
        spent["booster_predict"] += time.perf_counter() - began
        if fast is not None:
            began = time.perf_counter()
            fast.predict(matrix, num_threads=1)
            spent["compiled_predict"] += time.perf_counter() - began
        began = time.perf_counter()
        pa.RecordBatch.from_arrays([batch.column("customer_id"), batch.column("ds"), pa.array(predictions, pa.float64())],
                                   names=["customer_id", "ds", "score"])
        spent["output_batch"] += time.perf_counter() - began
    return {stage: seconds / len(rows) * 1e6 for stage, seconds in spent.items()}


if __name__ == "__main__":
    sys.exit(main())
