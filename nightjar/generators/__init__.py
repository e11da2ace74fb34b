"""Demo data generators: simulated populations whose true risk is known, so model quality can
be compared with the best achievable.

A use case's `generate.scenario` names one. Each writes some of the use case's sources, found by
name in `use_case.sources` (their tables and column names come from there), and a `truth` table
partitioned by `ds`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterator, Protocol

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from nightjar.config import Config, DriftConfig
from nightjar.errors import ConfigError

TRUTH = "truth"
TRUTH_PARTITION = "ds"


class Scenario(Protocol):
    """What determines a generated population: its parameters are recorded with its tables."""

    entities: int
    start_date: date
    end_date: date

    @property
    def days(self) -> int: ...

    @property
    def blocks(self) -> int: ...

    def parameters(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class Blocks:
    """A population simulated in fixed blocks of entities, each with its own random streams seeded
    by (seed, block), so the data depend on the scenario only, never on how Spark schedules them."""

    seed: int
    entities: int
    start_date: date
    end_date: date
    block_size: int

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1

    @property
    def blocks(self) -> int:
        return math.ceil(self.entities / self.block_size)


class NamedOutputs:
    """A scenario's `columns`: (output, timestamp column, partition column) per source it writes,
    as the use case names them; `truth` is partitioned by `ds`."""

    columns: tuple[tuple[str, str, str], ...]

    def timestamp(self, output: str) -> str:
        return {name: ts for name, ts, _ in self.columns}[output]

    def partition(self, output: str) -> str:
        return TRUTH_PARTITION if output == TRUTH else {name: part for name, _, part in self.columns}[output]


def in_spark(
    spark: SparkSession,
    scenario: Blocks,
    schema: T.StructType,
    simulate_block: Callable[[int], Iterator[pd.DataFrame]],
) -> DataFrame:
    """The rows `simulate_block(block)` yields for every block, as a DataFrame: one Spark task per block."""

    def simulate_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for block in batch["id"].tolist():
                yield from simulate_block(int(block))

    blocks = spark.range(0, scenario.blocks, 1, numPartitions=scenario.blocks)
    return blocks.mapInPandas(simulate_partition, schema)


@dataclass(frozen=True)
class Generator:
    """One scenario: the outputs it writes (source names, then `truth`), how a configuration and
    a date range make its scenario, and the DataFrame of one output."""

    outputs: tuple[str, ...]
    scenario: Callable[[Config, date, date, int, int], Scenario]
    generate: Callable[[SparkSession, Scenario, str], DataFrame]
    # What `generate.entities` counts, when it is not the scored entity (fraud scores transactions
    # of simulated cards).
    simulated: str | None = None


@dataclass(frozen=True)
class Output:
    """Where one generated output is written."""

    name: str
    table: str
    partition: str


def generator(config: Config) -> Generator:
    """The generator `generate.scenario` names."""
    # Imported here: each generator imports its simulation's dependencies.
    from nightjar.generators import churn, demand, fraud, maintenance

    if config.generate is None:
        raise ConfigError(f"use case {config.use_case.name!r} has no demo generator (no generate section in its file)")
    found = {
        "churn": churn.GENERATOR, "maintenance": maintenance.GENERATOR, "demand": demand.GENERATOR,
        "fraud": fraud.GENERATOR,
    }[config.generate.scenario]
    outputs(config, found)  # the use case has every source the scenario writes
    return found


def outputs(config: Config, found: Generator) -> list[Output]:
    """The tables `found` writes for this use case, in its order."""
    written = []
    for name in found.outputs:
        if name == TRUTH:
            written.append(Output(name, config.tables.truth, TRUTH_PARTITION))
            continue
        source = config.use_case.sources.get(name)
        if source is None:
            assert config.generate is not None
            raise ConfigError(
                f"generate.scenario {config.generate.scenario!r} writes the source {name!r}, "
                f"which use_case.sources does not declare"
            )
        written.append(Output(name, source.table, source.partition))
    return written


def drifted(frame: DataFrame, output: Output, drift: DriftConfig | None) -> DataFrame:
    """`frame`, the generated rows of `output`, with `drift` applied when it names this output's source.

    On the rows whose partition date is `drift.start` or later, the column becomes
    `column * scale + shift` (nulls stay null), cast back to its type. Done on what the
    generator wrote rather than inside a simulation, so every scenario has the same option and
    no generator needs to know about it.

    Raises:
        ConfigError: the column is not in the output, or not numeric.
    """
    if drift is None or drift.source != output.name:
        return frame
    if drift.column not in frame.columns:
        raise ConfigError(f"generate.drift.column: the source {output.name!r} has no column {drift.column!r} "
                          f"(columns: {', '.join(frame.columns)})")
    kind = frame.schema[drift.column].dataType
    if not isinstance(kind, T.NumericType):
        raise ConfigError(f"generate.drift.column: {output.name}.{drift.column} is {kind.simpleString()}, not numeric")
    value = F.col(drift.column)
    changed = (value * F.lit(drift.scale) + F.lit(drift.shift)).cast(kind)
    after = F.col(output.partition) >= F.lit(drift.start)
    return frame.withColumn(drift.column, F.when(after, changed).otherwise(value))


def drift_source_known(config: Config, found: Generator) -> None:
    """ConfigError unless `generate.drift` names a source that the scenario writes."""
    drift = config.generate.drift if config.generate is not None else None
    if drift is not None and drift.source not in found.outputs:
        raise ConfigError(f"generate.drift.source: {drift.source!r} is not one of the sources the "
                          f"{config.generate.scenario} scenario writes ({', '.join(found.outputs)})")
