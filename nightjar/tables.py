"""Every read and write of a table goes through this module; nothing else builds paths.

Tables are Delta tables addressed by their path under the lake root, so a lake copied
elsewhere and named with `--set lake.root=...` is self-contained. Each use case lives in its
own folder, `<lake root>/<use case>/`: its tables, models and validation results, so that use
cases side by side never touch each other's. Each write is one Delta commit: a reader sees the
table before or after it, never half of it. Jobs use no catalog, so they need no metastore and
run side by side; `register_all` gives analysts the tables by name (`<prefix>_<use case>.<table>`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import unquote, urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import DeltaTable as DeltaReader
from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import CommitFailedError
from fsspec.implementations.arrow import ArrowFSWrapper

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, IllegalArgumentException
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from nightjar import crashpoints
from nightjar.config import Config, SourceConfig
from nightjar.errors import ConfigError, MissingInputError, TransientError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSummary:
    """What a table holds now: for job summaries and the runs table."""

    name: str
    path: str
    version: int
    rows: int
    partitions: int | None


def use_case_root(config: Config) -> str:
    """The folder of the configured use case in the lake, `<lake root>/<use case>` (a path or a URI)."""
    return f"{config.lake.root.rstrip('/')}/{config.use_case.name}"


def table_path(config: Config, name: str) -> str:
    """The location of table `name`: `<lake root>/<use case>/<name>`, or the shared path its source names."""
    for source in config.use_case.sources.values():
        if source.table == name and source.path:
            return _shared_path(config, source.path)
    return f"{use_case_root(config)}/{name}"


def _shared_path(config: Config, path: str) -> str:
    if "://" in path or path.startswith(("file:", "/")):
        return path.rstrip("/")
    return f"{config.lake.root.rstrip('/')}/{path.rstrip('/')}"


def database(config: Config) -> str:
    """The catalog database of the use case's tables, `<lake.database_prefix>_<use case>` (`nightjar_churn`)."""
    return f"{config.lake.database_prefix}_{config.use_case.name}"


def catalog_name(config: Config, name: str) -> str:
    """The name analysts query table `name` by, for example `nightjar_churn.scores`."""
    return f"{database(config)}.{name}"


# What the layout before use cases kept directly under the lake root besides its tables (its
# `_metastore`, an embedded Derby catalog that no job uses any more, stays where it is).
_OLD_LAYOUT_FOLDERS = ("models", "_gx")


def require_layout(config: Config) -> None:
    """Refuse a lake in the layout before use cases, which held one use case's tables directly under its root.

    Read in the current layout such a lake would look empty, and the next run would start a second
    history beside the first; so it is refused with the command that moves it into place.

    Raises:
        ConfigError: naming the folders to move and where to.
    """
    fs, root = filesystem(config.lake.root)
    children = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    folders = sorted(child.base_name for child in children if child.type == pafs.FileType.Directory)
    own_tables = set(config.tables.model_dump().values())
    if not any(name in own_tables and _is_delta(fs, f"{root}/{name}") for name in folders):
        return
    lake = config.lake.root.rstrip("/")
    shared = {table_path(config, source.table) for source in config.use_case.sources.values() if source.path}
    movable = [
        name for name in folders
        if (name in _OLD_LAYOUT_FOLDERS or _is_delta(fs, f"{root}/{name}")) and f"{lake}/{name}" not in shared
    ]
    shown = local_path(lake) or lake
    raise ConfigError(
        f"lake.root {lake} holds one use case's tables directly under it (the layout before use cases): "
        f"move them into <lake.root>/<use case>/, for churn: mkdir {shown}/churn && "
        f"mv {' '.join(f'{shown}/{name}' for name in movable)} {shown}/churn/ (README: Lake layout)"
    )


def _is_delta(fs: pafs.FileSystem, folder: str) -> bool:
    return fs.get_file_info(f"{folder}/_delta_log").type == pafs.FileType.Directory


def exists(spark: SparkSession, config: Config, name: str) -> bool:
    """Whether table `name` is a Delta table under the lake root."""
    return DeltaTable.isDeltaTable(spark, table_path(config, name))


def read(spark: SparkSession, config: Config, name: str) -> DataFrame:
    """The current version of table `name`; MissingInputError when there is none."""
    _require(spark, config, name)
    return spark.read.format("delta").load(table_path(config, name))


def last_commit_metadata(config: Config, name: str, key: str | None = None, depth: int = 1) -> dict[str, Any] | None:
    """The `userMetadata` JSON of the table's latest commit, or None (also when there is no table).

    With `key`: of the latest of the last `depth` commits whose metadata holds `key`, so that a
    commit without Nightjar's metadata (an `OPTIMIZE` or `VACUUM` run by hand) hides nothing.
    Read with delta-rs from the log's last commits (Spark's `history` runs a Spark job for it).
    """
    reader = _existing_reader(config, name)
    if reader is None:
        return None
    for commit in reader.history(depth):  # the latest first
        text = commit.get("userMetadata")
        metadata = json.loads(text) if text else None
        if key is None or (metadata is not None and key in metadata):
            return metadata
    return None


def overwrite(
    df: DataFrame,
    config: Config,
    name: str,
    partition_by: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Replace the whole table `name` with `df` in one commit; returns the new version."""
    writer = _writer(_killable(df, config, name), metadata).mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    _save(writer, config, name)
    return _after_write(df.sparkSession, config, name)


def replace_partitions(
    df: DataFrame,
    config: Config,
    name: str,
    partition_by: str,
    dates: Iterable[date],
    metadata: dict[str, Any] | None = None,
    add_columns: bool = False,
) -> int:
    """Replace exactly the partitions `dates` of `name` with `df` in one commit.

    Other dates are untouched; Delta rejects the commit when `df` holds a row outside
    `dates`, so a bug cannot overwrite a neighbouring partition. `add_columns`: a column of `df`
    that the table lacks is added to it (null on the other dates) instead of failing the write;
    a column whose type changed still fails.
    """
    listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(set(dates)))
    return replace_where(df, config, name, partition_by, f"{partition_by} IN ({listed})", metadata, add_columns)


def replace_where(
    df: DataFrame,
    config: Config,
    name: str,
    partition_by: str,
    condition: str,
    metadata: dict[str, Any] | None = None,
    add_columns: bool = False,
) -> int:
    """Replace the rows of `name` matching the SQL `condition` with `df` in one commit (the table is created when missing).

    Delta rejects the commit when a row of `df` does not match `condition`; `add_columns` as in
    `replace_partitions`. Returns the new version.
    """
    writer = (
        _writer(_killable(df, config, name), metadata)
        .mode("overwrite")
        .option("replaceWhere", condition)
        .partitionBy(partition_by)
    )
    if add_columns:
        writer = writer.option("mergeSchema", "true")
    _save(writer, config, name)
    return _after_write(df.sparkSession, config, name)


def append(df: DataFrame, config: Config, name: str, metadata: dict[str, Any] | None = None) -> int:
    """Append `df` to `name` (created when missing) in one commit; returns the new version."""
    _save(_writer(_killable(df, config, name), metadata).mode("append").option("mergeSchema", "true"), config, name)
    return _after_write(df.sparkSession, config, name)


# Small bookkeeping tables (`runs`) are written with delta-rs, without Spark: a one-row commit
# there takes milliseconds where a Spark MERGE takes seconds, and every run writes two. Spark
# reads what delta-rs writes, and the other way round (STACK.md).


def read_rows(config: Config, name: str, where: pc.Expression | None = None) -> pa.Table | None:
    """The rows of `name` (those matching `where`), read without Spark; None when there is no table."""
    try:
        reader = DeltaReader(table_path(config, name))
    except Exception:  # noqa: BLE001 - delta-rs raises its own TableNotFoundError
        return None
    return reader.to_pyarrow_dataset().to_table(filter=where)


def append_rows(config: Config, name: str, rows: pa.Table) -> int:
    """Append `rows` to `name` without Spark, in one commit (the table is created when missing; a
    column it lacks is added); returns the new version."""
    path = table_path(config, name)
    write_deltalake(path, rows, mode="append", schema_mode="merge")
    crashpoints.reached(f"committed:{name}")
    return DeltaReader(path).version()


def upsert_rows(config: Config, name: str, rows: pa.Table, keys: list[str]) -> int:
    """Replace the rows of `name` whose `keys` match a row of `rows` by that row, and append the
    others, in one commit without Spark (the table is created when missing; a column it lacks is
    added); returns the new version.

    Raises:
        CommitConflict: other jobs kept committing to the table in between; nothing was written.
    """
    path = table_path(config, name)
    condition = " AND ".join(f"t.{key} = s.{key}" for key in keys)

    def merge() -> None:
        (DeltaReader(path).merge(rows, condition, source_alias="s", target_alias="t", merge_schema=True)
         .when_matched_update_all().when_not_matched_insert_all().execute())

    if current_version(config, name) is None:
        return append_rows(config, name, rows)
    return _retrying_conflicts(config, name, merge)


def update_rows(config: Config, name: str, predicate: str, updates: dict[str, str]) -> int:
    """Set the columns of `updates` (SQL expressions) on the rows of `name` matching the SQL
    `predicate`, in one commit without Spark, retried like `upsert_rows`; returns the new version."""
    path = table_path(config, name)
    return _retrying_conflicts(config, name, lambda: DeltaReader(path).update(updates=updates, predicate=predicate))


def replace_rows(config: Config, name: str, rows: pa.Table, partition_by: str, predicate: str,
                 metadata: dict[str, Any] | None = None) -> int:
    """Replace the rows of `name` matching the SQL `predicate` with `rows` in one commit without
    Spark (the table is created when missing), retried like `upsert_rows` when another job's
    commit collides; returns the new version. A row of `rows` outside `predicate` is refused
    (as Spark's `replaceWhere`), and nothing is written.

    For small tables written whole per run (`monitoring`: a few hundred rows a day): delta-rs
    commits them in tens of milliseconds, a Spark write in about two seconds. delta-rs writes
    the data files and commits in one call, so a job killed at `writing:<table>` (reached just
    before it) or anywhere in it leaves the table as it was.
    """
    path = table_path(config, name)
    properties = CommitProperties(custom_metadata={"userMetadata": json.dumps(metadata, sort_keys=True, default=str)}
                                  ) if metadata else None
    crashpoints.reached(f"writing:{name}")
    return _retrying_conflicts(config, name, lambda: write_deltalake(
        path, rows, mode="overwrite", predicate=predicate, partition_by=[partition_by], commit_properties=properties))


# Attempts of a row-level change colliding with other jobs' commits (Delta cannot always tell
# that two commits touched different rows).
_ROW_CHANGE_ATTEMPTS = 5


def _retrying_conflicts(config: Config, name: str, change: Callable[[], object]) -> int:
    collided = ""
    for attempt in range(_ROW_CHANGE_ATTEMPTS):
        try:
            change()
        except CommitFailedError as error:
            collided = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            time.sleep(0.2 * (attempt + 1))
            continue
        crashpoints.reached(f"committed:{name}")
        return DeltaReader(table_path(config, name)).version()
    raise CommitConflict(f"table {name!r}: {_ROW_CHANGE_ATTEMPTS} attempts collided with other jobs ({collided})")


class CommitConflict(TransientError):
    """Another job committed to the same table at the same time; the write did not happen. Worth retrying."""


# Delta's commit conflicts: another writer committed between this transaction's read and its commit.
_CONFLICTS = (
    ConcurrentAppendException, ConcurrentWriteException, ConcurrentTransactionException, MetadataChangedException,
    ProtocolChangedException, DeltaConcurrentModificationException,
)


# How many times a write that lost a commit race is tried in all.
_WRITE_ATTEMPTS = 4


def _save(writer: DataFrameWriter, config: Config, name: str) -> None:
    """Commit `writer` to table `name`, trying again when another job's commit conflicts with it.

    Each write here replaces (or appends) exactly the rows it names, and jobs compute the same
    rows from the same inputs, so committing after the other job's commit still gives what the
    caller asked for. Delta's optimistic concurrency reports a conflict when two jobs replace
    overlapping rows at once (the same date, the same feature tiles, a whole table) or change
    its schema; replacements of different dates do not conflict. After the last attempt the
    conflict is a CommitConflict: exit 5, worth retrying.
    """
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            writer.save(table_path(config, name))
            return
        except _CONFLICTS as error:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise CommitConflict(
                    f"table {name!r}: other jobs kept committing conflicting changes at the same time "
                    f"({type(error).__name__}); nothing was written"
                ) from None
            _log.info("table %r: another job committed first (Delta's %s conflict); writing again",
                      name, type(error).__name__.removesuffix("Exception"))


def create_if_missing(spark: SparkSession, config: Config, name: str, schema: T.StructType) -> None:
    """Create table `name`, empty, with `schema` unless it exists (another job creating it at the same time is no error)."""
    if not exists(spark, config, name):
        try:
            # An empty append creates the table by its path alone (no catalog), as every other write does.
            spark.createDataFrame([], schema).write.format("delta").mode("append").save(table_path(config, name))
        except _CONFLICTS:
            if not exists(spark, config, name):
                raise


def append_unless(df: DataFrame, config: Config, name: str, condition: str) -> int | None:
    """Append `df` to the existing table `name` in one commit, unless a row of the table matches `condition`.

    `condition` is SQL over the table's row `t` and each appended row `s`: it is checked
    against every row of `df`, so it must match all of them or none (for example
    `t.model_name = s.model_name AND t.sequence > 7`: "nothing was added after what I read").
    The check and the append are one Delta transaction: a commit by another job in between
    makes this one fail rather than both succeed.

    Returns:
        The table's new version, or None when a row matched and nothing was written.

    Raises:
        CommitConflict: another job committed to the table meanwhile; nothing was written.
    """
    spark = df.sparkSession
    target = _delta(spark, config, name).alias("t")
    try:
        outcome = target.merge(df.alias("s"), condition).whenNotMatchedInsertAll().execute().first()
    except _CONFLICTS as error:
        raise CommitConflict(f"table {name!r}: another job committed at the same time ({type(error).__name__})") from None
    if not outcome["num_inserted_rows"]:
        return None
    return _after_write(spark, config, name)


def present_dates(frame: DataFrame, partition: str, dates: list[date]) -> set[date]:
    """Which of `dates` have rows in `frame`; the partition filter keeps Spark to those partitions."""
    return {row[0] for row in frame.where(F.col(partition).isin(dates)).select(partition).distinct().collect()}


def require_source_partitions(config: Config, frame: DataFrame, source: SourceConfig, dates: list[date]) -> None:
    """MissingInputError naming the first of `dates` without a partition in `source`, when
    `source` needs one for every day (see `needs_daily_partition`).
    """
    if not needs_daily_partition(source):
        return
    present = partition_dates(config, source.table, source.partition)
    require_partitions(frame, source.table, source.partition, dates, present=present)


def require_partitions(
    frame: DataFrame, table: str, partition: str, dates: list[date], present: set[date] | None = None,
) -> None:
    """MissingInputError naming the first date for which `table` has no rows.

    `present`: the dates that count as present, when known otherwise; the validation gate
    passes the partitions of the table's Delta log, so that a partition that exists but holds
    no rows is reported as empty by its expectations (exit 3) rather than as missing (exit 4).
    """
    present = present_dates(frame, partition, dates) if present is None else present
    missing = [d for d in dates if d not in present]
    if missing:
        more = f" (and {len(missing) - 1} more dates)" if len(missing) > 1 else ""
        raise MissingInputError(f"table {table!r} has no partition {partition}={missing[0]}{more}")


def summary(spark: SparkSession, config: Config, name: str, partition_by: str | None = None) -> TableSummary:
    """Row and partition counts of the table's current version: from the Delta log's file
    statistics when every file records its row count (no data read), else in one Spark pass."""
    reader = _reader(config, name)
    # The counts and the version of one snapshot of the log.
    actions = _add_actions(reader, name, partition_by)
    rows: int | None = None
    if "num_records" in actions.column_names and actions.column("num_records").null_count == 0:
        rows = int(pc.sum(actions.column("num_records")).as_py() or 0)
    partitions = None
    if partition_by:
        partitions = len(set(actions.column(f"partition.{partition_by}").to_pylist()) - {None})
    if rows is None:
        rows = read(spark, config, name).count()
    return TableSummary(name=name, path=table_path(config, name), version=int(reader.version()),
                        rows=rows, partitions=partitions)


def lake_tables(config: Config) -> list[str]:
    """The names of the use case's Delta tables that exist now: the folders of its own that hold a
    Delta log, and the shared sources its configuration points at. Lists folders, reads no table."""
    fs, root = filesystem(use_case_root(config))
    children = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    names = {
        child.base_name for child in children
        if child.type == pafs.FileType.Directory and _has_commit(fs, f"{root}/{child.base_name}")
    }
    for source in config.use_case.sources.values():
        if source.path:
            shared_fs, shared = filesystem(table_path(config, source.table))
            if _has_commit(shared_fs, shared):
                names.add(source.table)
    return sorted(names)


def _has_commit(fs: pafs.FileSystem, folder: str) -> bool:
    # A table that another job is creating right now has a log folder and no commit yet.
    log = fs.get_file_info(pafs.FileSelector(f"{folder}/_delta_log", allow_not_found=True))
    return any(entry.base_name.endswith((".json", ".parquet")) for entry in log)


def register_all(spark: SparkSession, config: Config) -> list[str]:
    """Make every table of the use case queryable by name, `<database>.<table>`, and return their names.

    Each entry points at the table's path under the current lake root; registering reads the
    table's Delta log, never its data. Jobs never need this (they address tables by path): it is
    for queries by name, in the session's own catalog (in memory unless a shared metastore is
    configured, where the entries stay for other tools).
    """
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database(config)}")
    names = lake_tables(config)
    for name in names:
        register(spark, config, name)
    return names


def register(spark: SparkSession, config: Config, name: str) -> None:
    """Point the catalog entry `<database>.<name>` at the table under the current lake root.

    With a shared metastore, two sessions may re-point the entry at the same moment, and the
    catalog's own checks (`IF EXISTS`, `IF NOT EXISTS`) are not atomic: a step that loses such a
    race is tried again, and finds the entry pointed where it belongs by the other session.
    """
    for attempt in range(_REGISTER_ATTEMPTS):
        try:
            _point_entry(spark, catalog_name(config, name), table_path(config, name))
            return
        except AnalysisException:
            if attempt == _REGISTER_ATTEMPTS - 1:
                raise


_REGISTER_ATTEMPTS = 3


def _point_entry(spark: SparkSession, qualified: str, location: str) -> None:
    try:
        current = spark.sql(f"DESCRIBE DETAIL {qualified}").select("location").first()[0]
    except AnalysisException:  # no entry (or another job just dropped it)
        current = None
    if current is not None and _same_location(current, location):
        return
    if current is not None:
        # The entry is external: dropping it forgets the old location and deletes no data.
        spark.sql(f"DROP TABLE IF EXISTS {qualified}")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified} USING DELTA LOCATION '{location}'")


def _same_location(a: str, b: str) -> bool:
    return (local_path(a) or a).rstrip("/") == (local_path(b) or b).rstrip("/")


def _writer(df: DataFrame, metadata: dict[str, Any] | None) -> DataFrameWriter:
    writer = df.write.format("delta")
    if metadata:
        writer = writer.option("userMetadata", json.dumps(metadata, sort_keys=True, default=str))
    return writer


def _killable(df: DataFrame, config: Config, name: str) -> DataFrame:
    # Tests kill a job, or fail a task, in the middle of this write (nightjar.crashpoints).
    return crashpoints.around_write(df, name, local_path(table_path(config, name)))


def _after_write(spark: SparkSession, config: Config, name: str) -> int:
    crashpoints.reached(f"committed:{name}")
    return current_version(config, name) or 0


def _delta(spark: SparkSession, config: Config, name: str) -> DeltaTable:
    _require(spark, config, name)
    return DeltaTable.forPath(spark, table_path(config, name))


def _require(spark: SparkSession, config: Config, name: str) -> None:
    if not exists(spark, config, name):
        raise MissingInputError(f"table {name!r} not found: no Delta table at {table_path(config, name)}")


def partition_dates(config: Config, name: str, partition: str) -> set[date]:
    """The dates of `partition` that have data files in the current version of `name`, read from
    its Delta log without reading any data: a partition can exist and hold no rows.

    MissingInputError when the table does not exist.
    """
    return {value for value, _ in _partition_files(config, name, partition)}


def partition_signatures(config: Config, name: str, partition: str) -> dict[date, str]:
    """A signature of each partition's content: a hash of the data files it is made of now, from the Delta log.

    Delta never changes a file in place, so a partition that is rewritten, corrected or appended
    to gets another signature; reading it reads no data. MissingInputError when the table does not exist.
    """
    files: dict[date, list[str]] = {}
    for value, path in _partition_files(config, name, partition):
        files.setdefault(value, []).append(path)
    return {
        value: hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:16] for value, paths in files.items()
    }


def rows_per_value(config: Config, name: str, partition: str, column: str,
                   values: Iterable[Any]) -> dict[tuple[Any, Any], int] | None:
    """Rows per (partition value, value of `column`) in the partitions `values`, from the file
    statistics of the Delta log, without reading data: exact when every file of those partitions
    records its row count and holds a single value of `column` (its minimum equals its maximum, no
    nulls), as a job that writes one model version per date leaves them. None otherwise (a file
    without statistics, or with several values): then count the rows.
    """
    wanted = set(values)
    actions = _add_actions(_reader(config, name), name, partition)
    needed = ["num_records", f"min.{column}", f"max.{column}", f"null_count.{column}"]
    if any(field not in actions.column_names for field in needed):
        return None
    counts: dict[tuple[Any, Any], int] = {}
    for day, rows, low, high, nulls in zip(*(actions.column(field).to_pylist()
                                             for field in [f"partition.{partition}", *needed])):
        if day not in wanted:
            continue
        if rows is None or low is None or low != high or nulls:
            return None
        counts[(day, low)] = counts.get((day, low), 0) + rows
    return counts


def content_signature(config: Config, name: str) -> str:
    """A signature of the table's current content: a hash of its data files, from the Delta log
    (file names are unique, so a table rewritten or recreated at the same version differs)."""
    paths = sorted(_add_actions(_reader(config, name), name).column("path").to_pylist())
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]


def _partition_files(config: Config, name: str, partition: str) -> list[tuple[Any, str]]:
    """(partition value, data file path) of each file of the current version of `name`, from its Delta log."""
    actions = _add_actions(_reader(config, name), name, partition)
    return [
        (value, path)
        for value, path in zip(actions.column(f"partition.{partition}").to_pylist(), actions.column("path").to_pylist())
        if value is not None
    ]


def _reader(config: Config, name: str) -> DeltaReader:
    """Table `name`'s current version through delta-rs; MissingInputError when there is none."""
    try:
        return DeltaReader(table_path(config, name))
    except Exception as error:  # noqa: BLE001 - delta-rs raises its own TableNotFoundError
        raise MissingInputError(f"table {name!r} not found: no Delta table at {table_path(config, name)} ({error})") from None


def _existing_reader(config: Config, name: str) -> DeltaReader | None:
    """Table `name`'s current version through delta-rs, or None when there is no Delta table there."""
    fs, folder = filesystem(table_path(config, name))
    return DeltaReader(table_path(config, name)) if _is_delta(fs, folder) else None


def _add_actions(reader: DeltaReader, name: str, partition: str | None = None) -> pa.Table:
    """The data files of table `name` in `reader`'s version with their statistics (`path`,
    `num_records`, `min.<column>`, ..., `partition.<partition>`), from its Delta log; ValueError
    when the table is not partitioned by `partition` (when named)."""
    actions = pa.table(reader.get_add_actions(flatten=True))
    if partition is not None and f"partition.{partition}" not in actions.column_names:
        raise ValueError(f"table {name!r} is not partitioned by {partition!r}")
    return actions


def snapshot_files(config: Config, name: str, table_version: int) -> tuple[ArrowFSWrapper, list[str]]:
    """The Parquet files that make up version `table_version` of table `name`, and the file system
    that holds them, for Dask: `dd.read_parquet(paths, filesystem=fs)`.

    The file system is pyarrow's (`filesystem`), which reaches the lake wherever the rest of
    Nightjar does: Dask's own fsspec ones know neither `s3a://` nor the endpoint variables. It is
    wrapped as an fsspec file system because Dask splits the files into partitions the same way
    for any fsspec one, one per file, while with a bare pyarrow one it may merge small files into
    fewer partitions than there are workers (a worker without data fails LightGBM's fit).
    """
    reader = DeltaReader(table_path(config, name), version=table_version)
    if reader.metadata().partition_columns:
        # Partition values live in the paths, not the files: Dask would lose those columns.
        raise ValueError(f"table {name!r} is partitioned; snapshots must not be")
    fs, _ = filesystem(table_path(config, name))
    # A URI's path within its file system is what follows the scheme (`bucket/key` on S3).
    return ArrowFSWrapper(fs), [local_path(uri) or uri.split("://", 1)[1] for uri in reader.file_uris()]


def read_snapshot(config: Config, name: str, table_version: int) -> pd.DataFrame:
    """Version `table_version` of table `name` as pandas, read without Spark (delta-rs)."""
    return DeltaReader(table_path(config, name), version=table_version).to_pandas()


# Locations: the lake root is a local path or a URI (`file:///data/lake`, `s3a://bucket/lake`).
# Files other than tables (models, the GX project) go through pyarrow's file systems, which
# understand both; pathlib would turn `s3a://bucket/lake` into a relative folder `s3a:/bucket/lake`.

# Hadoop names S3 `s3a`; pyarrow knows the same store as `s3`.
_PYARROW_SCHEMES = {"s3a": "s3", "s3n": "s3"}


def local_path(location: str) -> str | None:
    """The local file system path of `location` (a path or a `file:` URI), or None for a remote URI."""
    if location.startswith("file:"):
        return unquote(urlparse(location).path)
    if "://" in location:
        return None
    return location


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system that holds `location`, and the path of `location` within it.

    Raises:
        ConfigError: the URI's scheme names no file system pyarrow can reach.
    """
    local = local_path(location)
    if local is not None:
        return pafs.LocalFileSystem(), local
    scheme, rest = location.split("://", 1)
    try:
        return pafs.FileSystem.from_uri(f"{_PYARROW_SCHEMES.get(scheme, scheme)}://{rest}")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ConfigError(f"lake.root: cannot open {location} ({error})") from None


# Models live beside the tables: <lake root>/<use case>/models/<name>/<version>/{model.txt, metadata.json}.


def _models_dir(config: Config, name: str) -> str:
    return f"{use_case_root(config)}/models/{name}"


def model_path(config: Config, name: str, model_version: int) -> str:
    """The directory of one registered model version (a path or a URI, like the lake root)."""
    return f"{_models_dir(config, name)}/{model_version}"


def model_versions(config: Config, name: str) -> list[int]:
    """The version directories present for model `name`, in order."""
    fs, folder = filesystem(_models_dir(config, name))
    children = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return sorted(int(c.base_name) for c in children if c.type == pafs.FileType.Directory and c.base_name.isdigit())


def write_model(config: Config, name: str, model_version: int, files: dict[str, str]) -> str:
    """Write a model version's files, all or nothing; returns its directory.

    On a local file system the files are written to a hidden sibling and renamed into place in
    one step, so a reader never sees a version directory without all of its files, and a killed
    job leaves none. An object store has no atomic rename: the files are written in the order
    given, the last one (the metadata, which holds the model's checksum) marking the version
    complete; a reader of a version killed halfway finds the metadata missing and refuses it.

    Raises:
        FileExistsError: the version's directory exists already.
    """
    final = model_path(config, name, model_version)
    fs, target = filesystem(final)
    if fs.get_file_info(target).type != pafs.FileType.NotFound:
        raise FileExistsError(f"model {name} version {model_version} already exists at {final}")
    if not isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(target)
        for filename, content in files.items():
            with fs.open_output_stream(f"{target}/{filename}") as stream:
                stream.write(content.encode())
        return final
    staging = Path(target).parent / f".{model_version}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir(parents=True)
    try:
        for filename, content in files.items():
            with open(staging / filename, "w") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        try:
            os.rename(staging, target)
        except OSError as error:
            # Renaming onto a directory that is not empty fails: another job claimed this version first.
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(f"model {name} version {model_version} already exists at {final}") from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def delete_model(config: Config, name: str, model_version: int) -> None:
    """Remove a version's directory: only for undoing a registration whose commit failed."""
    fs, target = filesystem(model_path(config, name, model_version))
    if fs.get_file_info(target).type != pafs.FileType.NotFound:
        fs.delete_dir(target)


def read_model_file(config: Config, name: str, model_version: int, filename: str) -> str:
    """One file of a registered model; MissingInputError naming the path when it is missing."""
    path = f"{model_path(config, name, model_version)}/{filename}"
    fs, target = filesystem(path)
    try:
        with fs.open_input_stream(target) as stream:
            return stream.read().decode()
    except (FileNotFoundError, NotADirectoryError):
        raise MissingInputError(f"model {name} version {model_version}: {path} is missing") from None
    except (OSError, UnicodeDecodeError, pa.ArrowException) as error:
        raise MissingInputError(f"model {name} version {model_version}: cannot read {path} ({error})") from None


# The monitoring report: one HTML page per use case, `<lake root>/reports/<use case>/index.html`.


def report_path(config: Config) -> str:
    """Where `monitor` writes the use case's report page (a path or a URI, like the lake root)."""
    root = config.lake.root.rstrip("/")
    return f"{local_path(root) or root}/reports/{config.use_case.name}/index.html"


def write_report(config: Config, page: str) -> str:
    """Replace the use case's report page in one step; returns its location.

    Locally the page is written beside the old one and renamed over it, so a browser or a
    killed job never finds half a page; on an object store one PUT replaces it whole.
    """
    location = report_path(config)
    fs, target = filesystem(location)
    fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(target) as stream:
            stream.write(page.encode())
        return location
    partial = f"{target}.{uuid.uuid4().hex[:8]}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return location


# The validation gate's Great Expectations project (suites, stored results, Data Docs) lives
# beside the tables, so a copied lake keeps the evidence of every check that let data into it.


def gx_root(config: Config) -> str:
    """The folder of the use case's file-backed Great Expectations project (a path or a URI, like the
    lake root): `<validation.gx_root>/<use case>`, else `<lake root>/<use case>/_gx`.

    Each use case has its own project there, as its suites are named after tables every use case
    has. GX itself works on a local folder: a project on an object store is worked on in a local
    copy (`pull_folder`, `push_folder`; see `validation.results`).
    """
    if config.validation.gx_root:
        return f"{config.validation.gx_root.rstrip('/')}/{config.use_case.name}"
    # A `file:` lake's project as a plain path: GX and Data Docs links want one.
    root = use_case_root(config)
    return f"{local_path(root) or root}/_gx"


def data_docs_dir(config: Config) -> str:
    """The static HTML site of every stored validation result; open `index.html` in a browser."""
    return f"{gx_root(config)}/data_docs"


def pull_folder(location: str, folder: str) -> dict[str, str]:
    """Make the local `folder` an exact copy of the folder at `location` (a path or a URI; missing: empty).

    Returns:
        The SHA-256 of each file copied, by its path relative to `folder`: what `push_folder`
        compares with to send back only what changed.
    """
    fs, source = filesystem(location)
    shutil.rmtree(folder, ignore_errors=True)
    Path(folder).mkdir(parents=True)
    found = fs.get_file_info(pafs.FileSelector(source, recursive=True, allow_not_found=True))

    def copy(info: pafs.FileInfo) -> None:
        target = Path(folder) / info.path[len(source):].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as stream:
            target.write_bytes(stream.read())

    _each_at_once(copy, [info for info in found if info.type == pafs.FileType.File])
    return _digests(folder)


def push_folder(folder: str, location: str, pulled: dict[str, str]) -> None:
    """Write back to `location` what changed in the local `folder` since `pull_folder` returned `pulled`.

    Files new or changed since are written, files deleted since are deleted; files that others
    added at `location` in between are left alone, so processes pushing at the same time lose
    none of each other's new files (a file both changed holds the last one written).
    """
    fs, target = filesystem(location)
    now = _digests(folder)

    def write(relative: str) -> None:
        if isinstance(fs, pafs.LocalFileSystem):  # an object store has keys, not folders to create
            fs.create_dir(f"{target}/{relative}".rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(f"{target}/{relative}") as stream:
            stream.write((Path(folder) / relative).read_bytes())

    def delete(relative: str) -> None:
        try:
            fs.delete_file(f"{target}/{relative}")
        except FileNotFoundError:
            pass  # deleted by another process's push already

    _each_at_once(write, [relative for relative, digest in sorted(now.items()) if pulled.get(relative) != digest])
    _each_at_once(delete, sorted(pulled.keys() - now.keys()))


# Files moved to or from an object store at once: each is a request whose time is mostly waiting.
_TRANSFERS_AT_ONCE = 16
Item = TypeVar("Item")


def _each_at_once(action: Callable[[Item], None], items: list[Item]) -> None:
    """`action` on every item, up to _TRANSFERS_AT_ONCE at a time; the first error raised, after all finished."""
    with ThreadPoolExecutor(_TRANSFERS_AT_ONCE) as pool:
        for _ in pool.map(action, items):
            pass


def _digests(folder: str) -> dict[str, str]:
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


# The Delta log read without Spark (delta-rs and the log's own JSON commits), for `status`,
# which answers a scheduler's sensor in about a second and so never starts a JVM.


@dataclass(frozen=True)
class Commit:
    """One commit of a table's Delta log, as far as its data is concerned.

    `changed`: the values of the partition column whose data the commit added or removed, as the
    log writes them (`2026-03-31`), or None when it changed data outside any partition (an
    unpartitioned table). Files rewritten without changing data (`OPTIMIZE`) and commits that
    touch no data file (`VACUUM`, properties) change nothing.
    """

    version: int
    operation: str | None
    metadata: dict[str, Any] | None
    changed: frozenset[str] | None


def current_version(config: Config, name: str) -> int | None:
    """The latest version of table `name` read with delta-rs, or None when there is no Delta table."""
    reader = _existing_reader(config, name)
    # Not Spark's `history(1)`: that runs a Spark job (1.9 s in a new JVM, 0.2-0.4 s after).
    return None if reader is None else int(reader.version())


def partition_columns(config: Config, name: str) -> list[str]:
    """The partition columns of table `name` (none for an unpartitioned one); MissingInputError when it does not exist."""
    try:
        return list(DeltaReader(table_path(config, name)).metadata().partition_columns)
    except Exception as error:  # noqa: BLE001 - delta-rs raises its own TableNotFoundError
        raise MissingInputError(f"table {name!r} not found: no Delta table at {table_path(config, name)} ({error})") from None


def commit(config: Config, name: str, table_version: int, partition: str | None) -> Commit | None:
    """Commit `table_version` of `name` from its JSON file in `_delta_log`, or None when the log no longer holds it.

    Delta cleans up log files older than its log retention (30 days by default) once a checkpoint
    covers them: what they changed can then no longer be told.
    """
    fs, folder = filesystem(table_path(config, name))
    try:
        with fs.open_input_stream(f"{folder}/_delta_log/{table_version:020d}.json") as stream:
            lines = stream.read().decode().splitlines()
    except (FileNotFoundError, OSError):
        return None
    operation, metadata, changed, unpartitioned = None, None, set(), False
    for line in lines:
        if not line.strip():
            continue
        action = json.loads(line)
        if "commitInfo" in action:
            info = action["commitInfo"]
            operation = info.get("operation")
            try:
                metadata = json.loads(info["userMetadata"]) if info.get("userMetadata") else None
            except ValueError:
                metadata = None
        for kind in ("add", "remove"):
            file = action.get(kind)
            if file is None or file.get("dataChange", True) is False:
                continue
            value = (file.get("partitionValues") or {}).get(partition) if partition else None
            if value is None:
                unpartitioned = True
            else:
                changed.add(value)
    return Commit(table_version, operation, metadata, None if unpartitioned else frozenset(changed))


def read_table(config: Config, name: str, columns: list[str] | None = None) -> pa.Table:
    """The current version of table `name` (or of `columns`) as Arrow, read with delta-rs; MissingInputError when missing."""
    try:
        reader = DeltaReader(table_path(config, name))
    except Exception as error:  # noqa: BLE001 - delta-rs raises its own TableNotFoundError
        raise MissingInputError(f"table {name!r} not found: no Delta table at {table_path(config, name)} ({error})") from None
    return pa.table(reader.to_pyarrow_table(columns=columns))


def needs_daily_partition(source: SourceConfig) -> bool:
    """Whether a date without a partition in `source` is a missing input.

    Entities sources have a partition per signup day and sparse events sources one per day with
    events: a day without one is no missing input for them; any other source has one per day.
    """
    return source.kind != "entities" and not source.sparse


# Housekeeping (`maintain`): compaction and removal of unreferenced files, table by table.


@dataclass(frozen=True)
class FileCounts:
    """A table's data files: those its current version refers to, and all those stored in its folder."""

    files: int
    bytes: int
    stored_files: int
    stored_bytes: int


def file_counts(config: Config, name: str) -> FileCounts:
    """The data files of table `name` now: referenced (from its Delta log) and stored (listed)."""
    reader = DeltaReader(table_path(config, name))
    actions = pa.table(reader.get_add_actions(flatten=False))
    fs, folder = filesystem(table_path(config, name))
    stored = [
        info for info in fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        if info.type == pafs.FileType.File
        # Delta's own rule for VACUUM: names starting with `_` or `.` (the log, checksums) are not data.
        and not any(part.startswith(("_", ".")) for part in info.path[len(folder):].split("/"))
    ]
    return FileCounts(
        files=actions.num_rows,
        bytes=sum(actions.column("size_bytes").to_pylist()),
        stored_files=len(stored),
        stored_bytes=sum(info.size or 0 for info in stored),
    )


def optimize(spark: SparkSession, config: Config, name: str) -> int:
    """Compact the small files of table `name` (Delta `OPTIMIZE`, bin-packing within each partition).

    The rows stay the same; the compacted files replace the small ones in one commit marked as
    changing no data, which readers of older versions and the `status` job tell apart. Returns
    the table's version after it (the same version when there was nothing to compact).
    """
    _delta(spark, config, name).optimize().executeCompaction()
    return current_version(config, name) or 0


def vacuum(spark: SparkSession, config: Config, name: str, retention_hours: int) -> None:
    """Delete the files of table `name` that no version of the last `retention_hours` refers to (Delta `VACUUM`).

    Raises:
        ConfigError: the retention is below the table's `delta.deletedFileRetentionDuration` (7 days
            by default), which Delta refuses.
    """
    # Delta 4 ignores a retention other than 0 unless told otherwise, and applies the table's
    # property instead: a longer retention asked for would silently delete younger files.
    setting = "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled"
    previous = spark.conf.get(setting, None)
    spark.conf.set(setting, "false")
    try:
        _delta(spark, config, name).vacuum(float(retention_hours))
    except IllegalArgumentException as error:
        raise ConfigError(f"table {name!r}: VACUUM refused a retention of {retention_hours} hours "
                          f"({str(error).strip().splitlines()[0]})") from None
    finally:
        if previous is None:
            spark.conf.unset(setting)
        else:
            spark.conf.set(setting, previous)


def own_tables(config: Config) -> list[str]:
    """The use case's own tables (not a source shared through a `path`), in a stable order."""
    shared = {source.table for source in config.use_case.sources.values() if source.path}
    names = [source.table for source in config.use_case.sources.values()] + list(config.tables.model_dump().values())
    return sorted({name for name in names if name not in shared})
