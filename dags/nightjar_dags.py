"""Nightjar's Airflow DAGs: per use case, a nightly pipeline and a weekly training.

For each use case file `conf/use_cases/<name>.yaml` of the checkout (or those named in
`NIGHTJAR_USE_CASES`, comma-separated):

- `nightjar_<name>_nightly`, every day at 00:00 UTC for the day that just ended:
  `wait_for_sources` (a rescheduling sensor on `./spark-submit.sh status`) → `features` →
  `score` → `monitor`.
- `nightjar_<name>_train`, every Monday at 00:00 UTC: `wait_for_sources` → `train`, with
  `--date` the Sunday that just ended.

The date a job receives is always the last day of the run's data interval, the day whose data
it processes: both DAGs use data-interval timetables (`CronDataIntervalTimetable`). Airflow 3
reads a bare cron string as `CronTriggerTimetable`, whose logical date (`ds`) is the moment of the
trigger, the day *after* the data; never pass `ds` here.

This file imports nothing from Nightjar (Airflow runs in its own virtualenv) and reads only file
names under `conf/use_cases/` at parse time. See README, "Scheduling".
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG, CronDataIntervalTimetable

from nightjar_operators import DEFAULT_HOME, INTERVAL_DAY, NightjarInputsSensor, NightjarJobOperator

# Read at parse time, so environment variables only: Variables would cost a database query per parse.
HOME = Path(os.environ.get("NIGHTJAR_HOME") or DEFAULT_HOME)
# The first day a nightly run processes. With catchup on, Airflow creates a run for every day
# from here to yesterday on the first deployment: set it to the first day to score.
START_DATE = datetime.fromisoformat(os.environ.get("NIGHTJAR_START_DATE") or "2026-04-01").replace(tzinfo=timezone.utc)


def use_cases() -> list[str]:
    """The use cases to schedule: `$NIGHTJAR_USE_CASES` (comma-separated), else every file in conf/use_cases."""
    named = os.environ.get("NIGHTJAR_USE_CASES")
    if named:
        return [name.strip() for name in named.split(",") if name.strip()]
    return sorted(path.stem for path in (HOME / "conf" / "use_cases").glob("*.yaml"))


# Retries for exits 4 and 5 and for jobs killed by a signal (1, 2 and 3 fail at once, see
# nightjar_operators): Airflow waits 10 min × 2^(n-1) after the n-th try, plus a jitter of up to
# as much again, capped at 2 h: 10-20 min, 20-40, 40-80, 80-120, then 120; about 4 to 6 hours in
# all, long enough for a late source delivery or an object store outage to pass, short enough
# that tomorrow's run is not blocked.
DEFAULT_ARGS = {
    "owner": "nightjar",
    "retries": 5,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(hours=2),
    # No job should come near this on its own data; a hung one is killed and retried.
    "execution_timeout": timedelta(hours=6),
}

# The sensor pokes every 10 minutes for up to 20 hours, holding no worker slot in between
# (`reschedule`); sources for day D usually land within hours after midnight.
SENSOR_ARGS = {"mode": "reschedule", "poke_interval": 600, "timeout": 20 * 3600}


def nightly_dag(use_case: str) -> DAG:
    """The nightly DAG of one use case: sources → features → score → monitor for the day just ended.

    `catchup=True`: a day the scheduler missed (Airflow down, the DAG paused) is still scored when
    it comes back, each day with its own `--date`. `max_active_runs=1`: days run one at a time and
    in order, as the jobs expect (features from stored tiles build on earlier days, `monitor`
    revisits earlier dates whose labels matured), and a catch-up does not flood the cluster.
    """
    with DAG(
        dag_id=f"nightjar_{use_case}_nightly",
        description=f"Nightjar {use_case}: features, score and monitor the day that just ended",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START_DATE,
        catchup=True,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["nightjar", use_case],
    ) as dag:
        sources = NightjarInputsSensor(task_id="wait_for_sources", use_case=use_case, date=INTERVAL_DAY,
                                       **SENSOR_ARGS)
        features = NightjarJobOperator(task_id="features", job="features", use_case=use_case, date=INTERVAL_DAY)
        score = NightjarJobOperator(task_id="score", job="score", use_case=use_case, date=INTERVAL_DAY)
        monitor = NightjarJobOperator(task_id="monitor", job="monitor", use_case=use_case, date=INTERVAL_DAY)
        sources >> features >> score >> monitor
    return dag


# The weekly interval runs Monday 00:00 to Monday 00:00 UTC; training uses the data through its
# last day, the Sunday before the run starts.
WEEK_LAST_DAY = "{{ macros.ds_add(data_interval_end | ds, -1) }}"


def train_dag(use_case: str) -> DAG:
    """The weekly training DAG of one use case: wait for Sunday's sources, then `train --date SUNDAY`.

    `catchup=False`: a missed week is not worth training for after the fact, only the latest model
    matters. `max_active_runs=1`: two trainings at once would only register two versions.
    """
    with DAG(
        dag_id=f"nightjar_{use_case}_train",
        description=f"Nightjar {use_case}: weekly training and champion promotion",
        schedule=CronDataIntervalTimetable("0 0 * * 1", timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["nightjar", use_case],
    ) as dag:
        sources = NightjarInputsSensor(task_id="wait_for_sources", use_case=use_case, date=WEEK_LAST_DAY,
                                       **SENSOR_ARGS)
        train = NightjarJobOperator(task_id="train", job="train", use_case=use_case, date=WEEK_LAST_DAY)
        sources >> train
    return dag


for _use_case in use_cases():
    for _dag in (nightly_dag(_use_case), train_dag(_use_case)):
        globals()[_dag.dag_id] = _dag
