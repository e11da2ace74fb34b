"""An ensemble of LightGBM boosters registered, promoted, scored and rolled back as one model.

Its prediction is the mean of its members' predictions (probabilities for classifiers, the
response for regressions, such as a tweedie model's expected units). It answers the same calls
as a `lightgbm.Booster` (`predict`, `feature_name`, `feature_importance`), so evaluation,
promotion and scoring take either. Reason codes of an ensemble are the mean of its members'
SHAP contributions: exact in each member's raw score, which for a log link (tweedie, poisson)
is not the scale of the averaged prediction, so they rank features rather than add up to it.

An ensemble may carry an offset (`training.offset`): for a log-link objective (tweedie, poisson,
gamma) each member then fits the log of the ratio of the label to one of its features (the
series' recent mean, say) instead of the label itself: LightGBM's `init_score`, log(feature),
is added to every member's raw score. Trees split on absolute values, so without it one tree
must learn a weekday's or a promotion's effect for each scale of series separately; with it, a
multiplicative effect is one split for all of them. A single booster with an offset is an
ensemble of one member.

Stored as `ensemble.json` (how the members combine, the offset, each member's file and SHA-256) beside one
`member_<i>.txt` per member in LightGBM's text format; in Spark, the whole ensemble travels as
one text (`to_text`), which `from_text` reads back, as a single booster's does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

MANIFEST_FILE = "ensemble.json"
_MARK = '{"nightjar_ensemble"'


@dataclass(frozen=True)
class Offset:
    """The feature whose log each member's raw score starts from, and the value below which the
    feature counts as `floor` (a series without recent sales still needs a finite log)."""

    feature: str
    floor: float

    def log(self, values: Any) -> np.ndarray:
        """log(max(value, floor)) per row; missing values count as the floor."""
        values = np.asarray(values, dtype=np.float64)
        return np.log(np.fmax(np.where(np.isnan(values), self.floor, values), self.floor))


@dataclass(frozen=True)
class Ensemble:
    """Boosters over the same features whose predictions are averaged, each from `offset`'s log
    of its feature when one is set."""

    members: tuple[lgb.Booster, ...]
    offset: Offset | None = None

    def predict(self, data: np.ndarray, num_threads: int = 1, pred_contrib: bool = False) -> np.ndarray:
        if self.offset is None:
            outputs = [member.predict(data, num_threads=num_threads, pred_contrib=pred_contrib) for member in self.members]
            return np.mean(outputs, axis=0)
        column = self.feature_name().index(self.offset.feature)
        start = self.offset.log(np.asarray(data, dtype=np.float64)[:, column])
        if pred_contrib:
            # In the raw score, the offset is its feature's: contributions still add up to it.
            contributions = np.mean([member.predict(data, num_threads=num_threads, pred_contrib=True)
                                     for member in self.members], axis=0)
            contributions[:, column] += start
            return contributions
        # Every member's objective has a log link (checked by the configuration): response = exp(raw).
        raw = [member.predict(data, num_threads=num_threads, raw_score=True) for member in self.members]
        return np.mean(np.exp(np.asarray(raw) + start), axis=0)

    def member(self, index: int) -> "Ensemble":
        """One member alone, with the offset it was fitted from (for its own holdout metrics)."""
        return Ensemble((self.members[index],), self.offset)

    def feature_name(self) -> list[str]:
        return self.members[0].feature_name()

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        return np.mean([member.feature_importance(importance_type=importance_type) for member in self.members], axis=0)


Model = lgb.Booster | Ensemble


def member_file(index: int) -> str:
    return f"member_{index}.txt"


def _offset_fields(offset: Offset | None) -> dict[str, Any]:
    # Only when set: an ensemble without one is written as before.
    return {} if offset is None else {"offset": {"feature": offset.feature, "floor": offset.floor}}


def offset_of(description: dict[str, Any]) -> Offset | None:
    """The offset of a manifest or a `to_text` text's contents (None when it has none)."""
    found = description.get("offset")
    return None if found is None else Offset(str(found["feature"]), float(found["floor"]))


def to_text(texts: list[str], offset: Offset | None = None) -> str:
    """The members' model texts as one text (for a broadcast); `from_text` reads it back."""
    return json.dumps({"nightjar_ensemble": 1, "combine": "mean", **_offset_fields(offset), "members": texts})


def from_text(text: str) -> Model:
    """A booster from LightGBM's text format, or an ensemble from `to_text`'s."""
    if text.startswith(_MARK):
        contents = json.loads(text)
        return Ensemble(tuple(lgb.Booster(model_str=member) for member in contents["members"]), offset_of(contents))
    return lgb.Booster(model_str=text)


def manifest(member_hashes: list[str], members: Sequence[dict[str, Any]], offset: Offset | None = None) -> dict[str, Any]:
    """`ensemble.json`: how the members combine, the offset, and each member's file, SHA-256 and description."""
    return {
        "combine": "mean",
        **_offset_fields(offset),
        "members": [
            {"file": member_file(index), "model_sha256": digest, **described}
            for index, (digest, described) in enumerate(zip(member_hashes, members))
        ],
    }
