"""Housekeeping of a use case's tables: compact small files, delete files no longer referenced.

    ./spark-submit.sh maintain [--use-case NAME] [--retention-hours H]   # default housekeeping.retention_hours (168)

For each of the use case's own tables that exists (its sources, unless shared through a `path`,
and every table Nightjar writes): Delta `OPTIMIZE` bin-packs the small files of each partition
into larger ones without changing a row, then `VACUUM` deletes the files that no version of the
last H hours refers to (those replaced by compaction or by rewritten dates once they are older
than H, and those left behind by killed writes). H below Delta's safety limit of 168 hours
exits 2: a job still reading an older version could lose its files. Prints, per table, the
referenced files and bytes before and after, and the files stored in its folder. Idempotent: a
second run finds nothing to compact. Records a `runs` row.
"""

from __future__ import annotations

import argparse

from nightjar import cli, tables
from nightjar.config import MIN_RETENTION_HOURS
from nightjar.errors import UsageError

JOB = "maintain"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention-hours", type=_retention, default=None, metavar="H",
        help=f"delete unreferenced files older than H hours (default housekeeping.retention_hours; at least {MIN_RETENTION_HOURS})",
    )


def _retention(text: str) -> int:
    # Checked while parsing, so a refused retention exits 2 before any session starts.
    try:
        hours = int(text)
    except ValueError:
        raise UsageError(f"--retention-hours {text!r}: expected a whole number of hours") from None
    if hours < MIN_RETENTION_HOURS:
        raise UsageError(
            f"--retention-hours {hours}: below Delta's safety limit of {MIN_RETENTION_HOURS} hours (7 days); "
            "a job still reading an older version of a table could lose its files"
        )
    return hours


def run(context: cli.JobContext) -> None:
    config, spark, record = context.config, context.spark, context.record
    hours = context.args.retention_hours or config.housekeeping.retention_hours
    done = {}
    for name in tables.own_tables(config):
        if tables.current_version(config, name) is None:
            continue
        before = tables.file_counts(config, name)
        with context.timed(f"optimize:{name}"):
            after_version = tables.optimize(spark, config, name)
        with context.timed(f"vacuum:{name}"):
            tables.vacuum(spark, config, name, hours)
        after = tables.file_counts(config, name)
        record.output_versions[name] = after_version
        done[name] = {"files_before": before.files, "files_after": after.files, "bytes_before": before.bytes,
                      "bytes_after": after.bytes, "stored_files_before": before.stored_files,
                      "stored_files_after": after.stored_files}
        context.progress(
            f"{name}: {before.files:,} files ({_size(before.bytes)}) -> {after.files:,} files ({_size(after.bytes)}); "
            f"stored in its folder: {before.stored_files:,} files ({_size(before.stored_bytes)}) -> "
            f"{after.stored_files:,} ({_size(after.stored_bytes)})"
        )
    record.checks.append({"housekeeping": {"retention_hours": hours, "tables": done}})
    total_before = sum(t["files_before"] for t in done.values())
    total_after = sum(t["files_after"] for t in done.values())
    context.progress(
        f"maintained {len(done)} tables under {tables.use_case_root(config)}: {total_before:,} -> {total_after:,} "
        f"referenced files; unreferenced files older than {hours} hours deleted"
    )


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


if __name__ == "__main__":
    cli.main(JOB, __doc__ or JOB, add_arguments, run, policy="none")
