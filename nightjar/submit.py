"""The launcher behind `./spark-submit.sh JOB [options]`.

It validates the job name and the configuration before any JVM starts (so a typo costs
milliseconds and exits 2), zips the project's packages for `--py-files`, and replaces itself
with pyspark's own `spark-submit`, passing the session settings of `nightjar.session` as
`--conf` so the driver JVM starts with the right memory, jars and catalog. A job whose
module declares `SPARK = False` (`status`) runs in plain Python instead: no JVM at all.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import zipfile
from pathlib import Path

import pyspark

from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT, conf_dir, load_config
from nightjar.errors import NightjarError, UsageError
from nightjar.lineage import code_version
from nightjar.session import bind_locally, jars_dir, spark_conf

PACKAGES = ("nightjar", "features", "models", "validation", "jobs")
USAGE = "usage: spark-submit.sh JOB [--use-case NAME] [--env ENV] [--set KEY=VALUE] [--date D | --start D --end D] [job options]"


def available_jobs() -> list[str]:
    """Job names: the modules in `jobs/`."""
    return sorted(p.stem for p in (PROJECT_ROOT / "jobs").glob("*.py") if not p.stem.startswith("_"))


def build_py_files(destination: Path) -> Path:
    """Zip the project's packages so executors on any cluster import the same code as the driver."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PACKAGES:
            for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
                archive.write(path, path.relative_to(PROJECT_ROOT).as_posix())
    partial.replace(destination)  # another launcher reading the zip never sees half of it
    return destination


def needs_spark(job: str) -> bool:
    """Whether `jobs/JOB.py` runs in a Spark driver: yes unless the module sets `SPARK = False`.

    Read from the module's source rather than by importing it: importing a job imports its
    engine (Spark, LightGBM), seconds that a job without a session is meant to save.
    """
    tree = ast.parse((PROJECT_ROOT / "jobs" / f"{job}.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            and any(isinstance(target, ast.Name) and target.id == "SPARK" for target in node.targets)
        ):
            return node.value.value is not False
    return True


def _check(job: str, job_args: list[str]) -> Config:
    """UsageError for an unknown job, ConfigError for a bad configuration; nothing else is parsed here."""
    if job not in available_jobs():
        raise UsageError(f"unknown job {job!r} (jobs: {', '.join(available_jobs())})")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--use-case", default=None)
    pre.add_argument("--env", default=None)
    pre.add_argument("--set", dest="overrides", action="append", default=[])
    known, _ = pre.parse_known_args(job_args)
    return load_config(known.env, known.overrides, use_case=known.use_case)


def python_command(job: str, job_args: list[str]) -> list[str]:
    """The command line of a job without a Spark session: the driver script in this Python."""
    _check(job, job_args)
    return [sys.executable, str(PROJECT_ROOT / "driver.py"), job, *job_args]


def submit_command(job: str, job_args: list[str]) -> list[str]:
    """The `spark-submit` command line for `job`; raises NightjarError on a bad job or configuration.

    Also binds a local-mode driver to the loopback interface (see `bind_locally`).
    """
    config = _check(job, job_args)
    bind_locally(config)
    py_files = build_py_files(PROJECT_ROOT / "build" / "nightjar.zip")
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    settings = spark_conf(config)
    command = [
        str(spark_submit), "--master", config.spark.master,
        "--jars", settings.pop("spark.jars"), "--py-files", str(py_files),
    ]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return command + [str(PROJECT_ROOT / "driver.py"), job, *job_args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        print(f"jobs: {', '.join(available_jobs())}")
        return 0 if argv else 2
    job, job_args = argv[0], argv[1:]
    try:
        spark = job not in available_jobs() or needs_spark(job)
        command = submit_command(job, job_args) if spark else python_command(job, job_args)
    except NightjarError as error:
        print(f"nightjar {job}: error: {error}", file=sys.stderr)
        return error.exit_code
    environment = dict(os.environ)
    environment.update(
        {
            "PYSPARK_PYTHON": environment.get("PYSPARK_PYTHON", sys.executable),
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "NIGHTJAR_CODE_VERSION": code_version(),
            "NIGHTJAR_CONF_DIR": str(conf_dir()),
            "NIGHTJAR_JARS_DIR": str(jars_dir()),
            # `exec` keeps this pid for spark-submit's JVM, the process a test's kill must take down
            # (nightjar.crashpoints).
            "NIGHTJAR_LAUNCHER_PID": str(os.getpid()),
        }
    )
    os.execve(command[0], command, environment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
