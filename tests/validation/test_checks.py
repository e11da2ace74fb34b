"""The check definitions: each kind's value and words on a small frame worked out by hand, its
bounds and descriptions, the stages it applies to, and that a kind is one definition."""

from __future__ import annotations

import inspect
import math
from datetime import date, datetime
from typing import Any, ClassVar, Literal, get_args

import pytest
from pyspark.sql import DataFrame, SparkSession

from nightjar.config import Config
from nightjar.errors import ConfigError
from validation import checks, gate, metrics, suites
from validation.checks import (
    DRIFT, TABLE, BetweenCheck, CheckBase, ColumnTypesCheck, DriftCheck, DriftConfig, EntityCountCheck, FiniteCheck,
    InSetCheck, NotConstantCheck, NotNullCheck, NullFractionCheck, ReferencesCheck, RowCountCheck, RowCountHistoryCheck,
    RuleCheck, SideInputs, StdevCheck, TimestampInPartitionCheck, UniqueCheck, Value,
)
from validation.drift import SHARE_FLOOR
from validation.metrics import Metric

D1, D2 = date(2026, 1, 10), date(2026, 1, 11)
NAN, INF = float("nan"), float("inf")
SCHEMA = "k long, d date, x double, s string, c long, ts timestamp"
# The entities source: customer k first seen at ts (2 by D1, 4 by D2).
ENTITIES = [(1, datetime(2026, 1, 1)), (2, datetime(2026, 1, 5)), (3, datetime(2026, 1, 11, 8)), (4, datetime(2026, 1, 11, 9)),
            (5, datetime(2026, 1, 12))]
# The table as stored before: 2 rows on Jan 7, 4 on Jan 8, none on Jan 9; D1's own 3 rows are added below.
HISTORY = [(9, date(2026, 1, 7), 0.0, "a", 7, None)] * 2 + [(9, date(2026, 1, 8), 0.0, "a", 7, None)] * 4
# Tables `references` reads: `known` (k 3 has no label, label z is unknown) and `few` (k 1 and 3 only); `gone` does not exist.
REFERENCED = {"known": ([(1, "a"), (2, "b"), (3, None), (4, "a"), (9, "y")], "k long, label string"), "few": ([(1,), (3,)], "k long")}


@pytest.fixture
def frame(spark: SparkSession) -> DataFrame:
    rows = [
        (1, D1, 1.0, "a", 7, datetime(2026, 1, 10, 5)),
        (2, D1, 3.0, "b", 7, datetime(2026, 1, 11, 1)),  # filed under the day before its timestamp
        (2, D1, None, None, 7, datetime(2026, 1, 10, 6)),
        (3, D2, INF, "z", 7, datetime(2026, 1, 11, 3)),
        (4, D2, 5.0, "a", 7, datetime(2026, 1, 11, 4)),
        (4, D2, NAN, "a", 7, datetime(2026, 1, 11, 5)),
    ]
    return spark.createDataFrame(rows, SCHEMA).repartition(2)


def _evaluate(spark: SparkSession, check: RuleCheck, frame: DataFrame) -> dict[tuple[str, date], Value]:
    """Each value of `check` on `frame` per (label, date), from its metric, helpers and side job."""
    labels = check.applies_to(frame.columns, {"k", "d"}, "test", "ts")
    plan = [Metric("rows"), *[m for m in (check.metric(label) for label in labels) if m is not None]]
    helpers = {name: expression for label in labels for name, expression in check.helpers(label, "d").items()}
    computed = metrics.compute(frame, "d", plan, helpers)
    inputs = SideInputs(
        frame, "d", [D1, D2],
        stored=lambda: spark.createDataFrame(HISTORY, SCHEMA).unionByName(frame.where(frame.d == D1)),
        entities_known=lambda: metrics.entities_known(spark.createDataFrame(ENTITIES, "k long, ts timestamp"),
                                                      ["k"], "ts", [D1, D2]),
        table=lambda name: spark.createDataFrame(*REFERENCED[name]) if name in REFERENCED else None,
        where="test",
    )
    side = check.side(inputs) or {}
    return {(label, day): check.value(label, computed.get(day, {}), side.get(day)) for label in labels for day in (D1, D2)}


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (NotNullCheck(expect="not_null", columns=["x"]),
         {("x", D1): (1, "1 null value"), ("x", D2): (0, "0 null values")}),
        (NullFractionCheck(expect="null_fraction", columns=["x"], max=0.5),  # null on D1, NaN on D2
         {("x", D1): (1 / 3, "0.333 of 3 rows null or NaN"), ("x", D2): (1 / 3, "0.333 of 3 rows null or NaN")}),
        (FiniteCheck(expect="finite", columns=["x"]),
         {("x", D1): (0, "0 NaN or infinite values"), ("x", D2): (2, "2 NaN or infinite values")}),
        (BetweenCheck(expect="between", columns=["x"], min=0, max=2),  # infinity is finite's business
         {("x", D1): (1, "1 value outside [0, 2]"), ("x", D2): (1, "1 value outside [0, 2]")}),
        (BetweenCheck(expect="between", columns=["x"], min=2),
         {("x", D1): (1, "1 value below 2"), ("x", D2): (0, "0 values below 2")}),
        (InSetCheck(expect="in_set", columns=["s"], values=["a", "b"]),  # a null is not_null's business
         {("s", D1): (0, "0 values not in ['a', 'b']"), ("s", D2): (1, "1 value not in ['a', 'b']")}),
        (NotConstantCheck(expect="not_constant", columns=["s", "c"]),
         {("s", D1): (1.0, "varies"), ("s", D2): (1.0, "varies"),
          ("c", D1): (0.0, "constant (fewer than 2 distinct values)"), ("c", D2): (0.0, "constant (fewer than 2 distinct values)")}),
        (StdevCheck(expect="stdev", columns=["x"], min=0.1),  # D1: 1 and 3; D2: 5 is the only finite value
         {("x", D1): (math.sqrt(2), "standard deviation 1.414"), ("x", D2): (None, "fewer than 2 values")}),
        (TimestampInPartitionCheck(expect="timestamp_in_partition"),
         {("ts", D1): (1, "1 row whose ts is not on the partition's date"), ("ts", D2): (0, "0 rows whose ts is not on the partition's date")}),
        (RowCountCheck(expect="row_count", min=1),
         {(TABLE, D1): (3, "3 rows"), (TABLE, D2): (3, "3 rows")}),
        (UniqueCheck(expect="unique", key=["k"]),
         {("k", D1): (1, "1 duplicate row"), ("k", D2): (1, "1 duplicate row")}),
        (UniqueCheck(expect="unique", key=["k", "s"]),  # D1's second k=2 has no s: not compared
         {("k, s", D1): (0, "0 duplicate rows"), ("k, s", D2): (1, "1 duplicate row")}),
        # Previous dates with rows: D1 sees Jan 7 and 8 (median of 2 and 4: 3); D2 sees Jan 8 and D1 (median of 4 and 3).
        (RowCountHistoryCheck(expect="row_count_history", days=3, min_days=2),
         {(TABLE, D1): (1.0, "3 rows, 1.00 x the median 3 of 2 previous dates"),
          (TABLE, D2): (3 / 3.5, "3 rows, 0.86 x the median 3.5 of 2 previous dates")}),
        (RowCountHistoryCheck(expect="row_count_history", days=3, min_days=3),
         {(TABLE, D1): (None, "3 rows; only 2 previous dates with rows, 3 needed"),
          (TABLE, D2): (None, "3 rows; only 2 previous dates with rows, 3 needed")}),
        (EntityCountCheck(expect="entity_count"),
         {(TABLE, D1): (1, "3 rows for 2 entities"), (TABLE, D2): (-1, "3 rows for 4 entities")}),
        (ReferencesCheck(expect="references", columns=["k"], table="known"),  # every k matches
         {("k", D1): (0, "0 rows whose k is not in table 'known'"), ("k", D2): (0, "0 rows whose k is not in table 'known'")}),
        (ReferencesCheck(expect="references", columns=["k"], table="few"),  # D1: the two k=2; D2: the two k=4
         {("k", D1): (2, "2 rows whose k is not in table 'few'"), ("k", D2): (2, "2 rows whose k is not in table 'few'")}),
        (ReferencesCheck(expect="references", columns=["s"], table="known", key=["label"]),  # D1's null s is not compared; D2's z is unknown
         {("s", D1): (0, "0 rows whose s is not in table 'known' as label"), ("s", D2): (1, "1 row whose s is not in table 'known' as label")}),
        (ReferencesCheck(expect="references", columns=["k", "s"], table="known", key=["k", "label"]),  # D2: (3, z); k 3 has no label
         {("k, s", D1): (0, "0 rows whose (k, s) is not in table 'known' as k, label"),
          ("k, s", D2): (1, "1 row whose (k, s) is not in table 'known' as k, label")}),
        (ReferencesCheck(expect="references", columns=["s"], table="gone"),  # no table: every non-null s is unmatched
         {("s", D1): (2, "2 rows whose s is not in table 'gone' (the table does not exist)"),
          ("s", D2): (3, "3 rows whose s is not in table 'gone' (the table does not exist)")}),
    ],
    ids=lambda value: value.expect if isinstance(value, CheckBase) else None,
)
def test_values_and_observations_by_hand(spark: SparkSession, frame: DataFrame, check: RuleCheck, expected: dict) -> None:
    values = _evaluate(spark, check, frame)
    assert values.keys() == expected.keys()
    for key, (value, words) in expected.items():
        assert values[key][1] == words
        assert values[key][0] == (pytest.approx(value) if value is not None else None)


def test_a_forecast_has_as_many_rows_per_entity_as_horizons() -> None:
    check = EntityCountCheck(expect="entity_count")
    assert check.value(TABLE, {Metric("rows"): 14}, (2, 7)) == (0, "14 rows for 2 entities x 7 rows each")
    assert check.value(TABLE, {Metric("rows"): 13}, (2, 7)) == (-1, "13 rows for 2 entities x 7 rows each")


def test_drift_is_the_psi_of_the_reference_bins_by_hand(spark: SparkSession, frame: DataFrame) -> None:
    # Training rows: half below 2, half from 2 on, none missing. D1: 1, 3 and a null, a third in each bin.
    reference = {"bins": 2, "rows": 4, "features": {"x": {"edges": [2.0], "shares": [0.5, 0.5, 0.0]}, "gone": {"edges": [], "shares": [1.0, 0.0]}}}
    check = DriftConfig(psi_max=0.2).check(reference)
    third, floor = 1 / 3, SHARE_FLOOR
    psi = 2 * (third - 0.5) * math.log(third / 0.5) + (third - floor) * math.log(third / floor)
    values = _evaluate(spark, check, frame)
    assert values[("x", D1)] == (pytest.approx(psi), f"PSI {psi:.3f}")
    assert list(values) == [("x", D1), ("x", D2)]  # a feature the table lacks is the schema's to report
    assert (check.severity, check.bounds(), check.expected()) == ("warning", (0.0, 0.2), "between 0 and 0.2")


@pytest.mark.parametrize(
    ("check", "described", "expected", "bounds"),
    [
        (NotNullCheck(expect="not_null", columns=["a"]), "no null values in a, b", "none", (0.0, 0.0)),
        (NullFractionCheck(expect="null_fraction", columns=["a"], max=0.95),
         "at most 0.95 of the rows null or NaN in each of a, b", "between 0 and 0.95", (0.0, 0.95)),
        (NullFractionCheck(expect="null_fraction", columns=["a"], max=0), "at most 0 of the rows null or NaN in each of a, b", "0", (0.0, 0)),
        (UniqueCheck(expect="unique", key=["a", "b"]), "no two rows share the same a, b", "none", (0.0, 0.0)),
        (FiniteCheck(expect="finite", columns=["a"]), "no NaN or infinite values in a, b", "none", (0.0, 0.0)),
        (BetweenCheck(expect="between", columns=["a"], min=0, max=1), "every finite value of a, b between 0 and 1", "none", (0.0, 0.0)),
        (BetweenCheck(expect="between", columns=["a"], max=1e6), "every finite value of a, b at most 1000000", "none", (0.0, 0.0)),
        (InSetCheck(expect="in_set", columns=["a"], values=["x", 1]), "every value of a, b in ['x', 1]", "none", (0.0, 0.0)),
        (NotConstantCheck(expect="not_constant", columns=["a"]), "at least two distinct values in each of a, b",
         "at least 2 distinct values", (1.0, 1.0)),
        (StdevCheck(expect="stdev", columns=["a"], min=0.001), "standard deviation of a, b at least 0.001", "at least 0.001", (0.001, None)),
        (TimestampInPartitionCheck(expect="timestamp_in_partition"), "every a, b on its partition's date", "none", (0.0, 0.0)),
        (RowCountCheck(expect="row_count", min=1), "row count at least 1", "at least 1", (1, None)),
        (RowCountCheck(expect="row_count", min=2, max=2), "row count 2", "2", (2, 2)),
        (RowCountHistoryCheck(expect="row_count_history"), "row count 0.2-5 x the median of the previous 28 dates",
         "0.2-5 x the median of the previous 28 dates", (0.2, 5.0)),
        (EntityCountCheck(expect="entity_count"), "one row per entity known at the date", "as many rows as entities", (0.0, 0.0)),
        (ReferencesCheck(expect="references", columns=["a"], table="machines"), "every non-null a, b exists in table 'machines'", "none", (0.0, 0.0)),
        (ReferencesCheck(expect="references", columns=["a", "b"], table="m", key=["x", "y"]),
         "every non-null a, b exists in table 'm' as x, y", "none", (0.0, 0.0)),
        (DriftConfig().check({"features": {}}),
         "population stability index of each feature at most 0.25 against the champion's training data", "between 0 and 0.25", (0.0, 0.25)),
    ],
    ids=lambda value: value.expect if isinstance(value, CheckBase) else None,
)
def test_bounds_and_descriptions(check: RuleCheck, described: str, expected: str, bounds: tuple) -> None:
    assert check.describe("a, b") == described
    assert check.expected() == expected
    assert check.bounds() == bounds


def test_stages_and_kinds_allowed_once() -> None:
    stamp, entities = TimestampInPartitionCheck(expect="timestamp_in_partition"), EntityCountCheck(expect="entity_count")
    types = ColumnTypesCheck(expect="columns", types={"a": "bigint"})
    assert checks.suite_problem("source", [types, stamp]) is None
    assert checks.suite_problem("features", [types, entities]) is None
    assert checks.suite_problem("features", [stamp]) == "timestamp_in_partition applies to source tables only"
    assert checks.suite_problem("source", [entities]) == "entity_count applies to features and scores only"
    assert checks.suite_problem("scores", [types, types]) == "more than one `columns` check"


def test_references_needs_the_key_in_the_referenced_table(spark: SparkSession, frame: DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"^test \(references few\): table 'few' has no column id \(columns: k\)$"):
        _evaluate(spark, ReferencesCheck(expect="references", columns=["k"], table="few", key=["id"]), frame)
    with pytest.raises(ValueError, match="key must name as many columns as columns"):
        ReferencesCheck.model_validate({"expect": "references", "columns": ["k", "s"], "table": "known", "key": ["k"]})
    assert checks.suite_problem("source", [ReferencesCheck(expect="references", columns=["k"], table="known")]) is None


def _definitions(base: type) -> set[type]:
    """The concrete kinds defined in `validation.checks` below `base`."""
    found = set()
    for sub in base.__subclasses__():
        found |= _definitions(sub)
        if sub.__module__ == checks.__name__ and not inspect.isabstract(sub) and "expect" in sub.__annotations__:
            found.add(sub)
    return found


def test_every_kind_is_one_complete_definition_listed_in_the_check_union() -> None:
    names = [get_args(kind.model_fields["expect"].annotation)[0] for kind in checks.KINDS]
    assert len(set(names)) == len(names) and DRIFT not in names
    # Every concrete definition is configurable (drift is added by the gate), and none leaves a part out.
    assert _definitions(CheckBase) == {*checks.KINDS, DriftCheck}
    for kind in checks.KINDS:
        assert kind.__doc__ and set(kind.stages) <= set(checks.STAGES)
        assert kind is ColumnTypesCheck or (issubclass(kind, RuleCheck) and not inspect.isabstract(kind))
    # Strict and frozen, like every configuration model.
    with pytest.raises(ValueError, match="colums"):
        NotNullCheck.model_validate({"expect": "not_null", "colums": ["a"]})
    with pytest.raises(ValueError, match="frozen"):
        NotNullCheck(expect="not_null", columns=["a"]).severity = "warning"  # type: ignore[misc]


class PositiveCountCheck(RuleCheck):
    """A kind defined here alone: at least `min` positive values in each column (a test's own kind)."""

    expect: Literal["positive_count"] = "positive_count"
    columns: list[str]
    min: int

    numeric: ClassVar[bool] = True

    def applies_to(self, names: list[str], excluded: set[str], where: str, timestamp: str | None) -> tuple[str, ...]:
        return tuple(self.columns)

    def metric(self, column: str) -> Metric:
        return Metric("outside", column, (None, 0.0))  # finite values above 0

    def value(self, column: str, stats: dict[Metric, Any], side: Any) -> Value:
        n = int(stats.get(self.metric(column), 0))
        return n, f"{n} positive"

    def bounds(self) -> tuple[float | None, float | None]:
        return self.min, None

    def describe(self, columns: str) -> str:
        return f"at least {self.min} positive values in {columns}"


def test_a_new_kind_needs_nothing_but_its_definition(spark: SparkSession, config: Config, frame: DataFrame) -> None:
    rules, schema_rows, _ = suites.resolve([PositiveCountCheck(columns=["x", "s"], min=2)], frame.schema, set(), "test", "features")
    assert [(rule.name, rule.columns, rule.low, rule.high) for rule in rules] == [("positive_count", ("x", "s"), 2, None)]
    assert [(row.column, row.expected, row.observed) for row in schema_rows] == [("x", "numeric", "numeric"), ("s", "numeric", "string")]
    values = gate._measure(spark, config, "features", frame, "d", rules, [D1, D2], "test")
    assert values == {
        ("positive_count", "x", D1): (2, "2 positive"), ("positive_count", "x", D2): (1, "1 positive"),
        ("positive_count", "s", D1): (None, "not computed: the column is missing or not numeric"),
        ("positive_count", "s", D2): (None, "not computed: the column is missing or not numeric"),
    }
    assert suites.expectation(rules[0]).description == "positive_count [blocking]: at least 2 positive values in x, s"
