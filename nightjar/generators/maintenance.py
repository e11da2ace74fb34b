"""A simulated fleet of machines for the predictive-maintenance demo, with the true probability
of a failure in the next 48 hours at every nightly cutoff.

The model, per machine and hour:

* each machine has four components; each wears at its own hidden rate (the machine's model,
  and a machine-and-component factor), so its degradation `d = rate * hours since replacement`;
* a component fails in an hour with probability `1 - exp(-h)`,
  `h = random + base * frailty * exp(k d)`: rare random failures at any wear, many more as wear grows; `frailty` (hidden) grows with the
  machine's age and varies from machine to machine;
* planned maintenance replaces a component at a hidden, jittered interval after its last
  replacement; a failed component is replaced at the start of the next hour; both reset `d`;
* telemetry is read every hour on the hour (voltage, rotation, pressure, vibration): each
  reading drifts with one component's wear, around the machine's own baseline, with noise,
  and a few readings are missing (sensor dropouts);
* errors of types error1 .. error4 become more frequent as their component wears (error5 is
  unrelated noise).

No threshold rule decides a failure: readings, errors and age only hint at the hidden wear.

`truth` holds, for every machine installed by D, the probability of at least one failure in
[cutoff, cutoff + horizon) (cutoff = the start of D + 1, UTC) given the hidden state at the
cutoff. Wear is deterministic between replacements and the next planned replacement is part of
the state, so P(no failure) = exp(-sum of the hourly hazards along that path): exact, the best
achievable prediction.

Every block of `block_size` machines has its own random streams seeded by (seed, block): the
state (wear rates, maintenance, failures) in one, each observed table's noise in another, so
the data depend on the scenario only and each table can be produced without the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterator, Literal

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from nightjar.config import Config
from nightjar.errors import ConfigError
from nightjar.generators import Blocks, Generator, NamedOutputs, in_spark

Output = Literal["machines", "telemetry", "errors", "maintenance", "failures", "truth"]
OUTPUTS: tuple[Output, ...] = ("machines", "telemetry", "errors", "maintenance", "failures", "truth")

MODELS = np.array(["model1", "model2", "model3", "model4"])
MODEL_P = [0.35, 0.3, 0.2, 0.15]
COMPONENTS = np.array(["comp1", "comp2", "comp3", "comp4"])
ERROR_TYPES = np.array(["error1", "error2", "error3", "error4", "error5"])
SENSORS = ("voltage", "rotation", "pressure", "vibration")

# Days until a component's degradation reaches 1 at the typical rate, per component...
LIFE_DAYS = np.array([75.0, 110.0, 140.0, 55.0])
# ...and how much faster each machine model wears (model4 is the oldest design).
MODEL_WEAR = np.array([1.0, 0.9, 1.1, 1.3])
WEAR_SPREAD = 0.08                     # log-normal machine-and-component wear factor
PLANNED_INTERVAL = (0.9, 2.0)          # planned replacement after this share of LIFE_DAYS
RANDOM_HAZARD = 2.0e-5                 # per component-hour, whatever the wear
BASE_HAZARD = 6.0e-7                   # per component-hour, the wear-out part at no wear...
WEAR_SENSITIVITY = 8.0                 # ...growing as exp(WEAR_SENSITIVITY * d)
MAX_HAZARD = 0.5
AGE_FRAILTY = 0.04                     # per year of machine age, on the log hazard
FRAILTY_SPREAD = 0.1
MAX_AGE_YEARS = 15
NEW_MACHINE_SHARE = 0.04               # installed during the simulated window

# Each sensor follows one component: baseline, the machine's own offset, the shift per unit of
# degradation, and the reading noise.
SENSOR_BASE = np.array([170.0, 450.0, 100.0, 40.0])
SENSOR_MODEL_OFFSET = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, -15.0, 2.0, 1.0], [-3.0, 10.0, -2.0, 2.0], [6.0, -25.0, 4.0, 3.0]])
SENSOR_MACHINE_SPREAD = np.array([2.0, 4.0, 1.5, 0.8])
SENSOR_WEAR_SHIFT = np.array([40.0, -100.0, 30.0, 20.0])
SENSOR_NOISE = np.array([14.0, 22.5, 9.0, 4.0])
DROPOUT_RATE = 0.003

ERROR_BASE = np.array([4e-4, 4e-4, 4e-4, 4e-4, 1.5e-3])   # per hour
ERROR_WEAR = np.array([0.012, 0.010, 0.010, 0.014, 0.0])   # times d ** 3, per hour

ID_STRIDE = 10**10
HOUR_MICROS = 3_600_000_000


@dataclass(frozen=True)
class MaintenanceScenario(Blocks, NamedOutputs):
    """What determines the generated data, and the column names the use case gives them.

    `columns[output]` is (timestamp column, partition column) of each table; `truth` is
    partitioned by `ds`.
    """

    horizon_hours: int
    key: str = "machine_id"
    columns: tuple[tuple[str, str, str], ...] = (
        ("machines", "install_ts", "install_date"),
        ("telemetry", "ts", "telemetry_date"),
        ("errors", "ts", "error_date"),
        ("maintenance", "ts", "maintenance_date"),
        ("failures", "ts", "failure_date"),
    )

    def parameters(self) -> dict[str, object]:
        """The values that determine the data, recorded with the tables they produce."""
        return {
            "scenario": "maintenance",
            "seed": self.seed,
            "entities": self.entities,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "block_size": self.block_size,
            "horizon_hours": self.horizon_hours,
        }


def schema(s: MaintenanceScenario, output: Output) -> T.StructType:
    """The Spark schema of one generated table."""
    ts, part = (s.timestamp(output), s.partition(output)) if output != "truth" else ("", "ds")
    fields: dict[str, list[T.StructField]] = {
        "machines": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("model", T.StringType(), False),
        ],
        "telemetry": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            *[T.StructField(sensor, T.DoubleType(), False) for sensor in SENSORS],
        ],
        "errors": [
            T.StructField("error_id", T.LongType(), False),
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("error_type", T.StringType(), False),
        ],
        "maintenance": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("component", T.StringType(), False),
            T.StructField("reason", T.StringType(), False),
        ],
        "failures": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField(ts, T.TimestampType(), False),
            T.StructField("component", T.StringType(), False),
        ],
        "truth": [
            T.StructField(s.key, T.LongType(), False),
            T.StructField("failure_probability", T.DoubleType(), False),
            T.StructField("max_degradation", T.DoubleType(), False),
        ],
    }
    return T.StructType([*fields[output], T.StructField(part, T.DateType(), False)])


def generate(spark: SparkSession, scenario: MaintenanceScenario, output: Output) -> DataFrame:
    """One generated table as a DataFrame: each Spark task simulates whole blocks of machines."""
    return in_spark(spark, scenario, schema(scenario, output),
                    lambda block: simulate_block(scenario, block, output))


@dataclass
class _Fleet:
    """The hidden, fixed properties of a block's machines."""

    ids: np.ndarray
    install_hour: np.ndarray      # hours from the start of the window (negative: before it)
    model: np.ndarray
    wear_rate: np.ndarray         # (machines, components): degradation per hour
    log_frailty: np.ndarray
    sensor_offset: np.ndarray     # (machines, sensors)
    error_rate_scale: np.ndarray  # (machines,): how error-prone the machine's controller is


def simulate_block(scenario: MaintenanceScenario, block: int, output: Output) -> Iterator[pd.DataFrame]:
    """Simulate block `block` hour by hour and yield `output`'s rows, one frame per day."""
    first = block * scenario.block_size
    ids = np.arange(first, min(first + scenario.block_size, scenario.entities), dtype=np.int64) + 1
    n, components = len(ids), len(COMPONENTS)
    fleet_seed, state_seed, telemetry_seed, error_seed, stamp_seed = np.random.SeedSequence(
        [scenario.seed, block]
    ).spawn(5)
    fleet_rng = np.random.default_rng(fleet_seed)
    state_rng = np.random.default_rng(state_seed)
    telemetry_rng = np.random.default_rng(telemetry_seed)
    error_rng = np.random.default_rng(error_seed)
    stamp_rng = np.random.default_rng(stamp_seed)

    hours = scenario.days * 24
    fleet = _fleet(fleet_rng, ids, scenario)
    if output == "machines":
        yield _machines_frame(scenario, fleet)
        return

    # Ages at the start of the window: each component was last replaced some time within its
    # planned interval; a machine installed later starts new.
    life_hours = LIFE_DAYS * 24.0
    interval = _planned_interval(fleet_rng, n, life_hours)
    age = fleet_rng.random((n, components)) * interval
    installed_before = fleet.install_hour <= 0
    age = np.where(installed_before[:, None], np.minimum(age, -fleet.install_hour[:, None]), 0.0)
    age = np.floor(age)
    next_planned = np.where(installed_before[:, None], interval - age, interval)
    next_planned = np.maximum(np.ceil(next_planned), 1.0)  # hours from now until the planned replacement
    if output == "maintenance":
        # The replacements before the window, so hours since the last one are known from day one.
        # (A component as old as its machine is the original one: no replacement to record.)
        known = installed_before[:, None] & (age > 0) & (age < -fleet.install_hour[:, None])
        machine, component = np.nonzero(known)
        when = -age[machine, component]
        order = np.lexsort((component, machine, when))
        yield _maintenance_frame(scenario, fleet.ids[machine[order]], component[order], when[order], "planned")

    next_error_id = block * ID_STRIDE
    day_frames: list[pd.DataFrame] = []
    for hour in range(hours):
        operating = fleet.install_hour <= hour
        # Planned replacements due this hour happen first, at its start.
        due = operating[:, None] & (next_planned <= 0)
        if due.any():
            if output == "maintenance":
                machine, component = np.nonzero(due)
                day_frames.append(_maintenance_frame(
                    scenario, fleet.ids[machine], component, np.full(len(machine), float(hour)), "planned",
                ))
            age[due] = 0.0
            next_planned[due] = np.ceil(_planned_interval(state_rng, n, life_hours))[due]
        degradation = age * fleet.wear_rate
        hazard = _hazard(degradation, fleet.log_frailty)
        failed = operating[:, None] & (state_rng.random((n, components)) < 1.0 - np.exp(-hazard))

        if output == "telemetry":
            day_frames.append(_telemetry_frame(scenario, telemetry_rng, fleet, degradation, operating, hour))
        elif output == "errors":
            frame = _errors_frame(scenario, error_rng, fleet, degradation, operating, hour, next_error_id)
            next_error_id += len(frame)
            day_frames.append(frame)
        elif output in ("failures", "maintenance") and failed.any():
            machine, component = np.nonzero(failed)
            if output == "failures":
                second = stamp_rng.integers(0, 3600, len(machine))
                day_frames.append(_failures_frame(scenario, fleet.ids[machine], component, hour + second / 3600.0))
            elif hour + 1 < hours:
                # The replacement of a failed component, at the start of the next hour (when
                # that is still within the window).
                day_frames.append(_maintenance_frame(
                    scenario, fleet.ids[machine], component, np.full(len(machine), hour + 1.0), "failure",
                ))

        # The failed component is replaced at the start of the next hour; its planned
        # replacement is rescheduled from then.
        age = np.where(operating[:, None], age + 1.0, age)
        age[failed] = 0.0
        next_planned = np.where(operating[:, None], next_planned - 1.0, next_planned)
        if failed.any():
            next_planned[failed] = np.ceil(_planned_interval(state_rng, n, life_hours))[failed]

        if hour % 24 == 23:
            today = scenario.start_date + timedelta(days=hour // 24)
            if output == "truth":
                # The state at the cutoff (the start of the next hour) is what `age` and
                # `next_planned` now hold.
                installed = fleet.install_hour <= hour
                if installed.any():
                    probability = _failure_probability(
                        age, next_planned, fleet.wear_rate, fleet.log_frailty, scenario.horizon_hours
                    )
                    yield pd.DataFrame({
                        scenario.key: fleet.ids[installed],
                        "failure_probability": probability[installed],
                        "max_degradation": (age * fleet.wear_rate).max(axis=1)[installed],
                        "ds": [today] * int(installed.sum()),
                    })
            elif day_frames:
                frame = pd.concat(day_frames, ignore_index=True)
                day_frames = []
                if len(frame):
                    yield frame


def _fleet(rng: np.random.Generator, ids: np.ndarray, scenario: MaintenanceScenario) -> _Fleet:
    n = len(ids)
    new = rng.random(n) < NEW_MACHINE_SHARE
    # Machines in service before the window were commissioned on the first day of a month (few
    # partitions in the machines table), new ones on any day of the window; always on the hour,
    # so a machine reports from its first whole hour.
    months_ago = rng.integers(1, MAX_AGE_YEARS * 12 + 1, n)
    install_day = rng.integers(0, scenario.days, n)
    install_hour_of_day = rng.integers(0, 24, n)
    start_month = np.datetime64(scenario.start_date.isoformat(), "M")
    first_of_month = (start_month - months_ago.astype("timedelta64[M]")).astype("datetime64[D]")
    days_before = (np.datetime64(scenario.start_date.isoformat(), "D") - first_of_month).astype(np.int64)
    install_hour = np.where(new, install_day * 24, -days_before * 24) + install_hour_of_day
    model = rng.choice(len(MODELS), n, p=MODEL_P)
    wear = np.exp(rng.normal(-(WEAR_SPREAD**2) / 2, WEAR_SPREAD, (n, len(COMPONENTS))))
    wear_rate = wear * MODEL_WEAR[model][:, None] / (LIFE_DAYS * 24.0)[None, :]
    age_years = np.where(new, 0.0, days_before / 365.25)
    log_frailty = AGE_FRAILTY * age_years + rng.normal(-(FRAILTY_SPREAD**2) / 2, FRAILTY_SPREAD, n)
    sensor_offset = SENSOR_MODEL_OFFSET[model] + rng.normal(0.0, 1.0, (n, len(SENSORS))) * SENSOR_MACHINE_SPREAD
    error_rate_scale = np.exp(rng.normal(0.0, 0.3, n))
    return _Fleet(ids, install_hour.astype(np.float64), model, wear_rate, log_frailty, sensor_offset, error_rate_scale)


def _planned_interval(rng: np.random.Generator, n: int, life_hours: np.ndarray) -> np.ndarray:
    low, high = PLANNED_INTERVAL
    return rng.uniform(low, high, (n, len(life_hours))) * life_hours[None, :]


def _hazard(degradation: np.ndarray, log_frailty: np.ndarray) -> np.ndarray:
    """The hourly failure hazard of each component; `log_frailty` is per machine (first axis)."""
    frailty = log_frailty.reshape(log_frailty.shape + (1,) * (degradation.ndim - 1))
    return np.minimum(RANDOM_HAZARD + BASE_HAZARD * np.exp(WEAR_SENSITIVITY * degradation + frailty), MAX_HAZARD)


def _failure_probability(
    age: np.ndarray, next_planned: np.ndarray, wear_rate: np.ndarray, log_frailty: np.ndarray, horizon_hours: int
) -> np.ndarray:
    """P(at least one failure in the next `horizon_hours` hours | the state at the cutoff).

    Until the first failure, wear follows a known path: it grows by `wear_rate` an hour and
    restarts from 0 at the planned replacement `next_planned` hours from now. Each hour's
    failures are independent draws, so P(none) = exp(-sum of the hourly hazards on that path).
    """
    offset = np.arange(horizon_hours, dtype=np.float64)[None, None, :]
    planned = next_planned[:, :, None]
    hours_in_service = np.where(offset < planned, age[:, :, None] + offset, offset - planned)
    hazard = _hazard(hours_in_service * wear_rate[:, :, None], log_frailty)
    return -np.expm1(-hazard.sum(axis=(1, 2)))


def _instants(scenario: MaintenanceScenario, hours: np.ndarray) -> np.ndarray:
    """Hours from the window's start as timestamps (microsecond precision, as Spark keeps them)."""
    start = np.datetime64(scenario.start_date.isoformat(), "us")
    return start + np.round(np.asarray(hours, dtype=np.float64) * 3_600_000_000).astype("timedelta64[us]")


def _dates(instants: np.ndarray) -> list[date]:
    return [day.item() for day in instants.astype("datetime64[D]")]


def _machines_frame(s: MaintenanceScenario, fleet: _Fleet) -> pd.DataFrame:
    installed = _instants(s, fleet.install_hour)
    return pd.DataFrame({
        s.key: fleet.ids,
        s.timestamp("machines"): installed.astype("datetime64[ns]"),
        "model": MODELS[fleet.model],
        s.partition("machines"): _dates(installed),
    })


def _telemetry_frame(
    s: MaintenanceScenario,
    rng: np.random.Generator,
    fleet: _Fleet,
    degradation: np.ndarray,
    operating: np.ndarray,
    hour: int,
) -> pd.DataFrame:
    n = len(fleet.ids)
    # Drawn for every machine, operating or not, so a machine's readings do not depend on when
    # the others were installed.
    noise = rng.standard_normal((n, len(SENSORS)))
    reported = operating & (rng.random(n) >= DROPOUT_RATE)
    readings = SENSOR_BASE + fleet.sensor_offset + SENSOR_WEAR_SHIFT * degradation + SENSOR_NOISE * noise
    instant = _instants(s, np.array([hour]))[0]
    count = int(reported.sum())
    frame = pd.DataFrame({s.key: fleet.ids[reported], s.timestamp("telemetry"): np.full(count, instant).astype("datetime64[ns]")})
    for index, sensor in enumerate(SENSORS):
        frame[sensor] = np.round(readings[reported, index], 4)
    frame[s.partition("telemetry")] = [instant.astype("datetime64[D]").item()] * count
    return frame


def _errors_frame(
    s: MaintenanceScenario,
    rng: np.random.Generator,
    fleet: _Fleet,
    degradation: np.ndarray,
    operating: np.ndarray,
    hour: int,
    first_id: int,
) -> pd.DataFrame:
    wear = np.concatenate([degradation, np.zeros((len(fleet.ids), 1))], axis=1)
    rate = (ERROR_BASE + ERROR_WEAR * wear**3) * fleet.error_rate_scale[:, None]
    counts = rng.poisson(np.where(operating[:, None], rate, 0.0))
    machine, error_type = np.nonzero(counts)
    machine, error_type = np.repeat(machine, counts[machine, error_type]), np.repeat(error_type, counts[machine, error_type])
    seconds = rng.integers(0, 3600, len(machine))
    order = np.lexsort((error_type, machine, seconds))
    instants = _instants(s, hour + seconds[order] / 3600.0)
    return pd.DataFrame({
        "error_id": first_id + np.arange(len(machine), dtype=np.int64),
        s.key: fleet.ids[machine[order]],
        s.timestamp("errors"): instants.astype("datetime64[ns]"),
        "error_type": ERROR_TYPES[error_type[order]],
        s.partition("errors"): _dates(instants),
    })


def _maintenance_frame(
    s: MaintenanceScenario, ids: np.ndarray, component: np.ndarray, hours: np.ndarray, reason: str
) -> pd.DataFrame:
    instants = _instants(s, hours)
    return pd.DataFrame({
        s.key: ids,
        s.timestamp("maintenance"): instants.astype("datetime64[ns]"),
        "component": COMPONENTS[component],
        "reason": [reason] * len(ids),
        s.partition("maintenance"): _dates(instants),
    })


def _failures_frame(s: MaintenanceScenario, ids: np.ndarray, component: np.ndarray, hours: np.ndarray) -> pd.DataFrame:
    instants = _instants(s, hours)
    return pd.DataFrame({
        s.key: ids,
        s.timestamp("failures"): instants.astype("datetime64[ns]"),
        "component": COMPONENTS[component],
        s.partition("failures"): _dates(instants),
    })


def scenario_for(config: Config, start: date, end: date, entities: int, seed: int) -> MaintenanceScenario:
    """The scenario of `config`'s use case: its sources named as this generator's outputs give the
    tables' timestamp and partition columns."""
    horizon = config.use_case.label.horizon
    if horizon.micros % HOUR_MICROS:
        # The simulation steps in hours: its true probabilities exist for whole-hour horizons only.
        raise ConfigError(f"use_case.label.horizon: the maintenance generator simulates whole hours, not {horizon}")
    sources = config.use_case.sources
    assert config.generate is not None
    return MaintenanceScenario(
        seed=seed,
        entities=entities,
        start_date=start,
        end_date=end,
        block_size=config.generate.block_size,
        horizon_hours=horizon.micros // HOUR_MICROS,
        key=config.use_case.entity.key,
        columns=tuple(
            (name, sources[name].timestamp, sources[name].partition) for name in OUTPUTS if name != "truth"
        ),
    )


GENERATOR = Generator(outputs=OUTPUTS, scenario=scenario_for, generate=generate)  # type: ignore[arg-type]
