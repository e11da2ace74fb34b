"""Nightjar's shared core: configuration, the Spark session, table I/O, the job runner.

`features`, `models` and `validation` build on this package; `jobs` wires them together.
Nothing here imports `jobs`.
"""

__version__ = "0.1.0"
