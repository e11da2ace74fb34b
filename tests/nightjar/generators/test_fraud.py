from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import average_precision_score

from nightjar.config_loader import load_config
from nightjar.errors import ConfigError
from nightjar.generators import generator, outputs
from nightjar.generators.fraud import (
    CATEGORIES, COMPROMISED, DISPUTE_P, GENERATOR, LEGIT, OUTPUTS, REPORT_P, STOLEN, TESTING, FraudScenario,
    _merchants, fraud_probability, schema, generate, simulate_block, simulate_days,
)

DAY = 86_400
SCENARIO = FraudScenario(
    seed=11, entities=1000, start_date=date(2026, 1, 1), end_date=date(2026, 1, 20), block_size=500,
    horizon_seconds=60 * DAY,
)
# Large enough for the statistical checks (about 1.5 million transactions, 6,000 frauds); numpy only.
STATS = replace(SCENARIO, entities=10_000, block_size=5000, end_date=date(2026, 1, 30))


def _all(scenario: FraudScenario, output: str) -> pd.DataFrame:
    return pd.concat(
        [frame for block in range(scenario.blocks) for frame in simulate_block(scenario, block, output)],  # type: ignore[arg-type]
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def simulated() -> dict[str, pd.DataFrame]:
    return {output: _all(SCENARIO, output) for output in OUTPUTS}


@pytest.fixture(scope="module")
def outcomes() -> pd.DataFrame:
    """Every transaction of STATS with its hidden state and drawn outcome, chargebacks after the
    window's end included."""
    merchants = _merchants(STATS)
    parts = []
    for block in range(STATS.blocks):
        for day in simulate_days(STATS, block):
            e = day.events
            parts.append(pd.DataFrame({
                "card_id": day.card_ids, "merchant": e.merchant, "second": e.second, "amount": e.amount,
                "online": e.online, "regime": e.regime, "q": e.q, "fraud": day.fraud, "reported": day.reported,
                "truth": day.truth, "label": day.label,
            }))
    frame = pd.concat(parts, ignore_index=True)
    frame["merchant_id"] = merchants.ids[frame["merchant"]]
    return frame


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_same_seed_gives_the_same_rows(output: str) -> None:
    small = replace(SCENARIO, entities=500, block_size=250, end_date=date(2026, 1, 10))
    pd.testing.assert_frame_equal(_all(small, output), _all(small, output))
    assert not _all(small, output).equals(_all(replace(small, seed=12), output))


def test_merchants_and_their_compromises_do_not_depend_on_the_blocks() -> None:
    # Drawn from the seed alone: every block of cards sees the same merchants.
    one_block = replace(STATS, block_size=STATS.entities)
    for other in (replace(STATS, block_size=1000), replace(STATS, block_size=3000)):
        pd.testing.assert_frame_equal(_all(one_block, "merchants"), _all(other, "merchants"))
        for field in ("category", "popularity", "opened", "compromised", "start_day", "end_day", "share"):
            np.testing.assert_array_equal(getattr(_merchants(one_block), field), getattr(_merchants(other), field))
    assert list(simulate_block(STATS, 1, "merchants")) == []  # written once, by block 0


def test_a_block_does_not_depend_on_the_cards_after_it() -> None:
    # 600 and 900 cards both have the minimum of 50 merchants: the first block is the same.
    small = replace(SCENARIO, entities=600, block_size=300, end_date=date(2026, 1, 4))
    bigger = replace(small, entities=900)
    assert small.merchants == bigger.merchants == 50
    for output in ("cards", "transactions", "truth"):
        pd.testing.assert_frame_equal(
            pd.concat(list(simulate_block(small, 0, output))), pd.concat(list(simulate_block(bigger, 0, output))),  # type: ignore[arg-type]
        )


def test_cards_and_merchants_are_well_formed(simulated: dict[str, pd.DataFrame]) -> None:
    cards, merchants = simulated["cards"], simulated["merchants"]
    assert cards["card_id"].is_unique and len(cards) == SCENARIO.entities
    assert (cards["issued_ts"].dt.date == cards["issued_date"]).all()
    assert set(cards["card_type"]) == {"debit", "credit"}
    new = cards["issued_date"] >= SCENARIO.start_date
    assert 0 < new.sum() < 0.1 * len(cards) and (cards["issued_date"] <= SCENARIO.end_date).all()
    assert merchants["merchant_id"].is_unique and len(merchants) == SCENARIO.merchants == 50
    assert replace(SCENARIO, entities=200_000).merchants == 10_000
    assert (merchants["opened_ts"].dt.date == merchants["opened_date"]).all()
    assert set(merchants["category"]) == set(CATEGORIES)


def test_transactions_are_well_formed(simulated: dict[str, pd.DataFrame]) -> None:
    tx, cards, merchants = simulated["transactions"], simulated["cards"], simulated["merchants"]
    assert tx["transaction_id"].is_unique
    assert (tx["ts"].dt.date == tx["tx_date"]).all()
    assert tx["tx_date"].between(SCENARIO.start_date, SCENARIO.end_date).all()
    assert (tx["ts"] == tx["ts"].dt.floor("s")).all()  # whole seconds...
    assert tx.duplicated(["card_id", "ts"]).any()      # ...so a card sometimes has two in one
    assert (tx["amount"] > 0).all() and (tx["amount"] == tx["amount"].round(2)).all()
    assert set(tx["channel"]) == {"in_store", "online"}
    joined = tx.merge(cards, on="card_id", validate="m:1").merge(merchants, on="merchant_id", validate="m:1")
    assert len(joined) == len(tx)
    assert (joined["ts"] >= joined["issued_ts"]).all()
    assert (joined["ts"] > joined["opened_ts"]).all()
    assert (joined["merchant_category"] == joined["category"]).all()
    per_card_day = len(tx) / SCENARIO.entities / SCENARIO.days
    assert 4.5 < per_card_day < 5.5
    # Few at night, more at the weekend than on Sundays.
    assert (tx["ts"].dt.hour < 6).mean() < 0.08
    per_weekday = tx.groupby(tx["ts"].dt.weekday).size() / pd.Series(pd.to_datetime(tx["tx_date"].unique()).weekday).value_counts()
    assert per_weekday[4] > 1.2 * per_weekday[6]


def test_chargebacks_are_the_drawn_reports_known_by_the_end(simulated: dict[str, pd.DataFrame]) -> None:
    chargebacks, tx = simulated["chargebacks"], simulated["transactions"]
    assert chargebacks["transaction_id"].is_unique and len(chargebacks) > 20
    joined = chargebacks.merge(tx, on="transaction_id", validate="1:1")
    assert len(joined) == len(chargebacks)
    delay = joined["reported_at"] - joined["ts"]
    assert (delay >= pd.Timedelta(days=2)).all() and (delay < pd.Timedelta(days=45)).all()
    assert (chargebacks["reported_at"].dt.date == chargebacks["reported_date"]).all()
    assert (chargebacks["reported_date"] <= SCENARIO.end_date).all()
    # Exactly the drawn reports whose instant is within the window; with a 60-day maturity every
    # report is within it, so each is a drawn positive.
    end = SCENARIO.days * DAY
    expected = []
    for block in range(SCENARIO.blocks):
        for day in simulate_days(SCENARIO, block):
            known = day.reported & (day.events.second + day.delay_s < end)
            assert (day.label == day.reported).all()
            expected.append(day.ids[known])
    assert sorted(chargebacks["transaction_id"]) == sorted(np.concatenate(expected).tolist())


def test_the_fraud_rate_and_its_scenarios(outcomes: pd.DataFrame) -> None:
    assert 0.003 < outcomes["q"].mean() < 0.006
    assert outcomes["fraud"].mean() == pytest.approx(outcomes["q"].mean(), rel=0.1)
    share = outcomes.groupby("regime")["fraud"].sum() / outcomes["fraud"].sum()
    assert share[STOLEN] > 0.35 and share[TESTING] > 0.05 and share[COMPROMISED] > 0.1
    assert share.get(LEGIT, 0) == 0  # the cardholders' own transactions elsewhere are never frauds


def _z(label: pd.Series, probability: pd.Series) -> float:
    """The drawn positives' excess over the expected, in standard deviations (labels are
    independent Bernoulli draws of the given probabilities)."""
    excess, variance = label.sum() - probability.sum(), (probability * (1 - probability)).sum()
    if variance == 0:  # certain outcomes: any excess is impossible
        return 0.0 if excess == 0 else float(np.copysign(np.inf, excess))
    return float(excess / np.sqrt(variance))


def test_the_truth_is_the_law_the_labels_are_drawn_from(outcomes: pd.DataFrame) -> None:
    label, truth = outcomes["label"], outcomes["truth"]
    # 5 standard deviations, overall and within each regime: with a fixed seed the draw is fixed,
    # and a true law lands that far out with probability 6e-7.
    assert abs(_z(label, truth)) < 5
    for regime, rows in outcomes.groupby("regime"):
        assert abs(_z(rows["label"], rows["truth"])) < 5, regime
    # The same checks catch a truth that forgets unreported frauds, the compromised merchants'
    # frauds, or the disputes of legitimate transactions.
    q, regime = outcomes["q"], outcomes["regime"]
    wrong = {
        "all frauds reported": q + (1 - q) * DISPUTE_P,
        "no compromised merchants": pd.Series(fraud_probability(np.where(regime == COMPROMISED, 0.0, q), STATS.horizon_seconds)),
        "no disputes": q * REPORT_P,
    }
    for what, probability in wrong.items():
        z = [_z(label, probability)] + [_z(label[regime == r], probability[regime == r]) for r in regime.unique()]
        assert max(abs(value) for value in z) > 5, what


def test_the_truth_predicts_well_but_not_perfectly(outcomes: pd.DataFrame) -> None:
    precision = average_precision_score(outcomes["label"], outcomes["truth"])
    assert 0.6 < precision < 0.97
    assert outcomes["truth"].between(0, 1).all() and outcomes["truth"].max() < 1


def test_the_scenarios_leave_their_signatures(simulated: dict[str, pd.DataFrame], outcomes: pd.DataFrame) -> None:
    rows = simulated["transactions"].merge(simulated["truth"], on="transaction_id", validate="1:1")
    rows = rows.sort_values(["card_id", "ts", "transaction_id"])
    rows["relative_amount"] = rows["amount"] / rows.groupby("card_id")["amount"].transform("median")
    rows["since_previous_s"] = rows.groupby("card_id")["ts"].diff().dt.total_seconds()
    rows["online"] = rows["channel"] == "online"
    by = rows.groupby("regime").agg(
        truth=("fraud_probability", "mean"), relative_amount=("relative_amount", "median"),
        since_previous_s=("since_previous_s", "median"), online=("online", "mean"), max_amount=("amount", "max"),
        n=("amount", "size"),
    )
    legit, stolen, testing = by.loc["legit"], by.loc["stolen_card"], by.loc["card_testing"]
    assert stolen["n"] > 100 and testing["n"] > 20
    # Stolen cards: bursts minutes apart, well above the card's habit, mostly online.
    assert stolen["truth"] > 100 * legit["truth"]
    assert stolen["relative_amount"] > 4 and legit["relative_amount"] == pytest.approx(1, abs=0.1)
    assert stolen["since_previous_s"] < 3600 < legit["since_previous_s"]
    assert stolen["online"] > 0.7 > 0.3 > legit["online"]
    # Card testing: small amounts in quick succession, online.
    testing_rows = rows[rows["regime"] == "card_testing"]
    assert (testing_rows["amount"] < 3).mean() > 0.8 and testing["online"] == 1
    assert testing["since_previous_s"] < 300
    # Compromised merchants: cards whose data a merchant gave away during its compromised period are
    # spent elsewhere days later, on more than the card's habit; the cardholders' own transactions
    # at the merchant are never frauds.
    compromised = outcomes["regime"] == COMPROMISED
    assert compromised.sum() > 500 and (outcomes.loc[outcomes["regime"] == LEGIT, "q"] == 0).all()
    merchants = _merchants(STATS)
    periods = pd.DataFrame({"merchant": merchants.compromised, "start": merchants.start_day * DAY,
                            "end": merchants.end_day * DAY})
    own = outcomes[outcomes["regime"] == LEGIT].merge(periods, on="merchant")
    own = own[own["second"].between(own["start"], own["end"] - 1)]
    first_exposure = own.groupby("card_id")["second"].min()
    frauds = outcomes[compromised]
    exposed_before = frauds["second"] >= frauds["card_id"].map(first_exposure) + DAY
    assert exposed_before.all()
    assert frauds["card_id"].nunique() > 100
    # Seldom at a merchant that gave the card away (only by chance), mostly online, several times the
    # card's median.
    at_the_breach = len(frauds.merge(own[["card_id", "merchant"]].drop_duplicates(), on=["card_id", "merchant"]))
    assert at_the_breach < 0.05 * len(frauds)
    medians = outcomes[outcomes["regime"] == LEGIT].groupby("card_id")["amount"].median()
    assert (frauds["amount"] / frauds["card_id"].map(medians)).median() > 2.5
    assert frauds["online"].mean() > 0.6


def test_spark_frames_match_the_simulation_and_schema(spark: SparkSession) -> None:
    tiny = replace(SCENARIO, entities=300, block_size=100, end_date=date(2026, 1, 6), horizon_seconds=10 * DAY)
    for output in OUTPUTS:
        frame = generate(spark, tiny, output)
        assert frame.schema == schema(tiny, output)
        expected = _all(tiny, output)
        assert len(expected) > 0, output
        assertDataFrameEqual(frame, spark.createDataFrame(expected, schema(tiny, output)))


def test_the_use_case_makes_its_scenario(tmp_path: Path) -> None:
    config = load_config("test", [f"lake.root={tmp_path}"], use_case="fraud")
    assert generator(config) is GENERATOR
    assert [(o.name, o.table, o.partition) for o in outputs(config, GENERATOR)] == [
        ("cards", "cards", "issued_date"), ("merchants", "merchants", "opened_date"),
        ("transactions", "transactions", "tx_date"), ("chargebacks", "chargebacks", "reported_date"),
        ("truth", "truth", "ds"),
    ]
    scenario = GENERATOR.scenario(config, date(2026, 1, 1), date(2026, 1, 31), 1000, 3)
    assert scenario.horizon_seconds == 60 * DAY and scenario.key == "transaction_id"  # type: ignore[attr-defined]
    assert scenario.parameters()["horizon_seconds"] == 60 * DAY
    # A shorter maturity leaves out the reports after it: the truth follows.
    shorter = GENERATOR.scenario(
        load_config("test", [f"lake.root={tmp_path}", "use_case.label.horizon=10d"], use_case="fraud"),
        date(2026, 1, 1), date(2026, 1, 31), 1000, 3,
    )
    assert fraud_probability(np.ones(1), shorter.horizon_seconds)[0] == pytest.approx(REPORT_P * np.sqrt(8 / 43))  # type: ignore[attr-defined]
    other = load_config("test", [f"lake.root={tmp_path}", "use_case.label.source=transactions"], use_case="fraud")
    with pytest.raises(ConfigError, match="chargebacks"):
        GENERATOR.scenario(other, date(2026, 1, 1), date(2026, 1, 31), 1000, 3)


def test_a_shorter_maturity_labels_only_the_early_reports() -> None:
    short = replace(SCENARIO, entities=2000, block_size=2000, horizon_seconds=10 * DAY)
    labels, truths, late = [], [], 0
    for day in simulate_days(short, 0):
        assert (day.label == (day.reported & (day.delay_s < 10 * DAY))).all()
        late += int((day.reported & ~day.label).sum())
        labels.append(day.label)
        truths.append(day.truth)
    label, truth = pd.Series(np.concatenate(labels)), pd.Series(np.concatenate(truths))
    assert late > 0 and abs(_z(label, truth)) < 5
    assert truth.max() == pytest.approx(REPORT_P * np.sqrt((10 - 2) / 43))
