"""The validation gate's time on the feature table of a million entities, as a share of the score job.

    .venv/bin/python benchmarks/validation_overhead.py [--entities 1000000] [--repeats 3] [--reasons 0]
        [--reasons-min-score S] [--lake DIR]

Builds, with Spark, a synthetic `features` partition of `--entities` rows whose columns are the
configured feature names (conf/base.yaml: counts and days as integers, attributes as category
indexes, the rest doubles with 30% missing), the `customers` source those entities come from,
and a 100-tree LightGBM model on those features, registered as champion with drift reference
statistics from a slightly shifted sample. Then:

* the gate alone: `validation.gate.validate` of the features stage (the configured suite plus
  drift), on the partition as read from Delta and on the same partition cached; median of
  `--repeats` after one warm-up run;
* the real `./spark-submit.sh score --date 2026-03-31 --force`, `--repeats` times, each its
  own JVM, with `scoring.reasons=--reasons` (0, the default, is the cheapest scoring job and so
  the strictest share; reasons add TreeSHAP, minutes per million rows) and, when given,
  `scoring.reasons_min_score`. Its step timings come
  from the `runs` table: `check_features` is the gate on the feature table, `check_scores`
  the scores suite.

Prints the figures and the share (target: the feature table's validation at most 15% of the
scoring job's time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyspark.sql import Column, DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from deltalake import DeltaTable  # noqa: E402

from features.definitions import expand  # noqa: E402
from models import registry  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config import Config  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402
from nightjar.session import get_spark  # noqa: E402
from validation import drift, gate  # noqa: E402

D = date(2026, 3, 31)
KEY = "customer_id"
FEATURE_SET = "benchmark-features"


def kind_of(name: str) -> str:
    if "_count_" in name or "days_since" in name or name == "tenure_days":
        return "count"
    if name in ("segment", "plan", "region", "acquisition_channel"):
        return "category"
    if name in ("online_share_30d", "count_7d_to_30d"):
        return "share"
    return "value"


def column(name: str, index: int) -> Column:
    """A synthetic feature: its kind decides the type and range; `value`s are missing for 30% of rows."""
    u = F.rand(index)
    kind = kind_of(name)
    if kind == "count":
        return F.floor(-F.log(1 - u) * 5).cast("long").alias(name)
    if kind == "category":
        return F.floor(u * 3).cast("int").alias(name)
    if kind == "share":
        return F.when(F.rand(1000 + index) < 0.8, u).alias(name)
    return F.when(F.rand(1000 + index) < 0.7, F.randn(index) * 40 + 50).alias(name)


def sample(names: list[str], rows: int, shift: float) -> pd.DataFrame:
    """A pandas sample of the same kinds of features, shifted for drift: the 'training data'."""
    rng = np.random.default_rng(11)
    data = {}
    for name in names:
        kind = kind_of(name)
        if kind == "count":
            data[name] = np.floor(rng.exponential(5 * (1 + shift), rows))
        elif kind == "category":
            data[name] = rng.integers(0, 3, rows).astype(float)
        elif kind == "share":
            data[name] = np.where(rng.random(rows) < 0.8, rng.random(rows), np.nan)
        else:
            data[name] = np.where(rng.random(rows) < 0.7, rng.normal(50 + 10 * shift, 40, rows), np.nan)
    return pd.DataFrame(data)


def build(spark: SparkSession, config: Config, names: list[str], entities: int) -> None:
    customers = spark.range(entities).select(
        F.col("id").alias(KEY), F.lit("2025-06-01 09:00:00").cast("timestamp").alias("signup_ts"),
        F.lit("consumer").alias("segment"), F.lit("north").alias("region"), F.lit("basic").alias("plan"),
        F.lit("organic").alias("acquisition_channel"), F.lit("2025-06-01").cast("date").alias("signup_date"),
    )
    tables.overwrite(customers, config, "customers", partition_by="signup_date")
    features = spark.range(entities).select(
        F.col("id").alias(KEY), F.lit(D).alias("ds"), *[column(name, i) for i, name in enumerate(names)]
    )
    tables.overwrite(features, config, config.tables.features, partition_by="ds",
                     metadata={"feature_set": FEATURE_SET})


def register(spark: SparkSession, config: Config, names: list[str], training: pd.DataFrame) -> None:
    """A champion trained on `names`, with the drift reference statistics `train` would store."""
    label = (training[names[0]].fillna(0) + np.random.default_rng(1).normal(0, 3, len(training)) > 5).astype(float)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 31, "num_threads": 1},
                        lgb.Dataset(training[names], label), num_boost_round=100)
    files = registry.model_files(booster, {
        "features": names, "feature_hash": registry.feature_hash(names), "feature_set": FEATURE_SET,
        "reference_statistics": drift.reference_statistics(training, names),
    })
    path = tables.write_model(config, config.model_name, 1, files)
    registry.append_changes(spark, config, config.model_name, [],
                            [registry.AliasChange(registry.CHAMPION, 1, registry.PROMOTE, "benchmark")],
                            "benchmark", "benchmark", None, registered=(1, path, "benchmark"))


def score_job(config: Config, reasons: int, min_score: float | None) -> dict:
    """One real score job (its own JVM) on `config`'s lake; its `runs` row."""
    settings = [f"lake.root={config.lake.root}", f"scoring.reasons={reasons}"]
    if min_score is not None:
        settings.append(f"scoring.reasons_min_score={min_score}")
    subprocess.run([str(ROOT / "spark-submit.sh"), "score", "--date", D.isoformat(), "--force",
                    *[arg for setting in settings for arg in ("--set", setting)]],
                   check=True, stdout=subprocess.DEVNULL)
    runs = DeltaTable(tables.table_path(config, config.tables.runs)).to_pandas()
    run = runs[runs["job"] == "score"].sort_values("started_at").iloc[-1]
    return {"duration_s": float(run["duration_s"]), **{k: float(v) for k, v in dict(run["timings"]).items()}}


def timed(step: Callable[[], object], repeats: int, warm_up: bool = True) -> list[float]:
    if warm_up:
        step()  # Python workers, Delta snapshots, the GX project
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reasons", type=int, default=0, help="scoring.reasons of the score jobs (0: none)")
    parser.add_argument("--reasons-min-score", type=float, default=None, help="scoring.reasons_min_score of the jobs")
    parser.add_argument("--lake", default=None, help="scratch lake (default: a temporary folder)")
    args = parser.parse_args()
    lake = args.lake or tempfile.mkdtemp(prefix="nightjar-validation-bench-")
    config = load_config("local", [f"lake.root={lake}/lake"])
    spark = get_spark(config)
    names = expand(config).names
    print(f"building {args.entities:,} entities x {len(names)} features in {lake} ...", flush=True)
    began = time.perf_counter()
    build(spark, config, names, args.entities)
    print(f"  built in {time.perf_counter() - began:.1f}s", flush=True)

    training = sample(names, 100_000, shift=0.1)
    reference = drift.reference_statistics(training, names)
    register(spark, config, names, training)

    def read() -> DataFrame:
        return tables.read(spark, config, config.tables.features).where(F.col("ds") == F.lit(D))

    def validate(frame: DataFrame) -> gate.ValidationResult:
        return gate.validate(spark, config, "features", config.tables.features, frame, D, "bench", reference=reference)

    result = validate(read())
    checks = len(result.outcomes)
    cold = timed(lambda: validate(read()), args.repeats)
    cached_frame = read().cache()
    cached_frame.count()
    warm = timed(lambda: validate(cached_frame), args.repeats)
    cached_frame.unpersist()
    spark.stop()
    jobs = [score_job(config, args.reasons, args.reasons_min_score) for _ in range(args.repeats)]

    v_cold, v_warm = statistics.median(cold), statistics.median(warm)
    job_s = statistics.median(j["duration_s"] for j in jobs)
    shares = [j["check_features"] / j["duration_s"] for j in jobs]

    def runs(values: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in values)

    print(f"\nfeature table: {args.entities:,} entities x {len(names)} features, {checks} checks "
          f"(suite features.features + PSI per feature); machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  gate alone, read from Delta        median {v_cold:7.2f}s  runs {runs(cold)}")
    print(f"  gate alone, input cached           median {v_warm:7.2f}s  runs {runs(warm)}")
    print(f"  score job (reasons={args.reasons}, min score {args.reasons_min_score}), in the job  median {job_s:7.2f}s  runs {runs([j['duration_s'] for j in jobs])}")
    for step in jobs[0]:
        if step != "duration_s":
            print(f"    {step:<30s}   median {statistics.median(j[step] for j in jobs):7.2f}s  "
                  f"runs {runs([j[step] for j in jobs])}")
    print(f"  check_features share of the score job: median {100 * statistics.median(shares):.1f}% "
          f"(runs {', '.join(f'{100 * x:.1f}%' for x in shares)}); target <= 15%")
    figures = {"entities": args.entities, "features": len(names), "checks": checks, "validate_s": round(v_cold, 2),
               "validate_cached_s": round(v_warm, 2), "score_jobs": jobs,
               "check_features_share": round(statistics.median(shares), 4)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
