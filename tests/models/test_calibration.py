"""Venn-Abers probabilities, Mondrian conformal sets, calibration reports and fraud metrics,
each against its definition computed the slow way or against values worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score

from models import calibration
from models.calibration import MondrianConformal, VennAbers


def _brute_venn_abers(scores: np.ndarray, labels: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The definition: refit the isotonic regression with the test object labelled 0, then 1."""
    bounds = []
    for label in (0, 1):
        fitted = [IsotonicRegression().fit(np.r_[scores, s], np.r_[labels, label]).predict([s])[0] for s in test]
        bounds.append(np.array(fitted))
    return bounds[0], bounds[1]


def _places(scores: np.ndarray) -> np.ndarray:
    """Every place a test score can fall: each distinct score, each gap, below and above all."""
    distinct = np.unique(scores)
    gaps = (distinct[1:] + distinct[:-1]) / 2
    return np.r_[distinct, gaps, distinct[0] - 1.0, distinct[-1] + 1.0]


def test_venn_abers_equals_its_definition_on_random_calibration_sets() -> None:
    rng = np.random.default_rng(0)
    differs = 0
    for trial in range(40):
        rows = int(rng.integers(1, 30))
        # Scores on a coarse grid: many ties, and never closer than scikit-learn's 1e-15 merge.
        scores = rng.integers(0, 12, size=rows) / 8.0
        labels = (rng.random(rows) < rng.random()).astype(int)
        test = _places(scores)
        fitted = VennAbers.fit(scores, labels)
        p0, p1 = fitted.predict_bounds(test)
        b0, b1 = _brute_venn_abers(scores, labels, test)
        np.testing.assert_allclose(p0, b0, rtol=0, atol=1e-12, err_msg=f"trial {trial}")
        np.testing.assert_allclose(p1, b1, rtol=0, atol=1e-12, err_msg=f"trial {trial}")
        assert (p0 <= p1).all()
        np.testing.assert_allclose(fitted.predict(test), b1 / (1 - b0 + b1), rtol=0, atol=1e-12)
        differs += int((p1 - p0 > 0.05).any())
    assert differs > 30  # the pairs are not trivially equal


def test_venn_abers_equals_its_definition_on_a_larger_set_with_many_ties() -> None:
    rng = np.random.default_rng(1)
    x = rng.random(3000)
    scores = np.round(x + 0.3 * rng.normal(size=3000), 1)  # about 20 distinct scores
    labels = (rng.random(3000) < x).astype(int)
    test = _places(scores)
    p0, p1 = VennAbers.fit(scores, labels).predict_bounds(test)
    b0, b1 = _brute_venn_abers(scores, labels, test)
    np.testing.assert_allclose(p0, b0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p1, b1, rtol=0, atol=1e-12)


def test_venn_abers_known_values() -> None:
    # Calibration (1, 0), (2, 1), (3, 0). At 2 with label 0 the labels read 0, {1, 0}, 0: the
    # last three pool to 1/3; with label 1, 0, {1, 1}, 0 pool the last three to 2/3.
    # Below (label 1): 1, 0, 1, 0 pools to 1/2. Above (label 0): 0, 1, 0, 0 pools to 1/3.
    fitted = VennAbers.fit([1.0, 2.0, 3.0], [0, 1, 0])
    p0, p1 = fitted.predict_bounds([2.0, 0.0, 4.0, np.nan])
    np.testing.assert_allclose(p0[:3], [1 / 3, 0.0, 1 / 3], atol=1e-15)
    np.testing.assert_allclose(p1[:3], [2 / 3, 0.5, 1.0], atol=1e-15)
    assert np.isnan(p0[3]) and np.isnan(p1[3])
    columns = fitted.columns([2.0])
    assert columns["score"][0] == pytest.approx(0.5)  # (2/3) / (1 - 1/3 + 2/3)
    assert columns["score_low"][0] == pytest.approx(1 / 3) and columns["score_high"][0] == pytest.approx(2 / 3)


def test_venn_abers_round_trips_through_json_and_stays_compact() -> None:
    rng = np.random.default_rng(2)
    x = rng.random(200_000)
    scores = x + 0.2 * rng.normal(size=len(x))
    labels = (rng.random(len(x)) < x).astype(int)
    fitted = VennAbers.fit(scores, labels)
    assert fitted.calibration_rows == 200_000 and fitted.distinct_scores == 200_000
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    restored = VennAbers.from_dict(json.loads(text))
    test = np.r_[rng.permutation(scores)[:20_000], rng.normal(size=1000), scores.min() - 1, scores.max() + 1]
    p0, p1 = fitted.predict_bounds(test)
    r0, r1 = restored.predict_bounds(test)
    assert np.array_equal(p0, r0) and np.array_equal(p1, r1)
    # The step functions change far less often than there are scores.
    assert len(fitted.low.values) + len(fitted.high.values) < 20_000 and len(text) < 1_000_000
    # Monotone in the score, p0 <= p1, and narrow where calibration data are plenty.
    order = np.argsort(test)
    assert (np.diff(p0[order]) >= 0).all() and (np.diff(p1[order]) >= 0).all() and (p0 <= p1).all()
    middle = (test > 0.3) & (test < 0.7)
    assert np.median((p1 - p0)[middle]) < 0.002 and np.percentile((p1 - p0)[middle], 99) < 0.02
    with pytest.raises(ValueError):
        VennAbers.from_dict({**fitted.to_dict(), "version": 2})


def test_venn_abers_rejects_bad_calibration_data() -> None:
    for scores, labels in (([], []), ([0.1, np.nan], [0, 1]), ([0.1, 0.2], [0, 2]), ([0.1], [0, 1])):
        with pytest.raises(ValueError):
            VennAbers.fit(scores, labels)


def test_venn_abers_probability_of_the_true_label_is_calibrated() -> None:
    # Venn validity: with calibration and test examples exchangeable, p_Y (p1 for a positive, p0
    # for a negative) is perfectly calibrated, E[Y | p_Y] = p_Y, however small the calibration
    # set, over the randomness of both. An isotonic fit on the calibration set alone is not
    # (overconfident at 20 examples), which shows the check can fail.
    rng = np.random.default_rng(11)
    repetitions, calibrating, testing = 2000, 20, 10
    true_p, naive, labels, p0s, p1s = [], [], [], [], []
    for _ in range(repetitions):
        x = rng.random(calibrating + testing)
        y = (rng.random(len(x)) < x**2).astype(int)
        p0, p1 = VennAbers.fit(x[:calibrating], y[:calibrating]).predict_bounds(x[calibrating:])
        true_p.append(np.where(y[calibrating:] == 1, p1, p0))
        isotonic = IsotonicRegression(out_of_bounds="clip").fit(x[:calibrating], y[:calibrating])
        naive.append(isotonic.predict(x[calibrating:]))
        labels.append(y[calibrating:])
        p0s.append(p0)
        p1s.append(p1)
    label = np.concatenate(labels)
    for row in calibration.calibration_table(np.concatenate(true_p), label, bins=5):
        noise = 4 * math.sqrt(max(row["observed_rate"] * (1 - row["observed_rate"]), 0.01) / row["count"])
        assert abs(row["observed_rate"] - row["mean_predicted"]) < noise, row
    naive_table = calibration.calibration_table(np.concatenate(naive), label, bins=5)
    assert max(abs(row["observed_rate"] - row["mean_predicted"]) for row in naive_table) > 0.1
    # Hence, per bin of the merged p, the observed rate between the mean p0 and the mean p1.
    table = calibration.bounds_calibration(np.concatenate(p0s), np.concatenate(p1s), label, bins=5)
    assert len(table) == 5 and all(row["within"] for row in table)


def test_venn_abers_corrects_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(3)

    def draw(rows: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.beta(1, 6, size=rows)
        return np.sqrt(truth), (rng.random(rows) < truth).astype(int)  # ranks well, reads too high

    fitted = VennAbers.fit(*draw(50_000))
    score, label = draw(200_000)
    p0, p1 = fitted.predict_bounds(score)
    assert calibration.expected_calibration_error(score, label) > 0.1
    assert calibration.expected_calibration_error(fitted.predict(score), label) < 0.008
    # Given one calibration set, a bin's rate also carries that set's noise (a quarter the rows).
    for row in calibration.bounds_calibration(p0, p1, label, bins=10):
        rate = row["observed_rate"]
        noise = 4 * math.sqrt(rate * (1 - rate) * 5 / row["count"])
        assert row["mean_p0"] - noise <= rate <= row["mean_p1"] + noise
        assert row["mean_p0"] <= row["mean_p"] <= row["mean_p1"]


def test_bounds_calibration_known_values() -> None:
    table = calibration.bounds_calibration([0.1, 0.1, 0.5, 0.6], [0.3, 0.3, 0.7, 0.9], [0, 1, 1, 1], bins=2)
    assert [row["count"] for row in table] == [2, 2]
    assert table[0]["mean_p0"] == pytest.approx(0.1) and table[0]["mean_p1"] == pytest.approx(0.3)
    assert table[0]["observed_rate"] == 0.5 and not table[0]["within"]
    assert table[1]["mean_p0"] == pytest.approx(0.55) and table[1]["observed_rate"] == 1.0 and not table[1]["within"]
    assert table[0]["mean_p"] == pytest.approx(0.3 / 1.2)


def test_calibration_table_uses_quantile_bins_that_keep_ties_together() -> None:
    prob = np.array([0.1, 0.2, 0.2, 0.2, 0.2, 0.5, 0.6, 0.7, 0.8, 0.9])
    label = np.array([0, 0, 1, 0, 0, 1, 0, 1, 1, 1])
    table = calibration.calibration_table(prob, label, bins=5)
    # Quantile edges 0.1, 0.2, 0.2, 0.54, 0.72, 0.9: the duplicate 0.2 goes, so four bins.
    assert [row["count"] for row in table] == [1, 5, 2, 2]
    assert table[1]["mean_predicted"] == pytest.approx(0.26) and table[1]["observed_rate"] == pytest.approx(0.4)
    assert table[3]["mean_predicted"] == pytest.approx(0.85) and table[3]["observed_rate"] == 1.0
    # ECE: (1 * 0.1 + 5 * 0.14 + 2 * 0.15 + 2 * 0.15) / 10.
    assert calibration.expected_calibration_error(prob, label, bins=5) == pytest.approx(0.14)
    shuffled = np.random.default_rng(0).permutation(10)
    assert calibration.calibration_table(prob[shuffled], label[shuffled], bins=5) == table


def test_conformal_p_values_and_sets_follow_the_definition() -> None:
    rng = np.random.default_rng(4)
    prob = np.round(rng.random(300), 2)  # ties between calibration and test probabilities
    labels = (rng.random(300) < prob).astype(int)
    fitted = MondrianConformal.fit(prob, labels)
    test = np.r_[np.round(rng.random(200), 2), 0.0, 1.0, -0.5, 1.5]
    pv0, pv1 = fitted.p_values(test)
    for i, p in enumerate(test):
        zeros, ones = prob[labels == 0], prob[labels == 1]
        # Nonconformity 1 - P(y): p for class 0, 1 - p for class 1; ties count against.
        assert pv0[i] == (np.sum(zeros >= p) + 1) / (len(zeros) + 1)
        assert pv1[i] == (np.sum(1 - ones >= 1 - p) + 1) / (len(ones) + 1)
    for alpha in (0.001, 0.05, 0.1, 0.2, 0.5, 0.99):
        contains0, contains1 = fitted.predict(test, alpha)
        assert np.array_equal(contains0, pv0 > alpha) and np.array_equal(contains1, pv1 > alpha)
        sets = fitted.at(alpha)
        restored = calibration.ConformalSets.from_dict(json.loads(json.dumps(sets.to_dict(), allow_nan=False)))
        for thresholds in (sets, restored):
            t0, t1 = thresholds.predict(test)
            assert np.array_equal(t0, contains0) and np.array_equal(t1, contains1), alpha
    # Below 1 / (n_y + 1) every p-value exceeds alpha. At 0.99 (n0 = 137, n1 = 163), a p-value
    # above 0.99 needs all but one of the class at least as nonconforming: 136/138 < 0.99 < 137/138.
    assert fitted.at(0.001).zero_up_to == math.inf and fitted.at(0.001).one_from == -math.inf
    assert (fitted.at(0.99).n0, fitted.at(0.99).n1) == (137, 163)
    assert fitted.at(0.99).zero_up_to == np.sort(prob[labels == 0])[1]
    assert fitted.at(0.99).one_from == np.sort(prob[labels == 1])[-2]
    with pytest.raises(ValueError):
        fitted.at(0.0)


def test_class_conditional_coverage_holds_in_expectation_for_each_class() -> None:
    # Mondrian validity: for each class separately, E[coverage] lies in [1 - alpha,
    # 1 - alpha + 1 / (n_y + 1)], exactly 1 - floor(alpha (n_y + 1)) / (n_y + 1) without ties.
    # The class-conditional probability distributions are known (Betas), so each repetition's
    # coverage given its calibration set is known exactly too.
    rng = np.random.default_rng(5)
    alpha, n0, n1, tests, repetitions = 0.1, 203, 53, 400, 600
    given: dict[int, list[float]] = {0: [], 1: []}
    measured: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repetitions):
        prob = np.r_[rng.beta(2, 5, size=n0), rng.beta(5, 2, size=n1)]
        labels = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        sets = MondrianConformal.fit(prob, labels).at(alpha)
        given[0].append(stats.beta.cdf(sets.zero_up_to, 2, 5))
        given[1].append(stats.beta.sf(sets.one_from, 5, 2))
        contains0, contains1 = sets.predict(np.r_[rng.beta(2, 5, size=tests), rng.beta(5, 2, size=tests)])
        measured[0].append(contains0[:tests].mean())
        measured[1].append(contains1[tests:].mean())
    for y, n in ((0, n0), (1, n1)):
        exact = 1 - math.floor(alpha * (n + 1)) / (n + 1)
        assert 1 - alpha <= exact <= 1 - alpha + 1 / (n + 1)
        # The coverage given a calibration set has sd about sqrt(alpha (1 - alpha) / n).
        tolerance = 4 * math.sqrt(alpha * (1 - alpha) / (n + 2) / repetitions)
        assert abs(np.mean(given[y]) - exact) < tolerance, (y, np.mean(given[y]), exact)
        assert abs(np.mean(measured[y]) - exact) < tolerance + 0.002
    # An off-by-one p-value (no +1, or >= alpha) would move class 1's coverage by 1/54 = 0.0185.
    assert 4 * math.sqrt(0.09 / 55 / repetitions) < 0.0185 / 2


def _days_of_rows(rng: np.random.Generator, days: int, rows: dict[int, int], spread: float) -> tuple[np.ndarray, ...]:
    """Rows of `days` days whose class-1 probabilities move together within a day: each day's
    logit is shifted by its own N(0, spread) (a day's mix of shoppers), class 0 from Beta(2, 5)
    and class 1 from Beta(5, 2) before the shift. Returns (prob, labels, day)."""
    prob, labels, day = [], [], []
    for d in range(days):
        shift = rng.normal(0.0, spread)
        for label, (a, b) in ((0, (2, 5)), (1, (5, 2))):
            drawn = rng.beta(a, b, size=rows[label])
            prob.append(1 / (1 + np.exp(-(np.log(drawn / (1 - drawn)) + shift))))
            labels.append(np.full(rows[label], label))
            day.append(np.full(rows[label], d))
    return np.concatenate(prob), np.concatenate(labels), np.concatenate(day)


def _coverage_over_days(label: int, threshold: float, spread: float) -> float:
    """The share of class `label`'s rows, over all days to come, inside a set with this threshold."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # E over the day's N(0, spread) shift
    unshifted = 1 / (1 + np.exp(-(np.log(threshold / (1 - threshold)) - spread * nodes)))
    inside = stats.beta.cdf(unshifted, 2, 5) if label == 0 else stats.beta.sf(unshifted, 5, 2)
    return float(weights @ inside / weights.sum())


def test_the_coverage_interval_over_days_holds_the_coverage_of_the_procedure_when_days_differ() -> None:
    # Rows of a day share the day's shift, so 2,100 rows of a class carry the information of far
    # fewer: the sets' coverage varies with the calibration days drawn and the measurement with the
    # holdout days. The procedure's coverage (over calibration sets and days to come) is known from
    # the shifts' law; the interval over days should hold it in about 95% of repetitions, where an
    # interval that counts rows as independent (a binomial one) holds it far less often.
    rng = np.random.default_rng(12)
    alpha, days, rows, spread, repetitions = 0.1, 14, {0: 150, 1: 30}, 0.5, 150

    def thresholds() -> tuple[float, float]:
        sets = MondrianConformal.fit(*_days_of_rows(rng, days, rows, spread)[:2]).at(alpha)
        return sets.zero_up_to, sets.one_from

    procedure = [np.mean([_coverage_over_days(y, t[y], spread) for t in (thresholds() for _ in range(1000))])
                 for y in (0, 1)]
    held = {"days": np.zeros(2), "rows": np.zeros(2)}
    for repetition in range(repetitions):
        result = calibration.conformal_coverage(*_days_of_rows(rng, days, rows, spread),
                                                *_days_of_rows(rng, days, rows, spread), alpha, seed=repetition)
        for row in result:
            y, c, n = row["label"], row["coverage"], row["n"]
            held["days"][y] += row["coverage_low"] <= procedure[y] <= row["coverage_high"]
            half = 1.96 * math.sqrt(c * (1 - c) / n)
            held["rows"][y] += c - half <= procedure[y] <= c + half
    share = {name: counts / repetitions for name, counts in held.items()}
    assert ((0.85 <= share["days"]) & (share["days"] <= 0.99)).all(), share
    assert (share["rows"] < 0.75).all(), share


def test_the_coverage_of_each_class_is_measured_with_the_sets_fitted_on_the_calibration_rows() -> None:
    rng = np.random.default_rng(3)
    prob, labels, day = _days_of_rows(rng, 5, {0: 40, 1: 20}, 0.3)
    test_prob, test_labels, test_day = _days_of_rows(rng, 4, {0: 50, 1: 10}, 0.3)
    rows = calibration.conformal_coverage(prob, labels, day, test_prob, test_labels, test_day, 0.2, resamples=50)
    contains0, contains1 = MondrianConformal.fit(prob, labels).predict(test_prob, 0.2)
    for row, mine, contains in ((rows[0], test_labels == 0, contains0), (rows[1], test_labels == 1, contains1)):
        assert row["n"] == mine.sum() and row["coverage"] == contains[mine].mean()
        assert row["mean_set_size"] == pytest.approx((contains0[mine].astype(int) + contains1[mine]).mean())
        assert row["coverage_low"] <= row["coverage"] <= row["coverage_high"]
    # One scored day drawn every time and one calibration day: the interval is a point.
    single = calibration.conformal_coverage(prob[day == 0], labels[day == 0], day[day == 0],
                                            test_prob[test_day == 0], test_labels[test_day == 0], test_day[test_day == 0], 0.2)
    assert all(row["coverage_low"] == row["coverage"] == row["coverage_high"] for row in single)
    unbounded = calibration.conformal_coverage(prob, labels, day, test_prob, test_labels, test_day, 0.2, resamples=0)
    assert all(row["coverage_low"] is None and row["coverage_high"] is None for row in unbounded)


def test_bootstrap_average_precision_equals_scikit_learn_on_each_resample() -> None:
    rng = np.random.default_rng(7)
    label = (rng.random(500) < 0.1).astype(int)
    score = np.round(rng.random(500) + label * 0.3, 1)  # heavy ties
    ranking = calibration._Ranking(score, label)
    for _ in range(5):
        draw = rng.integers(0, 500, size=500)
        counts = np.bincount(draw, minlength=500).astype(float)
        expected = average_precision_score(label[draw], score[draw])
        assert ranking.average_precision(counts) == pytest.approx(expected, abs=1e-12)
        assert average_precision_score(label, score, sample_weight=counts) == pytest.approx(expected, abs=1e-12)
    assert ranking.average_precision(np.ones(500)) == pytest.approx(average_precision_score(label, score), abs=1e-12)


def test_pr_auc_bootstrap_is_seeded_and_its_ratio_is_paired() -> None:
    rng = np.random.default_rng(8)
    truth = rng.beta(1, 20, size=20_000)
    label = (rng.random(20_000) < truth).astype(int)
    score = truth * np.exp(rng.normal(scale=0.7, size=20_000))
    result = calibration.pr_auc_bootstrap(label, score, truth, resamples=100, seed=3)
    assert result == calibration.pr_auc_bootstrap(label, score, truth, resamples=100, seed=3)
    assert result["resamples_used"] == 100
    assert result["pr_auc"]["value"] == pytest.approx(average_precision_score(label, score))
    for name in ("pr_auc", "reference", "ratio"):
        assert result[name]["low"] < result[name]["value"] < result[name]["high"]
    assert result["ratio"]["value"] == pytest.approx(result["pr_auc"]["value"] / result["reference"]["value"])
    assert result["ratio"]["high"] < 1  # a noisy copy of the truth ranks worse than the truth
    # Paired: the same rows for both, so a score against itself has a ratio of exactly 1.
    same = calibration.pr_auc_bootstrap(label, score, score.copy(), resamples=20, seed=0)
    assert same["ratio"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    # Unpaired resamples would spread the ratio about as wide as the two intervals together.
    assert result["ratio"]["high"] - result["ratio"]["low"] < (
        (result["pr_auc"]["high"] - result["pr_auc"]["low"]) / result["pr_auc"]["value"]
        + (result["reference"]["high"] - result["reference"]["low"]) / result["reference"]["value"])
    with pytest.raises(ValueError):
        calibration.pr_auc_bootstrap(np.zeros(5, int), np.ones(5))


def test_precision_at_top_k_per_day_shares_ties_at_the_kth_score() -> None:
    day = np.array(["2026-01-02"] * 5 + ["2026-01-01"] * 4 + [None])
    score = np.array([0.9, 0.8, 0.5, 0.5, 0.5, 0.7, 0.6, 0.2, 0.1, 0.99])
    label = np.array([1, 0, 1, 0, 0, 1, 1, 0, 1, 1])
    result = calibration.precision_at_top_k_per_day(label, score, day, k=3)
    # 2026-01-02: 0.9 and 0.8 (1 hit) then one of the three tied 0.5s (1 positive of 3): 4/3 of 3.
    # 2026-01-01: 0.7, 0.6, 0.2: 2 of 3. The row without a day is left out.
    assert [d["day"] for d in result["by_day"]] == ["2026-01-01", "2026-01-02"]
    assert [d["rows"] for d in result["by_day"]] == [4, 5]
    assert result["by_day"][0]["precision"] == pytest.approx(2 / 3)
    assert result["by_day"][1]["precision"] == pytest.approx(4 / 9)
    assert result["mean"] == pytest.approx((2 / 3 + 4 / 9) / 2)
    short = calibration.precision_at_top_k_per_day(label[:9], score[:9], day[:9], k=100)
    assert [d["k"] for d in short["by_day"]] == [4, 5] and short["by_day"][0]["precision"] == 0.75
    shuffled = np.random.default_rng(0).permutation(10)
    assert calibration.precision_at_top_k_per_day(label[shuffled], score[shuffled], day[shuffled], k=3) == result


def test_recall_at_fpr_flags_at_most_the_stated_share_of_negatives() -> None:
    # 1000 negatives at 0.000, 0.001, ..., 0.999: 0.5% allows 5 of them, so flagging starts just
    # above the sixth highest, 0.994. Positives: 0.9945 and up are caught, 0.994 (tied) is not.
    negatives = np.arange(1000) / 1000
    positives = np.array([0.999, 0.9945, 0.994, 0.5, 1.0])
    amount = np.r_[np.ones(1000), [10.0, 20.0, 30.0, 40.0, 100.0]]
    result = calibration.recall_at_fpr(np.r_[np.zeros(1000, int), np.ones(5, int)], np.r_[negatives, positives],
                                       0.005, amount)
    assert 0.994 < result["threshold"] <= 0.9945
    assert result["false_positive_rate"] == 0.005 and result["flagged"] == 8
    assert result["recall"] == pytest.approx(3 / 5)
    assert result["amount_caught_share"] == pytest.approx(130 / 200)
    # Ties at the cut are left out whole: never more than the stated share of negatives.
    tied = calibration.recall_at_fpr([0] * 10 + [1], [0.5] * 10 + [0.5], 0.5)
    assert tied["false_positive_rate"] == 0.0 and tied["recall"] == 0.0
    everything = calibration.recall_at_fpr([0, 1], [0.2, 0.1], 1.0)
    assert everything["threshold"] is None and everything["recall"] == 1.0


def test_fraud_metrics_gathers_the_investigators_metrics() -> None:
    rng = np.random.default_rng(9)
    truth = rng.beta(1, 30, size=5000)
    label = (rng.random(5000) < truth).astype(int)
    score = truth + rng.normal(scale=0.01, size=5000)
    result = calibration.fraud_metrics(label, score, reference=truth, day=rng.integers(0, 5, size=5000),
                                       amount=rng.gamma(2.0, 50.0, size=5000), top_k=50, resamples=30)
    json.dumps(result, allow_nan=False)
    assert set(result) == {"pr_auc", "top_k", "at_fpr"} and set(result["pr_auc"]) >= {"reference", "ratio"}
    assert [d["day"] for d in result["top_k"]["by_day"]] == [0, 1, 2, 3, 4]
    assert result["at_fpr"]["false_positive_rate"] <= 0.005
    assert calibration.fraud_metrics(label, score, resamples=5)["top_k"] is None


def test_a_logit_grid_is_the_plain_predictor_of_the_rounded_logits() -> None:
    rng = np.random.default_rng(4)
    prob = rng.beta(0.5, 40, 5000)
    labels = (rng.random(5000) < prob).astype(int)
    gridded = VennAbers.fit(prob, labels, logit_step=0.05)
    logits = np.round(np.log(prob / (1 - prob)) / 0.05)
    plain = VennAbers.fit(logits, labels)
    test = rng.beta(0.5, 40, 1000)
    test_logits = np.round(np.log(test / (1 - test)) / 0.05)
    for a, b in zip(gridded.predict_bounds(test), plain.predict_bounds(test_logits)):
        assert np.array_equal(a, b)
    restored = VennAbers.from_dict(json.loads(json.dumps(gridded.to_dict())))
    assert np.array_equal(restored.predict(test), gridded.predict(test))
    assert gridded.distinct_scores < 300 < len(np.unique(prob))
