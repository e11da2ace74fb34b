"""models/calibration.py at a million rows: Venn-Abers fit and predict, the PR-AUC bootstrap.

    PYTHONPATH=. .venv/bin/python benchmarks/calibration_scale.py [--rows 1000000] [--resamples 200]

Synthetic fraud-like data (about 0.6% positives): a true probability, a noisy score of it, and
the same score rounded to 4 decimals (many ties, as a model with few leaves gives). Prints wall
times, the stored predictor's size as JSON and the runs of p0 and p1. No Spark, no files.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from models.calibration import VennAbers, fraud_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = args.rows
    x = rng.normal(size=rows)
    truth = 1 / (1 + np.exp(-(2 * x - 7)))
    label = (rng.random(rows) < truth).astype(int)
    score = 1 / (1 + np.exp(-(2 * x + rng.normal(size=rows) - 7)))
    print(f"rows {rows:,}, positives {label.sum():,}")
    for name, calibrating in (("continuous", score), ("rounded to 4 decimals", np.round(score, 4))):
        start = time.perf_counter()
        fitted = VennAbers.fit(calibrating, label)
        fit_s = time.perf_counter() - start
        test = rng.permutation(calibrating)
        start = time.perf_counter()
        p0, p1 = fitted.predict_bounds(test)
        predict_s = time.perf_counter() - start
        size = len(json.dumps(fitted.to_dict()))
        runs = f"{len(fitted.low.values):,} / {len(fitted.high.values):,}"
        print(f"Venn-Abers, {name}: {fitted.distinct_scores:,} distinct scores, fit {fit_s:.2f} s, "
              f"predict {rows:,} scores {predict_s:.3f} s, runs of p0 / p1 {runs}, {size / 1e3:,.0f} kB as JSON")
    start = time.perf_counter()
    result = fraud_metrics(label, score, reference=truth, day=rng.integers(0, 30, size=rows),
                           amount=rng.gamma(2.0, 50.0, size=rows), resamples=args.resamples)
    print(f"fraud_metrics with a reference, B = {args.resamples}: {time.perf_counter() - start:.1f} s; "
          f"PR-AUC {result['pr_auc']['pr_auc']}, ratio {result['pr_auc']['ratio']}")


if __name__ == "__main__":
    main()
