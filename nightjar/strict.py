"""The base of every configuration model, and the value types every configuration section shares.

Kept apart from `nightjar.config` and imported by each area's schema (`features.config`,
`models.config`, `validation.checks`), so that those schemas can live beside their code while
`nightjar.config` assembles them, without an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"  # a column, table or feature name Spark SQL takes unquoted

Scalar = str | int | float | bool


class Strict(BaseModel):
    """Base of every configuration model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
