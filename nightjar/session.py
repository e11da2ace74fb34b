"""The one SparkSession factory, shared by every job, the launcher and the tests.

The Delta jars are loaded from the local `.jars` folder that `make` fills with Maven, so no
session downloads anything at run time and a cluster without internet works too.

A lake on an S3-compatible object store (`s3a://bucket/lake`) is reached the same way by Spark,
pyarrow and delta-rs: the standard AWS environment variables. The endpoint
(`AWS_ENDPOINT_URL`, or `AWS_ENDPOINT_URL_S3`) and region (`AWS_REGION`/`AWS_DEFAULT_REGION`)
are read by pyarrow and delta-rs themselves and mapped here into Hadoop's `fs.s3a.*` settings;
credentials are never copied into any setting: s3a's default provider chain reads
`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or an instance profile) itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Mapping

from pyspark.sql import SparkSession

from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT, conf_dir
from nightjar.errors import ConfigError


def jars_dir() -> Path:
    """The folder of Delta Lake jars (`NIGHTJAR_JARS_DIR` overrides the project's `.jars`)."""
    return Path(os.environ.get("NIGHTJAR_JARS_DIR", PROJECT_ROOT / ".jars")).resolve()


def class_archive_path() -> Path:
    """Where `make setup` puts the driver's class data sharing archive (`nightjar.class_archive`)."""
    return jars_dir() / "spark-classes.jsa"


def delta_jars() -> list[str]:
    """Absolute paths of the Delta jars, or a ConfigError telling how to fetch them."""
    jars = sorted(str(path) for path in jars_dir().glob("*.jar"))
    if not any("delta-spark" in Path(jar).name for jar in jars):
        raise ConfigError(f"no Delta Lake jars in {jars_dir()}: run `make setup` to fetch them")
    return jars


def s3a_jars() -> list[str]:
    """Absolute paths of the s3a file system's jars (`.jars/s3a`), or a ConfigError telling how to fetch them."""
    jars = sorted(str(path) for path in (jars_dir() / "s3a").glob("*.jar"))
    if not any(Path(jar).name.startswith("hadoop-aws-") for jar in jars):
        raise ConfigError(f"no hadoop-aws jar in {jars_dir() / 's3a'}: run `make setup` to fetch it")
    return jars


def uses_s3a(config: Config) -> bool:
    """Whether a location of the run (the lake, a shared source path, the GX project) is on `s3a://`."""
    locations = [config.lake.root, config.validation.gx_root or ""]
    locations += [source.path or "" for source in config.use_case.sources.values()]
    return any(location.startswith("s3a://") for location in locations)


def s3a_conf(environ: Mapping[str, str]) -> dict[str, str]:
    """Hadoop's s3a settings for the endpoint and region named by the standard AWS variables in `environ`.

    pyarrow and delta-rs read the same variables, so every reader and writer of the lake reaches
    the same store. An endpoint of one's own (MinIO, Ceph, moto) is addressed path-style
    (`http://host:port/bucket/key`), as pyarrow and delta-rs do by default: virtual-host style
    needs a DNS name per bucket. Credentials stay out: s3a reads them from the environment.
    """
    conf = {}
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https:")).lower()
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    return conf


def warehouse_dir() -> str:
    """Where an in-memory catalog puts its (empty) database folders: a temporary folder of the user's."""
    return str(Path(tempfile.gettempdir()) / f"nightjar-spark-warehouse-{os.getuid()}")


def spark_conf(config: Config) -> dict[str, str]:
    """Every Spark setting of a run, for the session builder and for `spark-submit --conf` alike."""
    conf = {
        "spark.app.name": config.spark.app_name,
        "spark.master": config.spark.master,
        "spark.driver.memory": config.spark.driver_memory,
        # The s3a jars (the AWS SDK bundle alone is ~690 MB) only for runs that touch s3a://.
        "spark.jars": ",".join(delta_jars() + (s3a_jars() if uses_s3a(config) else [])),
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
    archive = class_archive_path()
    if config.spark.class_data_sharing and archive.is_file():
        # The driver maps the classes it loads at start from the archive (nightjar.class_archive).
        # The -Xlog options keep an archive from another JDK or other jars quiet: it is ignored.
        java_options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    java_options += config.spark.java_options
    if java_options:
        conf["spark.driver.extraJavaOptions"] = " ".join(java_options)
    if config.spark.java_options:
        conf["spark.executor.extraJavaOptions"] = " ".join(config.spark.java_options)
    if uses_s3a(config):
        conf.update(s3a_conf(os.environ))
    conf.update(config.spark.settings)  # an environment's own fs.s3a.* settings win
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
