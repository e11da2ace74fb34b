"""Typed errors that jobs map to the documented exit codes.

Every error that a user can cause (a bad flag, a bad configuration value, a failed data
check, a missing input) is one of these classes, so a job ends with a one-line message and
an exit code a scheduler can act on instead of a stack trace. A failure worth retrying (an
unreachable engine, a lost worker) is a `TransientError`, or is recognised by `is_transient`.
"""

from __future__ import annotations


class NightjarError(Exception):
    """Base class of the errors Nightjar reports to its user; `exit_code` is what the job returns."""

    exit_code: int = 1


class UsageError(NightjarError):
    """A bad command line: an unknown job or option, a malformed or impossible date."""

    exit_code = 2


class ConfigError(NightjarError):
    """A configuration file or `--set` override that is missing, malformed or invalid."""

    exit_code = 2


class DataCheckError(NightjarError):
    """A blocking data check failed; nothing was written."""

    exit_code = 3


class MissingInputError(NightjarError):
    """A required input does not exist: a table, a partition for the date, a champion model."""

    exit_code = 4


class TransientError(NightjarError):
    """A failure worth retrying as it is: an unreachable scheduler or object store, a lost worker."""

    exit_code = 5


class EngineUnavailableError(TransientError):
    """A compute engine could not be reached or started (a Dask scheduler, a Spark master)."""


class LostWorkerError(TransientError):
    """A worker that a run's work was pinned to left the cluster mid-run (died, or was stopped)."""


# Failures of other libraries known to be transient, by qualified class name (matched along
# the class's bases), so that recognising them imports neither Dask nor Py4J.
TRANSIENT_TYPES = frozenset(
    {
        "builtins.ConnectionError",  # refused, reset, aborted: the other end is down or restarting
        "builtins.TimeoutError",  # socket.timeout and asyncio's are the same class since 3.11
        "distributed.comm.core.CommClosedError",  # a scheduler or worker connection dropped
        "distributed.scheduler.KilledWorker",  # workers kept dying while running a task
    }
)
# Java exceptions that, anywhere in the cause chain of a Spark or Py4J error, mean a remote
# service did not answer: an object store, a metastore, a cluster manager. Not the JVM
# itself: losing the driver's own JVM (Py4JNetworkError) is usually a crash, say out of
# memory, that a retry would repeat.
TRANSIENT_JAVA_TYPES = frozenset(
    {"java.net.ConnectException", "java.net.SocketTimeoutException", "java.net.NoRouteToHostException"}
)
_MAX_CAUSES = 20


def is_transient(error: BaseException) -> bool:
    """Whether `error`, or an error it was explicitly raised from, is a transient failure.

    Only explicit causes (`raise ... from cause`) count, not the error that was being handled
    when this one was raised: a bug in an `except` block stays a bug.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSES:
        seen.add(id(current))
        if isinstance(current, TransientError) or _qualified_names(type(current)) & TRANSIENT_TYPES:
            return True
        if _java_cause_is_transient(current):
            return True
        current = current.__cause__
    return False


def _qualified_names(cls: type) -> set[str]:
    return {f"{base.__module__}.{base.__qualname__}" for base in cls.__mro__}


def _java_cause_is_transient(error: BaseException) -> bool:
    # Py4JJavaError keeps the Java throwable as `java_exception`; PySpark's converted
    # exceptions (AnalysisException...) as `_origin`.
    throwable = getattr(error, "java_exception", None) or getattr(error, "_origin", None)
    try:
        for _ in range(_MAX_CAUSES):
            if throwable is None:
                return False
            java_class = throwable.getClass()
            while java_class is not None:
                if java_class.getName() in TRANSIENT_JAVA_TYPES:
                    return True
                java_class = java_class.getSuperclass()
            throwable = throwable.getCause()
    except Exception:  # noqa: BLE001 - a JVM that cannot answer tells nothing; the error stays exit 1
        return False
    return False
