"""Airflow operators that run Nightjar jobs through `./spark-submit.sh` and map its exit codes.

Nightjar's command-line contract (README, "Exit codes") is what a scheduler sees of a job, so
these operators know nothing else of Nightjar: they import nothing from it and run in Airflow's
own virtualenv (Airflow pins its own pandas and numpy). Each task runs

    $NIGHTJAR_HOME/spark-submit.sh JOB --use-case U --date D [--env E] [NIGHTJAR_ARGS ...]

and maps its exit code:

| exit code                          | task                                                        |
|------------------------------------|-------------------------------------------------------------|
| 0                                  | succeeds                                                    |
| 1, 2, 3 (bug, bad configuration,   | fails at once, no retry (`AirflowFailException`): running   |
| blocking data check)               | the same command again gives the same answer                |
| 4, 5 (input missing, transient)    | fails and is retried with exponential backoff               |
| killed by a signal (-N, or 128+N)  | retried: a lost machine, the OOM killer, a preemption       |
| any other code                     | fails at once: not Nightjar's contract (a broken install)   |

Settings, each read when the task runs (environment variable first, then Airflow Variable):

- `NIGHTJAR_HOME` / `nightjar_home`: the project checkout holding `spark-submit.sh` (default: the
  folder above the real location of this file, so a symlinked `dags/` finds its checkout).
- `NIGHTJAR_ENV` / `nightjar_env`: passed as `--env` (the launcher also reads `NIGHTJAR_ENV`).
- `NIGHTJAR_ARGS` / `nightjar_args`: extra arguments, split like a shell would, appended to every
  command, e.g. `--set lake.root=/data/lake`.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

# Nightjar's exit codes (README, "Exit codes").
SUCCESS = 0
FAIL_FAST = frozenset({1, 2, 3})  # a bug, a bad command line or configuration, a blocking data check
RETRY = frozenset({4, 5})  # a required input missing, a transient failure

# The day a nightly run processes: the start of its one-day data interval (see nightjar_dags.py).
# Not `ds`: with Airflow 3's default timetable for a cron string (CronTriggerTimetable), `ds` is the
# day the run is triggered, the day after the data.
INTERVAL_DAY = "{{ data_interval_start | ds }}"

DEFAULT_HOME = Path(__file__).resolve().parent.parent


def setting(name: str) -> str | None:
    """A Nightjar setting for this task: `$NIGHTJAR_<NAME>`, else the Airflow Variable `nightjar_<name>`.

    Read at run time, never while the DAG file is parsed: a Variable read at parse time would
    query the metadata database on every parse of the file.
    """
    value = os.environ.get(f"NIGHTJAR_{name.upper()}")
    if value:
        return value
    return Variable.get(f"nightjar_{name.lower()}", default=None) or None


def launcher_command(job: str, *arguments: str) -> tuple[Path, list[str]]:
    """The project folder and the `spark-submit.sh` command line of one job, with the settings' arguments."""
    home = Path(setting("home") or DEFAULT_HOME)
    command = [str(home / "spark-submit.sh"), job, *arguments]
    environment = setting("env")
    if environment:
        command += ["--env", environment]
    command += shlex.split(setting("args") or "")
    return home, command


def signal_of(returncode: int) -> int | None:
    """The signal that ended the job, if one did.

    Python reports a child killed by signal N as -N; a shell between us and the job (`bash -c`,
    a wrapper script) reports 128 + N instead.
    """
    if returncode < 0:
        return -returncode
    if 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def check_exit(returncode: int, what: str) -> None:
    """Return on success; otherwise raise the exception that makes Airflow retry or fail as the code asks.

    Raises:
        AirflowFailException: for 1, 2, 3 and codes outside the contract (no retry).
        AirflowException: for 4, 5 and death by a signal (retried while retries remain).
    """
    if returncode == SUCCESS:
        return
    killed_by = signal_of(returncode)
    if killed_by is not None:
        name = signal.Signals(killed_by).name if killed_by in signal.valid_signals() else str(killed_by)
        raise AirflowException(f"{what} was killed by {name} (exit {returncode}): retrying")
    if returncode in RETRY:
        kind = "a required input is missing" if returncode == 4 else "a transient failure"
        raise AirflowException(f"{what} exited {returncode} ({kind}): retrying")
    if returncode in FAIL_FAST:
        raise AirflowFailException(f"{what} exited {returncode}: failing without retry (see its last error line)")
    raise AirflowFailException(f"{what} exited {returncode}, outside Nightjar's exit codes: failing without retry")


class _Launched:
    """Runs one launcher command, streaming its output into the task's log, and kills it on request."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def run(self, log: Any, home: Path, command: Sequence[str], stdout_to_log: bool = True) -> tuple[int, str]:
        """Run `command` in `home`; return its exit code and, unless `stdout_to_log`, its stdout."""
        log.info("running %s", shlex.join(command))
        # A session of its own, so that on_kill reaches the JVM and the Python driver it starts,
        # and not Airflow's task runner.
        self.process = subprocess.Popen(
            list(command), cwd=home, text=True, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stdout_to_log else subprocess.PIPE,
        )
        captured = ""
        if stdout_to_log:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                log.info("%s", line.rstrip("\n"))
        else:
            captured, errors = self.process.communicate()
            for line in errors.splitlines():
                log.info("%s", line)
        returncode = self.process.wait()
        log.info("exit code %d", returncode)
        return returncode, captured

    def kill(self) -> None:
        """Send SIGTERM to the job's process group (Airflow calls this when the task is killed)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)


class NightjarJobOperator(BaseOperator):
    """Runs `./spark-submit.sh JOB --use-case U --date D` and maps its exit code (see the module docstring).

    Args:
        job: the Nightjar job (`features`, `score`, `monitor`, `train`, ...).
        use_case: the use case, `conf/use_cases/<use_case>.yaml`.
        date: the logical date passed as `--date` (templated; default: the data interval's first day).
        arguments: more arguments for the job, after the common ones.
    """

    template_fields: Sequence[str] = ("date",)
    ui_color = "#d9e4f5"

    def __init__(self, *, job: str, use_case: str, date: str = INTERVAL_DAY, arguments: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.use_case = use_case
        self.date = date
        self.arguments = list(arguments)
        self._launched = _Launched()

    def execute(self, context: Any) -> None:
        home, command = launcher_command(self.job, "--use-case", self.use_case, "--date", self.date, *self.arguments)
        returncode, _ = self._launched.run(self.log, home, command)
        check_exit(returncode, f"nightjar {self.job} --use-case {self.use_case} --date {self.date}")

    def on_kill(self) -> None:
        self._launched.kill()


class NightjarInputsSensor(BaseSensorOperator):
    """Waits until the day's required source partitions exist, by polling `./spark-submit.sh status --json`.

    `status` reads the Delta logs with delta-rs (no JVM, seconds), exits 0 when every required
    input of the date is there and 4, after printing the same document, when one is missing. Use
    `mode="reschedule"`: between pokes the sensor holds no worker slot.

    A poke returns True on exit 0 with `inputs_ready`, False on exit 4 (not yet) and on 5 or a
    signal (transient: poke again); 1, 2 and 3 fail the task at once, since waiting cannot mend a
    bad configuration.

    Args:
        use_case: the use case.
        date: the date whose inputs to wait for (templated; default: the data interval's first day).
    """

    template_fields: Sequence[str] = ("date",)
    ui_color = "#f0e6d2"

    def __init__(self, *, use_case: str, date: str = INTERVAL_DAY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case = use_case
        self.date = date
        self._launched = _Launched()

    def poke(self, context: Any) -> bool:
        home, command = launcher_command("status", "--use-case", self.use_case, "--date", self.date, "--json")
        returncode, output = self._launched.run(self.log, home, command, stdout_to_log=False)
        what = f"nightjar status --use-case {self.use_case} --date {self.date}"
        if returncode in (SUCCESS, 4):
            document = json.loads(output)
            for missing in document.get("missing_inputs", []):
                self.log.info("waiting for %s", missing)
            return bool(document["inputs_ready"])
        if returncode == 5 or signal_of(returncode) is not None:
            self.log.warning("%s exited %d: poking again later", what, returncode)
            return False
        check_exit(returncode, what)  # raises: 1, 2, 3 or a code outside the contract
        return False

    def on_kill(self) -> None:
        self._launched.kill()
