"""The class data sharing archive of a Spark driver, made once at set-up (`make setup`).

Every job starts a driver JVM that finds, verifies and parses the same tens of thousands of
classes from pyspark's jars before it does any work. JDK class data sharing maps them from an
archive instead: measured on the test lake, a `sql` job took 5.2–5.8 s of CPU with the archive
and 7.5–8.6 s without (`/usr/bin/time ./spark-submit.sh sql --env test ... "SELECT 1"`, twice
each way). `nightjar.session` passes the archive to every driver when it exists; an archive
made by another JDK or for other jars is ignored, silently, as a missing one is.

`python -m nightjar.class_archive` starts a local session whose JVM records the classes it
loads (`-XX:ArchiveClassesAtExit`), does a little of what jobs do (a partitioned Delta write
and read, a group-by, an Arrow pandas function), and stops: the JVM writes the archive as it
exits. Classes of the `--jars` (Delta) come from Spark's own class loader and are not archived.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from nightjar.config_loader import load_config
from nightjar.session import class_archive_path, get_spark


def exercise(lake: Path) -> None:
    """Start a session recording its classes into `class_archive_path()`, do some work, stop."""
    archive = class_archive_path()
    partial = archive.with_name(f"{archive.name}.partial")
    config = load_config("local", [
        f"lake.root={lake}", "spark.class_data_sharing=false",
        f"spark.java_options=[\"-XX:ArchiveClassesAtExit={partial}\", \"-Xlog:cds=off\", \"-Xlog:cds+dynamic=off\"]",
    ])
    spark = get_spark(config)
    frame = spark.range(1000).selectExpr("id", "id % 7 AS key", "CAST(id AS DOUBLE) / 3 AS value",
                                         "DATE'2026-01-01' + CAST(id % 3 AS INT) AS ds")
    path = str(lake / "table")
    frame.write.format("delta").partitionBy("ds").save(path)
    read = spark.read.format("delta").load(path).where("ds = DATE'2026-01-02'")
    read.groupBy("key").agg({"value": "mean"}).collect()
    read.mapInPandas(lambda batches: (batch.assign(value=batch["value"] * 2) for batch in batches),
                     read.schema).count()
    jvm = spark.sparkContext._jvm
    spark.stop()
    # PySpark kills its JVM at exit; only a JVM that exits by itself writes the archive.
    try:
        jvm.java.lang.System.exit(0)
    except Exception:  # noqa: BLE001 - the gateway's connection dies with the JVM, as it should
        pass


def main() -> int:
    """Make the archive in a child process, whose JVM exits (and writes it) with the child."""
    archive = class_archive_path()
    partial = archive.with_name(f"{archive.name}.partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as lake:
        subprocess.run([sys.executable, "-c", f"from nightjar.class_archive import exercise; "
                        f"from pathlib import Path; exercise(Path({lake!r}))"], check=True)
    if not partial.is_file():
        print(f"nightjar: the JVM wrote no class archive at {partial}", file=sys.stderr)
        return 1
    partial.replace(archive)
    print(f"wrote {archive} ({archive.stat().st_size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
