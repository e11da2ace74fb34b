"""Entity keys of several columns: each entity's features are those of its own events alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from features import store, tiles
from features.definitions import expand
from features.engine import DATE, compute_features
from nightjar.config import Config, EntityConfig
from nightjar.errors import ConfigError, DataCheckError
from tests.features.conftest import entities_frame, event, events_frame, with_features
from tests.features.test_tiles import ENTITIES, EVERY_KIND, LAST, random_events

KEYS = ["shop", "customer_id"]
DATES = [LAST - timedelta(days=n) for n in range(0, 30, 4)]


def with_key(config: Config, key: str | list[str]) -> Config:
    entity = EntityConfig(name=config.use_case.entity.name, key=key)
    return config.model_copy(update={"use_case": config.use_case.model_copy(update={"entity": entity})})


def in_shop(frame: DataFrame, shop: int | None) -> DataFrame:
    return frame.withColumn("shop", F.lit(shop).cast("int"))


@pytest.fixture
def config(config: Config) -> Config:
    return with_features(config, EVERY_KIND)


def features_of(spark: SparkSession, config: Config, events: DataFrame, entities: DataFrame, from_tiles: bool) -> DataFrame:
    sources = config.use_case.sources
    if from_tiles:
        return tiles.assemble(expand(config), sources, {"transactions": events}, entities, DATES,
                              held={}, signatures={}, stored=None).features
    return compute_features(expand(config), sources, {"transactions": events}, entities, sources["customers"], DATES)


@pytest.mark.parametrize("from_tiles", [False, True], ids=["full", "tiles"])
def test_a_key_of_two_columns_keeps_entities_apart(spark: SparkSession, config: Config, from_tiles: bool) -> None:
    # The same customer ids in two shops, with different events: (shop, customer) is the entity.
    histories = {1: random_events(1), 2: random_events(2)}
    entities = entities_frame(spark, ENTITIES)
    expected = None
    for shop, events in histories.items():
        alone = features_of(spark, config, events_frame(spark, events), entities, from_tiles)
        alone = in_shop(alone, shop)
        expected = alone if expected is None else expected.unionByName(alone)
    assert expected is not None

    events = in_shop(events_frame(spark, histories[1]), 1).unionByName(in_shop(events_frame(spark, histories[2]), 2))
    # A null key part belongs to no entity: neither this event nor this entity counts anywhere.
    stray = in_shop(events_frame(spark, [event(1, f"{LAST} 10:00:00", 1e6)]), None)
    both = in_shop(entities, 1).unionByName(in_shop(entities, 2)).unionByName(in_shop(entities, None))
    actual = features_of(spark, with_key(config, KEYS), events.unionByName(stray), both, from_tiles)

    assert actual.columns[:3] == [*KEYS, DATE]
    assertDataFrameEqual(actual, expected.select(actual.columns), checkRowOrder=False, rtol=0, atol=0)


def test_an_entity_listed_twice_is_named_by_every_key_part(spark: SparkSession) -> None:
    entities = entities_frame(spark, ENTITIES)
    # The same customer in two shops is two entities.
    store.require_unique_entities(in_shop(entities, 1).unionByName(in_shop(entities, 2)), "customers", KEYS)
    twice = in_shop(entities, 1).unionByName(in_shop(entities.where("customer_id = 3"), 1))
    with pytest.raises(DataCheckError, match=r"^table 'customers': shop=1, customer_id=3 appears 2 times$"):
        store.require_unique_entities(twice, "customers", KEYS)


def test_a_single_column_key_keeps_its_fingerprint(config: Config) -> None:
    # Written as a list of one column, the key is the same key: the same features, the same tiles.
    as_list = with_key(config, ["customer_id"])
    assert expand(as_list).fingerprint == expand(config).fingerprint
    plan = tiles.source_tiles(expand(as_list), "transactions", as_list.use_case.sources["transactions"], {})
    assert plan.fingerprint == tiles.source_tiles(
        expand(config), "transactions", config.use_case.sources["transactions"], {}).fingerprint


@pytest.mark.parametrize("from_tiles", [False, True], ids=["full", "tiles"])
def test_events_after_d_change_nothing_for_a_key_of_two_columns(
    spark: SparkSession, config: Config, from_tiles: bool,
) -> None:
    # A few kinds over day and sub-day windows (every kind is compared with one key above).
    few = {"windows": ["3h", 1, 7, 30], "aggregates": [
        {"source": "transactions", "functions": ["count", "days_since_last"]},
        {"source": "transactions", "column": "amount", "functions": ["sum", "max", "last"]},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"]},
    ]}
    two = with_key(with_features(config, few), KEYS)
    entities = in_shop(entities_frame(spark, ENTITIES), 1).unionByName(in_shop(entities_frame(spark, ENTITIES), 2))
    events = in_shop(events_frame(spark, random_events(3)), 1).unionByName(in_shop(events_frame(spark, random_events(4)), 2))
    day = DATES[-1]  # the earliest date computed
    before = features_of(spark, two, events, entities, from_tiles).where(F.col(DATE) == day)
    # Events of the next days, in both shops and for an entity of each: none may reach D's features.
    later = [event(c, f"{day + timedelta(days=n)} 00:00:00", 1e6) for c in (1, 2) for n in (1, 2)]
    after_events = events.unionByName(in_shop(events_frame(spark, later), 1)).unionByName(in_shop(events_frame(spark, later), 2))
    after = features_of(spark, two, after_events, entities, from_tiles).where(F.col(DATE) == day)
    assertDataFrameEqual(after, before, checkRowOrder=False, rtol=0, atol=0)


def test_a_pooled_aggregate_gives_every_entity_its_pools_events(spark: SparkSession, config: Config) -> None:
    """pool_by [customer_id]: a customer across both shops, as if the shops' events were one customer's."""
    windows = {"windows": [1, 7, 30], "aggregates": [
        {"source": "transactions", "functions": ["count", "days_since_last"]},
        {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "std", "max", "last"]},
    ]}
    pooled = {"windows": windows["windows"], "aggregates": [
        {**aggregate, "name": "pool", "pool_by": ["customer_id"]} for aggregate in windows["aggregates"]]}
    histories = {1: random_events(5), 2: random_events(6)}
    entities = entities_frame(spark, ENTITIES)
    # An event with a null shop is no entity's, so no pool's either.
    stray = in_shop(events_frame(spark, [event(1, f"{LAST} 10:00:00", 1e6)]), None)
    events = in_shop(events_frame(spark, histories[1]), 1).unionByName(in_shop(events_frame(spark, histories[2]), 2))
    both = in_shop(entities, 1).unionByName(in_shop(entities, 2))
    actual = features_of(spark, with_key(with_features(config, pooled), KEYS), events.unionByName(stray), both, False)

    one = features_of(spark, with_features(config, windows), events_frame(spark, histories[1] + histories[2]),
                      entities, False)
    names = [c for c in one.columns if c not in ("customer_id", DATE)]
    expected = None
    for shop in (1, 2):
        per_shop = in_shop(one, shop).select(*KEYS, DATE, *[F.col(n).alias(n.replace("transactions", "pool", 1)) for n in names])
        expected = per_shop if expected is None else expected.unionByName(per_shop)
    assert expected is not None and actual.count() == 2 * one.count()
    assertDataFrameEqual(actual, expected.select(actual.columns), checkRowOrder=False, rtol=0, atol=1e-9)


def test_a_pool_is_part_of_the_key_and_computed_from_events(config: Config) -> None:
    aggregate = {"source": "transactions", "functions": ["count"], "pool_by": ["merchant"]}
    two = with_key(with_features(config, {"windows": [7], "aggregates": [aggregate]}), KEYS)
    with pytest.raises(ConfigError, match=r"^features.aggregates\[0\]: pool_by must name some of the entity key's "
                                          r"columns \(shop, customer_id\), not merchant$"):
        expand(two)
    whole = with_key(with_features(config, {"windows": [7], "aggregates": [{**aggregate, "pool_by": KEYS}]}), KEYS)
    with pytest.raises(ConfigError, match="pool_by must name some"):
        expand(whole)
    tiled = with_features(config, {"windows": [7], "incremental": True,
                                   "aggregates": [{**aggregate, "pool_by": ["customer_id"]}]})
    with pytest.raises(ConfigError, match="pooled aggregates are computed from events"):
        expand(with_key(tiled, KEYS))
