"""The demo's drift option (`generate.drift`), applied to what any generator writes."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import SparkSession

from nightjar.config import DriftConfig
from nightjar.errors import ConfigError
from nightjar.generators import Output, drifted

OUTPUT = Output("transactions", "transactions", "event_date")


def test_drift_changes_the_column_from_its_date_on_only(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [(1, 10.0, date(2026, 3, 30)), (2, None, date(2026, 3, 31)), (3, 10.0, date(2026, 3, 31))],
        "id long, amount double, event_date date")
    drift = DriftConfig.model_validate({"source": "transactions", "column": "amount", "from": "2026-03-31",
                                        "scale": 3, "shift": 1})
    assert [tuple(r) for r in drifted(frame, OUTPUT, drift).orderBy("id").collect()] == [
        (1, 10.0, date(2026, 3, 30)), (2, None, date(2026, 3, 31)), (3, 31.0, date(2026, 3, 31))]
    # Another output (say `customers`) and no drift at all leave the frame as it is.
    assert drifted(frame, Output("customers", "customers", "signup_date"), drift) is frame
    assert drifted(frame, OUTPUT, None) is frame


def test_drift_of_an_unknown_or_text_column_is_a_configuration_error(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(1, "x", date(2026, 3, 31))], "id long, channel string, event_date date")
    for column, message in (("amount", "has no column 'amount'"), ("channel", "is string, not numeric")):
        drift = DriftConfig.model_validate({"source": "transactions", "column": column, "from": "2026-03-31", "scale": 2})
        with pytest.raises(ConfigError, match=message):
            drifted(frame, OUTPUT, drift)


def test_a_drift_that_changes_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="scale other than 1"):
        DriftConfig.model_validate({"source": "transactions", "column": "amount", "from": "2026-03-31"})
