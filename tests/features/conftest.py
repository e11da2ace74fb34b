"""Small hand-made sources whose features can be worked out by hand."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from features.config import FeaturesConfig
from nightjar.config import Config

EVENTS_SCHEMA = (
    "customer_id long, ts timestamp, amount double, merchant_category string, channel string, event_date date, "
    "transaction_id long"
)
ENTITIES_SCHEMA = (
    "customer_id long, signup_ts timestamp, segment string, region string, plan string, "
    "acquisition_channel string, signup_date date"
)


def event(customer: int | None, when: str, amount: float | None, category: str | None = "grocery",
          channel: str = "online", partition: str | None = None) -> tuple:
    moment = datetime.fromisoformat(when)
    row = (customer, moment, amount, category, channel, date.fromisoformat(partition) if partition else moment.date())
    # The event's identity follows from its content: the same event listed twice has the same id.
    return (*row, int(hashlib.sha256(repr(row).encode()).hexdigest()[:15], 16))


def entity(customer: int, signup: str, segment: str = "consumer", plan: str = "basic") -> tuple:
    moment = datetime.fromisoformat(signup)
    return (customer, moment, segment, "north", plan, "organic", moment.date())


def events_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, EVENTS_SCHEMA)


def entities_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, ENTITIES_SCHEMA)


def with_features(config: Config, features: dict[str, Any]) -> Config:
    """`config` with its feature set replaced by `features` (validated like the YAML would be)."""
    return config.model_copy(update={"features": FeaturesConfig.model_validate(features)})


@pytest.fixture
def d() -> date:
    return date(2026, 1, 10)
