from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from features.definitions import check_columns, expand
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.errors import ConfigError, DataCheckError
from tests.features.conftest import ENTITIES_SCHEMA, EVENTS_SCHEMA, with_features


def _schemas(spark: SparkSession) -> dict[str, T.StructType]:
    return {
        "transactions": spark.createDataFrame([], EVENTS_SCHEMA).schema,
        "customers": spark.createDataFrame([], ENTITIES_SCHEMA).schema,
    }


def test_the_demo_feature_set_expands_to_named_columns(spark: SparkSession) -> None:
    feature_set = expand(load_config("local"))
    assert "transactions_amount_sum_30d" in feature_set.names
    assert "transactions_amount_sum_grocery_30d" in feature_set.names
    assert "online_share_30d" in feature_set.names
    assert len(set(feature_set.names)) == len(feature_set.names)
    check_columns(feature_set, _schemas(spark))


def test_the_fingerprint_follows_the_definitions(config: Config) -> None:
    base = {"aggregates": [{"source": "transactions", "functions": ["count"]}]}
    first = expand(with_features(config, base)).fingerprint
    assert expand(with_features(config, base)).fingerprint == first
    changed = {"aggregates": [{"source": "transactions", "functions": ["count"], "windows": [7]}]}
    assert expand(with_features(config, changed)).fingerprint != first


# The churn feature set's fingerprint as computed before lagged windows (`offset`) existed, at
# commit 93858e4. Hard-coded on purpose: models trained on it record this value, and scoring
# refuses a model whose fingerprint differs, so adding a feature kind must not change it.
CHURN_FINGERPRINT = "e04a4f83ecd1f593"


def test_the_churn_fingerprint_is_unchanged_by_lags() -> None:
    assert expand(load_config("test", use_case="churn")).fingerprint == CHURN_FINGERPRINT


def test_a_lag_names_and_fingerprints_its_features(config: Config) -> None:
    block = {"source": "transactions", "column": "amount", "functions": ["sum"], "windows": [1, "3h"]}
    unlagged = expand(with_features(config, {"aggregates": [block]}))
    names = {
        7: ["transactions_amount_sum_1d_lag7d", "transactions_amount_sum_3h_lag7d"],
        "7d": ["transactions_amount_sum_1d_lag7d", "transactions_amount_sum_3h_lag7d"],
        "168h": ["transactions_amount_sum_1d_lag168h", "transactions_amount_sum_3h_lag168h"],
    }
    fingerprints = set()
    for offset, expected in names.items():
        lagged = expand(with_features(config, {"aggregates": [block | {"offset": offset}]}))
        assert [spec.name for spec in lagged.aggregates] == expected
        assert [spec.lookback_days for spec in lagged.aggregates] == [8, 8]  # the offset's 7 days and the window's
        fingerprints.add(lagged.fingerprint)
    assert [spec.lookback_days for spec in unlagged.aggregates] == [1, 1]
    # 7 and 7d hash alike (both written 7, like windows); 168h is written otherwise, like its names.
    assert len(fingerprints) == 2 and unlagged.fingerprint not in fingerprints


@pytest.mark.parametrize("offset", ["3h", "25h", "90m"])
def test_a_sub_day_offset_is_rejected_naming_the_key(offset: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("test", [f"features.aggregates=[{{source: transactions, functions: [count], offset: {offset}}}]"])
    assert (f"features.aggregates.0.offset: Value error, an offset must be a whole number of days "
            f"(7, 7d or 168h), not {offset}") in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"aggregates": [{"source": "clicks", "functions": ["count"]}]},
         "features.aggregates[0]: source 'clicks' is not an events source"),
        ({"aggregates": [{"source": "customers", "functions": ["count"]}]},
         "features.aggregates[0]: source 'customers' is not an events source"),
        ({"aggregates": [{"source": "transactions", "functions": ["trend"], "windows": [1, 7]}]},
         "features.aggregates[0]: trend needs a window of at least 2 days"),
        ({"attributes": [{"source": "transactions", "kind": "tenure_days"}]},
         "features.attributes[0]: source 'transactions' is not an entities source"),
        ({"aggregates": [{"source": "transactions", "functions": ["count"], "windows": [7]}],
          "ratios": [{"name": "r", "numerator": "transactions_count_7d", "denominator": "transactions_count_30d"}]},
         "features.ratios[0] (r): unknown feature 'transactions_count_30d'"),
        ({"aggregates": [{"source": "transactions", "functions": ["count"], "windows": [7, 7]}]},
         "features: the name 'transactions_count_7d' is defined twice"),
        ({"aggregates": [{"source": "transactions", "functions": ["trend"], "windows": [1], "offset": 7}]},
         "features.aggregates[0]: trend needs a window of at least 2 days"),
        ({}, "features: no features are defined"),
    ],
)
def test_bad_definitions_name_the_definition(config: Config, features: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expand(with_features(config, features))
    assert str(caught.value).startswith(message)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("features.aggregates=[{source: transactions, functions: [median]}]",
         "features.aggregates.0.functions.0: Input should be 'count', 'sum'"),
        ("features.aggregates=[{source: transactions, functions: [count], windows: [0]}]",
         "features.aggregates.0.windows.0: Value error, 0 is not a duration: it must be longer than 0"),
        ("features.aggregates=[{source: transactions, functions: [count], windows: ['']}]",
         "features.aggregates.0.windows.0: Value error, '' is not a duration"),
        ("features.windows=[]", "features.windows: Value error, windows must be a non-empty list"),
        ("features.aggregates=[{source: transactions, functions: [sum]}]",
         "features.aggregates.0: Value error, sum need a column"),
        ("features.aggregates=[{source: transactions, functions: [count], where: {channel: online}}]",
         "needs a name"),
        ("features.attributes=[{source: customers, kind: category, column: plan}]",
         "a category attribute needs its values listed"),
    ],
)
def test_bad_definitions_are_rejected_at_load(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("test", [override])
    assert message in str(caught.value)


def test_an_unknown_column_names_the_feature(spark: SparkSession, config: Config) -> None:
    feature_set = expand(with_features(config, {"aggregates": [
        {"source": "transactions", "column": "amount", "functions": ["sum"], "windows": [7],
         "where": {"kind": "refund"}, "name": "refunds"}]}))
    with pytest.raises(ConfigError, match=r"features.aggregates\[0\] \(refunds_amount_sum_7d\): source 'transactions' has no column 'kind'"):
        check_columns(feature_set, _schemas(spark))


def test_a_numeric_function_of_a_text_column_is_a_data_error(spark: SparkSession, config: Config) -> None:
    feature_set = expand(with_features(config, {"aggregates": [
        {"source": "transactions", "column": "channel", "functions": ["mean"], "windows": [7]}]}))
    with pytest.raises(DataCheckError, match=r"transactions.channel is string, not numeric"):
        check_columns(feature_set, _schemas(spark))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features.aggregates=[{source: transactions, name: card, functions: [count]}]"],
         "features.aggregates[0]: at the event grain every aggregate needs per"),
        (["features.aggregates=[{source: transactions, per: card_id, name: card, column: amount, functions: [std]}]"],
         "features.aggregates[0]: std not computed at the event grain"),
        (["features.aggregates=[{source: transactions, per: card_id, name: card, functions: [count], offset: 7}]"],
         "features.aggregates[0]: offset does not apply at the event grain"),
        (["features.attributes=[{source: cards, kind: category, column: card_type, values: [debit]}]"],
         "features.attributes[0]: at the event grain an attribute is a numeric or category column of the scored events"),
        (["features.incremental=true"], "the event grain computes from events: set it to false"),
    ],
)
def test_bad_event_grain_definitions_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expand(load_config("test", overrides, use_case="fraud"))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("use_case.entity.source=null", "grain: event needs entity.source"),
        ("use_case.entity.source=cards", "grain: event needs entity.source, one of the events sources"),
        ("use_case.grain=snapshot", "entity.source applies to grain: event only"),
    ],
)
def test_the_event_grain_needs_its_scored_events_source(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("test", [override], use_case="fraud")
    assert message in str(caught.value)


def test_hour_of_day_is_an_event_grain_attribute() -> None:
    with pytest.raises(ConfigError, match="hour_of_day is the hour of a scored event"):
        expand(load_config("test", ["features.attributes=[{source: customers, kind: hour_of_day, column: signup_ts}]"]))


def test_per_and_lookup_are_refused_at_the_snapshot_grain() -> None:
    with pytest.raises(ConfigError, match="per and lookup apply to use_case.grain: event only"):
        expand(load_config("test", ["features.aggregates=[{source: transactions, per: customer_id, functions: [count]}]"]))
