"""The gate as a library: verdicts, warnings, stored results and Data Docs, drift, and its passes over the data."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from nightjar import tables
from nightjar.config import Config
from nightjar.errors import ConfigError
from tests.features.conftest import entities_frame, entity, event, events_frame
from validation import drift, gate

D, D2 = date(2026, 1, 10), date(2026, 1, 11)
RUN = "run-0001"


def _events(spark: SparkSession, *extra: tuple) -> DataFrame:
    rows = [event(1, "2026-01-10 10:00:00", 10.0), event(2, "2026-01-10 11:00:00", 5.0, "fuel", "in_store"),
            event(1, "2026-01-11 09:00:00", 7.5), *extra]
    return events_frame(spark, rows)


def test_a_clean_partition_passes_and_is_stored_and_rendered(spark: SparkSession, config: Config) -> None:
    checks: list[dict] = []
    result = gate.validate(spark, config, "source", "transactions", _events(spark), D, RUN, checks=checks)
    assert result.success and not result.warnings and not result.failures
    assert all(outcome.success for outcome in result.outcomes)
    by_name = {(o.expectation, o.column): o for o in result.outcomes}
    assert by_name[("row_count", None)].observed == 2
    assert by_name[("columns", "amount")].observed == "double"
    assert by_name[("row_count_history", None)].observed is None  # no history yet: skipped, not failed
    assert checks == [result.summary()] and checks[0]["validation"] == "source.transactions"
    # Stored by GX under the lake, rendered as static HTML whose index lists the run.
    assert result.data_docs == f"{tables.data_docs_dir(config)}/index.html"
    assert RUN in Path(result.data_docs).read_text()
    assert Path(result.page).is_file() and RUN in result.page
    stored = json.loads(Path(result.result_path).read_text())
    assert stored["success"] is True and stored["meta"]["run_id"]["run_name"] == RUN
    suite = json.loads((Path(tables.gx_root(config)) / "gx" / "expectations" / "source" / "transactions.json").read_text())
    assert len(suite["expectations"]) == len(config.validation.suites["source"]["transactions"])


def test_a_blocking_failure_is_stored_before_it_raises(spark: SparkSession, config: Config) -> None:
    frame = _events(spark, event(None, "2026-01-10 12:00:00", 1.0))
    checks: list[dict] = []
    with pytest.raises(gate.ValidationFailed) as caught:
        gate.validate(spark, config, "source", "transactions", frame, D, RUN, checks=checks)
    message = str(caught.value)
    assert caught.value.exit_code == 3 and "\n" not in message
    assert message.startswith(
        "validation failed: table 'transactions' event_date=2026-01-10: column customer_id: not_null failed: "
        "1 null value, expected none; see "
    )
    result = caught.value.result
    assert not result.success and checks == [result.summary()] and not checks[0]["success"]
    assert Path(result.result_path).is_file() and RUN in Path(result.data_docs).read_text()


def test_warnings_are_logged_and_do_not_block(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(lake, "validation.suites.source.transactions=[{expect: in_set, columns: [channel], "
                               "values: [online], severity: warning}, {expect: row_count, min: 1}]")
    with caplog.at_level(logging.INFO, logger=gate.__name__):
        result = gate.validate(spark, config, "source", "transactions", _events(spark), D, RUN)
    assert result.success
    assert result.warnings == (
        "table 'transactions' event_date=2026-01-10: column channel: in_set failed: 1 value not in ['online'], expected none",
    )
    assert (gate.__name__, logging.WARNING, result.warnings[0]) in caplog.record_tuples
    assert (gate.__name__, logging.INFO, f"source.transactions 2026-01-10: 3 checks, 0 failed, 1 warnings; Data Docs: {result.data_docs}") \
        in caplog.record_tuples


def test_a_range_is_validated_in_one_run_naming_the_failing_dates(spark: SparkSession, config: Config) -> None:
    frame = _events(spark, event(3, "2026-01-11 10:00:00", float("inf")), event(3, "2026-01-11 11:00:00", float("nan")))
    with pytest.raises(gate.ValidationFailed) as caught:
        gate.validate_dates(spark, config, "source", "transactions", frame, [D, D2], RUN)
    failed = [o for o in caught.value.result.outcomes if not o.success]
    assert [(o.expectation, o.column, o.dates, o.observed) for o in failed] == [("finite", "amount", (D2,), 2)]


def test_a_column_a_check_needs_is_required_even_without_declared_types(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path,
) -> None:
    config = make_config(lake, "validation.suites.source.transactions=[{expect: finite, columns: [amount, fee]}]")
    with pytest.raises(gate.ValidationFailed, match="column fee: columns failed: missing, expected numeric"):
        gate.validate(spark, config, "source", "transactions", _events(spark), D, RUN)


def test_suites_that_cannot_run_are_configuration_errors(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path,
) -> None:
    config = make_config(lake, "validation.suites.source.transactions=[{expect: not_null, columns: ['fee_*']}]")
    with pytest.raises(ConfigError, match=r"validation.suites.source.transactions\[0\] \(not_null\): the pattern 'fee_\*' matches no column"):
        gate.validate(spark, config, "source", "transactions", _events(spark), D, RUN)
    with pytest.raises(ConfigError, match="validation.suites.source.customers: no suite is configured"):
        gate.validate(spark, make_config(lake, "validation.suites.source={}"), "source", "customers", _events(spark), D, RUN)


def test_a_key_missing_from_the_referenced_table_blocks(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path,
) -> None:
    config = make_config(lake, "validation.suites.source.transactions=[{expect: references, columns: [customer_id], table: customers}]")
    tables.overwrite(entities_frame(spark, [entity(1, "2026-01-01 08:00:00")]), config, "customers")
    with pytest.raises(gate.ValidationFailed) as caught:  # customer 2 is unknown on D; D2 has customer 1 only
        gate.validate_dates(spark, config, "source", "transactions", _events(spark), [D, D2], RUN)
    assert str(caught.value).startswith(
        "validation failed: table 'transactions' event_date=2026-01-10: column customer_id: references failed: "
        "1 row whose customer_id is not in table 'customers', expected none; see "
    )
    assert [(o.expectation, o.dates, o.observed) for o in caught.value.result.outcomes if not o.success] == [("references", (D,), 1)]
    wrong = make_config(lake, "validation.suites.source.transactions=[{expect: references, columns: [customer_id], table: customers, key: [id]}]")
    with pytest.raises(ConfigError, match=r"validation.suites.source.transactions \(references customers\): table 'customers' has no column id"):
        gate.validate(spark, wrong, "source", "transactions", _events(spark), D, RUN)


def _features(spark: SparkSession, shift: float) -> DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"customer_id": np.arange(500), "ds": D, "spend": rng.normal(50.0 + shift, 10.0, 500),
                          "visits": rng.integers(0, 5, 500).astype(float)})
    return spark.createDataFrame(frame)


def test_drift_warns_by_default_and_blocks_when_configured(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path,
) -> None:
    rng = np.random.default_rng(6)
    training = pd.DataFrame({"spend": rng.normal(50.0, 10.0, 2000), "visits": rng.integers(0, 5, 2000).astype(float)})
    reference = drift.reference_statistics(training, ["spend", "visits"])
    suite = "validation.suites.features.features=[{expect: unique, key: [customer_id]}]"
    config = make_config(lake, suite)
    assert gate.validate(spark, config, "features", "features", _features(spark, 0.0), D, RUN, reference=reference).warnings == ()
    shifted = gate.validate(spark, config, "features", "features", _features(spark, 20.0), D, RUN, reference=reference)
    assert shifted.success and len(shifted.warnings) == 1
    assert shifted.warnings[0].startswith("table 'features' ds=2026-01-10: column spend: psi failed: PSI ")
    blocking = make_config(lake, suite, "validation.drift.severity=blocking")
    with pytest.raises(gate.ValidationFailed, match="column spend: psi failed"):
        gate.validate(spark, blocking, "features", "features", _features(spark, 20.0), D, RUN, reference=reference)
    # Without a reference (no champion yet) there is no drift rule.
    plain = gate.validate(spark, blocking, "features", "features", _features(spark, 20.0), D, RUN)
    assert all(o.expectation != "psi" for o in plain.outcomes)


def _spark_jobs(spark: SparkSession, run: Callable[[], object], group: str) -> int:
    context = spark.sparkContext
    context.setJobGroup(group, group)
    try:
        run()
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    return len(context.statusTracker().getJobIdsForGroup(group))


def test_more_expectations_do_not_mean_more_passes_over_the_data(
    spark: SparkSession, make_config: Callable[..., Config], lake: Path,
) -> None:
    frame = _events(spark)
    tables.overwrite(frame, make_config(lake), "transactions", partition_by="event_date")
    few = make_config(lake, "validation.suites.source.transactions=[{expect: not_null, columns: [amount]}, "
                            "{expect: unique, key: [transaction_id]}]")
    many = make_config(lake, "validation.suites.source.transactions=[{expect: not_null, columns: [amount, ts, channel]}, "
                             "{expect: unique, key: [transaction_id]}, {expect: finite, columns: [amount]}, "
                             "{expect: between, columns: [amount], min: 0}, {expect: in_set, columns: [channel], values: [online, in_store]}, "
                             "{expect: timestamp_in_partition}, {expect: row_count, min: 1}, {expect: null_fraction, columns: ['*'], max: 0.5}, "
                             "{expect: not_constant, columns: ['*']}, {expect: stdev, columns: [amount], min: 0}]")
    check = tables.read(spark, few, "transactions")
    gate.validate(spark, few, "source", "transactions", check, D, RUN)  # warm: Python workers, Delta snapshot
    jobs_few = _spark_jobs(spark, lambda: gate.validate(spark, few, "source", "transactions", check, D, RUN), "few")
    jobs_many = _spark_jobs(spark, lambda: gate.validate(spark, many, "source", "transactions", check, D, RUN), "many")
    # One pass for the row statistics and one for the duplicate keys, however many expectations
    # (each is a few Spark jobs: Delta's file listing and adaptive execution's stages).
    assert jobs_few == jobs_many
