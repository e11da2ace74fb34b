"""Distributed training on a 2-worker Dask cluster vs plain LightGBM, and trials per minute.

    .venv/bin/python benchmarks/train_vs.py [--rows 1000000] [--features 60] [--rounds 200]
        [--trial-rows 200000] [--trials 6] [--skip-distributed | --skip-trials]

Part 1: the same synthetic data (a binary label from a non-linear function of the features
plus noise; `--rows` training rows and a quarter as many evaluation rows, the training rows
written as Parquet) fitted for a fixed number of
rounds by `models.distributed.fit` on a `LocalCluster(2 workers x 1 thread)` and by plain
`lightgbm.train` with `num_threads=2`. Each is timed from its Parquet input to a trained
booster; both are scored on the same evaluation rows.

Part 2: hyperparameter trials (the job's own `models.search.run_search`, every trial on two
time folds with early stopping) on 2 Dask workers, against the same (trial, fold) fits run one
after another in this process with one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dask.dataframe as dd  # noqa: E402
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import distributed, search  # noqa: E402
from models.config import SearchConfig, SearchDimension, TrainingConfig  # noqa: E402
from models.folds import plan  # noqa: E402
from models.training_set import DATE, LABEL, WEIGHT  # noqa: E402

PARAMS = {
    "objective": "binary", "verbosity": -1, "seed": 1, "deterministic": True, "force_col_wise": True,
    "learning_rate": 0.1, "num_leaves": 63, "min_child_samples": 50,
}


def synthetic(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float64)
    logit = (
        1.5 * x[:, 0] - 1.0 * x[:, 1] ** 2 + np.sin(2 * x[:, 2]) + 0.8 * x[:, 3] * x[:, 4]
        + 0.3 * x[:, 5:15].sum(axis=1) - 1.0
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    frame = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(features)])
    frame[LABEL] = label
    frame[WEIGHT] = 1.0
    # Dates for the folds of part 2: 20 consecutive days, rows spread evenly.
    frame[DATE] = [date(2026, 1, 1) + timedelta(days=int(d)) for d in np.arange(rows) * 20 // rows]
    return frame


def part_distributed_vs_plain(args: argparse.Namespace, folder: Path) -> None:
    frame = synthetic(args.rows + args.rows // 4, args.features)
    names = [c for c in frame.columns if c.startswith("f")]
    train, evaluation = frame.iloc[: args.rows], frame.iloc[args.rows :]
    half = len(train) // 2
    files = []
    for index, part in enumerate((train.iloc[:half], train.iloc[half:])):
        path = folder / f"train-{index}.parquet"
        part[[*names, LABEL, WEIGHT]].to_parquet(path, index=False)
        files.append(str(path))
    print(f"data: {len(train):,} training rows x {len(names)} features, {len(evaluation):,} evaluation rows, "
          f"{args.rounds} rounds, num_leaves {PARAMS['num_leaves']}")

    began = time.perf_counter()
    loaded = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    plain = lgb.train({**PARAMS, "num_threads": 2}, lgb.Dataset(loaded[names], loaded[LABEL]), num_boost_round=args.rounds)
    plain_s = time.perf_counter() - began
    plain_auc = roc_auc_score(evaluation[LABEL], plain.predict(evaluation[names], num_threads=2))
    print(f"plain lightgbm, num_threads=2:        {plain_s:7.1f} s   AUC {plain_auc:.5f}")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="8GiB") as cluster, Client(cluster) as client:
        began = time.perf_counter()
        data = dd.read_parquet(files).astype("float64")
        booster = distributed.fit(client, data, names, {**PARAMS, "num_threads": 1}, args.rounds, "classification", 3600)
        dask_s = time.perf_counter() - began
    dask_auc = roc_auc_score(evaluation[LABEL], booster.predict(evaluation[names], num_threads=2))
    print(f"lightgbm.dask, 2 workers x 1 thread:  {dask_s:7.1f} s   AUC {dask_auc:.5f}")
    print(f"time ratio dask/plain: {dask_s / plain_s:.2f}x   AUC difference (dask - plain): {dask_auc - plain_auc:+.5f}")


def part_trials(args: argparse.Namespace) -> None:
    frame = synthetic(args.trial_rows, args.features, seed=1)
    names = [c for c in frame.columns if c.startswith("f")]
    dates = sorted(frame[DATE].unique())
    folds = plan(dates, folds=2, holdout_days=4, gap_days=0).folds
    training = TrainingConfig(
        seed=3, max_rounds=300, early_stopping_rounds=20,
        search=SearchConfig(trials=args.trials, time_budget_s=3600, space={
            "num_leaves": SearchDimension(low=15, high=63, log=True, integer=True),
            "learning_rate": SearchDimension(low=0.05, high=0.2, log=True),
        }),
    )
    fits = args.trials * len(folds)
    print(f"trials: {args.trials} trials x {len(folds)} folds on {len(frame):,} rows x {len(names)} features")

    began = time.perf_counter()
    for params in search.draw_params(training.search.space, args.trials, training.seed):
        full = {**search.base_params(training, "classification", 1, training.seed), **params}
        for fold in folds:
            search.fit_fold(frame, names, fold, full, training.max_rounds, training.early_stopping_rounds)
    sequential_s = time.perf_counter() - began
    print(f"sequential, 1 thread:      {sequential_s:6.1f} s   {args.trials / sequential_s * 60:5.1f} trials/min "
          f"({fits} fits)")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="8GiB") as cluster, Client(cluster) as client:
        result = search.run_search(client, frame, names, folds, training, "classification", 1)
    print(f"2 Dask workers x 1 thread: {result.seconds:6.1f} s   {args.trials / result.seconds * 60:5.1f} trials/min "
          f"(speed-up {sequential_s / result.seconds:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--trial-rows", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--skip-distributed", action="store_true")
    parser.add_argument("--skip-trials", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nightjar-train-bench-") as folder:
        if not args.skip_distributed:
            part_distributed_vs_plain(args, Path(folder))
        if not args.skip_trials:
            part_trials(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
