"""An ensemble of LightGBM boosters registered, promoted, scored and rolled back as one model.

Its prediction is the mean of its members' predictions (probabilities for classifiers, the
response for regressions, such as a tweedie model's expected units). It answers the same calls
as a `lightgbm.Booster` (`predict`, `feature_name`, `feature_importance`), so evaluation,
promotion and scoring take either. Reason codes of an ensemble are the mean of its members'
SHAP contributions: exact in each member's raw score, which for a log link (tweedie, poisson)
is not the scale of the averaged prediction, so they rank features rather than add up to it.

Stored as `ensemble.json` (how the members combine, each member's file and SHA-256) beside one
`member_<i>.txt` per member in LightGBM's text format; in Spark, the whole ensemble travels as
one text (`to_text`), which `from_text` reads back, as a single booster's does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

MANIFEST_FILE = "ensemble.json"
_MARK = '{"nightjar_ensemble"'


@dataclass(frozen=True)
class Ensemble:
    """Boosters over the same features whose predictions are averaged."""

    members: tuple[lgb.Booster, ...]

    def predict(self, data: np.ndarray, num_threads: int = 1, pred_contrib: bool = False) -> np.ndarray:
        outputs = [member.predict(data, num_threads=num_threads, pred_contrib=pred_contrib) for member in self.members]
        return np.mean(outputs, axis=0)

    def feature_name(self) -> list[str]:
        return self.members[0].feature_name()

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        return np.mean([member.feature_importance(importance_type=importance_type) for member in self.members], axis=0)


Model = lgb.Booster | Ensemble


def member_file(index: int) -> str:
    return f"member_{index}.txt"


def to_text(texts: list[str]) -> str:
    """The members' model texts as one text (for a broadcast); `from_text` reads it back."""
    return json.dumps({"nightjar_ensemble": 1, "combine": "mean", "members": texts})


def from_text(text: str) -> Model:
    """A booster from LightGBM's text format, or an ensemble from `to_text`'s."""
    if text.startswith(_MARK):
        return Ensemble(tuple(lgb.Booster(model_str=member) for member in json.loads(text)["members"]))
    return lgb.Booster(model_str=text)


def manifest(member_hashes: list[str], members: list[dict[str, Any]]) -> dict[str, Any]:
    """`ensemble.json`: how the members combine, and each member's file, SHA-256 and description."""
    return {
        "combine": "mean",
        "members": [
            {"file": member_file(index), "model_sha256": digest, **described}
            for index, (digest, described) in enumerate(zip(member_hashes, members))
        ],
    }
