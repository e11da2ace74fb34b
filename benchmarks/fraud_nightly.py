"""The fraud use case's nightly path at a million transactions a day, through the real launcher.

    .venv/bin/python benchmarks/fraud_nightly.py [--entities 200000] [--days 31] [--lake DIR]
        [--driver-memory 12g] [--shuffle-partitions N] [--horizon-days 10] [--training-days 4]
        [--history-features] [--nightly-only] [--set KEY=VALUE ...]

Times what a scheduler runs each night for `conf/use_cases/fraud.yaml`, each job its own JVM:
`features --date D` (the event features of D's transactions over the 30 days of history before
each one: the source checks, the computation, the feature checks, the write) and `score --date D`
(the feature checks and drift, the predictions with their Venn-Abers interval, SHAP reasons for
the top 1% of scores (`scoring.reasons_top_percent: 1`), the scores checks, the write). Prints
each job's wall time (launcher to exit), the rows and step timings of its `runs` row, and the
total against the goal: the nightly path under 15 minutes on 2 cores, at about 200,000 cards
(1 million transactions a day) with 30 days of history (31 million transactions).

There are no partials to build: the event engine (features/events.py) stores none, it sorts
each card's raw events of the longest window every night. What stands in for "building the
partials of the 30 days" is `--history-features`: the features of all 30 history days
D-30 .. D-1 (those the lake holds) in one backfill (`features --start --end --force`), timed
apart after the nightly path.

Setup, not timed as the nightly path (D = 2026-03-31):

1. `generate` of `--entities` cards over the `--days` days up to D (31: D-30 .. D, the 30-day
   windows of D's transactions). A lake that already holds the same scenario is reused (the job
   itself skips tables generated with the same parameters); the tables derived from it
   (features, training set, registry, models, scores, monitoring) are deleted first, so the
   champion is this run's.
2. A champion, ONLY THERE TO TIME SCORING; IT IS NOT THE DEMO'S MODEL. The fraud label matures in
   60 days, so a 31-day lake holds no matured label. `train` is run with
   `use_case.label.horizon=<--horizon-days>d` (chargebacks within 10 days instead of 60; the
   generator's report delays are 2 to 45 days, so a horizon of 2 days or less has no positive)
   and the smallest plan with a fold, a calibration date and a holdout: `training.days=4`
   (D-13 .. D-10 at the defaults), `folds=1`, `calibration.days=1`, `holdout_days=1`, one search
   trial (its rounds found by early stopping, up to fraud.yaml's 1,000), 20 bootstrap resamples
   for its ranking report. Their features
   are computed first (`features --start --end --rebuild`); their 30-day windows reach before the
   lake's first day, so they see less history than D's. The label is not part of the
   feature-set fingerprint, so `score` accepts the model for D's features. The model's quality
   means nothing; scoring's cost (prediction, calibration, reasons for the top 1%) depends on
   its size (rounds and leaves, printed with the figures), not its quality. The demo's
   champion, the best of 8 trials, may be larger or smaller.
   `--nightly-only` skips this step (and the deletion in 1.) and scores with the champion an
   earlier run left on `--lake`, to time the nightly path again.

Dask runs one worker with both
threads (as demand_nightly.py: the training frame stays in one process). The generated tables
(about 550 MB at the default size) stay in `--lake` for the next run. Refuses a `--lake` that
holds anything but a lake of this benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._launcher import exit_now, job, last_run  # noqa: E402
from nightjar import tables  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402

USE_CASE = "fraud"
D = date(2026, 3, 31)
HISTORY_DAYS = 30  # fraud.yaml's longest window
GOAL_S = 15 * 60
MARKER = ".nightjar-fraud-benchmark"


def load() -> str:
    """The 1, 5 and 15-minute load averages: the machine may be shared, so every figure carries them."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def prepare_lake(lake: Path, settings: list[str], keep_derived: bool = False) -> None:
    """Keep `lake`'s generated tables and `runs`, delete what is derived from them (unless
    `keep_derived`); refuse a foreign folder.

    A champion or features left by an earlier run (or code version) would be scored or refused;
    the generated tables only depend on the scenario, and `generate` checks that itself.
    """
    if lake.exists() and any(lake.iterdir()) and not (lake / MARKER).exists():
        raise SystemExit(f"{lake} is not empty and is no lake of this benchmark ({MARKER} is missing): "
                         "name another --lake")
    lake.mkdir(parents=True, exist_ok=True)
    (lake / MARKER).touch()
    if keep_derived:
        return
    config = load_config("local", settings, use_case=USE_CASE)
    derived = [config.tables.features, config.tables.partials, config.tables.training, config.tables.registry,
               config.tables.scores, config.tables.monitoring]
    for name in derived:
        shutil.rmtree(tables.table_path(config, name), ignore_errors=True)
    shutil.rmtree(f"{tables.use_case_root(config)}/models", ignore_errors=True)


def champion_size(lake: str) -> dict[str, Any]:
    """The version the last `score` ran with, and its size: what scoring's cost depends on."""
    config = load_config("local", [f"lake.root={lake}"], use_case=USE_CASE)
    runs = DeltaTable(tables.table_path(config, config.tables.runs)).to_pandas()
    version = int(runs[runs["job"] == "score"].sort_values("started_at").iloc[-1]["model_version"])
    metadata = json.loads((Path(tables.model_path(config, config.model_name, version)) / "metadata.json").read_text())
    return {"version": version, "rounds": metadata["num_boost_round"], "num_leaves": metadata["params"].get("num_leaves"),
            "features": len(metadata["features"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=200_000, help="cards (about 5 transactions each a day)")
    parser.add_argument("--days", type=int, default=HISTORY_DAYS + 1, help="days generated up to D, D included")
    parser.add_argument("--lake", default="/tmp/nightjar-bench-fraud")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--horizon-days", type=int, default=10, help="the label horizon of the timing-only champion")
    parser.add_argument("--training-days", type=int, default=4, help="training.days (at least 4)")
    parser.add_argument("--shuffle-partitions", type=int,
                        help="spark.shuffle_partitions (default: the configuration's); the event engine's "
                             "buckets are 4 times as many")
    parser.add_argument("--history-features", action="store_true",
                        help="also time the features of the 30 history days D-30 .. D-1 (one backfill)")
    parser.add_argument("--nightly-only", action="store_true",
                        help="keep the champion of an earlier run on --lake: no features backfill, no train")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="another configuration override for every job (after the benchmark's own)")
    args = parser.parse_args(argv)
    if args.entities < 1 or args.horizon_days < 3 or args.training_days < 4:
        parser.error("--entities must be positive, --horizon-days at least 3 (reports come 2 days or more "
                     "after a transaction), --training-days at least 4 (a fit, a fold, a calibration date, a holdout)")
    if args.days < args.horizon_days + args.training_days:
        parser.error(f"--days {args.days} holds no {args.training_days} training dates with a "
                     f"{args.horizon_days}-day label horizon: at least {args.horizon_days + args.training_days}")

    settings = [
        f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
        # One Dask worker with both threads: two workers would each hold a copy of the fit rows.
        "dask.workers=1", "dask.threads_per_worker=2", "dask.memory_limit=6GiB",
    ]
    if args.shuffle_partitions:
        settings.append(f"spark.shuffle_partitions={args.shuffle_partitions}")
    training = {
        "use_case.label.horizon": f"{args.horizon_days}d", "training.days": args.training_days,
        "training.folds": 1, "training.calibration.days": 1, "training.holdout_days": 1, "training.gap_days": 0,
        "training.search.trials": 1, "training.ranking.bootstrap": 20,
    }
    # Only `train` gets them: the horizon is part of the generated scenario's parameters (its
    # truth), which must stay fraud.yaml's for a lake to be reused.
    train_settings = [*settings, *[f"{key}={value}" for key, value in training.items()], *args.overrides]
    settings += args.overrides
    # The 30 days before D, those of them the lake holds.
    history_days = (D - timedelta(days=min(HISTORY_DAYS, args.days - 1)), D - timedelta(days=1))
    newest = D - timedelta(days=args.horizon_days)
    training_dates = (newest - timedelta(days=args.training_days - 1), newest)

    prepare_lake(Path(args.lake), settings, keep_derived=args.nightly_only)
    if args.nightly_only:
        print("Scoring with the champion an earlier run of this benchmark trained only to time scoring; "
              "it is not the demo's model.", flush=True)
    else:
        print(f"The champion below is trained with a {args.horizon_days}-day label horizon (fraud.yaml: 60 days) "
              "only to time scoring; it is not the demo's model.", flush=True)
    setup: dict[str, tuple[float, str]] = {}
    setup["generate"] = (job("generate", USE_CASE, settings, "--date", D.isoformat(), "--days", str(args.days),
                             "--entities", str(args.entities)), load())
    if not args.nightly_only:
        setup[f"features {training_dates[0]}..{training_dates[1]}"] = (
            job("features", USE_CASE, settings, "--rebuild", "--start", training_dates[0].isoformat(),
                "--end", training_dates[1].isoformat()), load())
        setup["train (timing-only champion)"] = (
            job("train", USE_CASE, train_settings, "--force", "--date", D.isoformat()), load())
    nightly: dict[str, tuple[float, str]] = {}
    nightly["features"] = (job("features", USE_CASE, settings, "--force", "--date", D.isoformat()), load())
    nightly["score"] = (job("score", USE_CASE, settings, "--force", "--date", D.isoformat()), load())
    runs = {name: last_run(args.lake, USE_CASE, name) for name in ("features", "score")}
    history = None
    if args.history_features:
        history = (job("features", USE_CASE, settings, "--force", "--start", history_days[0].isoformat(),
                       "--end", history_days[1].isoformat()), load())
        runs["history features"] = last_run(args.lake, USE_CASE, "features")

    size = champion_size(args.lake)
    generated = last_run(args.lake, USE_CASE, "generate")["rows"]
    transactions = generated.get("transactions", 0)
    print(f"\ncards={args.entities:,}  days={args.days} (up to D={D})  transactions: {transactions:,} "
          f"({transactions / args.days:,.0f} a day)")
    trees = (f"version {size['version']}: {size['rounds']} rounds of at most {size['num_leaves']} leaves over "
             f"{size['features']} features")
    if args.nightly_only:
        print(f"champion {trees}: the timing-only one an earlier run left on the lake (--nightly-only; "
              "not the demo's model)")
    else:
        print(f"timing-only champion {trees}: label horizon {args.horizon_days}d, feature dates "
              f"{training_dates[0]}..{training_dates[1]} (not the demo's model)")
    for step, (seconds, at) in setup.items():
        print(f"  setup   {step:<36} {seconds:>7.1f}s  ({at})")
    for step, (seconds, at) in nightly.items():
        run = runs[step]
        print(f"  nightly {step + ' --date ' + D.isoformat():<36} {seconds:>7.1f}s  ({at}; in the job: "
              f"{run['duration_s']:.1f}s; rows {run['rows']}; steps {run['timings']})")
    total = sum(seconds for seconds, _ in nightly.values())
    print(f"  nightly path (features + score, launcher to exit): {total:.1f}s  goal < {GOAL_S}s")
    if history is not None:
        run = runs["history features"]
        print(f"  apart: features of the history days {history_days[0]}..{history_days[1]} "
              f"(no partials exist to build) {history[0]:.1f}s  ({history[1]}; in the job: {run['duration_s']:.1f}s; "
              f"rows {run['rows']}; steps {run['timings']})")
    print(json.dumps({
        "entities": args.entities, "days": args.days, "date": D.isoformat(), "transactions": transactions,
        "champion": {"note": "timing only, not the demo's model", "size": size, **training},
        "setup_s": {k: round(s, 1) for k, (s, _) in setup.items()},
        "nightly_s": {k: round(s, 1) for k, (s, _) in nightly.items()}, "nightly_total_s": round(total, 1),
        "goal_s": GOAL_S, "history_features_s": None if history is None else round(history[0], 1),
        "load": {k: at for k, (_, at) in [*setup.items(), *nightly.items()]}, "runs": runs,
    }, default=str))
    return 0


if __name__ == "__main__":
    exit_now(main())
