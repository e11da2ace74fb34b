from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from nightjar.generators.demand import (
    COMPETITOR_FACTOR, DRIFT_CATEGORY, DRIFT_PRICE_FACTOR, OUTPUTS, REVISION_RATE, DemandScenario, _stores,
    simulate_block,
)

KEYS = ["store_id", "item_id"]
SCENARIO = DemandScenario(
    seed=5, entities=12 * 150, start_date=date(2026, 1, 1), end_date=date(2026, 4, 30), block_size=12 * 40, stores=12,
)


def _all(scenario: DemandScenario, output: str) -> pd.DataFrame:
    return pd.concat(
        [frame for block in range(scenario.blocks) for frame in simulate_block(scenario, block, output)],  # type: ignore[arg-type]
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def simulated() -> dict[str, pd.DataFrame]:
    return {output: _all(SCENARIO, output) for output in OUTPUTS}


@pytest.fixture(scope="module")
def sold(simulated: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each sales row beside its true mean."""
    truth = simulated["truth"].rename(columns={"ds": "sale_date"})
    rows = simulated["sales"].merge(truth, on=[*KEYS, "sale_date"], how="outer", indicator=True, validate="1:1")
    assert (rows["_merge"] == "both").all()  # a truth row for every sales row, and no other
    return rows.drop(columns="_merge")


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_same_seed_gives_the_same_rows(output: str) -> None:
    small = replace(SCENARIO, entities=2 * 12, stores=2, end_date=date(2026, 2, 10))
    pd.testing.assert_frame_equal(_all(small, output), _all(small, output))
    assert not _all(small, output).equals(_all(replace(small, seed=6), output))


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_rows_do_not_depend_on_blocks_or_the_number_of_items(output: str) -> None:
    small = replace(SCENARIO, entities=3 * 10, stores=3, end_date=date(2026, 2, 10), block_size=3 * 10)
    one_block = _all(small, output)
    item_blocks = _all(replace(small, block_size=3), output)  # one item a block
    assert replace(small, block_size=3).blocks == 10
    pd.testing.assert_frame_equal(one_block, item_blocks)
    # More items leave the first ten as they were: every item has its own random streams.
    more = _all(replace(small, entities=3 * 25), output)
    pd.testing.assert_frame_equal(more[more["item_id"] <= 10].reset_index(drop=True), one_block)


def test_a_scenario_is_stores_times_items() -> None:
    assert (SCENARIO.items, SCENARIO.items_per_block, SCENARIO.blocks) == (150, 40, 4)
    with pytest.raises(ValueError, match="not a whole number of items"):
        replace(SCENARIO, entities=100)


def test_one_sales_row_per_series_and_day_from_its_introduction(simulated: dict[str, pd.DataFrame]) -> None:
    series, sales = simulated["series"], simulated["sales"]
    assert len(series) == SCENARIO.entities and not series.duplicated(KEYS).any()
    assert (series["introduced_ts"].dt.date == series["introduced_date"]).all()
    assert not sales.duplicated([*KEYS, "ts"]).any()
    assert (sales["ts"].dt.date == sales["sale_date"]).all() and (sales["ts"] == sales["ts"].dt.normalize()).all()
    assert (sales["units"] >= 0).all() and (sales["price"] > 0).all() and set(sales["promo"]) == {0, 1}
    first_day = pd.Timestamp(SCENARIO.start_date)
    expected_days = (pd.Timestamp(SCENARIO.end_date) - series["introduced_ts"].clip(lower=first_day)).dt.days + 1
    counted = series[KEYS].merge(sales.groupby(KEYS).size().rename("days").reset_index(), on=KEYS, how="left")
    assert (counted["days"].to_numpy() == expected_days.to_numpy()).all()  # every day, 0 units or more
    assert 0.05 < sales["promo"].mean() < 0.12  # promotions run about 8% of days


def test_new_items_start_on_their_introduction_day(simulated: dict[str, pd.DataFrame]) -> None:
    series, sales, plans = simulated["series"], simulated["sales"], simulated["plans"]
    new = series[series["introduced_date"] > SCENARIO.start_date]
    assert 0.05 * len(series) < len(new) < 0.2 * len(series)
    assert new.groupby("item_id")["introduced_date"].nunique().eq(1).all()  # launched in every store at once
    first_sale = sales.groupby(KEYS)["sale_date"].min().rename("first_sale").reset_index()
    first_plan = plans.groupby(KEYS)["target_date"].min().rename("first_plan").reset_index()
    both = new.merge(first_sale, on=KEYS).merge(first_plan, on=KEYS)
    assert len(both) == len(new)
    assert (both["first_sale"] == both["introduced_date"]).all()
    assert (both["first_plan"] == both["introduced_date"]).all()
    # The others were introduced before the window, on the first of a month.
    old = series[series["introduced_date"] <= SCENARIO.start_date]
    assert (old["introduced_ts"].dt.day == 1).all()


def test_units_are_poisson_around_the_true_mean(sold: pd.DataFrame) -> None:
    # The mean of n independent Poisson draws has variance sum(mean) / n**2: 4.5 standard errors,
    # overall and on each weekday, with and without a promotion.
    def close(rows: pd.DataFrame) -> None:
        n = len(rows)
        tolerance = 4.5 * np.sqrt(rows["mean_units"].sum()) / n
        assert abs(rows["units"].mean() - rows["mean_units"].mean()) < tolerance, (len(rows), tolerance)

    close(sold)
    for _, rows in sold.groupby([sold["ts"].dt.weekday, "promo"]):
        close(rows)
    # Poisson: the variance of units around their mean is the mean.
    residual = (sold["units"] - sold["mean_units"]) ** 2
    assert residual.mean() == pytest.approx(sold["mean_units"].mean(), rel=0.03)


def test_seasonality_promotions_and_price_move_the_mean(sold: pd.DataFrame) -> None:
    by_weekday = sold.groupby(sold["ts"].dt.weekday)["mean_units"].mean()
    assert by_weekday.idxmax() == 5 and by_weekday.max() > 1.2 * by_weekday.min()  # Saturdays
    # Within a series, promotion days sell more.
    per_series = sold.groupby([*KEYS, "promo"])["mean_units"].mean().unstack().dropna()
    assert (per_series[1] > per_series[0]).mean() > 0.8


def test_slow_movers_have_mostly_zero_days(sold: pd.DataFrame) -> None:
    per_series = sold.groupby(KEYS).agg(mean=("mean_units", "mean"), zero=("units", lambda u: (u == 0).mean()))
    slow = per_series[per_series["mean"] < 0.5]
    assert len(slow) > 0.15 * len(per_series)
    assert slow["zero"].mean() > 0.7
    assert (sold["units"] == 0).mean() > 0.2


def test_the_drift_is_visible(simulated: dict[str, pd.DataFrame], sold: pd.DataFrame) -> None:
    stores = _stores(SCENARIO)
    competitor = set(stores.ids[stores.competitor].tolist())
    assert 0 < len(competitor) < SCENARIO.stores
    drift = SCENARIO.drift_date
    assert drift == SCENARIO.start_date + timedelta(days=round(0.7 * (SCENARIO.days - 1)))
    # The same items and days in both groups of stores: only the competitor tells them apart.
    rows = sold[sold["sale_date"] >= SCENARIO.start_date + timedelta(days=60)]
    after = rows["sale_date"] >= drift
    near = rows["store_id"].isin(competitor)

    def ratio(column: str, inside: pd.Series) -> float:
        return rows.loc[inside & after, column].mean() / rows.loc[inside & ~after, column].mean()

    relative = ratio("mean_units", near) / ratio("mean_units", ~near)
    assert relative == pytest.approx(COMPETITOR_FACTOR, abs=0.05)
    observed = ratio("units", near) / ratio("units", ~near)
    assert observed == pytest.approx(COMPETITOR_FACTOR, abs=0.08)
    # One category's prices rise on the drift date.
    regular = rows["promo"] == 0
    series = simulated["series"]
    category = rows["item_id"].isin(series.loc[series["category"] == DRIFT_CATEGORY, "item_id"])
    assert ratio("price", regular & category) / ratio("price", regular & ~category) == pytest.approx(
        DRIFT_PRICE_FACTOR, abs=0.05)
    # Promotions lift less after it: per item, the true mean on promotion days over regular days
    # falls by the lost lift, (1 + (L - 1) f) / L, whatever the item's level, prices or stores.
    lifts = rows.assign(after=after, promo_day=rows["promo"] == 1).groupby(["item_id", "after", "promo_day"])["mean_units"].mean()
    per_item = (lifts.xs(True, level="promo_day") / lifts.xs(False, level="promo_day")).unstack("after").dropna()
    change = per_item[True] / per_item[False]
    assert len(change) > 100 and change.median() == pytest.approx(0.72, abs=0.08)



def test_plans_are_known_ahead_and_the_last_one_happens(simulated: dict[str, pd.DataFrame]) -> None:
    plans, sales = simulated["plans"], simulated["sales"]
    target_start = pd.to_datetime(plans["target_date"])
    lead = target_start - plans["known_at"]
    assert (lead > pd.Timedelta(0)).all() and (lead <= pd.Timedelta(days=SCENARIO.plan_lead_days)).all()
    assert (plans["known_at"].dt.date == plans["known_date"]).all()
    assert plans["known_date"].max() == SCENARIO.end_date  # nothing known after the window
    assert plans["target_date"].max() == SCENARIO.end_date + timedelta(days=SCENARIO.plan_lead_days)
    assert not plans.duplicated([*KEYS, "target_date", "known_at"]).any()
    # Most plans once, 14 days ahead; some revised later.
    per_target = plans.groupby([*KEYS, "target_date"]).size()
    assert set(per_target.unique()) == {1, 2}
    assert (per_target == 2).mean() == pytest.approx(REVISION_RATE, abs=0.01)
    revised = plans.merge(per_target[per_target == 2].rename("n").reset_index(), on=[*KEYS, "target_date"])
    firsts = revised.sort_values("known_at").groupby([*KEYS, "target_date"]).first()
    lasts = revised.sort_values("known_at").groupby([*KEYS, "target_date"]).last()
    changed = (firsts["planned_price"] != lasts["planned_price"]) | (firsts["planned_promo"] != lasts["planned_promo"])
    assert changed.mean() > 0.8  # (a revised price may round to the same cents)
    # What happens on a day is the last plan known before it.
    last = plans.sort_values("known_at").groupby([*KEYS, "target_date"]).last().reset_index()
    joined = sales.merge(last, left_on=[*KEYS, "sale_date"], right_on=[*KEYS, "target_date"], how="left")
    assert joined["planned_price"].notna().all()
    assert (joined["planned_price"] == joined["price"]).all() and (joined["planned_promo"] == joined["promo"]).all()
