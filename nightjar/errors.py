"""Typed errors that jobs map to the documented exit codes.

Every error that a user can cause (a bad flag, a bad configuration value, a failed data
check, a missing input) is one of these classes, so a job ends with a one-line message and
an exit code a scheduler can act on instead of a stack trace.
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


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected failure (a bug or an engine error)",
    2: "bad command line or configuration",
    3: "a blocking data check failed; nothing was written",
    4: "a required input is missing (no partition for the date, no champion model)",
}


class EngineUnavailableError(NightjarError):
    """A compute engine could not be reached or started (a Dask scheduler, a Spark master)."""

    exit_code = 1
