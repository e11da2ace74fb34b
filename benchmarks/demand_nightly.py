"""The demand use case's nightly forecasts and weekly retraining at chain scale, through the real launcher.

    .venv/bin/python benchmarks/demand_nightly.py [--series 30000] [--stores 10] [--days 730]
        [--lake DIR] [--driver-memory 12g] [--training-days 28] [--set KEY=VALUE ...]

Times what a scheduler runs for `conf/use_cases/demand.yaml`, each job its own JVM: the nightly
`features --date D` (one row per series and horizon, 7 horizons: lagged windows up to 28 days
ending 7 days early, the target dates' calendar and planned prices) and `score --date D` (the
feature checks and drift, the ensemble's predictions with intervals and reasons, the scores
checks, the write), and the weekly `train --date D`. Prints each job's wall time (launcher to
exit) and the step timings of its `runs` row. Goal: nightly (features + score) under 5 minutes
on 2 cores, at 30,000 series (10 stores x 3,000 items) with 2 years of daily sales (about 22
million rows).

Setup, not timed (D = 2026-03-31):
1. `generate` of `--series` series in `--stores` stores over the `--days` days up to D;
2. a features backfill of every date the weekly training reads through D-1 (the lake as it
   stands on the night of D).

Then timed: the weekly `train --date D` (Monday's retraining; the champion `score` uses), and
the nightly path of D, `features --date D` then `score --date D`. One training only: at full
size a training takes longer than the nightly path, and a second one a week earlier would time
the same work again.

Training settings (`--set` on every job; the rest is demand.yaml's, so what is timed is what the
weekly train does, on fewer dates and trials):
* `training.days=28` (`--training-days`): four weeks of feature dates, T-34 .. T-7 for `train
  --date T` (a forecast's last horizon, D + 7, must be known by T);
* `training.holdout_days=7`: the latest week, every weekday;
* `training.gap_days=6`: the horizon. The label of a feature date D reaches D + 7, so training
  dates end 7 days before each validation or holdout date and no label window crosses a cut.
  This gap is why 14 days cannot work: 14 - 7 (holdout) - 6 (gap) leaves a single fit date;
* `training.folds=1`: the 15 fit dates make two blocks of 8 and 7 dates; the fold trains on the
  2 dates of the first block that are 7 or more days before the second, validates on the second.
  Fewer than 26 training days leave the fold no date (train exits 2);
* `training.search.trials=1`: one parameter set, its rounds found by early stopping on the fold;
* the ensemble of three members, the intervals and the reasons stay as configured: they are the
  weekly train's and the nightly score's real work. `max_rounds` stays too (early stopping ends
  far earlier): `--set training.max_rounds=N` bounds it if a run must be shorter.

Refuses a `--lake` that holds anything but an earlier run of this benchmark, and empties one that
does: a champion or features left by an earlier code version would be scored or refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._launcher import exit_now, job, last_run  # noqa: E402
from models.training_set import label_dates  # noqa: E402
from nightjar.config_loader import load_config  # noqa: E402

USE_CASE = "demand"
D = date(2026, 3, 31)
MARKER = ".nightjar-demand-benchmark"


def fresh_lake(lake: Path) -> None:
    """Empty `lake` for this run; refuse a folder this benchmark did not make.

    Every run starts from nothing: a champion of an earlier run could win the promotion against
    this run's first model, and features of other definitions make `features` exit 2.
    """
    if lake.exists() and any(lake.iterdir()) and not (lake / MARKER).exists():
        raise SystemExit(f"{lake} is not empty and is no lake of this benchmark ({MARKER} is missing): "
                         "name another --lake")
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    (lake / MARKER).touch()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=30_000, help="(store, item) series, a multiple of --stores")
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--days", type=int, default=730, help="days of sales generated, up to D")
    parser.add_argument("--lake", default="/tmp/nightjar-bench-demand")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--training-days", type=int, default=28, help="training.days (at least 26)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="another configuration override for every job (after the benchmark's own)")
    args = parser.parse_args()
    if args.series < 1 or args.stores < 1 or args.series % args.stores:
        parser.error(f"--series ({args.series}) must be a positive multiple of --stores ({args.stores})")

    training = {
        "training.days": args.training_days, "training.holdout_days": 7, "training.folds": 1,
        "training.gap_days": 6, "training.search.trials": 1,
    }
    settings = [
        f"lake.root={args.lake}", f"spark.driver_memory={args.driver_memory}",
        # generate.stores is not a command-line option of `generate`; entities goes with it
        # because the configuration checks that the series fill every store.
        f"generate.entities={args.series}", f"generate.stores={args.stores}",
        *[f"{key}={value}" for key, value in training.items()],
        # One Dask worker with both threads: at full size the search sends every worker a copy
        # of the 3.2 million fit rows, and two workers of 4 GiB beside the driver's training
        # frame (11.5 GB) ran out of memory (a worker was lost and the fit waited for it).
        "dask.workers=1", "dask.threads_per_worker=2", "dask.memory_limit=10GiB",
        *args.overrides,
    ]
    # The dates each training reads, as `train` computes them; loading also rejects bad settings
    # before anything is written.
    config = load_config("local", settings, use_case=USE_CASE)
    reach, stride = config.use_case.label_reach, config.training.date_stride_days
    weekly_dates = label_dates(D, reach, config.training.days, stride)
    backfill = (weekly_dates[0], D - timedelta(days=1))

    fresh_lake(Path(args.lake))
    setup = {
        "generate": job("generate", USE_CASE, settings, "--force", "--date", D.isoformat(),
                        "--days", str(args.days), "--entities", str(args.series)),
        f"features {backfill[0]}..{backfill[1]}": job("features", USE_CASE, settings, "--force",
                                                      "--start", backfill[0].isoformat(),
                                                      "--end", backfill[1].isoformat()),
    }
    weekly = job("train", USE_CASE, settings, "--force", "--date", D.isoformat())
    nightly = {
        "features": job("features", USE_CASE, settings, "--force", "--date", D.isoformat()),
        "score": job("score", USE_CASE, settings, "--force", "--date", D.isoformat()),
    }

    generated = last_run(args.lake, USE_CASE, "generate")["rows"]
    runs = {name: last_run(args.lake, USE_CASE, name) for name in ("features", "score", "train")}
    print(f"\nseries={args.series:,} ({args.stores} stores x {args.series // args.stores:,} items)  "
          f"days={args.days}  sales rows: {generated.get('sales', 0):,}  D={D}")
    chosen = ", ".join(f"{key.removeprefix('training.')}={value}" for key, value in training.items())
    print(f"training: {chosen}; "
          f"the weekly train's feature dates {weekly_dates[0]}..{weekly_dates[-1]}")
    for step, seconds in setup.items():
        print(f"  setup   {step:<36} {seconds:>7.1f}s")
    for step, seconds in [*nightly.items(), ("train", weekly)]:
        run = runs[step]
        kind = "weekly " if step == "train" else "nightly"
        print(f"  {kind} {step + ' --date ' + D.isoformat():<36} {seconds:>7.1f}s  (in the job: "
              f"{run['duration_s']:.1f}s; rows {run['rows']}; steps {run['timings']})")
    total = sum(nightly.values())
    print(f"  nightly path (features + score, launcher to exit): {total:.1f}s  goal < 300s")
    print(json.dumps({
        "series": args.series, "stores": args.stores, "days": args.days, "date": D.isoformat(),
        "series_rows": generated.get("series", 0), "sales_rows": generated.get("sales", 0),
        "training": training, "setup_s": {k: round(v, 1) for k, v in setup.items()},
        "nightly_s": {k: round(v, 1) for k, v in nightly.items()}, "nightly_total_s": round(total, 1),
        "weekly_train_s": round(weekly, 1), "runs": runs,
    }))
    return 0


if __name__ == "__main__":
    exit_now(main())
