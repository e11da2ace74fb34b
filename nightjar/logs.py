"""The one logging setup of a job: a UTC timestamp, the level and the job name on every line.

    2026-03-31T02:00:05Z INFO [train] trained churn version 3 in 41.2s

INFO and below go to stdout and WARNING and above to stderr, so a scheduler that keeps the
two streams apart sees problems on stderr. Nightjar's own loggers (`nightjar`, `jobs`,
`features`, `models`, `validation`) log from INFO; every other library only from WARNING, so
Dask's cluster start-up and Py4J's connection chatter stay out of a job's log. Spark's and
Hadoop's JVM logging is set apart, by `conf/log4j2.properties` and
`nightjar.session.get_spark` (WARN).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

# `__main__`: a job module run by spark-submit (driver.py) logs under that name.
PACKAGES = ("nightjar", "jobs", "features", "models", "validation", "__main__")
# Loggers of libraries that log routine events at INFO (Py4J: every gateway connection opened
# and closed); pinned so that a root logger lowered by someone else does not let them through.
QUIET = ("py4j",)
FORMAT = "%(asctime)s %(levelname)s [%(job)s] %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class _CurrentStream(logging.StreamHandler):
    """A StreamHandler writing to whatever `sys.stdout` or `sys.stderr` is when a line is logged.

    A handler that kept the stream it was built with would go on writing to a replaced one:
    pytest swaps `sys.stdout` for every test, and `run_job` runs many times in one process.
    """

    def __init__(self, stream_name: str) -> None:
        # Not `_name`: logging.Handler keeps its own name there.
        self._stream_name = stream_name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, value: TextIO) -> None:
        # StreamHandler.__init__ assigns the stream it would have kept; it is looked up instead.
        pass


class _JobName(logging.Filter):
    """Stamp each record with the job's name for the format's `%(job)s`."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def filter(self, record: logging.LogRecord) -> bool:
        record.job = self.job
        return True


def _ours_or_a_warning(record: logging.LogRecord) -> bool:
    # A filter on the handlers rather than the root logger's level: libraries such as Dask
    # set their own loggers to INFO, which a root level would not hold back.
    return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in PACKAGES


def formatter() -> logging.Formatter:
    """The line format: ISO-8601 UTC timestamp, level, `[job]`, message."""
    lines = logging.Formatter(FORMAT, datefmt=DATE_FORMAT)
    lines.converter = time.gmtime  # the `Z` in the timestamp promises UTC, whatever the host's zone
    return lines


def configure(job: str) -> None:
    """Send log lines to stdout (up to INFO) and stderr (WARNING and up), tagged with `job`.

    Idempotent: a second call replaces the handlers of the first (with the new job name)
    instead of adding more, so a process that runs several jobs logs each line once.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStream)]:
        root.removeHandler(handler)
    out, err = _CurrentStream("stdout"), _CurrentStream("stderr")
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(formatter())
        handler.addFilter(_ours_or_a_warning)
        handler.addFilter(_JobName(job))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
