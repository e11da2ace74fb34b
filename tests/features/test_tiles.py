"""Features assembled from tiles equal the full computation, bit for bit."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from features import tiles
from features.definitions import expand
from features.engine import compute_features
from nightjar.config import Config
from tests.features.conftest import entities_frame, entity, event, events_frame, with_features

# Every aggregation kind, over whole-day windows of several tile levels and sub-day windows.
EVERY_KIND = {
    "windows": [1, 7, 30, 90],
    "aggregates": [
        {"source": "transactions", "functions": ["count", "days_since_first", "days_since_last"]},
        {"source": "transactions", "functions": ["trend"], "windows": [7, 30, 90], "name": "activity"},
        {"source": "transactions", "functions": ["hours_since_first", "hours_since_last", "count"],
         "windows": ["3h", "36h", "7d"], "name": "recent"},
        {"source": "transactions", "column": "amount", "functions": ["sum", "mean", "min", "max", "std", "last"]},
        {"source": "transactions", "column": "amount", "functions": ["trend"], "windows": [2, 30, 90], "name": "spend"},
        {"source": "transactions", "column": "amount", "functions": ["sum", "max", "std", "last"],
         "windows": ["30m", "5h", "2d"], "name": "short"},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"], "windows": [7, 90]},
        {"source": "transactions", "column": "transaction_id", "functions": ["distinct_count"], "windows": [1, 30]},
        {"source": "transactions", "name": "online", "where": {"channel": "online"}, "functions": ["count"],
         "windows": [30]},
        {"source": "transactions", "column": "amount", "functions": ["sum"],
         "by": {"column": "merchant_category", "values": ["grocery", "fuel"]}, "windows": [30]},
        # Lagged windows: the windows of D - offset, assembled from the same tiles.
        {"source": "transactions", "column": "amount", "functions": ["sum", "max", "last", "trend"],
         "windows": [7, 28], "offset": 7, "name": "lagged"},
        {"source": "transactions", "column": "merchant_category", "functions": ["distinct_count"],
         "windows": [7], "offset": "14d", "name": "lagged"},
        {"source": "transactions", "functions": ["count", "days_since_last", "hours_since_first"],
         "windows": ["3h", "1d", "10d"], "offset": "14d", "name": "lag14"},
    ],
    "ratios": [{"name": "online_share_30d", "numerator": "online_count_30d", "denominator": "transactions_count_30d"}],
    "attributes": [{"source": "customers", "kind": "tenure_days"}],
}
FIRST = date(2025, 9, 1)
LAST = date(2026, 1, 20)
CATEGORIES = ["grocery", "fuel", "travel", "dining", None]


def random_events(seed: int, customers: int = 6) -> list[tuple]:
    """Events on most days of FIRST..LAST, bunched near midnight and window edges, with ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for day_number in range((LAST - FIRST).days + 1):
        day = FIRST + timedelta(days=day_number)
        for customer in range(1, customers + 1):
            # At least one event a day (of one customer in turn): every partition exists.
            for _ in range(int(rng.poisson(0.8)) + int(customer == day_number % customers + 1)):
                second = int(rng.choice([0, 1, 1799, 1800, 10799, 10800, 86399, int(rng.integers(86400))]))
                moment = datetime.combine(day, datetime.min.time()) + timedelta(seconds=second)
                amount = None if rng.random() < 0.05 else float(np.round(rng.gamma(2.0, 30.0), 2))
                rows.append(event(customer, moment.isoformat(sep=" "), amount,
                                  CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                                  "online" if rng.random() < 0.5 else "in_store"))
    rows.append(rows[-1])  # the same event twice: counted twice by both
    return rows


ENTITIES = [entity(c, "2025-06-01 00:00:00") for c in range(1, 7)] + [entity(9, "2025-12-24 10:00:00")]


def full(spark: SparkSession, config: Config, events: list[tuple], dates: list[date]) -> DataFrame:
    sources = config.use_case.sources
    return compute_features(
        expand(config), sources, {"transactions": events_frame(spark, events)},
        entities_frame(spark, ENTITIES), sources["customers"], dates,
    )


def from_tiles(spark: SparkSession, config: Config, events: list[tuple], dates: list[date]) -> DataFrame:
    sources = config.use_case.sources
    frame = events_frame(spark, events)
    assembly = tiles.assemble(
        expand(config), sources, {"transactions": frame}, entities_frame(spark, ENTITIES), dates,
        held={}, signatures={}, stored=None,
    )
    return assembly.features


@pytest.fixture
def config(config: Config) -> Config:
    return with_features(config, EVERY_KIND)


def test_a_backfill_from_tiles_equals_the_full_computation(spark: SparkSession, config: Config) -> None:
    events = random_events(1)
    dates = [LAST - timedelta(days=n) for n in range(0, 40, 3)] + [date(2025, 12, 31), date(2026, 1, 1)]
    expected = full(spark, config, events, dates)
    actual = from_tiles(spark, config, events, dates)
    assertDataFrameEqual(actual, expected, checkRowOrder=False, rtol=0, atol=0)


def test_aligned_tiles_cover_a_range_exactly_with_few_tiles() -> None:
    for first in range(0, 70):
        for last in range(first, first + 400, 7):
            found = tiles.aligned_tiles(first, last, tiles.TOP_LEVEL)
            days = [day for start, level in found for day in range(start, start + 2**level)]
            assert days == list(range(first, last + 1))
            assert all(start % 2**level == 0 for start, level in found)
            assert len(found) <= 2 * (last - first + 1).bit_length()


def test_a_window_reads_few_pieces(config: Config) -> None:
    feature_set = expand(config)
    plan = tiles.source_tiles(feature_set, "transactions", config.use_case.sources["transactions"], {})
    assert plan.bucket_micros == 30 * 60 * 1_000_000  # gcd of 30m, 3h, 5h and 12h (36h)
    rows = [row for row in tiles.plan_rows(plan, [LAST]) if row[2] == LAST]  # the unlagged windows
    whole_day_pieces = {(row[3], row[4]) for row in rows if row[4] >= 0}
    # 90 days cut into bands at 1, 2, 7 and 30 days: at most two tiles of each level per band.
    assert len(whole_day_pieces) <= 2 * 7 * 4
    # D and D - 1 are read in buckets: 36h splits D - 1 between the 36h and 2d windows.
    assert sum(2**level for _, level in whole_day_pieces) == 90 - 2


def test_only_changed_days_and_the_tiles_holding_them_are_recomputed(config: Config) -> None:
    plan = tiles.source_tiles(expand(config), "transactions", config.use_case.sources["transactions"], {})
    pieces = {(row[3], row[4]) for row in tiles.plan_rows(plan, [LAST])}
    signatures = {day: f"s{day}" for day in range(tiles.epoch_day(LAST) - 200, tiles.epoch_day(LAST) + 1)}
    first = tiles.work(plan, pieces, None, signatures)
    assert first.reset and not first.stored and len(first.days) == 90

    unchanged = tiles.work(plan, pieces, first.after, signatures)
    assert unchanged.empty and unchanged.stored

    corrected = tiles.epoch_day(LAST) - 50
    again = tiles.work(plan, pieces, first.after, {**signatures, corrected: "new"})
    assert again.days == [corrected]
    # One tile per level holds the corrected day; those the window reads are rebuilt from their halves.
    assert all(start <= corrected < start + 2**level for level, starts in again.tiles.items() for start in starts)
    assert all(len(starts) == 1 for starts in again.tiles.values())

    other_definitions = tiles.Held("another", first.after.days, first.after.tiles)
    assert tiles.work(plan, pieces, other_definitions, signatures).reset
