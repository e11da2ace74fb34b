"""Shared fixtures: one SparkSession for the whole run, per-test lakes, real Spark and Dask clusters."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

# pytest-xdist's workers run under execnet, whose __main__ has neither a __spec__ nor a __file__:
# pyspark.sql.connect (which Great Expectations imports) takes that for its own doctest run and
# exits the worker. A spec named "__main__" satisfies it and is one that multiprocessing's spawn
# (Dask's nannies) knows not to re-import in its children; a __file__ would be re-run there.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)

import pytest  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from jobs import features as features_job  # noqa: E402
from jobs import generate as generate_job  # noqa: E402
from jobs import score as score_job  # noqa: E402
from jobs import train as train_job  # noqa: E402
from nightjar import cli  # noqa: E402
from nightjar.config import Config  # noqa: E402
from nightjar.config_loader import PROJECT_ROOT, load_config  # noqa: E402
from nightjar.session import get_spark  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
PYSPARK_HOME = Path(__import__("pyspark").__file__).parent
# The environment of a process that launches jobs of other environments than `test` (the
# benchmarks' smoke runs): their driver JVMs, which live seconds on tiny data, get the JVM
# options conf/test.yaml gives `--env test` jobs (spark-submit passes SPARK_SUBMIT_OPTS to the
# driver's JVM).
SHORT_LIVED_JVMS = {**os.environ, "SPARK_SUBMIT_OPTS": " ".join(load_config("test").spark.java_options)}


@pytest.fixture(scope="session")
def make_config() -> Callable[..., Config]:
    """Build a `test` configuration whose lake is `lake`, with extra `--set` overrides."""

    def build(lake: Path, *overrides: str) -> Config:
        return load_config(
            "test", [f"lake.root={lake}", *overrides]
        )

    return build


def conf_copy(folder: Path, env_text: str, **use_case_files: str) -> Path:
    """A configuration folder in `folder`: the project's base.yaml and use cases, an environment
    `mine` holding `env_text`, and each extra use case file given by name."""
    directory = folder / "conf"
    directory.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "conf" / "base.yaml", directory / "base.yaml")
    shutil.copytree(PROJECT_ROOT / "conf" / "use_cases", directory / "use_cases")
    (directory / "mine.yaml").write_text(env_text)
    for name, text in use_case_files.items():
        (directory / "use_cases" / f"{name}.yaml").write_text(text)
    return directory


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A fresh, empty lake root for one test."""
    return tmp_path / "lake"


@pytest.fixture
def config(make_config: Callable[..., Config], lake: Path) -> Config:
    """The test configuration pointing at this test's lake."""
    return make_config(lake)


@pytest.fixture(scope="session")
def spark(make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """The one SparkSession of the test run, built by the same factory the jobs use.

    With the JIT compilers the JVM has by default: conf/test.yaml keeps launched jobs to the C1
    compiler, which saves CPU in a JVM of seconds but cost this JVM of a whole run about 20%.
    The default heap (4g), not the launched jobs' 2g: this JVM lives through every file its test
    process runs, and at 2g a fresh-clone run once ran out of heap in the hot-card test after
    half an hour of other files (`java.lang.OutOfMemoryError: Java heap space` in a broadcast).
    """
    session = get_spark(make_config(tmp_path_factory.mktemp("session-lake"), "spark.java_options=[]",
                                    "spark.driver_memory=4g"))
    yield session
    session.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds, or fail the test naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class SparkStandalone:
    """A running Spark standalone cluster: where to submit, and where its master reports."""

    master_url: str  # spark://127.0.0.1:PORT
    ui_url: str  # the master's web UI; GET {ui_url}/json/ lists workers and applications

    def state(self) -> dict:
        """The master's JSON report: `workers` (each with its `webuiaddress`), `activeapps`, `completedapps`."""
        return get_json(f"{self.ui_url}/json/")


@pytest.fixture(scope="session")
def spark_standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkStandalone]:
    """A real Spark standalone cluster on 127.0.0.1: one master and two 1-core workers.

    Two workers, so that a job's tasks, shuffles and broadcasts cross executor processes as on a
    real cluster; 1 core and 1.5 GiB each fit beside a second xdist process on 2 cores and 24 GiB.
    Yields once both workers have registered.
    """
    work = tmp_path_factory.mktemp("spark-standalone")
    port, ui_port = free_port(), free_port()
    environment = dict(
        os.environ,
        SPARK_HOME=str(PYSPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(work / "logs"),
        # The master and workers only register and launch executors here: like launched test
        # jobs (conf/test.yaml), they start faster on the C1 compiler alone (ready in 3.4 s and
        # 5.3 s of CPU instead of 5.4 s and 9.9 s). Executors take the job's own options.
        SPARK_DAEMON_JAVA_OPTS=" ".join(load_config("test").spark.java_options),
    )
    spark_class = str(PYSPARK_HOME / "bin" / "spark-class")
    cluster = SparkStandalone(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
    processes = [
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            env=environment, stdout=open(work / "master.log", "w"), stderr=subprocess.STDOUT,
        )
    ]
    try:
        wait_until(lambda: cluster.state() is not None, 90, "the Spark master")
        for index in range(2):
            processes.append(
                subprocess.Popen(
                    [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                     "--cores", "1", "--memory", "1536m", "--webui-port", str(free_port()),
                     "--work-dir", str(work / f"worker-{index}"), cluster.master_url],
                    env=environment, stdout=open(work / f"worker-{index}.log", "w"), stderr=subprocess.STDOUT,
                )
            )
        wait_until(
            lambda: sum(w["state"] == "ALIVE" for w in cluster.state()["workers"]) == 2,
            90, "two Spark workers to register",
        )
        yield cluster
    finally:
        _stop(processes)


def get_json(url: str) -> dict:
    """The JSON document at `url` (a web UI's report), fetched with a short timeout."""
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@contextmanager
def dask_cluster(work: Path, *worker_arguments: str, **environment: str) -> Iterator[str]:
    """Real `dask scheduler` and two `dask worker` processes on 127.0.0.1, each worker with its
    nanny; yields the scheduler's address. Extra `dask worker` arguments and environment
    variables (say a `--preload`) go to the workers."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    dask_cli = shutil.which("dask", path=str(bin_dir)) or str(bin_dir / "dask")
    # The workers import the code the tests run (models.search's trials are pickled by reference,
    # and `--preload nightjar.crashpoints`), not whatever copy of the project the virtualenv's
    # editable install points at.
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    base = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=python_path)
    processes = [
        subprocess.Popen(
            [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0",
             "--no-show"],
            env=base, stdout=open(work / "scheduler.log", "w"), stderr=subprocess.STDOUT,
        )
    ]
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, 60,
                   "the Dask scheduler")
        for index in range(2):
            processes.append(
                subprocess.Popen(
                    [dask_cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                     "--memory-limit", "2GiB", "--name", f"worker-{index}", "--no-dashboard",
                     "--local-directory", str(work / f"worker-{index}"), *worker_arguments],
                    env=dict(base, **environment), stdout=open(work / f"worker-{index}.log", "w"),
                    stderr=subprocess.STDOUT,
                )
            )
        wait_until(lambda: all("Registered to:" in (work / f"worker-{index}.log").read_text() for index in range(2)),
                   90, "two Dask workers to register")
        yield address
    finally:
        _stop(processes)


@pytest.fixture(scope="session")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test session's Dask cluster (`dask_cluster`); yields the scheduler's address."""
    with dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


def run_launcher(*arguments: str, timeout: float = 600, **environment: str) -> subprocess.CompletedProcess:
    """Run `./spark-submit.sh` as a scheduler would, capturing its output."""
    return subprocess.run(
        [str(PROJECT_ROOT / "spark-submit.sh"), *arguments],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **environment),
    )


def run_killed_at(point: str, *arguments: str, timeout: float = 600, **environment: str) -> subprocess.CompletedProcess:
    """Run `./spark-submit.sh` with `NIGHTJAR_KILL_AT=point` and check that it died there, by SIGKILL.

    The job kills itself at the named commit point (`nightjar.crashpoints`): a real process,
    a real SIGKILL (nothing runs after it, not even `finally`), at a deterministic point. The
    launcher's process is the driver's JVM, so it reports -9, as a scheduler would see it.
    """
    with tempfile.TemporaryDirectory() as markers:
        done = run_launcher(*arguments, timeout=timeout, NIGHTJAR_KILL_AT=point, NIGHTJAR_CRASH_DIR=markers,
                            **environment)
        assert done.returncode == -signal.SIGKILL, (
            f"expected a SIGKILL at {point}, got exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
        # Killed by the crash point, not by anything else.
        assert (Path(markers) / f"killed-{point.replace(':', '-')}").exists()
    return done


def run_in_process(job_module, lake: Path, *argv: str) -> int:  # noqa: ANN001
    """Run a job module the way its `__main__` would, in this process and its SparkSession."""
    return cli.run_job(
        job_module.JOB, job_module.__doc__ or "", job_module.add_arguments, job_module.run, "optional",
        ["--env", "test", "--set", f"lake.root={lake}", *argv],
    )


# Lakes built once per test session by the real jobs: generated sources, features, a trained model.
# The test data (conf/test.yaml) end on 2026-03-31; with a 30-day horizon, the feature dates
# of `train --date 2026-03-31` are 2026-02-16..2026-03-01, computed here.
TRAIN_DATE = "2026-03-31"
FEATURES_START, FEATURES_END = "2026-02-16", "2026-03-01"


@pytest.fixture(scope="session")
def prepared_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated sources and the features of FEATURES_START..FEATURES_END. Copy it before writing."""
    lake = tmp_path_factory.mktemp("prepared") / "lake"
    assert run_in_process(generate_job, lake) == 0
    assert run_in_process(features_job, lake, "--start", FEATURES_START, "--end", FEATURES_END) == 0
    return lake


@pytest.fixture(scope="session")
def trained_lake(prepared_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared lake with a champion (version 1) trained on it. Copy it before writing."""
    lake = tmp_path_factory.mktemp("trained") / "lake"
    shutil.copytree(prepared_lake, lake)
    assert run_in_process(train_job, lake, "--date", TRAIN_DATE) == 0
    return lake


@pytest.fixture(scope="session")
def scored_lake(trained_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained lake with the scores of FEATURES_END from an uninterrupted run. Copy it before writing."""
    lake = tmp_path_factory.mktemp("scored") / "lake"
    shutil.copytree(trained_lake, lake)
    assert run_in_process(score_job, lake, "--date", FEATURES_END) == 0
    return lake
