"""Forecast rows: one per horizon, with the target date's calendar and the facts known in advance about it."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from features import tiles
from features.definitions import HORIZON, TARGET_DATE, expand
from features.engine import DATE, compute_features
from nightjar.config import Config, ForecastConfig, SourceConfig
from nightjar.errors import ConfigError
from tests.features.conftest import entities_frame, entity, event, events_frame, with_features

PLANS = SourceConfig(table="plans", kind="known_in_advance", timestamp="target_ts", partition="known_date",
                     known_at="known_at")
PLANS_SCHEMA = "customer_id long, target_ts timestamp, known_at timestamp, known_date date, price double, promo int"
FEATURES = {
    "windows": [7],
    "aggregates": [{"source": "transactions", "column": "amount", "functions": ["sum", "last"]}],
    "attributes": [{"source": "customers", "kind": "tenure_days"}],
    "calendar": {"parts": ["day_of_week", "day_of_month", "month", "holiday"], "holidays": ["2026-01-12"]},
    "planned": [{"source": "plans", "columns": ["price", "promo"], "name": "planned"}],
}
D = date(2026, 1, 10)  # a Saturday
T = D + timedelta(days=3)  # the target date of the plan revisions below


def forecasting(config: Config, horizon_days: int = 3, features: dict | None = None) -> Config:
    use_case = config.use_case.model_copy(update={
        "sources": {**config.use_case.sources, "plans": PLANS},
        "forecast": ForecastConfig(horizon_days=horizon_days),
    })
    return with_features(config.model_copy(update={"use_case": use_case}), features or FEATURES)


def plan(customer: int, target: date, known: str, price: float, promo: int = 0) -> tuple:
    known_at = datetime.fromisoformat(known)
    return (customer, datetime.combine(target, datetime.min.time()), known_at, known_at.date(), price, promo)


# Customer 1's plans for T, revised: a date sees only what was known before its cutoff.
REVISIONS = [
    plan(1, T, f"{T - timedelta(days=10)} 09:00:00", 1.0),
    plan(1, T, f"{T - timedelta(days=2)} 10:00:00", 2.0),        # known during D + 1: counts from D + 1 on
    plan(1, T, f"{T - timedelta(days=1)} 23:59:59", 3.0, 1),     # the last instant of D + 2
    plan(1, T, f"{T} 00:00:00", 4.0),                            # at T's start: too late for every date
    plan(2, T, f"{T - timedelta(days=1)} 08:00:00", 5.0),
    plan(2, T, f"{T - timedelta(days=1)} 08:00:00", 6.0),        # the same instant: the larger value wins
    plan(2, D + timedelta(days=1), f"{D + timedelta(days=1)} 08:00:00", 7.0),  # known after D's cutoff
    plan(2, T + timedelta(days=30), f"{D - timedelta(days=5)} 08:00:00", 8.0),  # beyond every horizon
    plan(None, T, f"{D} 08:00:00", 9.0),                         # no entity
]
EVENTS = [event(1, f"{D} 10:00:00", 10.0), event(2, f"{D - timedelta(days=1)} 12:00:00", 20.0)]
ENTITIES = [entity(1, "2025-12-01 00:00:00"), entity(2, "2025-12-01 00:00:00")]


def features_of(spark: SparkSession, config: Config, dates: list[date], from_tiles: bool = False) -> DataFrame:
    sources = config.use_case.sources
    frames = {"transactions": events_frame(spark, EVENTS), "plans": spark.createDataFrame(REVISIONS, PLANS_SCHEMA)}
    entities = entities_frame(spark, ENTITIES)
    if from_tiles:
        return tiles.assemble(expand(config), sources, frames, entities, dates, held={}, signatures={},
                              stored=None).features
    return compute_features(expand(config), sources, frames, entities, sources["customers"], dates)


def test_a_forecast_has_a_row_per_horizon_with_its_target_dates_features(spark: SparkSession, config: Config) -> None:
    config = forecasting(config)
    dates = [D, D + timedelta(days=1), D + timedelta(days=2)]
    rows = features_of(spark, config, dates)
    assert rows.columns[:4] == ["customer_id", DATE, TARGET_DATE, "transactions_amount_sum_7d"]
    assert expand(config).row_keys == ["customer_id", HORIZON]
    found = {(r.customer_id, r[DATE], r[HORIZON]): r for r in rows.collect()}
    assert len(found) == rows.count() == 2 * 3 * 3
    first = found[(1, D, 1)]
    assert first[TARGET_DATE] == D + timedelta(days=1)
    # Sunday 11 January: ISO day 7; Monday 12 January is the configured holiday.
    assert (first.target_day_of_week, first.target_day_of_month, first.target_month, first.target_holiday) == (7, 11, 1, 0)
    assert (found[(1, D, 2)].target_day_of_week, found[(1, D, 2)].target_holiday) == (1, 1)
    # Window features are those of the date, the same for every horizon.
    assert {found[(1, D, h)].transactions_amount_sum_7d for h in (1, 2, 3)} == {10.0}
    assert found[(2, D, 3)].tenure_days == (D - date(2025, 12, 1)).days

    # The plans for T, as each date knew them before its cutoff (the start of the next day).
    assert (found[(1, D, 3)].planned_price, found[(1, D, 3)].planned_promo) == (1.0, 0)
    assert found[(1, D + timedelta(days=1), 2)].planned_price == 2.0
    assert (found[(1, D + timedelta(days=2), 1)].planned_price, found[(1, D + timedelta(days=2), 1)].planned_promo) == (3.0, 1)
    assert found[(2, D + timedelta(days=2), 1)].planned_price == 6.0
    # Known after D's cutoff (the plan of D + 1 made on D + 1): D has none for it.
    assert found[(2, D, 1)].planned_price is None
    assert found[(2, D, 3)].planned_price is None  # T's plan for customer 2 came later


@pytest.mark.parametrize("from_tiles", [False, True], ids=["full", "tiles"])
def test_a_plan_changed_after_the_cutoff_changes_nothing_before_it(
    spark: SparkSession, config: Config, from_tiles: bool,
) -> None:
    config = forecasting(config)
    # D + 1 computed in the same run: its partitions are read, and its rows do change.
    dates = [D, D + timedelta(days=1)]
    before = features_of(spark, config, dates, from_tiles)
    # A revision known after D's cutoff, whatever it says, is invisible to D.
    REVISIONS.append(plan(1, T, f"{D + timedelta(days=1)} 23:00:00", 99.0, 1))
    try:
        after = features_of(spark, config, dates, from_tiles)
    finally:
        REVISIONS.pop()
    on_d = f"{DATE} = DATE'{D}'"
    assertDataFrameEqual(after.where(on_d), before.where(on_d), checkRowOrder=False, rtol=0, atol=0)
    changed = after.where(f"{DATE} = DATE'{D + timedelta(days=1)}' AND customer_id = 1 AND {HORIZON} = 2").first()
    assert changed is not None and changed.planned_price == 99.0


def test_tiles_give_the_full_computations_forecast_rows(spark: SparkSession, config: Config) -> None:
    # Windows before the target date come from events either way, joined to the tiles' rows.
    before_target = {**ALIGNED, "offset": 4}
    config = forecasting(config, horizon_days=4,
                         features={**FEATURES, "aggregates": [*FEATURES["aggregates"], before_target]})
    dates = [D - timedelta(days=1), D, D + timedelta(days=2)]
    assertDataFrameEqual(features_of(spark, config, dates, from_tiles=True), features_of(spark, config, dates),
                         checkRowOrder=False, rtol=0, atol=0)


def test_features_of_a_target_date_need_a_forecast(config: Config) -> None:
    with pytest.raises(ConfigError, match=r"^features.calendar: features of a target date need use_case.forecast"):
        expand(with_features(config, FEATURES))


def test_planned_features_read_a_known_in_advance_source(config: Config) -> None:
    wrong = {**FEATURES, "planned": [{"source": "transactions", "columns": ["amount"]}]}
    with pytest.raises(ConfigError, match=r"^features.planned\[0\]: source 'transactions' is not a known_in_advance"):
        expand(forecasting(config, features=wrong))
    with pytest.raises(ValueError, match="a known_in_advance source needs a known_at column"):
        SourceConfig(table="plans", kind="known_in_advance", timestamp="target_ts", partition="known_date")


def test_a_forecast_hashes_its_horizons_and_other_feature_sets_keep_their_fingerprints(config: Config) -> None:
    plain = expand(with_features(config, {k: v for k, v in FEATURES.items() if k not in ("calendar", "planned")}))
    assert plain.horizon_days is None and HORIZON not in plain.names
    three, four = expand(forecasting(config, 3)), expand(forecasting(config, 4))
    assert len({plain.fingerprint, three.fingerprint, four.fingerprint}) == 3
    assert three.names[-7:] == [HORIZON, "target_day_of_week", "target_day_of_month", "target_month",
                                "target_holiday", "planned_price", "planned_promo"]


def test_a_ratio_of_a_target_dates_feature_is_computed_on_each_horizons_row(spark: SparkSession, config: Config) -> None:
    ratios = [{"name": "price_to_sum", "numerator": "planned_price", "denominator": "transactions_amount_sum_7d"},
              {"name": "sum_per_horizon", "numerator": "transactions_amount_sum_7d", "denominator": HORIZON}]
    config = forecasting(config, features={**FEATURES, "ratios": ratios})
    feature_set = expand(config)
    assert feature_set.names[-2:] == ["price_to_sum", "sum_per_horizon"] and not feature_set.ratios
    assert feature_set.fingerprint != expand(forecasting(config)).fingerprint
    rows = features_of(spark, config, [D]).collect()
    assert len(rows) == 2 * 3
    for row in rows:
        expected = None if row.planned_price is None else row.planned_price / row.transactions_amount_sum_7d
        assert row.price_to_sum == expected and row.sum_per_horizon == row.transactions_amount_sum_7d / row[HORIZON]
    assert {(r.customer_id, r[HORIZON]): r.price_to_sum for r in rows}[(1, 3)] == 1.0 / 10.0


ALIGNED = {"source": "transactions", "column": "amount", "functions": ["sum", "count", "max"], "windows": [1, 7],
           "offset": 7, "align": "target"}


def test_a_window_before_the_target_date_is_the_plain_window_of_that_earlier_date(
    spark: SparkSession, config: Config,
) -> None:
    from tests.features.test_tiles import ENTITIES as MANY, LAST, random_events

    events, entities = events_frame(spark, random_events(7)), entities_frame(spark, MANY)
    sources = config.use_case.sources
    dates = [LAST - timedelta(days=n) for n in (0, 3, 4)]
    aligned = forecasting(config, horizon_days=3, features={"windows": [1], "aggregates": [ALIGNED]})
    feature_set = expand(aligned)
    assert feature_set.names == [HORIZON, "transactions_amount_sum_1d_before_target7d",
                                 "transactions_amount_sum_7d_before_target7d", "transactions_amount_count_1d_before_target7d",
                                 "transactions_amount_count_7d_before_target7d", "transactions_amount_max_1d_before_target7d",
                                 "transactions_amount_max_7d_before_target7d"]
    rows = compute_features(feature_set, sources, {"transactions": events}, entities, sources["customers"], dates).collect()

    plain = with_features(config, {"windows": [1, 7], "aggregates": [{**ALIGNED, "offset": None, "align": "cutoff"}]})
    earlier = sorted({d + timedelta(days=h - 7) for d in dates for h in (1, 2, 3)})
    expected = {(r.customer_id, r[DATE]): r for r in compute_features(
        expand(plain), sources, {"transactions": events}, entities, sources["customers"], earlier).collect()}
    assert len(rows) == len(dates) * 3 * len(MANY)
    for row in rows:
        # The target's day a week before it: the plain features of ds + h - 7.
        source = expected.get((row.customer_id, row[DATE] + timedelta(days=row[HORIZON] - 7)))
        for function in ("sum", "count", "max"):
            for window in (1, 7):
                value = None if source is None else source[f"transactions_amount_{function}_{window}d"]
                if value is None and function != "max":
                    value = 0  # an entity not known yet then: no events, as for any empty window
                assert row[f"transactions_amount_{function}_{window}d_before_target7d"] == value, (row, function, window)
    assert {r[HORIZON] for r in rows if r.transactions_amount_count_1d_before_target7d} == {1, 2, 3}


@pytest.mark.parametrize("change, message", [
    ({"offset": 2}, r"align: target needs an offset of at least horizon_days \(3d\): .*, not 2d$"),
    ({"functions": ["days_since_last"], "column": None}, "days_since_last count from D's cutoff"),
])
def test_a_window_before_the_target_must_be_known_at_d(config: Config, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^features.aggregates\[0\]: " + message):
        expand(forecasting(config, horizon_days=3, features={"windows": [1], "aggregates": [{**ALIGNED, **change}]}))
    with pytest.raises(ConfigError, match=r"align: target needs use_case.forecast"):
        expand(with_features(config, {"windows": [1], "aggregates": [ALIGNED]}))
