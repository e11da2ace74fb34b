"""The validation gate's time on the feature table of a million entities, as a share of scoring it.

    .venv/bin/python benchmarks/validation_overhead.py [--entities 1000000] [--repeats 3] [--reasons-runs 1] [--lake DIR]

Builds, with Spark, a synthetic `features` partition of `--entities` rows whose columns are the
configured feature names (conf/base.yaml: counts and days as integers, attributes as category
indexes, the rest doubles with 30% missing), the `customers` source those entities come from,
and drift reference statistics from a slightly shifted sample. Then times, median of
`--repeats` after one warm-up run (the pass with reasons: `--reasons-runs`, no warm-up):

* validate: `validation.gate.validate` of the features stage (the configured suite plus drift,
  i.e. what the scoring job runs before it scores), on the partition as read from Delta, and on
  the same partition already cached (a scoring job that persists its input shares the read);
* score-like job: the scoring job is not in this branch, so its comparable Spark pass stands in:
  read the features partition, predict with a 100-tree LightGBM model in `mapInPandas` (one
  thread per task) with the top-3 feature contributions as reasons (`pred_contrib`, as the
  `scores` table holds them), write a scores partition with `replaceWhere`; and the same
  without reasons (predict only), the cheapest a scoring pass can be.

Prints the figures and the overhead share (target: validation at most 15% of scoring).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyspark.sql import Column, DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from features.definitions import expand  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config import Config, load_config  # noqa: E402
from nightjar.session import get_spark  # noqa: E402
from validation import drift, gate  # noqa: E402

D = date(2026, 3, 31)
KEY = "customer_id"


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
    tables.overwrite(features, config, config.tables.features, partition_by="ds")


def score_like(spark: SparkSession, config: Config, names: list[str], model: str, reasons: bool) -> None:
    """Read the features partition, predict with LightGBM in the executors (with the top-3 feature
    contributions as reasons, as the `scores` table holds them, when `reasons`), write a scores partition."""
    shipped = spark.sparkContext.broadcast(model)
    labels = np.asarray(names, dtype=object)

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        booster = lgb.Booster(model_str=shipped.value)
        for batch in batches:
            x = batch[names].to_numpy(dtype="float64", na_value=np.nan)
            scores = booster.predict(x, num_threads=1)
            if reasons:
                contributions = booster.predict(x, pred_contrib=True, num_threads=1)[:, :-1]
                top = np.argsort(-np.abs(contributions), axis=1)[:, :3]
                why = [list(row) for row in labels[top]]
            else:
                why = [[] for _ in range(len(batch))]
            yield pd.DataFrame({KEY: batch[KEY], "ds": batch["ds"], "score": scores, "model_name": "bench",
                                "model_version": 1, "reasons": why, "run_id": "bench"})

    features = tables.read(spark, config, config.tables.features).where(F.col("ds") == F.lit(D))
    scores = features.mapInPandas(
        predict,
        f"{KEY} long, ds date, score double, model_name string, model_version int, reasons array<string>, run_id string",
    )
    tables.replace_partitions(scores, config, config.tables.scores, "ds", [D])


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
    parser.add_argument("--reasons-runs", type=int, default=1, help="timed runs of the (slow) pass with reasons; 0 skips it")
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
    label = (training[names[0]].fillna(0) + np.random.default_rng(1).normal(0, 3, len(training)) > 5).astype(float)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_leaves": 31, "num_threads": 1},
                        lgb.Dataset(training[names], label), num_boost_round=100)
    model = booster.model_to_string()

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
    predicting = timed(lambda: score_like(spark, config, names, model, reasons=False), args.repeats)
    # Reasons (TreeSHAP) dominate a scoring pass; the workers are warm from the runs above.
    scoring = timed(lambda: score_like(spark, config, names, model, reasons=True), args.reasons_runs, warm_up=False)

    v_cold, v_warm, p = statistics.median(cold), statistics.median(warm), statistics.median(predicting)
    s = statistics.median(scoring) if scoring else None

    def runs(values: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in values)

    print(f"\nfeature table: {args.entities:,} entities x {len(names)} features, {checks} checks "
          f"(suite features.features + PSI per feature); machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  validate, read from Delta                            median {v_cold:7.2f}s  runs {runs(cold)}")
    print(f"  validate, input cached                               median {v_warm:7.2f}s  runs {runs(warm)}")
    print(f"  score-like pass: read, predict, write                median {p:7.2f}s  runs {runs(predicting)}")
    if s is not None:
        print(f"  score-like pass: read, predict + top-3 reasons, write median {s:7.2f}s  runs {runs(scoring)}")
    print(f"  overhead vs the predict-only pass: {100 * v_cold / p:.1f}% (input read from Delta), "
          f"{100 * v_warm / p:.1f}% (input cached)"
          + (f"; vs the pass with reasons: {100 * v_cold / s:.1f}% / {100 * v_warm / s:.1f}%" if s else "")
          + "; target <= 15% of the scoring job")
    figures = {"entities": args.entities, "features": len(names), "checks": checks, "validate_s": round(v_cold, 2),
               "validate_cached_s": round(v_warm, 2), "predict_only_s": round(p, 2),
               "share_of_predict_only": round(v_cold / p, 3), "share_of_predict_only_cached": round(v_warm / p, 3)}
    if s is not None:
        figures |= {"with_reasons_s": round(s, 2), "share_of_with_reasons": round(v_cold / s, 4)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
