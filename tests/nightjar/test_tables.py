from __future__ import annotations

import shutil
import threading
from datetime import date
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pytest
from deltalake import DeltaTable as RustDeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nightjar import tables
from nightjar.config import Config
from nightjar.errors import MissingInputError
from nightjar.session import spark_conf


def _events(spark: SparkSession, days: list[int], value: int = 1) -> DataFrame:
    rows = [(entity, date(2026, 1, day), float(value * entity)) for day in days for entity in range(3)]
    return spark.createDataFrame(rows, "entity long, ds date, value double")


def test_round_trip_and_versions(spark: SparkSession, config: Config) -> None:
    assert tables.current_version(config, "events") is None
    written = _events(spark, [1, 2])
    assert tables.overwrite(written, config, "events", partition_by="ds", metadata={"why": "test"}) == 0
    assertDataFrameEqual(tables.read(spark, config, "events"), written)
    assert tables.last_commit_metadata(config, "events") == {"why": "test"}
    summary = tables.summary(spark, config, "events", "ds")
    assert (summary.rows, summary.partitions, summary.version) == (6, 2, 0)


def test_a_summary_counts_the_rows_when_the_log_has_no_statistics(spark: SparkSession, config: Config) -> None:
    tables.overwrite(_events(spark, [1, 2]), config, "events", partition_by="ds")
    spark.conf.set("spark.databricks.delta.stats.collect", "false")
    try:
        tables.append(_events(spark, [3]), config, "events")
    finally:
        spark.conf.unset("spark.databricks.delta.stats.collect")
    added = pa.table(RustDeltaTable(tables.table_path(config, "events")).get_add_actions(flatten=True))
    assert None in added.column("num_records").to_pylist()  # the appended files have no row counts
    summary = tables.summary(spark, config, "events", "ds")
    assert (summary.rows, summary.partitions, summary.version) == (9, 3, 1)


def test_a_table_recreated_at_the_same_version_has_another_content_signature(spark: SparkSession, config: Config) -> None:
    tables.overwrite(_events(spark, [1]), config, "events", partition_by="ds")
    first = tables.content_signature(config, "events")
    assert tables.content_signature(config, "events") == first
    shutil.rmtree(tables.table_path(config, "events"))
    tables.overwrite(_events(spark, [1]), config, "events", partition_by="ds")
    assert tables.current_version(config, "events") == 0 and tables.content_signature(config, "events") != first


def test_replacing_a_date_leaves_the_other_dates_untouched(spark: SparkSession, config: Config) -> None:
    tables.overwrite(_events(spark, [1, 2, 3]), config, "events", partition_by="ds")
    replacement = _events(spark, [2], value=10)
    assert tables.replace_partitions(replacement, config, "events", "ds", [date(2026, 1, 2)]) == 1
    expected = _events(spark, [1, 3]).unionByName(replacement)
    assertDataFrameEqual(tables.read(spark, config, "events"), expected)


def test_a_replacement_with_rows_outside_its_dates_is_refused(spark: SparkSession, config: Config) -> None:
    original = _events(spark, [1, 2])
    tables.overwrite(original, config, "events", partition_by="ds")
    with pytest.raises(Exception, match="(?i)replaceWhere|does not conform|DELTA_REPLACE_WHERE"):
        tables.replace_partitions(_events(spark, [1, 2], value=5), config, "events", "ds", [date(2026, 1, 2)])
    assertDataFrameEqual(tables.read(spark, config, "events"), original)
    assert tables.current_version(config, "events") == 0


def test_rows_per_value_comes_from_the_log_only_when_its_statistics_settle_it(spark: SparkSession, config: Config) -> None:
    one_version = _events(spark, [1, 2]).withColumn("version", F.lit(3)).repartition(2)
    tables.overwrite(one_version, config, "events", partition_by="ds")
    counted = {(row["ds"], row["version"]): row["count"] for row in
               tables.read(spark, config, "events").groupBy("ds", "version").count().collect()}
    assert tables.rows_per_value(config, "events", "ds", "version", [date(2026, 1, 1), date(2026, 1, 2)]) == counted
    assert tables.rows_per_value(config, "events", "ds", "version", [date(2026, 1, 2)]) == {(date(2026, 1, 2), 3): 3}
    # A file with two versions of a date: the log cannot tell how many rows each has.
    mixed = _events(spark, [2]).withColumn("version", F.col("entity").cast("int") % 2).coalesce(1)
    tables.replace_partitions(mixed, config, "events", "ds", [date(2026, 1, 2)])
    assert tables.rows_per_value(config, "events", "ds", "version", [date(2026, 1, 2)]) is None
    assert tables.rows_per_value(config, "events", "ds", "version", [date(2026, 1, 1)]) == {(date(2026, 1, 1), 3): 3}


def test_reading_a_missing_table_names_it(spark: SparkSession, config: Config) -> None:
    with pytest.raises(MissingInputError, match=r"table 'nowhere' not found: no Delta table at .*/nowhere"):
        tables.read(spark, config, "nowhere")


def test_tables_are_registered_by_name_and_follow_a_moved_lake(
    spark: SparkSession, config: Config, make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    tables.overwrite(_events(spark, [1]), config, "events", partition_by="ds")
    tables.overwrite(_events(spark, [1]), config, "other", partition_by="ds")
    Path(tables.use_case_root(config), "_gx").mkdir()  # a folder that is no table
    assert tables.register_all(spark, config) == ["events", "other"]
    by_name = spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(config, 'events')}").first().n
    assert by_name == 3
    # Writes go by path and leave the catalog alone; the entry reads the table's latest version.
    tables.append(_events(spark, [2]), config, "events")
    assert spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(config, 'events')}").first().n == 6

    moved_root = tmp_path / "moved"
    shutil.copytree(config.lake.root, moved_root)
    moved = make_config(moved_root)
    tables.overwrite(_events(spark, [3]), moved, "events", partition_by="ds")
    tables.register_all(spark, moved)
    assert spark.sql(f"SELECT count(*) AS n FROM {tables.catalog_name(moved, 'events')}").first().n == 3
    assert tables.read(spark, config, "events").count() == 6  # the original lake is untouched


def test_jobs_use_no_metastore_unless_a_shared_one_is_configured(
    spark: SparkSession, config: Config, make_config: Callable[..., Config], lake: Path,
) -> None:
    assert spark.conf.get("spark.sql.catalogImplementation") == "in-memory"
    assert spark_conf(config)["spark.sql.catalogImplementation"] == "in-memory"
    shared = make_config(lake, "spark.settings.spark.hadoop.hive.metastore.uris=thrift://metastore:9083")
    assert spark_conf(shared)["spark.sql.catalogImplementation"] == "hive"


def test_delta_rs_reads_what_spark_wrote(spark: SparkSession, config: Config) -> None:
    written = _events(spark, [1, 2])
    tables.overwrite(written, config, "events", partition_by="ds")
    frame = RustDeltaTable(tables.table_path(config, "events")).to_pandas(filters=[("ds", "=", date(2026, 1, 2))])
    assert sorted(frame["entity"].tolist()) == [0, 1, 2]
    assert set(frame["ds"].astype(str)) == {"2026-01-02"}
    assert frame["value"].sum() == written.filter(F.col("ds") == date(2026, 1, 2)).agg(F.sum("value")).first()[0]


def test_replacements_of_the_same_date_racing_each_other_all_commit_whole(spark: SparkSession, config: Config) -> None:
    tables.overwrite(_events(spark, [1, 2]), config, "events", partition_by="ds")
    values = [10, 20, 30]
    frames = [_events(spark, [2], value=value) for value in values]
    errors: list[BaseException] = []

    def replace(frame: DataFrame) -> None:
        try:
            tables.replace_partitions(frame, config, "events", "ds", [date(2026, 1, 2)])
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=replace, args=(frame,)) for frame in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    # Every write committed (a conflict is written again on top), and the date holds one of them, whole.
    assert tables.current_version(config, "events") == 3
    stored = tables.read(spark, config, "events")
    winners = [value for value, frame in zip(values, frames)
               if stored.where("ds = DATE'2026-01-02'").exceptAll(frame).count() == 0]
    assert len(winners) == 1 and stored.where("ds = DATE'2026-01-02'").count() == 3
    assertDataFrameEqual(stored.where("ds = DATE'2026-01-01'"), _events(spark, [1]))
