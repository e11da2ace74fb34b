"""The features job's path through stored tiles: nightly runs, gaps, corrected partitions, reruns."""

from __future__ import annotations

import argparse
from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from features import store, tiles
from features.definitions import expand
from features.engine import DATE, compute_features
from nightjar import cli, tables
from nightjar.config import Config
from nightjar.runs import RunRecord
from tests.features.conftest import entities_frame, event, events_frame, with_features
from tests.features.test_tiles import ENTITIES, EVERY_KIND, LAST, random_events


@pytest.fixture
def config(config: Config) -> Config:
    # No suites: the gate is not what these tests are about, and EVERY_KIND is not the churn suite's feature set.
    return with_features(config, {**EVERY_KIND, "incremental": True}).model_copy(
        update={"validation": config.validation.model_copy(update={"suites": {}})}
    )


@pytest.fixture
def lake_sources(spark: SparkSession, config: Config) -> Config:
    tables.overwrite(entities_frame(spark, ENTITIES), config, "customers", partition_by="signup_date")
    tables.overwrite(events_frame(spark, random_events(2)), config, "transactions", partition_by="event_date")
    return config


def run_features(spark: SparkSession, config: Config, dates: list[date]) -> dict:
    """Compute and write `dates` as the features job does; the partials summary of the run."""
    record = RunRecord("test-run", "features", "test", [], "test", None, datetime(2026, 1, 1))
    context = cli.JobContext("features", argparse.Namespace(rebuild=False, force=True), config, dates, record)
    context.spark = spark
    store.compute_and_write(context, dates)
    return next(check["partials"] for check in record.checks if "partials" in check)["transactions"]


def full(spark: SparkSession, config: Config, dates: list[date]) -> DataFrame:
    sources = config.use_case.sources
    return compute_features(
        expand(config), sources, {"transactions": tables.read(spark, config, "transactions")},
        tables.read(spark, config, "customers"), sources["customers"], dates,
    )


def written(spark: SparkSession, config: Config, dates: list[date]) -> DataFrame:
    return tables.read(spark, config, config.tables.features).where(F.col(DATE).isin(dates))


def same(spark: SparkSession, config: Config, dates: list[date]) -> None:
    expected = full(spark, config, dates)
    assert expected.count() > 0
    assertDataFrameEqual(written(spark, config, dates), expected, checkRowOrder=False, rtol=0, atol=0)


def test_a_nightly_run_computes_one_day_and_equals_the_full_computation(
    spark: SparkSession, lake_sources: Config,
) -> None:
    config = lake_sources
    backfill = [LAST - timedelta(days=n) for n in range(16, 21)]
    first = run_features(spark, config, backfill)
    assert first["days_computed"] == 90 + 4  # the longest window of the first date, and the four dates after it
    same(spark, config, backfill)

    nightly = LAST - timedelta(days=15)
    done = run_features(spark, config, [nightly])
    assert done["days_computed"] == 1 and done["tiles_read"] > 0
    same(spark, config, [nightly])

    # A gap: the days between the last run and this one are computed first.
    later = LAST - timedelta(days=10)
    assert run_features(spark, config, [later])["days_computed"] == 5
    same(spark, config, [later])

    # A rerun reads only stored tiles and writes the same rows.
    before = written(spark, config, [later]).collect()
    version = tables.current_version(config, config.tables.partials)
    assert run_features(spark, config, [later])["days_computed"] == 0
    assert tables.current_version(config, config.tables.partials) == version
    assertDataFrameEqual(written(spark, config, [later]), spark.createDataFrame(before, written(spark, config, [later]).schema))


def test_a_corrected_source_partition_is_computed_again(spark: SparkSession, lake_sources: Config) -> None:
    config = lake_sources
    nightly = LAST - timedelta(days=15)
    run_features(spark, config, [nightly])
    corrected_day = nightly - timedelta(days=40)
    events = tables.read(spark, config, "transactions")
    corrected = events.where(F.col("event_date") == corrected_day).withColumn("amount", F.col("amount") * 3 + 1)
    tables.replace_partitions(corrected, config, "transactions", "event_date", [corrected_day])

    done = run_features(spark, config, [nightly])
    assert done["days_computed"] == 1  # the corrected day alone, and the coarser tiles holding it
    assert done["tiles_built"] > 0
    same(spark, config, [nightly])


def test_a_long_history_is_stored_in_batches_and_a_killed_run_resumes(
    spark: SparkSession, lake_sources: Config, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = lake_sources
    nightly = LAST - timedelta(days=15)
    monkeypatch.setattr(tiles, "BATCH_DAYS", 40)
    real_write = tables.replace_where
    commits: list[str] = []

    def dies_after_the_first_batch(*args: object, **kwargs: object) -> int:
        if commits:
            raise KeyboardInterrupt("killed")  # as a kill would: after one commit, before the next
        commits.append("batch")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(tables, "replace_where", dies_after_the_first_batch)
    with pytest.raises(KeyboardInterrupt):
        run_features(spark, config, [nightly])
    assert not tables.exists(spark, config, config.tables.features)
    monkeypatch.setattr(tables, "replace_where", real_write)

    done = run_features(spark, config, [nightly])
    assert done["days_computed"] == 90 - 40  # the first batch was kept
    same(spark, config, [nightly])


def test_a_new_value_gets_the_next_bit_and_too_many_values_become_arrays(
    spark: SparkSession, lake_sources: Config,
) -> None:
    config = lake_sources
    nightly = LAST - timedelta(days=15)
    run_features(spark, config, [nightly - timedelta(days=1)])

    def domains() -> dict:
        manifest = tables.last_commit_metadata(config, config.tables.partials, key="manifest", depth=100)
        entry = manifest["manifest"]["transactions"]
        return {"domains": list(entry["domains"].values()), "wide": entry["wide"]}

    before = domains()
    assert ["dining", "fuel", "grocery", "travel"] in before["domains"] and len(before["wide"]) == 1  # transaction ids
    new_events = [event(3, f"{nightly} 12:00:00", 5.0, "crypto"), event(3, f"{nightly} 13:00:00", 6.0, "art")]
    tables.append(events_frame(spark, new_events), config, "transactions")
    assert run_features(spark, config, [nightly])["days_computed"] == 1
    assert ["dining", "fuel", "grocery", "travel", "art", "crypto"] in domains()["domains"]  # appended, in order
    same(spark, config, [nightly])

    # 64 categories in all: more than a long's bits; the measure's tiles are computed again as arrays.
    many = [event(4, f"{nightly} 14:00:00", 1.0, f"category{n:02d}") for n in range(58)]
    tables.append(events_frame(spark, many), config, "transactions")
    done = run_features(spark, config, [nightly])
    assert done["recomputed_all"] and len(domains()["wide"]) == 2
    same(spark, config, [nightly])
