"""One pass over a Spark DataFrame that computes every statistic a suite needs, per date.

Great Expectations on Spark resolves its metrics in rounds and adds a pass for each map
expectation's unexpected values, and its per-expectation overhead on Spark is large (measured
on this project's 2-core machine: 200 expectations took 9-16 s on a one-row Spark frame, 1 s on
pandas). Spark SQL itself slows down sharply once an aggregation has more than ~100 outputs
(whole-stage code generation is switched off), and a feature table's checks with drift need
hundreds. So the gate computes its statistics here, in one Spark job: each task reads its rows
as Arrow batches (`mapInArrow`) and keeps a few counters per date with vectorised NumPy, the
driver adds the tasks' counters up, and Great Expectations then evaluates the expectations on
the resulting small frame of statistics (`validation.gate`).

Checks that compare rows with one another (duplicate keys) or read other tables (history,
entity counts) are narrow Spark aggregations of their own, below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from nightjar.keys import all_present

Op = Literal["rows", "nulls", "missing", "nonfinite", "outside", "not_in", "varies", "moments", "true", "bins"]
_DAY = "__nightjar_day"
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Metric:
    """One statistic per date: `op` over `column` with `params`.

    Ops and their final values: `rows` (int), `nulls` (null values), `missing` (null or NaN),
    `nonfinite` (NaN or infinite), `outside` (finite values outside `params` = (low, high), either
    may be None), `not_in` (non-null values not in `params`), `true` (true values of a boolean
    column), all counts; `varies` (bool: two different non-null values exist); `moments`
    ((n, sum, sum of squares) of the finite values); `bins` (counts per reference bin of
    `params` = edges, missing values last; see `histogram`).
    """

    op: Op
    column: str | None = None
    params: tuple = ()


def histogram(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Bin index of each value: i when edges[i-1] <= value < edges[i] (0 below the first edge,
    len(edges) from the last edge on, infinities included), len(edges) + 1 for NaN (missing).

    The one binning rule of drift statistics, for the training reference and the data scored alike.
    """
    edges = np.asarray(edges, dtype="float64")
    index = np.searchsorted(edges, values, side="right")
    index[np.isnan(values)] = len(edges) + 1
    return index


def compute(
    frame: DataFrame, date_column: str, metrics: list[Metric], helpers: dict[str, Column] | None = None,
) -> dict[date, dict[Metric, Any]]:
    """Evaluate `metrics` for each date of `date_column`, in one Spark job.

    Args:
        frame: the rows to check.
        date_column: the column whose dates group the statistics.
        metrics: what to compute.
        helpers: extra per-row columns that metrics may name (Spark expressions evaluated in
            the same pass, e.g. a comparison that must follow Spark's session time zone).

    Returns:
        The final value of every metric, per date that holds rows (dates without rows are absent).
    """
    helpers = helpers or {}
    plan = list(dict.fromkeys(metrics))
    columns = sorted({m.column for m in plan if m.column and m.column not in helpers})
    projected = frame.select(
        F.col(date_column).cast("date").alias(_DAY),
        *[F.col(name) for name in columns],
        *[expression.alias(name) for name, expression in helpers.items()],
    )
    steps = [(m.op, m.column, m.params) for m in plan]
    partials = projected.mapInArrow(_task(steps), "payload string").collect()
    merged: dict[int, list[Any]] = {}
    for row in partials:
        for day, states in json.loads(row.payload).items():
            current = merged.get(int(day))
            merged[int(day)] = states if current is None else [_merge(op, a, b) for (op, _, _), a, b in zip(steps, current, states)]
    return {
        _EPOCH + timedelta(days=day): {metric: _final(metric.op, state) for metric, state in zip(plan, states)}
        for day, states in merged.items()
    }


def _task(steps: list[tuple[str, str | None, tuple]]) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each task runs: counters per date over its batches, one JSON row at the end."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[int, list[Any]] = {}
        for batch in batches:
            if batch.num_rows == 0:
                continue
            days = pc.cast(batch.column(_DAY), pa.int32()).to_numpy(zero_copy_only=False)
            keys, groups = np.unique(days, return_inverse=True)
            columns: dict[str, _Column] = {}
            states = [
                _batch_state(op, columns.setdefault(column, _Column(batch.column(column))) if column else None,
                             params, groups, len(keys))
                for op, column, params in steps
            ]
            for index, day in enumerate(keys.tolist()):
                these = [state[index] for state in states]
                current = totals.get(day)
                totals[day] = these if current is None else [_merge(op, a, b) for (op, _, _), a, b in zip(steps, current, these)]
        yield pa.RecordBatch.from_pylist([{"payload": json.dumps(totals)}], schema=pa.schema([("payload", pa.string())]))

    return run


class _Column:
    """One column of a batch, converted once for all the metrics that read it."""

    def __init__(self, values: pa.Array) -> None:
        self.values = values
        self.numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_decimal(values.type)
        self._null: np.ndarray | None = None
        self._x: np.ndarray | None = None

    @property
    def null(self) -> np.ndarray:
        if self._null is None:
            self._null = self.values.is_null().to_numpy(zero_copy_only=False)
        return self._null

    @property
    def x(self) -> np.ndarray:
        """Float64 values, NaN where null (numeric columns)."""
        if self._x is None:
            # Unchecked: integers beyond 2**53 round, which no range, set or bin of a check depends on.
            as_float = pc.cast(self.values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            self._x = np.where(self.null, np.nan, as_float) if self.values.null_count else as_float
        return self._x


def _count(groups: np.ndarray, groups_count: int, mask: np.ndarray) -> list[int]:
    return np.bincount(groups, weights=mask.astype("float64"), minlength=groups_count).astype("int64").tolist()


def _batch_state(op: str, column: _Column | None, params: tuple, groups: np.ndarray, k: int) -> list[Any]:
    """The op's state for each of the batch's `k` dates."""
    if op == "rows":
        return np.bincount(groups, minlength=k).tolist()
    assert column is not None
    if op == "true":
        return _count(groups, k, pc.fill_null(column.values, False).to_numpy(zero_copy_only=False))
    if op == "nulls":
        return _count(groups, k, column.null)
    if op == "varies":
        return _varies(column, groups, k)
    if not column.numeric:
        if op == "not_in":
            allowed = pa.array([str(v) for v in params], pa.string())
            known = pc.fill_null(pc.is_in(pc.cast(column.values, pa.string()), value_set=allowed), False)
            return _count(groups, k, ~column.null & ~known.to_numpy(zero_copy_only=False))
        return _count(groups, k, column.null) if op == "missing" else [0] * k
    x = column.x
    if op == "missing":
        return _count(groups, k, np.isnan(x))
    finite = np.isfinite(x)
    if op == "nonfinite":
        return _count(groups, k, ~column.null & ~finite)
    if op == "outside":
        low, high = params
        outside = np.zeros(len(x), dtype=bool)
        with np.errstate(invalid="ignore"):
            if low is not None:
                outside |= x < low
            if high is not None:
                outside |= x > high
        return _count(groups, k, finite & outside)
    if op == "not_in":
        return _count(groups, k, ~column.null & ~np.isin(x, np.asarray(params, dtype="float64")))
    if op == "moments":
        values_or_zero = np.where(finite, x, 0.0)
        n = np.bincount(groups, weights=finite.astype("float64"), minlength=k)
        total = np.bincount(groups, weights=values_or_zero, minlength=k)
        squares = np.bincount(groups, weights=values_or_zero * values_or_zero, minlength=k)
        return [[int(a), float(b), float(c)] for a, b, c in zip(n, total, squares)]
    if op == "bins":
        width = len(params) + 2
        index = groups * width + histogram(x, params)
        return np.bincount(index, minlength=k * width).reshape(k, width).astype("int64").tolist()
    raise ValueError(f"unknown metric op {op!r}")


def _varies(column: _Column, groups: np.ndarray, k: int) -> list[Any]:
    """Per date: [a representative non-null value as text, whether another value differs from it]."""
    valid = ~column.null
    if column.numeric:
        x = column.x
        valid &= ~np.isnan(x)
    positions = np.flatnonzero(valid)
    first_groups, first_at = np.unique(groups[positions], return_index=True)
    first = np.zeros(k, dtype="int64")
    first[first_groups] = positions[first_at]
    if column.numeric:
        differs = x != x[first[groups]]
    else:
        values = column.values
        differs = pc.fill_null(pc.not_equal(values, values.take(pa.array(first[groups]))), False).to_numpy(zero_copy_only=False)
    differs &= valid
    varies = np.bincount(groups, weights=differs.astype("float64"), minlength=k) > 0
    present = set(first_groups.tolist())
    return [[str(column.values[int(first[g])].as_py()) if g in present else None, bool(varies[g])] for g in range(k)]


def _merge(op: str, a: Any, b: Any) -> Any:
    if op == "varies":
        representative = a[0] if a[0] is not None else b[0]
        return [representative, bool(a[1] or b[1] or (a[0] is not None and b[0] is not None and a[0] != b[0]))]
    if op in ("moments", "bins"):
        return [x + y for x, y in zip(a, b)]
    return a + b


def _final(op: str, state: Any) -> Any:
    if op == "varies":
        return bool(state[1])
    if op == "moments":
        return (int(state[0]), float(state[1]), float(state[2]))
    if op == "bins":
        return [int(v) for v in state]
    return int(state)


def sample_std(moments: tuple[int, float, float]) -> float | None:
    """The sample standard deviation from (n, sum, sum of squares); None below two values."""
    n, total, squares = moments
    if n < 2:
        return None
    variance = max((squares - total * total / n) / (n - 1), 0.0)
    return float(np.sqrt(variance))


# Checks that need more than one row at a time, or other tables: narrow aggregations of their own.


def duplicates(frame: DataFrame, date_column: str, key: list[str]) -> dict[date, int]:
    """Rows per date beyond the first of each key value; rows with a null key part are not compared.

    Reads only the date and key columns.
    """
    complete = frame.where(F.lit(True) if not key else all_present(key))
    rows = complete.groupBy(F.col(date_column).cast("date").alias(_DAY)).agg(
        (F.count(F.lit(1)) - F.count_distinct(*[F.col(column) for column in key])).alias("duplicates")
    )
    return {row[_DAY]: int(row["duplicates"]) for row in rows.collect()}


def unmatched(
    frame: DataFrame, date_column: str, columns: list[str], referenced: DataFrame | None, key: list[str],
) -> dict[date, int]:
    """Rows per date whose `columns` (all non-null) match no row's `key` in `referenced` (None: no table, no match).

    One left anti join on the key columns alone; rows with a null key part are not compared.
    """
    keyed = frame.select(date_column, *columns).where(all_present(columns))
    if referenced is not None:
        aliases = [f"__nightjar_key{i}" for i in range(len(key))]
        other = referenced.select(*[F.col(k).alias(a) for k, a in zip(key, aliases)])
        condition = [F.col(c) == F.col(a) for c, a in zip(columns, aliases)]
        keyed = keyed.join(other, condition, "left_anti")
    rows = keyed.groupBy(F.col(date_column).cast("date").alias(_DAY)).count()
    return {row[_DAY]: int(row["count"]) for row in rows.collect()}


def row_counts(frame: DataFrame, date_column: str, first: date, last: date) -> dict[date, int]:
    """Rows per date of `date_column` between `first` and `last` (partition pruning reads only those)."""
    window = frame.where(F.col(date_column).between(F.lit(first), F.lit(last)))
    counted = window.groupBy(F.col(date_column).cast("date").alias(_DAY)).count()
    return {row[_DAY]: int(row["count"]) for row in counted.collect()}


def entities_known(entities: DataFrame, keys: list[str], timestamp: str, dates: list[date]) -> dict[date, int]:
    """How many distinct entities the entities table knows at each of `dates` (first seen on or before it)."""
    firsts = (
        entities.where(all_present(keys))
        .groupBy(*keys).agg(F.min(F.to_date(F.col(timestamp))).alias(_DAY))
        .where(F.col(_DAY) <= F.lit(max(dates)))
        .groupBy(_DAY).count()
        .collect()
    )
    by_day = sorted((row[_DAY], int(row["count"])) for row in firsts)
    return {d: sum(count for day, count in by_day if day <= d) for d in dates}
