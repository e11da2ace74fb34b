"""A test-only DAG: Nightjar's operator and sensor on real `status` runs that exit 2 and 4 (no JVM, seconds).

Deployed by tests/dags/conftest.py beside the real DAGs. Retries come one second apart, and the
sensors poke every second for a few seconds, so that `airflow dags test` sees it all within the
test.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from nightjar_operators import NightjarInputsSensor, NightjarJobOperator

# A poke (a `status` run) takes 1-4 s by the machine's load: 10 s leaves room for two at least.
SENSOR = {"mode": "reschedule", "poke_interval": 1, "timeout": 10, "retries": 0}

with DAG(
    dag_id="nightjar_exit_codes",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
):
    # Exit 2: an unknown use case (bad configuration) must fail on its first try.
    NightjarJobOperator(task_id="bad_configuration", job="status", use_case="no_such_use_case")
    # Exit 4: the lake (NIGHTJAR_ARGS) has no source partition for the date: retried until none remain.
    NightjarJobOperator(task_id="missing_input", job="status", use_case="churn")
    # The sensor: exit 4 is "not yet" (rescheduled until its timeout), exit 2 fails at once.
    NightjarInputsSensor(task_id="sensor_missing_input", use_case="churn", **SENSOR)
    NightjarInputsSensor(task_id="sensor_bad_configuration", use_case="no_such_use_case", **SENSOR)
