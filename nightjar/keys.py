"""Entity keys of one column or several: what every Spark step keyed by them shares."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F


def all_present(columns: Sequence[str]) -> Column:
    """Rows whose `columns` (a key's) are all non-null: a row with a null key part belongs to no entity."""
    condition = F.lit(True)
    for column in columns:
        condition = condition & F.col(column).isNotNull()
    return condition
