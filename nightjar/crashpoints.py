"""Named commit points where a test kills a job, or fails one Spark task, on purpose.

Production code marks each point where it commits something; nothing happens unless an
environment variable names the point, so a run without them pays one dictionary lookup:

- `NIGHTJAR_KILL_AT=<point>`: SIGKILL the whole job when it reaches `<point>`, as a machine
  that dies, the OOM killer or a scheduler's `kill -9` would: no `finally`, no shutdown hook,
  nothing written afterwards. Only under the launcher (`./spark-submit.sh`), whose process is
  the driver's JVM (see `nightjar.submit`): the JVM is killed first, then the Python driver.
  With `NIGHTJAR_CRASH_DIR`, a marker file `killed-<point>` there says it happened.
- `NIGHTJAR_FAIL_TASK_ONCE=<point>[,<point>...]`: the first Spark task that reaches `<point>`
  raises, once per point and per `NIGHTJAR_CRASH_DIR` (a marker file there claims the failure,
  so the retried attempt and every other task run normally). Executors inherit the variables
  in local mode; on a cluster, pass them with `spark.executorEnv.*`.
- `NIGHTJAR_KILL_WORKER_AT=<task key prefix>`: in a Dask worker started with
  `--preload nightjar.crashpoints`, SIGKILL the worker as a task whose key starts with the
  prefix begins executing there: a worker machine that dies mid-run. Once per
  `NIGHTJAR_CRASH_DIR` (a marker file claims it), so exactly one worker of the cluster dies,
  and a worker its nanny restarts is not killed again. Prefixes: `nightjar-trial-` (a trial
  of the search), `_train_part` (a worker's share of the distributed fit).

Points:

- `writing:<table>`: a write to `<table>` is under way, data files are in the table's folder
  and the commit has not happened (see `around_write`); for a table written with delta-rs,
  which writes and commits in one call (`nightjar.tables.replace_rows`), just before that call;
- `committed:<table>`: the write to `<table>` has just committed;
- `model-written`: a model version's files are in place, its `registry` row is not written;
- task points (`NIGHTJAR_FAIL_TASK_ONCE` only): `writing:<table>` (a task of that write),
  `score.predict` (a scoring task), `features.events` (a task of event-grain features).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql import DataFrame

KILL_AT = "NIGHTJAR_KILL_AT"
KILL_WORKER_AT = "NIGHTJAR_KILL_WORKER_AT"
FAIL_TASK_ONCE = "NIGHTJAR_FAIL_TASK_ONCE"
CRASH_DIR = "NIGHTJAR_CRASH_DIR"
# Set by the launcher to its own pid, which `exec` hands to spark-submit's JVM: the process to kill.
LAUNCHER_PID = "NIGHTJAR_LAUNCHER_PID"

# A stalled write task waits at most this long for the kill (a bound, should the watcher miss).
_STALL_S = 120.0
_log = logging.getLogger(__name__)


class InjectedTaskFailure(RuntimeError):
    """The failure `NIGHTJAR_FAIL_TASK_ONCE` asked for; Spark retries the task."""


def armed(point: str) -> bool:
    """Whether `NIGHTJAR_KILL_AT` names `point`."""
    return os.environ.get(KILL_AT) == point


def reached(point: str) -> None:
    """Kill the job here when `NIGHTJAR_KILL_AT` names `point`; otherwise do nothing."""
    if armed(point):
        kill_job(point)


def kill_job(point: str) -> None:
    """SIGKILL the job: the launcher's process (the JVM) and then this one.

    Raises:
        RuntimeError: not under the launcher. In a test's own process a kill would take the
            test runner with it, so in-process runs refuse instead.
    """
    launcher = os.environ.get(LAUNCHER_PID)
    if not launcher:
        raise RuntimeError(f"{KILL_AT}={point}: kills only a job started by ./spark-submit.sh")
    _log.warning("%s=%s: killing the job (pid %s and %d)", KILL_AT, point, launcher, os.getpid())
    folder = os.environ.get(CRASH_DIR)
    if folder:
        # The log line may not get out: the driver's output passes through the JVM killed here.
        (Path(folder) / f"killed-{point.replace(':', '-')}").write_text(f"{launcher} {os.getpid()}\n")
    if int(launcher) != os.getpid():
        os.kill(int(launcher), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def fail_task_once(point: str) -> None:
    """Inside a Spark task: raise InjectedTaskFailure if `NIGHTJAR_FAIL_TASK_ONCE` names `point`
    and no task has failed there yet (a marker file in `NIGHTJAR_CRASH_DIR` says one has)."""
    named = os.environ.get(FAIL_TASK_ONCE)
    if not named or point not in named.split(","):
        return
    folder = os.environ.get(CRASH_DIR)
    marker_name = f"failed-{point.replace(':', '-')}"
    if not _claim(folder, marker_name, FAIL_TASK_ONCE):
        return
    marker = Path(folder) / marker_name  # type: ignore[arg-type]
    task = TaskContext.get()
    where = f"partition {task.partitionId()} attempt {task.attemptNumber()}" if task else "the driver"
    marker.write_text(where + "\n")
    raise InjectedTaskFailure(f"{FAIL_TASK_ONCE}={point}: injected failure in {where}")


def around_write(df: DataFrame, table: str, location: str | None) -> DataFrame:
    """`df`, or when a test arms `writing:<table>`, `df` passed through a step that lets it be
    killed mid-write or fail one task of the write.

    A Delta write cannot be interrupted from Python between its data files and its commit:
    the commit is one JVM call that returns when it is done. So for `NIGHTJAR_KILL_AT`, the
    rows are split over two write tasks: the first writes its data file (in the table's folder:
    Delta writes data files in place and commits them by naming them in its log), the second
    stalls, which holds the commit back. A thread of the driver watches the folder and kills
    the job as soon as a new data file appears: a real kill, at a point where data files exist
    and no commit does. (Stalling a task partway through its rows would not do: a write
    partitioned by a column sorts each task's rows before writing any.)
    `location` is the table's local folder (the watcher needs one); None elsewhere.
    """
    point = f"writing:{table}"
    kill = armed(point)
    fail = point in os.environ.get(FAIL_TASK_ONCE, "").split(",")
    if not kill and not fail:
        return df
    if kill:
        if location is None:
            raise RuntimeError(f"{KILL_AT}={point}: needs a table on the local file system")
        _watch_and_kill(Path(location), point)

    def passed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fail_task_once(point)
        if kill and TaskContext.get().partitionId() != 0:
            time.sleep(_STALL_S)
        yield from batches

    if kill:
        # Round robin: both tasks get rows, and the first one's file is written whole.
        df = df.repartition(2)
    return df.mapInArrow(passed, df.schema)


def _claim(folder: str | None, name: str, variable: str) -> bool:
    """Whether this process is the first to claim the marker `name` in `folder`."""
    if not folder:
        raise RuntimeError(f"{variable} needs {CRASH_DIR}, where the injection is claimed once")
    try:
        # O_EXCL: of the processes reaching the point at once, exactly one claims it.
        os.close(os.open(Path(folder) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class _KillWorkerAt:
    """A Dask worker plugin that SIGKILLs its worker when a task with the key prefix starts.

    Dask calls a worker plugin's hooks by name, so this needs no import of `distributed`
    (this module is imported by every Spark task too).
    """

    def __init__(self, prefix: str, folder: str | None) -> None:
        self.prefix, self.folder = prefix, folder

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        if _claim(self.folder, f"killed-worker-{self.prefix}", KILL_WORKER_AT):
            _log.warning("%s=%s: killing this Dask worker (pid %d) at task %s",
                         KILL_WORKER_AT, self.prefix, os.getpid(), key)
            os.kill(os.getpid(), signal.SIGKILL)


def dask_setup(worker: object) -> None:
    """Dask's preload hook (`dask worker --preload nightjar.crashpoints`): arm the worker
    when `NIGHTJAR_KILL_WORKER_AT` names a task key prefix."""
    prefix = os.environ.get(KILL_WORKER_AT)
    if prefix:
        # Straight into the worker's table of plugins: `Worker.plugin_add` is a coroutine and
        # asks for a `WorkerPlugin` subclass; the state machine only looks the hooks up.
        worker.plugins["nightjar-kill-worker-at"] = _KillWorkerAt(prefix, os.environ.get(CRASH_DIR))  # type: ignore[attr-defined]


def _watch_and_kill(folder: Path, point: str) -> None:
    before = set(_data_files(folder))

    def watch() -> None:
        deadline = time.monotonic() + _STALL_S
        while time.monotonic() < deadline:
            if set(_data_files(folder)) - before:
                kill_job(point)
            time.sleep(0.02)
        kill_job(point)  # no file appeared: still before the commit, which the stalled tasks hold back

    threading.Thread(target=watch, name=f"crashpoint {point}", daemon=True).start()


def _data_files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return [str(path) for path in folder.rglob("*") if path.is_file() and "_delta_log" not in path.parts]
