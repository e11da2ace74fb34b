from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from nightjar.generators.maintenance import OUTPUTS, MaintenanceScenario, _failure_probability, simulate_block

SCENARIO = MaintenanceScenario(
    seed=5, entities=600, start_date=date(2026, 1, 1), end_date=date(2026, 2, 28), block_size=300, horizon_hours=48,
)


def _block(scenario: MaintenanceScenario, block: int, output: str) -> pd.DataFrame:
    return pd.concat(list(simulate_block(scenario, block, output)), ignore_index=True)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def simulated() -> dict[str, pd.DataFrame]:
    return {
        output: pd.concat([_block(SCENARIO, b, output) for b in range(SCENARIO.blocks)], ignore_index=True)
        for output in OUTPUTS
    }


@pytest.mark.parametrize("output", ["machines", "errors", "maintenance", "failures", "truth"])
def test_the_same_seed_gives_the_same_rows(output: str) -> None:
    small = replace(SCENARIO, entities=40, block_size=40, end_date=date(2026, 1, 20))
    pd.testing.assert_frame_equal(_block(small, 0, output), _block(small, 0, output))


def test_a_block_does_not_depend_on_the_fleet_size() -> None:
    small = replace(SCENARIO, entities=80, block_size=40, end_date=date(2026, 1, 10))
    bigger = replace(small, entities=200)
    pd.testing.assert_frame_equal(_block(small, 1, "failures"), _block(bigger, 1, "failures"))
    assert not _block(small, 1, "failures").equals(_block(replace(small, seed=6), 1, "failures"))


def test_telemetry_is_one_reading_per_machine_hour_on_the_hour(simulated: dict[str, pd.DataFrame]) -> None:
    readings, machines = simulated["telemetry"], simulated["machines"]
    assert not readings.duplicated(["machine_id", "ts"]).any()
    assert (readings["ts"].dt.minute == 0).all() and (readings["ts"].dt.second == 0).all()
    assert (readings["ts"].dt.date == readings["telemetry_date"]).all()
    installed = readings.merge(machines, on="machine_id")
    assert (installed["ts"] >= installed["install_ts"]).all()
    hours = SCENARIO.days * 24
    in_service = np.clip(hours - ((machines["install_ts"] - pd.Timestamp(SCENARIO.start_date)) / pd.Timedelta(hours=1)).clip(lower=0), 0, hours)
    dropout = 1 - len(readings) / in_service.sum()
    assert 0 < dropout < 0.01  # a few sensor dropouts, no more
    for sensor, low, high in [("voltage", 0, 400), ("rotation", 0, 1000), ("pressure", 0, 300), ("vibration", 0, 200)]:
        assert readings[sensor].between(low, high).all(), sensor


def test_machines_are_unique_and_some_are_new(simulated: dict[str, pd.DataFrame]) -> None:
    machines = simulated["machines"]
    assert machines["machine_id"].is_unique and len(machines) == SCENARIO.entities
    assert (machines["install_ts"].dt.date == machines["install_date"]).all()
    new = machines["install_date"] >= SCENARIO.start_date
    assert 0 < new.sum() < 0.1 * len(machines)
    assert (machines.loc[~new, "install_ts"].dt.day == 1).all()  # commissioned on the first of a month


def test_a_failed_component_is_replaced_at_the_next_hour(simulated: dict[str, pd.DataFrame]) -> None:
    failures, maintenance = simulated["failures"], simulated["maintenance"]
    assert len(failures) > 100
    replaced = maintenance[maintenance["reason"] == "failure"]
    expected = failures.assign(ts=failures["ts"].dt.floor("h") + pd.Timedelta(hours=1))[["machine_id", "ts", "component"]]
    # Failures in the last hour of the window are replaced after it.
    expected = expected[expected["ts"] < pd.Timestamp(SCENARIO.end_date + timedelta(days=1))]
    pd.testing.assert_frame_equal(
        expected.sort_values(["machine_id", "ts", "component"]).reset_index(drop=True),
        replaced[["machine_id", "ts", "component"]].sort_values(["machine_id", "ts", "component"]).reset_index(drop=True),
    )
    # Replacements from before the window tell how old each component is from the first day on.
    assert (maintenance["maintenance_date"] < SCENARIO.start_date).sum() > SCENARIO.entities


def _labelled_truth(simulated: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The truth of each machine and date beside whether it failed in [cutoff, cutoff + 48h)."""
    truth = simulated["truth"].copy()
    truth["cutoff"] = pd.to_datetime(truth["ds"]) + pd.Timedelta(days=1)
    pairs = truth.merge(simulated["failures"][["machine_id", "ts"]], on="machine_id", how="left")
    pairs["failed"] = (pairs["ts"] >= pairs["cutoff"]) & (pairs["ts"] < pairs["cutoff"] + pd.Timedelta(hours=48))
    failed = pairs.groupby(["machine_id", "ds"], as_index=False)["failed"].any()
    labelled = truth.merge(failed, on=["machine_id", "ds"])
    return labelled[labelled["ds"] <= SCENARIO.end_date - timedelta(days=2)]  # whole label windows only


def test_truth_is_calibrated_and_informative(simulated: dict[str, pd.DataFrame]) -> None:
    labelled = _labelled_truth(simulated)
    assert 0.03 < labelled["failed"].mean() < 0.15
    # The true probabilities predict as many failures as happen, overall and by decile.
    assert labelled["failure_probability"].mean() == pytest.approx(labelled["failed"].mean(), rel=0.1)
    deciles = pd.qcut(labelled["failure_probability"], 10, labels=False, duplicates="drop")
    by_decile = labelled.groupby(deciles).agg(predicted=("failure_probability", "mean"), observed=("failed", "mean"))
    top = by_decile.iloc[-1]
    assert top["observed"] == pytest.approx(top["predicted"], rel=0.15)
    assert roc_auc_score(labelled["failed"], labelled["failure_probability"]) > 0.75
    # No threshold rule: failures also happen to machines the truth calls fairly safe.
    assert labelled.loc[labelled["failure_probability"] < 0.05, "failed"].sum() > 0


def test_failure_probability_follows_the_planned_replacement() -> None:
    rate = np.full((1, 4), 1 / 1000.0)
    frailty = np.zeros(1)
    worn = np.full((1, 4), 1000.0)  # degradation 1: likely, not certain, to fail within 48 hours
    later = _failure_probability(worn, np.full((1, 4), 1000.0), rate, frailty, 48)
    replaced_now = _failure_probability(worn, np.zeros((1, 4)), rate, frailty, 48)
    assert replaced_now[0] < 0.01 < later[0]
    # A longer horizon can only add risk.
    assert _failure_probability(worn, np.full((1, 4), 1000.0), rate, frailty, 24)[0] < later[0]
