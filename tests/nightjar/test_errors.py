"""Which failures are transient (exit 5, worth retrying) and which stay exit 1 (a bug)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from distributed import KilledWorker
from distributed.comm.core import CommClosedError
from pyspark.sql import SparkSession

from nightjar import cli
from nightjar.errors import EngineUnavailableError, MissingInputError, NightjarError, TransientError, is_transient
from tests.conftest import free_port


def test_an_unavailable_engine_is_transient() -> None:
    assert issubclass(EngineUnavailableError, TransientError)
    assert EngineUnavailableError("dask.scheduler tcp://h:8786: cannot connect").exit_code == 5


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        socket.timeout("timed out"),
        TimeoutError(),
        CommClosedError("in <TCP (closed) ...>: Stream is closed"),
        KilledWorker("task-1", "tcp://127.0.0.1:40001", None),
        TransientError("object store unreachable"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_transient_failures(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("boom"),
        KeyError("column"),
        ValueError("could not convert"),
        FileNotFoundError(2, "No such file"),  # an OSError, but not a connection's
        MissingInputError("no partition"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_bugs_and_other_failures_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


def test_an_error_raised_from_a_lost_worker_is_transient_but_one_raised_while_handling_it_is_not() -> None:
    class TrainingFailed(NightjarError):
        exit_code = 1

    try:
        try:
            raise KilledWorker("task-1", "tcp://127.0.0.1:40001", None)
        except KilledWorker as lost:
            raise TrainingFailed("fit failed: KilledWorker") from lost
    except TrainingFailed as error:
        assert is_transient(error)

    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            {}["a bug in the handler"]  # noqa: B018 - raises KeyError, implicitly chained
    except KeyError as error:
        assert error.__context__ is not None and not is_transient(error)


def test_a_java_connection_refused_is_transient_and_a_java_bug_is_not(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    with pytest.raises(Exception) as refused:
        jvm.java.net.Socket("127.0.0.1", free_port())  # nothing listens: java.net.ConnectException
    with pytest.raises(Exception) as bug:
        jvm.java.lang.Integer.parseInt("not a number")  # java.lang.NumberFormatException
    assert type(refused.value).__name__ == "Py4JJavaError" and is_transient(refused.value)
    assert not is_transient(bug.value)  # PySpark converts this one; its Java origin is still walked


def _no_options(parser) -> None:  # noqa: ANN001
    pass


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConnectionRefusedError(111, "Connection refused"), 5),
        (RuntimeError("a bug"), 1),
        (EngineUnavailableError("dask.scheduler tcp://127.0.0.1:1: cannot connect"), 5),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_run_job_maps_transient_failures_to_5(
    spark: SparkSession, lake: Path, error: BaseException, code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def body(context: cli.JobContext) -> None:
        raise error

    argv = ["--env", "test", "--set", f"lake.root={lake}"]
    assert cli.run_job("probe", "a test job", _no_options, body, "optional", argv) == code
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("nightjar probe: error: ")
