"""featuretools discovery: Deep Feature Synthesis on a sample, written as Nightjar definitions.

featuretools 1.x computes in pandas on one machine; Nightjar computes the definitions it
finds with Spark over all the data. Primitives Nightjar supports become `features`
configuration blocks over the configured windows; the others are listed as unsupported for a
person to consider.

Semantics that differ by design (see the README): featuretools aggregates over a training
window ending at a cutoff instant, Nightjar over whole days ending at D (the same thing with
the cutoff at the start of D + 1); `TIME_SINCE_*` counts seconds to the cutoff, Nightjar's
`days_since_*` whole days from the event's day to D; `TREND` fits the events, Nightjar's
`trend` the daily totals including days without events; `LAST` may return a missing value,
Nightjar's `last` is the last value present.
"""

from __future__ import annotations

from typing import Any

import featuretools as ft
import pandas as pd

from features.definitions import fits_trend
from nightjar.config import Config

# featuretools primitive -> Nightjar aggregate function
SUPPORTED = {
    "count": "count",
    "sum": "sum",
    "mean": "mean",
    "min": "min",
    "max": "max",
    "std": "std",
    "num_unique": "distinct_count",
    "last": "last",
    "time_since_last": "days_since_last",
    "time_since_first": "days_since_first",
    "trend": "trend",
}
DEFAULT_PRIMITIVES = ["count", "sum", "mean", "min", "max", "std", "num_unique", "last", "time_since_last",
                      "time_since_first", "trend", "mode", "skew", "median"]
CATEGORICAL_MAX_VALUES = 20
# featuretools indexes a dataframe by one column: an entity key of several columns becomes one
# string column of this name in every frame, in place of its parts (identifiers, not features).
COMPOSITE_INDEX = "_entity"


def entityset(
    config: Config, frames: dict[str, pd.DataFrame], interesting_values: int = 3, entity_time_index: bool = True,
) -> ft.EntitySet:
    """An EntitySet of the use case's sources: the entities source as parent of each events source.

    `frames` maps source names to pandas frames. String columns with few values are typed as
    categorical, and their most frequent values become featuretools' interesting values (the
    filters of where-primitives). Without `entity_time_index` the entities carry no time
    index, so that a training window filters only their events (as Nightjar's windows do)
    and not the entities themselves.
    """
    use_case = config.use_case
    keys = use_case.entity.keys
    key = keys[0] if len(keys) == 1 else COMPOSITE_INDEX
    entities_name, entities_source = use_case.source_of_kind("entities")
    es = ft.EntitySet(id=use_case.name)
    for name, source in use_case.sources.items():
        if name not in frames:
            continue
        frame = frames[name].drop(columns=[source.partition], errors="ignore").copy()
        if key == COMPOSITE_INDEX:
            frame[key] = frame[keys].astype(str).agg("|".join, axis=1)
            frame = frame.drop(columns=keys)
        index = key if source.kind == "entities" else _row_identifier(frame, [*keys, key], source.timestamp)
        if index is None:
            index = f"_{name}_row"
            frame[index] = range(len(frame))
        types = {
            column: "Categorical"
            for column in frame.columns
            if frame[column].dtype == object and frame[column].nunique() <= CATEGORICAL_MAX_VALUES
        }
        time_index = source.timestamp if source.kind == "events" or entity_time_index else None
        es.add_dataframe(dataframe_name=name, dataframe=frame, index=index, time_index=time_index,
                         logical_types=types)
    for name, source in use_case.sources.items():
        if source.kind == "events" and name in frames:
            es.add_relationship(entities_name, key, name, key)
            categorical = [c for c, t in es[name].ww.logical_types.items() if str(t) == "Categorical" and c != key]
            es.add_interesting_values(
                dataframe_name=name,
                values={c: frames[name][c].value_counts().index[:interesting_values].tolist() for c in categorical},
            )
    return es


def _row_identifier(frame: pd.DataFrame, keys: list[str], timestamp: str) -> str | None:
    """A column that identifies each event (an id is an index, not a number to sum), if any."""
    for column in frame.columns:
        if column not in (*keys, timestamp) and column.endswith("_id") and frame[column].is_unique:
            return column
    return None


def synthesize(config: Config, es: ft.EntitySet, primitives: list[str] | None = None) -> list[ft.Feature]:
    """Deep Feature Synthesis (depth 1) for the use case's entity: the candidate features."""
    entities_name, _ = config.use_case.source_of_kind("entities")
    return ft.dfs(
        entityset=es, target_dataframe_name=entities_name,
        agg_primitives=primitives or DEFAULT_PRIMITIVES, where_primitives=["count", "sum"],
        trans_primitives=[], max_depth=1, features_only=True,
    )


def to_definitions(config: Config, features: list[ft.Feature], es: ft.EntitySet) -> dict[str, Any]:
    """Nightjar `features` blocks for the supported candidates, and the rest listed as unsupported."""
    blocks: dict[tuple, dict[str, Any]] = {}
    attributes: list[dict[str, Any]] = []
    unsupported: list[str] = []
    entities_name, _ = config.use_case.source_of_kind("entities")
    windows = list(config.features.windows)  # Durations; written back as configuration writes them
    for feature in features:
        name = feature.get_name()
        if isinstance(feature, ft.IdentityFeature):
            attribute = _attribute(es, entities_name, name)
            if attribute is None:
                unsupported.append(f"{name} (attribute of type {es[entities_name].ww.logical_types[name]})")
            else:
                attributes.append(attribute)
            continue
        primitive = feature.primitive.name
        if not isinstance(feature, ft.AggregationFeature) or primitive not in SUPPORTED:
            unsupported.append(name)
            continue
        function = SUPPORTED[primitive]
        child = feature.base_features[0]
        source = child.dataframe_name
        column: str | None = child.get_name()
        if function in ("count", "days_since_last", "days_since_first"):
            column = None
        elif column in (es[source].ww.index, es[source].ww.time_index) or (
            function in ("sum", "mean", "min", "max", "std", "last", "trend") and not _numeric(es, source, column)
        ):
            unsupported.append(f"{name} (not a numeric column)")
            continue
        where = {}
        if feature.where is not None:
            where = {feature.where.base_features[0].get_name(): feature.where.primitive.value}
        block_key = (source, column, tuple(sorted(where.items())), function == "trend")
        block = blocks.get(block_key)
        if block is None:
            block = {"source": source, **({"column": column} if column else {}), "functions": []}
            if where:
                block["where"] = where
                block["name"] = _slug("_".join([source, *[f"{k}_{v}" for k, v in where.items()]]))
            if function == "trend":
                block["windows"] = [w.written for w in windows if fits_trend(w)]
            blocks[block_key] = block
        if function not in block["functions"]:
            block["functions"].append(function)
    return {
        "features": {
            "windows": [w.written for w in windows], "aggregates": list(blocks.values()), "attributes": attributes,
        },
        "unsupported": sorted(unsupported),
    }


def _numeric(es: ft.EntitySet, dataframe: str, column: str) -> bool:
    return str(es[dataframe].ww.logical_types[column]) in ("Integer", "IntegerNullable", "Double", "Age", "AgeNullable")


def _attribute(es: ft.EntitySet, dataframe: str, column: str) -> dict[str, Any] | None:
    logical = str(es[dataframe].ww.logical_types[column])
    if logical == "Categorical":
        values = sorted(es[dataframe][column].dropna().unique().tolist())
        return {"source": dataframe, "kind": "category", "column": column, "values": values}
    if _numeric(es, dataframe, column):
        return {"source": dataframe, "kind": "numeric", "column": column}
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
