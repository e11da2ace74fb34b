"""The event grain's features against a brute-force oracle: every window [t - w, t) recomputed
from all events for more than 10,000 scored events, with equal timestamps and window boundaries."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from features.definitions import expand
from features.events import event_features, plan_of, window_features
from nightjar.config import Config
from nightjar.config_loader import load_config
from nightjar.durations import HOUR_MICROS

FIRST, LAST = date(2026, 1, 1), date(2026, 2, 14)
SCORED = [date(2026, 2, 11), date(2026, 2, 12), date(2026, 2, 13), date(2026, 2, 14)]
EPOCH = datetime(1970, 1, 1)
CATEGORIES = ["grocery", "fuel", "restaurant", "retail", "online_retail", "electronics", "travel", "digital_goods"]
WINDOWS = {"1h": HOUR_MICROS, "24h": 24 * HOUR_MICROS, "7d": 7 * 24 * HOUR_MICROS, "30d": 30 * 24 * HOUR_MICROS}


@pytest.fixture(scope="module")
def fraud_config() -> Config:
    return load_config("test", use_case="fraud")


def _micros(day: date) -> int:
    return int((datetime(day.year, day.month, day.day) - EPOCH).total_seconds()) * 1_000_000


def _transactions(seed: int = 5, per_day: int = 3000) -> pd.DataFrame:
    """Random card transactions, with instants on whole minutes (ties), copies at the same instant,
    and events exactly one window before scored ones (boundaries)."""
    rng = np.random.default_rng(seed)
    days = (LAST - FIRST).days + 1
    n = days * per_day
    day_index = np.repeat(np.arange(days), per_day)
    seconds = rng.integers(0, 86_400, n)
    seconds = np.where(rng.random(n) < 0.4, seconds - seconds % 60, seconds)  # whole minutes: many ties
    time = _micros(FIRST) + day_index * 86_400_000_000 + seconds * 1_000_000 + rng.integers(0, 1000, n) * (rng.random(n) < 0.1)
    frame = pd.DataFrame({
        "card_id": rng.integers(0, 300, n).astype("float"),
        "merchant_id": rng.integers(0, 60, n).astype("float"),
        "time": time,
        "amount": np.round(rng.lognormal(3, 1, n), 2),
        "channel": rng.choice(["in_store", "online"], n),
        "merchant_category": rng.choice([*CATEGORIES, "unlisted"], n),
    })
    # Copies of some scored events at the same instant, by the same card.
    scored_rows = frame[frame["time"] >= _micros(SCORED[0])]
    copies = scored_rows.sample(600, random_state=seed).assign(amount=lambda f: f["amount"] + 1.0)
    # Events exactly a window before scored events, and one microsecond inside or outside it.
    anchors = scored_rows.sample(800, random_state=seed + 1)
    bounds = []
    for i, length in enumerate(WINDOWS.values()):
        for nudge in (0, -1, 1):
            part = anchors.iloc[i * 200:(i + 1) * 200].copy()
            part["time"] = part["time"] - length + nudge
            bounds.append(part)
    frame = pd.concat([frame, copies, *bounds], ignore_index=True)
    n = len(frame)
    # Missing and non-finite values, missing cards and merchants.
    frame.loc[rng.random(n) < 0.01, "amount"] = np.nan
    frame.loc[rng.random(n) < 0.003, "amount"] = np.inf
    frame.loc[rng.random(n) < 0.005, "card_id"] = np.nan
    frame.loc[rng.random(n) < 0.005, "merchant_id"] = np.nan
    frame["transaction_id"] = np.arange(n, dtype=np.int64) + 1_000
    frame["ts"] = pd.to_datetime(frame["time"], unit="us")
    frame["tx_date"] = frame["ts"].dt.date
    # A few events filed in the wrong day's partition: dropped by the engine, by the oracle too.
    wrong = rng.random(n) < 0.002
    frame.loc[wrong, "tx_date"] = frame.loc[wrong, "tx_date"] - timedelta(days=1)
    frame["misfiled"] = wrong
    return frame.sort_values("transaction_id").reset_index(drop=True)


def _chargebacks(transactions: pd.DataFrame, seed: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    reported = transactions.sample(frac=0.03, random_state=seed)
    delay_days = rng.uniform(-3, 70, len(reported))  # some before their transaction, some past 60 days
    frame = pd.DataFrame({
        "transaction_id": reported["transaction_id"].to_numpy(),
        "reported_at": pd.to_datetime(reported["time"].to_numpy() + (delay_days * 86_400e6).astype(np.int64), unit="us"),
    })
    frame = pd.concat([frame, pd.DataFrame({"transaction_id": [10**9], "reported_at": [pd.Timestamp("2026-02-01")]})])
    frame["reported_date"] = frame["reported_at"].dt.date
    return frame[frame["reported_date"] <= LAST].reset_index(drop=True)


def _spark_frames(spark: SparkSession, transactions: pd.DataFrame, chargebacks: pd.DataFrame) -> dict[str, DataFrame]:
    tx = spark.createDataFrame(transactions.drop(columns=["time", "misfiled"])).selectExpr(
        "transaction_id", "cast(card_id as bigint) card_id", "cast(merchant_id as bigint) merchant_id", "ts",
        "amount", "channel", "merchant_category", "tx_date")
    return {"transactions": tx, "chargebacks": spark.createDataFrame(chargebacks)}


def _oracle(transactions: pd.DataFrame, chargebacks: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Every feature of every scored event, from all events of its windows, one event at a time
    per card and merchant (vectorised over the history, never over the windows' structure)."""
    kept = transactions[~transactions["misfiled"]]
    scored = kept[kept["tx_date"].isin(SCORED)]
    finite = np.isfinite(kept["amount"].to_numpy())
    units = np.where(finite, np.round(np.nan_to_num(kept["amount"].to_numpy(), posinf=0) * 1e6), 0).astype(np.int64)
    history = kept.assign(units=units, finite=finite)
    merchants = kept.set_index("transaction_id")[["merchant_id", "time"]]
    cb = chargebacks.join(merchants, on="transaction_id", how="inner")
    cb_time = (cb["reported_at"] - pd.Timestamp(0)).dt.total_seconds().mul(1e6).round().astype(np.int64).to_numpy()
    valid = (cb["time"].to_numpy() <= cb_time) & (cb_time - cb["time"].to_numpy() <= 60 * 24 * HOUR_MICROS)
    cb = cb[valid].assign(reported=cb_time[valid])
    def arrays(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {column: rows[column].to_numpy()
                for column in ("time", "units", "finite", "amount", "merchant_id", "merchant_category", "channel")}

    by_card = {card: arrays(rows) for card, rows in history.groupby("card_id")}
    by_merchant = {m: arrays(rows) for m, rows in history.groupby("merchant_id")}
    cb_by_merchant = {m: rows["reported"].to_numpy() for m, rows in cb.groupby("merchant_id")}
    empty = arrays(history.iloc[:0])
    out = []
    for row in scored.itertuples():
        t = row.time
        values: dict[str, object] = {"transaction_id": row.transaction_id}
        card = by_card.get(row.card_id, empty) if not np.isnan(row.card_id) else empty
        merchant = by_merchant.get(row.merchant_id, empty) if not np.isnan(row.merchant_id) else empty
        for window, length in WINDOWS.items():
            inside = (card["time"] >= t - length) & (card["time"] < t)
            ok = inside & card["finite"]
            n_values = int(ok.sum())
            total = int(card["units"][inside].sum()) / 1e6
            values[f"card_count_{window}"] = int(inside.sum())
            values[f"card_amount_sum_{window}"] = total
            values[f"card_amount_mean_{window}"] = total / n_values if n_values else np.nan
            values[f"card_amount_max_{window}"] = card["amount"][ok].max() if n_values else np.nan
            merchants = card["merchant_id"][inside]
            values[f"card_merchant_id_distinct_count_{window}"] = len(np.unique(merchants[~np.isnan(merchants)]))
            if window in ("1h", "24h"):
                values[f"card_amount_min_{window}"] = card["amount"][ok].min() if n_values else np.nan
            if window == "30d":
                values["card_hours_since_last_30d"] = (t - card["time"][inside].max()) / HOUR_MICROS if inside.any() else np.nan
                same_merchant = card["merchant_id"] == row.merchant_id  # never equal for a missing merchant
                values["card_merchant_count_30d"] = int((inside & same_merchant).sum())
                in_category = inside & (card["merchant_category"] == row.merchant_category)
                category_ok = in_category & card["finite"]
                values["card_category_count_30d"] = int(in_category.sum())
                values["card_category_amount_mean_30d"] = (int(card["units"][in_category].sum()) / 1e6 / int(category_ok.sum())
                                                           if category_ok.any() else np.nan)
                values["card_category_amount_max_30d"] = card["amount"][category_ok].max() if category_ok.any() else np.nan
                values["card_channel_count_30d"] = int((inside & (card["channel"] == row.channel)).sum())
            m_inside = (merchant["time"] >= t - length) & (merchant["time"] < t)
            m_ok = m_inside & merchant["finite"]
            m_total = int(merchant["units"][m_inside].sum()) / 1e6
            values[f"merchant_count_{window}"] = int(m_inside.sum())
            values[f"merchant_amount_mean_{window}"] = m_total / int(m_ok.sum()) if m_ok.any() else np.nan
        reports = cb_by_merchant.get(row.merchant_id, np.zeros(0, np.int64))
        for window in ("7d", "30d"):
            values[f"merchant_chargebacks_count_{window}"] = int(((reports >= t - WINDOWS[window]) & (reports < t)).sum())
        amount = row.amount
        values["amount"] = amount
        values["channel"] = ["in_store", "online"].index(row.channel)
        values["merchant_category"] = CATEGORIES.index(row.merchant_category) if row.merchant_category in CATEGORIES else np.nan
        values["hour_of_day"] = (row.time // HOUR_MICROS) % 24
        for name, numerator, denominator in (
            ("amount_to_card_mean_30d", "amount", "card_amount_mean_30d"),
            ("amount_to_card_max_30d", "amount", "card_amount_max_30d"),
            ("amount_to_card_category_mean_30d", "amount", "card_category_amount_mean_30d"),
            ("amount_to_card_category_max_30d", "amount", "card_category_amount_max_30d"),
            ("card_category_share_30d", "card_category_count_30d", "card_count_30d"),
            ("card_channel_share_30d", "card_channel_count_30d", "card_count_30d"),
            ("merchant_chargeback_rate_30d", "merchant_chargebacks_count_30d", "merchant_count_30d"),
            ("merchant_chargeback_rate_7d", "merchant_chargebacks_count_7d", "merchant_count_7d"),
            ("merchant_chargebacks_recent_share", "merchant_chargebacks_count_7d", "merchant_chargebacks_count_30d"),
        ):
            values[name] = _ratio(values[numerator], values[denominator])
        out.append(values)
    return pd.DataFrame(out)[["transaction_id", *names]]


def _ratio(numerator: float, denominator: float) -> float:
    """A ratio feature: missing when either side is, or the denominator is 0."""
    if numerator != numerator or denominator != denominator or denominator == 0:
        return np.nan
    return numerator / denominator


def _assert_same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    found = found.sort_values("transaction_id").reset_index(drop=True)
    expected = expected.sort_values("transaction_id").reset_index(drop=True)
    assert found["transaction_id"].tolist() == expected["transaction_id"].tolist()
    mismatches = {}
    for column in expected.columns:
        a = pd.to_numeric(found[column]).to_numpy(np.float64)
        b = pd.to_numeric(expected[column]).to_numpy(np.float64)
        wrong = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if wrong.any():
            mismatches[column] = (int(wrong.sum()), found.loc[wrong, "transaction_id"].head(3).tolist())
    assert not mismatches, mismatches


def test_event_features_equal_the_brute_force_oracle_on_10000_events(spark: SparkSession, fraud_config: Config) -> None:
    feature_set = expand(fraud_config)
    transactions = _transactions()
    chargebacks = _chargebacks(transactions)
    frames = _spark_frames(spark, transactions, chargebacks)
    found = event_features(feature_set, fraud_config.use_case.sources, frames, SCORED, buckets=4).toPandas()
    expected = _oracle(transactions, chargebacks, feature_set.names)
    assert len(expected) >= 10_000
    # The tricky cases are there: ties with scored events and events exactly a window before them.
    assert transactions.duplicated(["card_id", "time"]).sum() > 500
    _assert_same(found[["transaction_id", *feature_set.names]], expected)
    assert set(found["ds"]) == set(SCORED) and found["ts"].notna().all()


def test_a_later_chargeback_changes_no_feature_of_an_earlier_event(spark: SparkSession, fraud_config: Config) -> None:
    feature_set = expand(fraud_config)
    transactions = _transactions(seed=8, per_day=800)
    chargebacks = _chargebacks(transactions, seed=9)
    day = [SCORED[0]]
    before = event_features(feature_set, fraud_config.use_case.sources,
                            _spark_frames(spark, transactions, chargebacks), day, buckets=3).toPandas()
    cutoff = pd.Timestamp(SCORED[1])
    # Chargebacks reported after the scored day (for its own transactions and earlier ones).
    late = transactions[transactions["tx_date"] <= SCORED[0]].sample(400, random_state=1)
    more = pd.DataFrame({"transaction_id": late["transaction_id"].to_numpy(),
                         "reported_at": cutoff + pd.to_timedelta(np.arange(400) % 30, unit="h")})
    more["reported_date"] = more["reported_at"].dt.date
    after = event_features(feature_set, fraud_config.use_case.sources,
                           _spark_frames(spark, transactions, pd.concat([chargebacks, more], ignore_index=True)),
                           day, buckets=3).toPandas()
    _assert_same(after[["transaction_id", *feature_set.names]], before[["transaction_id", *feature_set.names]])


def _card_events(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = _micros(SCORED[-1]) + np.sort(rng.integers(0, 86_400, n)) * 1_000_000  # many events per second: ties
    return pd.DataFrame({"_tag": 0, "_per": 7, "_time": time, "_u0": rng.integers(1, 10**8, n),
                         "_f0": rng.random(n), "_k0": True})


def test_a_hot_card_costs_a_sort_not_a_square() -> None:
    """A million events of one card in a day: computed exactly, as a sample of them shows."""
    config = load_config("test", use_case="fraud")
    specs = [s for s in expand(config).aggregates if s.per == "card_id" and s.function in ("count", "max")]
    plan = plan_of(specs)
    history = _card_events(1_000_000, seed=3)
    history["_u0"] = 0
    queries = pd.DataFrame({"_id": np.arange(len(history)), "_per": 7, "_time": history["_time"].to_numpy()})
    result = window_features(history, queries, plan, {s.name: s.scale for s in specs})
    times, values = history["_time"].to_numpy(), history["_f0"].to_numpy()
    for i in np.random.default_rng(0).integers(0, len(history), 200):
        inside = (times >= times[i] - HOUR_MICROS) & (times < times[i])
        assert result.loc[i, "card_count_1h"] == inside.sum()
        expected = values[inside].max() if inside.any() else np.nan
        assert result.loc[i, "card_amount_max_1h"] == expected or (np.isnan(expected) and np.isnan(result.loc[i, "card_amount_max_1h"]))


def test_a_hot_card_in_spark_does_not_stall_the_job(spark: SparkSession, fraud_config: Config) -> None:
    """One card with 100,000 transactions in the day beside ordinary ones: the cogroup's bucket
    holding it is one sort; sampled features of the hot card equal the brute force."""
    rng = np.random.default_rng(11)
    day = SCORED[-1]
    hot = 100_000
    time = _micros(day) + np.sort(rng.integers(0, 86_400, hot)) * 1_000_000
    normal = 5_000
    frame = pd.DataFrame({
        "transaction_id": np.arange(hot + normal, dtype=np.int64),
        "card_id": np.concatenate([np.full(hot, 1), rng.integers(2, 500, normal)]),
        "merchant_id": rng.integers(0, 40, hot + normal),
        "time": np.concatenate([time, _micros(day) + rng.integers(0, 86_400, normal) * 1_000_000]),
        "amount": np.round(rng.lognormal(2, 1, hot + normal), 2),
        "channel": "online",
        "merchant_category": "digital_goods",
    })
    frame["ts"] = pd.to_datetime(frame["time"], unit="us")
    frame["tx_date"] = day
    frame["misfiled"] = False
    frames = {
        "transactions": _spark_frames(spark, frame, _chargebacks(frame))["transactions"],
        "chargebacks": spark.createDataFrame([], "transaction_id long, reported_at timestamp, reported_date date"),
    }
    found = event_features(expand(fraud_config), fraud_config.use_case.sources, frames, [day], buckets=4).select(
        "transaction_id", "card_count_1h", "card_amount_max_24h", "card_merchant_id_distinct_count_1h").toPandas()
    assert len(found) == hot + normal
    sample = frame.iloc[rng.integers(0, hot, 300)]
    rows = found.set_index("transaction_id").loc[sample["transaction_id"]]
    times, amounts, merchants = (frame[c].to_numpy()[:hot] for c in ("time", "amount", "merchant_id"))
    for item in sample.itertuples():
        hour = (times >= item.time - HOUR_MICROS) & (times < item.time)
        daylong = times < item.time
        row = rows.loc[item.transaction_id]
        assert row["card_count_1h"] == hour.sum()
        assert row["card_merchant_id_distinct_count_1h"] == len(np.unique(merchants[hour]))
        expected = amounts[daylong].max() if daylong.any() else np.nan
        assert row["card_amount_max_24h"] == expected or (np.isnan(expected) and np.isnan(row["card_amount_max_24h"]))


def test_events_at_the_same_instant_never_see_each_other() -> None:
    """Two transactions of a card at one instant see neither themselves nor each other; one a
    microsecond later sees both; one an hour and a microsecond after them sees only the later one in
    its 1h window [t - 1h, t) (an hour exactly would still hold them)."""
    config = load_config("test", use_case="fraud")
    specs = [s for s in expand(config).aggregates if s.per == "card_id" and s.window.written in ("1h", "24h")
             and s.function in ("count", "sum", "max", "distinct_count", "min")]
    plan = plan_of(specs)
    at = _micros(SCORED[0]) + 10 * HOUR_MICROS
    time = np.array([at, at, at + 1, at + HOUR_MICROS + 1])
    amounts = np.array([5.0, 7.0, 1.0, 2.0])
    history = pd.DataFrame({"_tag": 0, "_per": 3, "_time": time})
    for measure in plan.measures:
        values = np.array([11, 12, 11, 13]) if measure.distinct else np.round(amounts * 10**6).astype(np.int64)
        history[measure.units], history[measure.real], history[measure.valid] = values, amounts, True
    queries = pd.DataFrame({"_id": np.arange(4), "_per": 3, "_time": time})
    found = window_features(history, queries, plan, {s.name: s.scale for s in specs}).set_index("_id")
    assert found["card_count_1h"].tolist() == [0, 0, 2, 1]
    assert found["card_amount_sum_1h"].tolist() == [0.0, 0.0, 12.0, 1.0]
    assert found["card_amount_max_1h"].tolist()[2:] == [7.0, 1.0] and found["card_amount_max_1h"].isna().tolist()[:2] == [True, True]
    assert found["card_merchant_id_distinct_count_1h"].tolist() == [0, 0, 2, 1]
    assert found["card_count_24h"].tolist() == [0, 0, 2, 3]
