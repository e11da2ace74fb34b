"""Calibrated probabilities of a binary classifier, prediction sets, and the metrics around them.

Pure NumPy functions and small frozen objects: nothing here reads tables or touches Spark.

**Inductive Venn-Abers predictor** (Vovk, Petej and Fedorova, "Large-scale probabilistic
predictors with and without guarantees of validity", NeurIPS 2015). From a calibration set of
(score, label) pairs that the model did not train on, each new score gets two probabilities:
p0, the isotonic regression of the labels on the scores fitted at the new object when it is
added to the calibration set with label 0, and p1, the same with label 1 (p0 <= p1). What the
pair means:

- Under exchangeability of the calibration examples and the scored example, one of p0 and p1
  is a perfectly calibrated probability: the one of the true label Y (p1 if Y = 1, p0 if
  Y = 0), which is not known when scoring, satisfies E[Y | p_Y] = p_Y over the randomness of
  both sets, however small the calibration set. Hence among examples given similar pairs the
  observed frequency of label 1 lies, on average, between p0 and p1.
- The pair is **not** a confidence interval for the true probability of a single transaction,
  and it does not say how likely the label is to be 1 at some confidence level; it bounds the
  calibration of the procedure over many examples.
- Its width, about 1 / (1 + the number of calibration examples in the isotonic block around
  the score), shrinks as the calibration set grows; wide pairs flag scores where calibration data
  are scarce (the extremes).
- Validity is lost when the scored examples are not exchangeable with the calibration ones:
  drift between the calibration period and the scoring period breaks it, and nothing in the
  pair warns about it. Recalibrate on recent, matured labels, and watch `bounds_calibration`.

The scores table shows the merged probability p = p1 / (1 - p0 + p1) as `score`, with
`score_low` = p0 and `score_high` = p1.

**Class-conditional (Mondrian) conformal prediction sets**: a set of labels per example that,
under exchangeability within each class, contains the true label with probability at least
1 - alpha for the examples of each class separately (not just on average over classes).

Ties are handled the same way everywhere: by value, never by the order of the rows, so that
shuffling the input never changes a result (see each function for its rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def _labels01(labels: Any, rows: int) -> np.ndarray:
    """Labels as int64 0/1, checked against the number of rows."""
    values = np.asarray(labels)
    if values.shape != (rows,):
        raise ValueError(f"labels must be one value per row: {values.shape} for {rows} rows")
    if values.dtype == bool:
        return values.astype(np.int64)
    if not np.isin(values, [0, 1]).all():
        raise ValueError("labels must be 0 or 1")
    return values.astype(np.int64)


def _floats(values: Any, name: str) -> np.ndarray:
    """One-dimensional float64 values without NaN (infinities order like any number)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    return array


# --------------------------------------------------------------------------------------------
# Inductive Venn-Abers predictor
# --------------------------------------------------------------------------------------------


def _bridge_slopes(cum_weight: list[int], cum_label: list[int]) -> tuple[list[float], list[float]]:
    """p0 and p1 at each of the 2k + 1 places a new score can fall, from the cumulative sums.

    The calibration set, reduced to its k distinct scores, is the cumulative sum diagram
    P_j = (cum_weight[j], cum_label[j]), j = 0..k (P_0 = (0, 0)): its greatest convex minorant's
    slopes are the isotonic fit. A new object with label c that falls in the gap after the j-th
    distinct score adds the point (1, c) to the diagram there, which shifts every P_R with R >= j
    by (1, c); the fit at the new object is then the slope of the bridge (the lower common
    tangent) between the lower hull of the left points {P_L : L <= j} and that of the shifted
    right points {P_R + (1, c) : R >= j}, that is max over L min over R of the slope from P_L to
    P_R + (1, c). A new object equal to the j-th distinct score joins its tie group: the same
    with L <= j - 1 and R >= j. Places in order: gap 0 (below every score), score 1, gap 1, ...,
    score k, gap k (above every score); place s has L <= floor(s / 2), R >= ceil(s / 2).

    Why it is linear after sorting: along the places the left set only gains points on its right
    and the right set only loses points on its left, so the bridge's slope never decreases and
    both of its touching points only move right. The left hull is a stack that grows (Andrew's
    monotone chain); the right hull is built once from the right with every overwrite logged,
    and undoing those pushes in reverse order gives each smaller right set's hull. Two pointers,
    one per hull, walk right only, so the total work is O(k), each hull vertex passed once.
    Everything is compared in exact integer arithmetic (counts), so ties and collinear points
    are decided exactly; the slopes are divided once, at the end.

    Args:
        cum_weight: cumulative counts of calibration examples, [0, w_1, w_1 + w_2, ...].
        cum_label: cumulative counts of label 1 over the same groups.

    Returns:
        (p0, p1), each a list of 2k + 1 floats indexed by place.
    """
    W, Y = cum_weight, cum_label
    k = len(W) - 1
    # Right hull of P_0..P_k built from the right: right[0] is P_k, right[top] the leftmost
    # vertex. For each pushed point, where it was written, what it overwrote and the top before.
    right = [0] * (k + 1)
    written_at = [0] * (k + 1)
    overwritten = [0] * (k + 1)
    top_before = [0] * (k + 1)
    top = -1
    for m in range(k, -1, -1):
        xm, ym = W[m], Y[m]
        previous_top = top
        while top >= 1:
            t1, t2 = right[top], right[top - 1]
            x1, y1 = W[t1], Y[t1]
            # t1 is not a vertex once slope(P_m, t1) >= slope(t1, t2) (collinear ones go too).
            if (y1 - ym) * (W[t2] - x1) >= (Y[t2] - y1) * (x1 - xm):
                top -= 1
            else:
                break
        top += 1
        written_at[m], overwritten[m], top_before[m] = top, right[top], previous_top
        right[top] = m

    left = [0]
    places = 2 * k + 1
    out = ([0.0] * places, [0.0] * places)
    a_at = [0, 0]  # per label c, the bridge's left vertex as a position in `left`
    b_at = [top, top]  # and its right vertex as a position in `right`
    for s in range(places):
        if s % 2 == 1:
            # Into the tie group of score (s + 1) / 2: P_{(s-1)/2} leaves the right set.
            m = (s - 1) // 2
            position = written_at[m]
            right[position] = overwritten[m]
            top = top_before[m]
            for c in (0, 1):
                if b_at[c] == position:  # the bridge's right vertex left: restart leftmost
                    b_at[c] = top
        elif s > 0:
            # Into the gap after score s / 2: P_{s/2} joins the left set.
            m = s // 2
            xm, ym = W[m], Y[m]
            while len(left) >= 2:
                t1, t2 = left[-1], left[-2]
                x1, y1 = W[t1], Y[t1]
                if (y1 - Y[t2]) * (xm - x1) >= (ym - y1) * (x1 - W[t2]):
                    left.pop()
                else:
                    break
            left.append(m)
            last = len(left) - 1
            for c in (0, 1):
                # A popped left vertex lay on or above the chord to P_m, so P_m is the new one.
                if a_at[c] > last:
                    a_at[c] = last
        for c in (0, 1):
            ia, ib = a_at[c], b_at[c]
            while True:
                a = left[ia]
                xa, ya = W[a], Y[a]
                b = right[ib]
                rise, run = Y[b] + c - ya, W[b] + 1 - xa
                # Right pointer: to the tangent point from the left vertex.
                while ib > 0:
                    n = right[ib - 1]
                    next_rise, next_run = Y[n] + c - ya, W[n] + 1 - xa
                    if next_rise * run <= rise * next_run:
                        ib, rise, run = ib - 1, next_rise, next_run
                    else:
                        break
                # Left pointer: on while the next left vertex is on or below the tangent line.
                if ia + 1 < len(left):
                    n = left[ia + 1]
                    if (Y[n] - ya) * run <= rise * (W[n] - xa):
                        ia += 1
                        continue
                break
            a_at[c], b_at[c] = ia, ib
            out[c][s] = rise / run
    return out


@dataclass(frozen=True, eq=False)
class StepFunction:
    """A nondecreasing step function of the score, as the runs where its value is constant.

    Each run after the first starts either at a calibration score x, including x
    (`at_or_above`), or just above one, excluding x (`above`); a score's run is the number of
    starts it has reached. Only the places where the value changes are kept.

    Attributes:
        at_or_above: sorted scores x where a run starts with x itself.
        above: sorted scores x where a run starts just above x.
        values: each run's value, in score order (len(at_or_above) + len(above) + 1 of them).
    """

    at_or_above: np.ndarray
    above: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        for name in ("at_or_above", "above", "values"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if len(self.values) != len(self.at_or_above) + len(self.above) + 1:
            raise ValueError("a step function needs one value per run")

    @classmethod
    def from_places(cls, values: np.ndarray, distinct: np.ndarray) -> StepFunction:
        """The step function with `values` at the 2k + 1 places of the k sorted `distinct` scores.

        Places in order: below every score, score 1, the gap above it, ..., score k, above all.
        """
        changes = np.flatnonzero(values[1:] != values[:-1]) + 1
        # An odd place 2j - 1 is distinct[j - 1] itself; an even place 2j > 0 the gap above it.
        odd = changes % 2 == 1
        return cls(at_or_above=distinct[(changes[odd] - 1) // 2], above=distinct[changes[~odd] // 2 - 1],
                   values=values[np.r_[0, changes]])

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """The value at each score (NaN scores are the caller's to mask)."""
        run = np.searchsorted(self.at_or_above, scores, side="right") + np.searchsorted(self.above, scores, side="left")
        return self.values[run]

    def to_dict(self) -> dict[str, list[float]]:
        return {"at_or_above": self.at_or_above.tolist(), "above": self.above.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepFunction:
        return cls(at_or_above=data["at_or_above"], above=data["above"], values=data["values"])


@dataclass(frozen=True, eq=False)
class VennAbers:
    """A fitted inductive Venn-Abers predictor: (p0, p1) for any score.

    p0 and p1 are step functions of the score, each kept only where it changes: usually far
    fewer numbers than the calibration set (this is what scoring ships to the executors). They
    change at different places (on rare positives p1 changes at almost every score of the
    low-score region, p0 rarely), so each has its own steps.

    Attributes:
        low: p0 as a function of the score.
        high: p1 as a function of the score.
        calibration_rows: the calibration set's size.
        distinct_scores: its number of distinct scores.
        logit_step: None, or the width of the grid that probabilities are first rounded to on the
            logit scale (`fit` and prediction alike): a coarser score, still a fixed monotone
            function of the model's, so validity holds, with far fewer steps to store.
    """

    low: StepFunction
    high: StepFunction
    calibration_rows: int
    distinct_scores: int
    logit_step: float | None = None

    def on_grid(self, scores: Any) -> np.ndarray:
        """`scores` (probabilities) as the predictor reads them: rounded on the logit grid, if any."""
        return _logit_grid(scores, self.logit_step)

    @classmethod
    def fit(cls, scores: Any, labels: Any, logit_step: float | None = None) -> VennAbers:
        """Fit on calibration scores (any real numbers ordered like the probability) and labels.

        Scores are tied when exactly equal (scikit-learn's isotonic regression also merges
        scores closer than 1e-15, which this does not).

        Args:
            scores: the model's scores of the calibration examples.
            labels: their 0/1 labels.
            logit_step: round probability scores on a logit grid this wide first (None: as they are).

        Returns:
            The fitted predictor.

        Raises:
            ValueError: no calibration examples, a NaN score, or a label other than 0/1.
        """
        scores = _floats(_logit_grid(scores, logit_step), "scores")
        labels = _labels01(labels, len(scores))
        if not len(scores):
            raise ValueError("a Venn-Abers predictor needs at least one calibration example")
        distinct, group = np.unique(scores, return_inverse=True)
        weight = np.bincount(group, minlength=len(distinct))
        ones = np.bincount(group, weights=labels, minlength=len(distinct)).astype(np.int64)
        cum_weight = np.concatenate([[0], np.cumsum(weight)]).tolist()
        cum_label = np.concatenate([[0], np.cumsum(ones)]).tolist()
        p0, p1 = (np.asarray(values) for values in _bridge_slopes(cum_weight, cum_label))
        return cls(low=StepFunction.from_places(p0, distinct), high=StepFunction.from_places(p1, distinct),
                   calibration_rows=int(len(scores)), distinct_scores=int(len(distinct)), logit_step=logit_step)

    def predict_bounds(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """(p0, p1) of each score; NaN for a NaN score.

        Args:
            scores: the model's scores of the examples to calibrate.

        Returns:
            Two float64 arrays, p0 <= p1.
        """
        scores = self.on_grid(scores)
        p0, p1 = self.low(scores), self.high(scores)
        missing = np.isnan(scores)
        if missing.any():
            p0, p1 = np.where(missing, np.nan, p0), np.where(missing, np.nan, p1)
        return p0, p1

    def predict(self, scores: Any) -> np.ndarray:
        """The merged probability p1 / (1 - p0 + p1) of each score (the scores table's `score`)."""
        return merge(*self.predict_bounds(scores))

    def columns(self, scores: Any) -> dict[str, np.ndarray]:
        """The scores table's `score`, `score_low` and `score_high` for each score."""
        p0, p1 = self.predict_bounds(scores)
        return {"score": merge(p0, p1), "score_low": p0, "score_high": p1}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for metadata.json or a side file next to the model."""
        return {
            "method": "inductive_venn_abers",
            "version": 1,
            "calibration_rows": self.calibration_rows,
            "distinct_scores": self.distinct_scores,
            "logit_step": self.logit_step,
            "p0": self.low.to_dict(),
            "p1": self.high.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VennAbers:
        """The predictor `to_dict` wrote.

        Raises:
            ValueError: not a version-1 Venn-Abers form, or steps that do not line up.
        """
        if data.get("method") != "inductive_venn_abers" or data.get("version") != 1:
            raise ValueError(f"not a version-1 Venn-Abers predictor: {data.get('method')!r} {data.get('version')!r}")
        return cls(low=StepFunction.from_dict(data["p0"]), high=StepFunction.from_dict(data["p1"]),
                   calibration_rows=int(data["calibration_rows"]), distinct_scores=int(data["distinct_scores"]),
                   logit_step=data.get("logit_step"))


def _logit_grid(scores: Any, step: float | None) -> np.ndarray:
    """Probabilities rounded to a grid of `step` on the logit scale, as grid indices (NaN stays NaN)."""
    scores = np.asarray(scores, dtype=np.float64)
    if step is None:
        return scores
    clipped = np.clip(scores, 1e-12, 1 - 1e-12)
    return np.round(np.log(clipped / (1 - clipped)) / step)


def merge(p0: Any, p1: Any) -> np.ndarray:
    """The merged probability p1 / (1 - p0 + p1) of Venn-Abers pairs.

    It minimises the worst of the two log losses against p0 and p1 (Vovk et al. 2015); the
    denominator is at least 1 - p0 + p0 = 1, since p0 <= p1.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    return p1 / (1.0 - p0 + p1)


# --------------------------------------------------------------------------------------------
# Class-conditional (Mondrian) conformal prediction sets
# --------------------------------------------------------------------------------------------


def _smallest_count(alpha: float, n: int) -> int:
    """The smallest count c with (c + 1) / (n + 1) > alpha, decided as the p-value decides it."""
    count = max(0, math.floor(alpha * (n + 1)) - 1)
    # alpha * (n + 1) may round across an integer: settle c with the p-value's own comparison.
    while (count + 1) / (n + 1) <= alpha:
        count += 1
    while count > 0 and count / (n + 1) > alpha:
        count -= 1
    return count


@dataclass(frozen=True, eq=False)
class ConformalSets:
    """Class-conditional conformal prediction sets at one level, as two thresholds.

    Label 0 is in the set of probability p when p <= `zero_up_to`; label 1 when p >= `one_from`.
    An infinite threshold (+inf for 0, -inf for 1) means always: when alpha < 1 / (n_y + 1).

    Attributes:
        alpha: the miscoverage level; each class's coverage is at least 1 - alpha.
        zero_up_to: the largest probability whose set holds label 0.
        one_from: the smallest probability whose set holds label 1.
        n0: calibration examples of class 0.
        n1: calibration examples of class 1.
    """

    alpha: float
    zero_up_to: float
    one_from: float
    n0: int
    n1: int

    def predict(self, prob: Any) -> tuple[np.ndarray, np.ndarray]:
        """(contains 0, contains 1) for each probability of class 1; neither for a NaN."""
        prob = np.asarray(prob, dtype=np.float64)
        return prob <= self.zero_up_to, prob >= self.one_from

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (infinite thresholds as the strings "inf" and "-inf")."""
        def number(value: float) -> float | str:
            return value if math.isfinite(value) else str(value)

        return {"method": "mondrian_conformal", "version": 1, "alpha": self.alpha, "n0": self.n0, "n1": self.n1,
                "zero_up_to": number(self.zero_up_to), "one_from": number(self.one_from)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformalSets:
        """The sets `to_dict` wrote.

        Raises:
            ValueError: not a version-1 form of these sets.
        """
        if data.get("method") != "mondrian_conformal" or data.get("version") != 1:
            raise ValueError(f"not version-1 Mondrian conformal sets: {data.get('method')!r} {data.get('version')!r}")
        return cls(alpha=float(data["alpha"]), zero_up_to=float(data["zero_up_to"]), one_from=float(data["one_from"]),
                   n0=int(data["n0"]), n1=int(data["n1"]))


@dataclass(frozen=True, eq=False)
class MondrianConformal:
    """Class-conditional conformal p-values for binary labels, from calibration probabilities.

    The nonconformity of an example with label y is 1 - P(y), with P(1) = p and P(0) = 1 - p:
    p for class 0, 1 - p for class 1. Comparisons are made on p itself (1 - p_i >= 1 - p is
    p_i <= p), which is the same order without the rounding of 1 - p. The p-value of label y
    for a new example is (#{calibration examples of class y at least as nonconforming} + 1) /
    (n_y + 1): deterministic (ties count as at least as nonconforming), not smoothed, so the
    coverage of class y is at least 1 - alpha and, without ties, below 1 - alpha + 1 / (n_y + 1).

    Attributes:
        class0: sorted probabilities of the class-0 calibration examples.
        class1: sorted probabilities of the class-1 calibration examples.
    """

    class0: np.ndarray
    class1: np.ndarray

    @classmethod
    def fit(cls, prob: Any, labels: Any) -> MondrianConformal:
        """Fit on calibration probabilities of class 1 and their labels.

        Raises:
            ValueError: a NaN probability or a label other than 0/1.
        """
        prob = _floats(prob, "prob")
        labels = _labels01(labels, len(prob))
        return cls(class0=np.sort(prob[labels == 0]), class1=np.sort(prob[labels == 1]))

    def p_values(self, prob: Any) -> tuple[np.ndarray, np.ndarray]:
        """The conformal p-values of labels 0 and 1 for each probability of class 1; NaN for NaN."""
        prob = np.asarray(prob, dtype=np.float64)
        n0, n1 = len(self.class0), len(self.class1)
        as_strange0 = n0 - np.searchsorted(self.class0, prob, side="left")  # p_i >= p
        as_strange1 = np.searchsorted(self.class1, prob, side="right")  # p_i <= p
        missing = np.isnan(prob)
        return (np.where(missing, np.nan, (as_strange0 + 1) / (n0 + 1)),
                np.where(missing, np.nan, (as_strange1 + 1) / (n1 + 1)))

    def at(self, alpha: float = 0.1) -> ConformalSets:
        """The prediction sets at level 1 - alpha (the labels whose p-value exceeds alpha).

        Raises:
            ValueError: alpha outside (0, 1).
        """
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1): {alpha}")
        n0, n1 = len(self.class0), len(self.class1)
        # Counts the p-value needs; never more than n_y, since a count of n_y gives p-value 1.
        need0, need1 = _smallest_count(alpha, n0), _smallest_count(alpha, n1)
        # Label 1 needs at least need1 class-1 probabilities <= p: p >= the need1-th smallest.
        one_from = -math.inf if need1 == 0 else float(self.class1[need1 - 1])
        # Label 0 needs at least need0 class-0 probabilities >= p: p <= the need0-th largest.
        zero_up_to = math.inf if need0 == 0 else float(self.class0[n0 - need0])
        return ConformalSets(alpha=float(alpha), zero_up_to=zero_up_to, one_from=one_from, n0=n0, n1=n1)

    def predict(self, prob: Any, alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """(contains 0, contains 1) for each probability of class 1, at level 1 - alpha."""
        p0, p1 = self.p_values(prob)
        return p0 > alpha, p1 > alpha


def _weighted_rank_value(ordered: np.ndarray, weights: np.ndarray, rank: int) -> float:
    """The rank-th value (1-based) of `ordered` when each value counts `weights` times."""
    return float(ordered[np.searchsorted(np.cumsum(weights), rank, side="left")])


def conformal_coverage(
    calibration_prob: Any,
    calibration_labels: Any,
    calibration_day: Any,
    prob: Any,
    labels: Any,
    day: Any,
    alpha: float,
    resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Per class, how often the conformal sets fitted on the calibration rows hold the true label
    of the scored rows, with a bootstrap interval over days.

    Rows of one day are not independent of one another (a stolen card's burst, a merchant's bad
    week, the day's mix of shoppers), so an interval that counts rows as independent (a binomial
    one) is too narrow by far at hundreds of thousands of rows. Each resample draws the calibration
    days and the scored days with replacement (a day drawn twice counts twice), refits the sets'
    thresholds on the drawn calibration days, and measures each class's coverage on the drawn
    scored days: the percentile interval spans both sources of chance, the thresholds' and the
    measurement's. What it does not span: days are drawn as if independent, so a drift that lasts
    weeks (a wave of fraud) widens it only as far as it shows within the days given.

    Args:
        calibration_prob, calibration_labels, calibration_day: the calibration rows' probabilities
            of class 1, labels and days.
        prob, labels, day: the scored rows'.
        alpha: the sets' miscoverage level.
        resamples: bootstrap resamples; 0 gives no interval (None bounds).
        seed: the bootstrap's seed.
        confidence: the interval's level.

    Returns:
        One dict per class: label, n, coverage (None without examples), its interval
        (coverage_low, coverage_high), and the mean set size of that class's examples.

    Raises:
        ValueError: a NaN probability, or a label other than 0/1.
    """
    calibration_prob = _floats(calibration_prob, "calibration_prob")
    calibration_labels = _labels01(calibration_labels, len(calibration_prob))
    prob = _floats(prob, "prob")
    labels = _labels01(labels, len(prob))
    sets = MondrianConformal.fit(calibration_prob, calibration_labels).at(alpha)
    contains0, contains1 = sets.predict(prob)
    cal_days, cal_day_index = np.unique(np.asarray(calibration_day), return_inverse=True)
    days, day_index = np.unique(np.asarray(day), return_inverse=True)
    rng = np.random.default_rng(seed)
    cal_draws = rng.multinomial(len(cal_days), np.full(len(cal_days), 1 / len(cal_days)), size=resamples)
    draws = rng.multinomial(len(days), np.full(len(days), 1 / len(days)), size=resamples)
    result = []
    for label, contains in ((0, contains0), (1, contains1)):
        mine = labels == label
        n = int(mine.sum())
        row: dict[str, Any] = {
            "label": label, "n": n, "coverage": float(contains[mine].mean()) if n else None,
            "coverage_low": None, "coverage_high": None,
            "mean_set_size": float((contains0[mine].astype(int) + contains1[mine]).mean()) if n else None,
        }
        calibrated = calibration_labels == label
        if n and calibrated.any() and resamples:
            # Class 0's nonconformity grows with p, class 1's as p falls: order each class's
            # calibration probabilities from the most nonconforming, as the thresholds count them.
            order = np.argsort(-calibration_prob[calibrated] if label == 0 else calibration_prob[calibrated],
                               kind="stable")
            ordered = calibration_prob[calibrated][order]
            ordered_days = cal_day_index[calibrated][order]
            scored = [np.sort(prob[mine & (day_index == d)]) for d in range(len(days))]
            per_day = np.array([len(values) for values in scored], dtype=np.float64)
            values = np.full(resamples, np.nan)
            for r in range(resamples):
                weights = cal_draws[r][ordered_days]
                total = int(weights.sum())
                need = _smallest_count(alpha, total)
                scored_rows = float(draws[r] @ per_day)
                if not total or not scored_rows:
                    continue
                if need == 0:
                    values[r] = 1.0
                    continue
                threshold = _weighted_rank_value(ordered, weights, need)
                if label == 0:
                    covered = np.array([np.searchsorted(v, threshold, side="right") for v in scored])
                else:
                    covered = np.array([len(v) - np.searchsorted(v, threshold, side="left") for v in scored])
                values[r] = float(draws[r] @ covered) / scored_rows
            row["coverage_low"], row["coverage_high"] = _percentile_interval(values, confidence)
        result.append(row)
    return result


# --------------------------------------------------------------------------------------------
# Calibration reports
# --------------------------------------------------------------------------------------------


def _quantile_bins(prob: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's bin and the bins' edges: quantile edges, duplicates merged.

    Bin b holds edges[b] <= prob < edges[b + 1] (the last bin includes its upper edge), so tied
    probabilities always share a bin; with many ties there are fewer, unequal bins.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1: {bins}")
    edges = np.unique(np.quantile(prob, np.linspace(0.0, 1.0, bins + 1)))
    return np.searchsorted(edges[1:-1], prob, side="right"), edges


def calibration_table(prob: Any, labels: Any, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted probability against the observed rate, per quantile bin of `prob`.

    Args:
        prob: predicted probabilities of class 1.
        labels: 0/1 labels.
        bins: the number of quantile bins (fewer when ties merge edges).

    Returns:
        One dict per non-empty bin, in order: low, high (its edges), count, mean_predicted,
        observed_rate.

    Raises:
        ValueError: no rows, a NaN probability, or a label other than 0/1.
    """
    prob = _floats(prob, "prob")
    labels = _labels01(labels, len(prob))
    if not len(prob):
        raise ValueError("a calibration table needs rows")
    index, edges = _quantile_bins(prob, bins)
    count = np.bincount(index, minlength=len(edges) - 1)
    predicted = np.bincount(index, weights=prob, minlength=len(count))
    observed = np.bincount(index, weights=labels, minlength=len(count))
    return [
        {"low": float(edges[b]), "high": float(edges[min(b + 1, len(edges) - 1)]), "count": int(count[b]),
         "mean_predicted": float(predicted[b] / count[b]), "observed_rate": float(observed[b] / count[b])}
        for b in range(len(count)) if count[b]
    ]


def expected_calibration_error(prob: Any, labels: Any, bins: int = 10) -> float:
    """The count-weighted mean of |mean predicted - observed rate| over `calibration_table`'s bins."""
    table = calibration_table(prob, labels, bins)
    total = sum(row["count"] for row in table)
    return float(sum(row["count"] * abs(row["mean_predicted"] - row["observed_rate"]) for row in table) / total)


def bounds_calibration(p0: Any, p1: Any, labels: Any, bins: int = 10) -> list[dict[str, Any]]:
    """The Venn-Abers validity check on a holdout: per quantile bin of the merged p, the observed
    rate against the mean p0 and the mean p1.

    Under exchangeability the observed rate of each bin lies between its mean p0 and mean p1
    up to sampling noise; a rate outside, on bins of many rows, points at drift since the
    calibration period.

    Args:
        p0: lower Venn-Abers probabilities of the holdout rows.
        p1: upper ones.
        labels: the holdout's 0/1 labels.
        bins: the number of quantile bins of p (fewer when ties merge edges).

    Returns:
        One dict per non-empty bin: low, high (edges of p), count, mean_p0, mean_p, mean_p1,
        observed_rate, and within (mean_p0 <= observed_rate <= mean_p1).
    """
    p0 = _floats(p0, "p0")
    p1 = _floats(p1, "p1")
    if p0.shape != p1.shape:
        raise ValueError("p0 and p1 must have one value per row each")
    labels = _labels01(labels, len(p0))
    if not len(p0):
        raise ValueError("a calibration table needs rows")
    p = merge(p0, p1)
    index, edges = _quantile_bins(p, bins)
    count = np.bincount(index, minlength=len(edges) - 1)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=values, minlength=len(count)) / np.maximum(count, 1)

    low, middle, high, rate = mean(p0), mean(p), mean(p1), mean(labels.astype(np.float64))
    return [
        {"low": float(edges[b]), "high": float(edges[min(b + 1, len(edges) - 1)]), "count": int(count[b]),
         "mean_p0": float(low[b]), "mean_p": float(middle[b]), "mean_p1": float(high[b]),
         "observed_rate": float(rate[b]), "within": bool(low[b] <= rate[b] <= high[b])}
        for b in range(len(count)) if count[b]
    ]


# --------------------------------------------------------------------------------------------
# Metrics investigators use
# --------------------------------------------------------------------------------------------


class _Ranking:
    """A score's descending order and the ends of its tie groups, for weighted average precision."""

    def __init__(self, score: np.ndarray, labels: np.ndarray) -> None:
        self.order = np.argsort(-score, kind="stable")
        ordered = score[self.order]
        # The last row of each group of equal scores: precision is read only there, as
        # scikit-learn reads it at each distinct threshold.
        self.ends = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
        self.positive = labels[self.order].astype(np.float64)

    def average_precision(self, weight: np.ndarray) -> float:
        """Average precision with row weights (bootstrap counts): NaN without positive weight."""
        w = weight[self.order]
        caught = np.cumsum(w * self.positive)[self.ends]
        flagged = np.cumsum(w)[self.ends]
        if caught[-1] <= 0:
            return math.nan
        precision = np.divide(caught, flagged, out=np.zeros_like(caught), where=flagged > 0)
        return float(np.dot(np.diff(caught, prepend=0.0), precision) / caught[-1])


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[~np.isnan(values)]
    if not len(values):
        return None, None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def pr_auc_bootstrap(
    labels: Any,
    score: Any,
    reference: Any | None = None,
    resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Average precision (PR-AUC) with a bootstrap percentile interval; optionally a reference.

    Each resample draws len(labels) rows with replacement; its average precision is computed
    from the original ordering with the draw counts as weights (equal to scikit-learn's on the
    duplicated rows), so a resample costs two cumulative sums instead of a sort. The reference
    (e.g. the demo's true probability) is scored on the same resampled rows, so the ratio's
    interval is a paired one. Resamples without a positive are dropped (counted in
    `resamples_used`). Tied scores make one threshold, as in scikit-learn, so the order of the
    rows never matters.

    Args:
        labels: 0/1 labels.
        score: the model's scores.
        reference: another score of the same rows, or None.
        resamples: bootstrap resamples (B).
        seed: the seed of the resampling.
        confidence: the interval's level.

    Returns:
        {"pr_auc": {"value", "low", "high"}, "resamples_used": int} and, with a reference,
        "reference" and "ratio" (score's over the reference's) in the same form.

    Raises:
        ValueError: no positive label, a NaN score, or a label other than 0/1.
    """
    score = _floats(score, "score")
    labels = _labels01(labels, len(score))
    if not labels.any():
        raise ValueError("average precision needs at least one positive label")
    ranked = {"pr_auc": _Ranking(score, labels)}
    result: dict[str, Any] = {"pr_auc": {"value": float(skm.average_precision_score(labels, score))}}
    if reference is not None:
        reference = _floats(reference, "reference")
        if reference.shape != score.shape:
            raise ValueError("reference must have one value per row")
        ranked["reference"] = _Ranking(reference, labels)
        result["reference"] = {"value": float(skm.average_precision_score(labels, reference))}
        result["ratio"] = {"value": result["pr_auc"]["value"] / result["reference"]["value"]}
    rng = np.random.default_rng(seed)
    rows = len(labels)
    draws = {name: np.empty(resamples) for name in ranked}
    for r in range(resamples):
        counts = np.bincount(rng.integers(0, rows, size=rows), minlength=rows).astype(np.float64)
        for name, ranking in ranked.items():
            draws[name][r] = ranking.average_precision(counts)
    if reference is not None:
        draws["ratio"] = draws["pr_auc"] / draws["reference"]
    for name, values in draws.items():
        result[name]["low"], result[name]["high"] = _percentile_interval(values, confidence)
    result["resamples_used"] = int((~np.isnan(draws["pr_auc"])).sum())
    return result


def _json_day(value: Any) -> Any:
    """A day as JSON can hold it: ISO text for dates and timestamps, plain numbers, else text."""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return value.date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, (int, float, str)) else str(value)


def _top_k_hits(score: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Expected positives among the k highest scores when ties are broken at random.

    Rows above the k-th highest score all count; the tie group at that score contributes its
    share of positives times the places left, so the result never depends on row order.
    """
    kth = np.partition(score, len(score) - k)[len(score) - k]
    above = score > kth
    tied = score == kth
    places = k - int(above.sum())
    return float(labels[above].sum() + places * labels[tied].sum() / tied.sum())


def precision_at_top_k_per_day(labels: Any, score: Any, day: Any, k: int = 100) -> dict[str, Any]:
    """Precision of the k highest scores of each day (an investigation team's daily queue).

    Ties at the k-th score are shared (see `_top_k_hits`): deterministic and independent of row
    order. A day with fewer than k rows is measured on all of them (its `k` says so).

    Args:
        labels: 0/1 labels.
        score: the scores.
        day: each row's day (dates, timestamps, strings or numbers); rows with a missing day
            are left out.
        k: the queue's length.

    Returns:
        {"mean": the mean precision over days (None without days), "by_day": [{"day", "rows",
        "k", "precision"}, ...] in day order}.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1: {k}")
    score = _floats(score, "score")
    labels = _labels01(labels, len(score))
    codes, days = pd.factorize(pd.Series(day), sort=True)
    if len(codes) != len(score):
        raise ValueError("day must have one value per row")
    by_day = []
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(days) + 1))
    for code, value in enumerate(days):
        rows = order[bounds[code]:bounds[code + 1]]
        taken = min(k, len(rows))
        hits = _top_k_hits(score[rows], labels[rows], taken)
        by_day.append({"day": _json_day(value), "rows": int(len(rows)), "k": taken, "precision": hits / taken})
    return {"mean": float(np.mean([d["precision"] for d in by_day])) if by_day else None, "by_day": by_day}


def _largest_count(share: float, n: int) -> int:
    """The largest count c <= n with c / n <= share (n > 0), decided by that comparison."""
    count = min(n, math.floor(share * n))
    # share * n may round across an integer (0.29 * 100 is 28.999999999999996).
    while count < n and (count + 1) / n <= share:
        count += 1
    while count > 0 and count / n > share:
        count -= 1
    return count


def recall_at_fpr(labels: Any, score: Any, fpr: float = 0.005, amount: Any | None = None) -> dict[str, Any]:
    """Recall, and the share of fraud amount caught, at a false-positive rate of at most `fpr`.

    The threshold comes from the negatives alone: flagging score >= threshold flags at most
    floor(fpr * negatives) of them. It lies just above the (floor(fpr * negatives) + 1)-th
    highest negative score v (the next float after v), so a tie group at v is left out whole,
    positives included: deterministic and never above the stated rate.

    Args:
        labels: 0/1 labels.
        score: the scores.
        fpr: the largest share of negatives flagged.
        amount: each row's amount, for the share of the positives' amount caught, or None.

    Returns:
        {"threshold", "recall", "false_positive_rate" (realised), "flagged", "amount_caught_share"
        (None without amounts)}; threshold is None when every row may be flagged.

    Raises:
        ValueError: no positive or no negative label, or fpr outside [0, 1].
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1]: {fpr}")
    score = _floats(score, "score")
    labels = _labels01(labels, len(score))
    negatives = np.sort(score[labels == 0])[::-1]
    positive = labels == 1
    if not len(negatives) or not positive.any():
        raise ValueError("recall at a false-positive rate needs both labels")
    allowed = _largest_count(fpr, len(negatives))
    threshold = None if allowed >= len(negatives) else float(np.nextafter(negatives[allowed], math.inf))
    flagged = np.ones(len(score), dtype=bool) if threshold is None else score >= threshold
    result: dict[str, Any] = {
        "threshold": threshold,
        "recall": float(flagged[positive].mean()),
        "false_positive_rate": float(flagged[~positive].mean()),
        "flagged": int(flagged.sum()),
        "amount_caught_share": None,
    }
    if amount is not None:
        amount = np.asarray(amount, dtype=np.float64)
        if amount.shape != score.shape:
            raise ValueError("amount must have one value per row")
        total = amount[positive].sum()
        result["amount_caught_share"] = float(amount[positive & flagged].sum() / total) if total else None
    return result


def fraud_metrics(
    labels: Any,
    score: Any,
    *,
    reference: Any | None = None,
    day: Any | None = None,
    amount: Any | None = None,
    top_k: int = 100,
    fpr: float = 0.005,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The metrics an investigation team reads, in one JSON-able dict.

    Args:
        labels: 0/1 labels.
        score: the model's scores.
        reference: a reference probability of the same rows (the demo's truth), or None.
        day: each row's day, for the daily top-k precision, or None to skip it.
        amount: each row's amount, for the share of fraud amount caught, or None.
        top_k: the daily queue's length.
        fpr: the false-positive rate at which recall and amount are read.
        resamples: bootstrap resamples for the PR-AUC intervals.
        seed: the bootstrap's seed.

    Returns:
        {"pr_auc": `pr_auc_bootstrap`, "top_k": `precision_at_top_k_per_day` or None,
        "at_fpr": `recall_at_fpr`}.
    """
    return {
        "pr_auc": pr_auc_bootstrap(labels, score, reference, resamples=resamples, seed=seed),
        "top_k": None if day is None else precision_at_top_k_per_day(labels, score, day, top_k),
        "at_fpr": recall_at_fpr(labels, score, fpr, amount),
    }
