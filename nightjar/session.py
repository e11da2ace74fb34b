"""The one SparkSession factory, shared by every job, the launcher and the tests.

The Delta jars are loaded from the local `.jars` folder that `make` fills with Maven, so no
session downloads anything at run time and a cluster without internet works too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT, conf_dir
from nightjar.errors import ConfigError


def jars_dir() -> Path:
    """The folder of Delta Lake jars (`NIGHTJAR_JARS_DIR` overrides the project's `.jars`)."""
    return Path(os.environ.get("NIGHTJAR_JARS_DIR", PROJECT_ROOT / ".jars")).resolve()


def delta_jars() -> list[str]:
    """Absolute paths of the Delta jars, or a ConfigError telling how to fetch them."""
    jars = sorted(str(path) for path in jars_dir().glob("*.jar"))
    if not any("delta-spark" in Path(jar).name for jar in jars):
        raise ConfigError(f"no Delta Lake jars in {jars_dir()}: run `make setup` to fetch them")
    return jars


def warehouse_dir() -> str:
    """Where an in-memory catalog puts its (empty) database folders: a temporary folder of the user's."""
    return str(Path(tempfile.gettempdir()) / f"nightjar-spark-warehouse-{os.getuid()}")


def spark_conf(config: Config) -> dict[str, str]:
    """Every Spark setting of a run, for the session builder and for `spark-submit --conf` alike."""
    conf = {
        "spark.app.name": config.spark.app_name,
        "spark.master": config.spark.master,
        "spark.driver.memory": config.spark.driver_memory,
        "spark.jars": ",".join(delta_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
    }
    java_options = []
    log_settings = conf_dir() / "log4j2.properties"
    if log_settings.is_file():
        java_options.append(f"-Dlog4j.configurationFile=file:{log_settings}")
    if config.spark.executor_memory:
        conf["spark.executor.memory"] = config.spark.executor_memory
    if "spark.hadoop.hive.metastore.uris" in config.spark.settings:
        # A shared metastore service (conf/cluster.example.yaml): what `sql` registers there
        # stays for every tool that uses it, and it serves many clients at once.
        conf["spark.sql.catalogImplementation"] = "hive"
    else:
        # Jobs address tables by path and need no catalog; a session-local one lets any number
        # of them run side by side (an embedded Derby metastore admits one process at a time).
        conf["spark.sql.catalogImplementation"] = "in-memory"
        # The in-memory catalog still makes a folder per database; keep them out of the
        # working directory and out of the lake.
        conf["spark.sql.warehouse.dir"] = warehouse_dir()
    if java_options:
        conf["spark.driver.extraJavaOptions"] = " ".join(java_options)
    conf.update(config.spark.settings)
    return conf


def bind_locally(config: Config) -> None:
    """Keep a local-mode driver on the loopback interface: it serves nothing to other hosts."""
    if config.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def get_spark(config: Config) -> SparkSession:
    """Build (or join) the session for `config`."""
    # Executors start Python workers with the driver's interpreter unless told otherwise; the
    # project's virtualenv is the one that has LightGBM and pandas.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    bind_locally(config)
    builder = SparkSession.builder
    for key, value in spark_conf(config).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
