"""The Airflow DAGs of dags/ on a real Airflow: loading, the logical date, exit codes, a nightly run.

Every check runs Airflow's own `airflow` command from its virtualenv (.airflow-venv, installed by
the Makefile from dags/requirements-airflow.lock) in a temporary AIRFLOW_HOME with SQLite, and the
tasks run real `./spark-submit.sh` jobs.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from deltalake import DeltaTable

from nightjar.config_loader import PROJECT_ROOT
from tests.dags.conftest import Airflow, check

USE_CASES = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "use_cases").glob("*.yaml"))
NIGHTLY_TASKS = ["wait_for_sources", "features", "score", "monitor"]

# Loads the dags folder as a bundle, the way Airflow's DAG processor does (the bundle's folder on
# sys.path, so that nightjar_dags.py imports nightjar_operators.py beside it), and prints what the
# tests check.
DAGBAG_SCRIPT = """
import json, os, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag

folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "file": os.path.basename(dag.fileloc),
        "timetable": type(dag.timetable).__name__,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "order": [task.task_id for task in dag.topological_sort()],
        "tasks": {
            task.task_id: {
                "type": type(task).__name__,
                "retries": task.retries,
                "retry_exponential_backoff": float(task.retry_exponential_backoff),
                "mode": getattr(task, "mode", None),
                "job": getattr(task, "job", None),
                "use_case": getattr(task, "use_case", None),
            }
            for task in dag.tasks
        },
    }
print(json.dumps({
    "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
    "dags": dags,
    "nightjar_imported": sorted(m for m in sys.modules if m == "nightjar" or m.startswith("nightjar.")),
}))
"""


def last_json(output: str) -> object:
    """The JSON document on the last line of an output (Airflow logs its warnings on stdout too)."""
    return json.loads(output.strip().splitlines()[-1])


def test_every_dag_file_loads_without_import_errors(airflow: Airflow) -> None:
    """The DagBag holds a nightly and a weekly DAG per use case, as specified, with no import errors."""
    loaded = last_json(check(airflow.python(DAGBAG_SCRIPT)).stdout)
    assert loaded["import_errors"] == {}
    # The DAG files import nothing from Nightjar (Airflow's virtualenv could not import it anyway).
    assert loaded["nightjar_imported"] == []
    dags = {dag_id: dag for dag_id, dag in loaded["dags"].items() if dag["file"] == "nightjar_dags.py"}
    assert sorted(dags) == sorted(f"nightjar_{name}_{kind}" for name in USE_CASES for kind in ("nightly", "train"))
    for name in USE_CASES:
        nightly, train = dags[f"nightjar_{name}_nightly"], dags[f"nightjar_{name}_train"]
        assert nightly["order"] == NIGHTLY_TASKS
        assert train["order"] == ["wait_for_sources", "train"]
        # Data-interval timetables: the run's interval is the day (week) processed. A bare cron
        # string would be a CronTriggerTimetable, whose `ds` is the day after.
        assert nightly["timetable"] == train["timetable"] == "CronDataIntervalTimetable"
        assert (nightly["catchup"], nightly["max_active_runs"]) == (True, 1)
        assert (train["catchup"], train["max_active_runs"]) == (False, 1)
        for dag in (nightly, train):
            sensor = dag["tasks"]["wait_for_sources"]
            assert (sensor["type"], sensor["mode"]) == ("NightjarInputsSensor", "reschedule")
            for task_id, task in dag["tasks"].items():
                assert task["use_case"] == name
                if task_id != "wait_for_sources":
                    assert (task["type"], task["job"]) == ("NightjarJobOperator", task_id)
                    assert task["retries"] >= 3 and task["retry_exponential_backoff"] >= 2

    # The same through Airflow's own command line, as an operator would check a deployment.
    check(airflow.run("dags", "reserialize"))
    errors = check(airflow.run("dags", "list-import-errors", "--output", "json"))
    assert last_json(errors.stdout) == []
    listed = check(airflow.run("dags", "list", "--output", "json"))
    assert {dag["dag_id"] for dag in last_json(listed.stdout)} >= set(dags)


def rendered_date(airflow: Airflow, dag_id: str, task_id: str, run_id: str) -> str:
    """The `--date` a task of a run would pass, from `airflow tasks render`."""
    done = check(airflow.run("tasks", "render", dag_id, task_id, run_id))
    found = re.search(r"# property: date\n# -+\n(\S+)", done.stdout)
    assert found, done.stdout[-3000:]
    return found.group(1)


def test_scheduled_runs_pass_the_processed_day_as_date(airflow: Airflow) -> None:
    """A scheduled nightly run for day D (data interval [D, D+1), started after D ends) passes `--date D`.

    The runs are made by `airflow backfill create`, which lays them out from the DAG's timetable as
    the scheduler does (not as a manual trigger, whose interval Airflow infers as the one ending at
    the given date). The weekly training's run for the week starting Monday 2026-03-02 trains
    with `--date 2026-03-08`, the Sunday that ends it.
    """
    check(airflow.run("dags", "reserialize"))
    nightly, train = "nightjar_churn_nightly", "nightjar_churn_train"
    check(airflow.run("backfill", "create", "--dag-id", nightly, "--from-date", "2026-03-02",
                      "--to-date", "2026-03-03"))
    check(airflow.run("backfill", "create", "--dag-id", train, "--from-date", "2026-03-02",
                      "--to-date", "2026-03-02"))
    runs = {dag_id: {logical[:10]: (run_id, start[:10], end[:10]) for run_id, logical, start, end in airflow.query(
        "select run_id, logical_date, data_interval_start, data_interval_end from dag_run where dag_id = ?", dag_id)}
        for dag_id in (nightly, train)}
    assert {day: interval for day, (_, *interval) in runs[nightly].items()} == {
        "2026-03-02": ["2026-03-02", "2026-03-03"], "2026-03-03": ["2026-03-03", "2026-03-04"]}
    # Every task of the first run, the first job of the second (each render is an Airflow start-up).
    for day, (run_id, _, _) in runs[nightly].items():
        for task_id in NIGHTLY_TASKS if day == "2026-03-02" else ["features"]:
            assert rendered_date(airflow, nightly, task_id, run_id) == day
    (run_id, start, end), = runs[train].values()
    assert (start, end) == ("2026-03-02", "2026-03-09")
    assert rendered_date(airflow, train, "train", run_id) == "2026-03-08"


def test_exit_2_fails_after_one_try_and_exit_4_is_retried(airflow: Airflow, tmp_path: Path) -> None:
    """Real `status` jobs: an unknown use case (exit 2) fails on its first try; a missing source (exit 4)
    is retried until its retries are spent (1 try + 2 retries in the test DAG)."""
    done = airflow.run("dags", "test", "nightjar_exit_codes", "2026-03-02",
                       NIGHTJAR_ENV="test", NIGHTJAR_ARGS=f"--set lake.root={tmp_path / 'empty-lake'}")
    assert done.returncode != 0  # the run failed
    output = done.stdout + done.stderr
    states = {task_id: (state, try_number) for task_id, state, try_number in airflow.query(
        "select task_id, state, try_number from task_instance where dag_id = 'nightjar_exit_codes'")}
    assert states == {"bad_configuration": ("failed", 1), "missing_input": ("failed", 3),
                      "sensor_missing_input": ("failed", 1), "sensor_bad_configuration": ("failed", 1)}
    # Every try really ran the job: the earlier tries are in the task instance history.
    history = airflow.query("select task_id, try_number, state from task_instance_history"
                            " where dag_id = 'nightjar_exit_codes' order by task_id, try_number")
    assert history == [("missing_input", 1, "failed"), ("missing_input", 2, "failed")]
    # The sensor waited through exit 4, rescheduled between pokes (no slot held), until its
    # timeout; on exit 2 it failed at its first poke. How many pokes fit in the timeout depends
    # on how long each `status` run takes on the machine: at least two.
    reschedules = dict(airflow.query(
        "select ti.task_id, count(*) from task_reschedule r join task_instance ti on r.ti_id = ti.id"
        " where ti.dag_id = 'nightjar_exit_codes' group by ti.task_id"))
    assert reschedules.get("sensor_missing_input", 0) >= 1 and "sensor_bad_configuration" not in reschedules
    assert "AirflowSensorTimeout" in output
    # 3 tries of the operator, and one more poke of the sensor than it was rescheduled; 1 try of each on exit 2.
    assert output.count("exit code 4") == 3 + reschedules["sensor_missing_input"] + 1
    assert output.count("exit code 2") == 2
    assert "unknown use case 'no_such_use_case'" in output
    assert "exited 2: failing without retry" in output


# The exit code mapping for every kind of code, in Airflow's interpreter (signals cannot be had
# from a real job without a JVM's crash point; the `status` runs above cover 2 and 4 end to end).
EXIT_CODE_SCRIPT = """
import json
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from nightjar_operators import check_exit

def outcome(code):
    try:
        check_exit(code, "job")
    except AirflowFailException:
        return "fail"
    except AirflowException:
        return "retry"
    return "success"

print(json.dumps({code: outcome(code) for code in (0, 1, 2, 3, 4, 5, -9, -15, 137, 143, 126, 127, 50, 128)}))
"""


def test_exit_codes_map_to_success_retry_or_failure(airflow: Airflow) -> None:
    """0 succeeds; 1, 2, 3 and codes outside the contract fail without retry; 4, 5 and signals retry."""
    done = check(airflow.python(EXIT_CODE_SCRIPT, PYTHONPATH=str(airflow.dags_folder)))
    assert last_json(done.stdout) == {
        "0": "success", "1": "fail", "2": "fail", "3": "fail", "4": "retry", "5": "retry",
        "-9": "retry", "-15": "retry", "137": "retry", "143": "retry",  # SIGKILL, SIGTERM (directly or via a shell)
        "126": "fail", "127": "fail", "50": "fail", "128": "fail",
    }


def table_rows(lake: Path) -> dict[str, list[str]]:
    """Every Delta table of the churn use case but `runs` (a row per run, by design), rows sorted."""
    tables = {}
    for log in sorted((lake / "churn").rglob("_delta_log")):
        name = str(log.parent.relative_to(lake))
        if log.parent.name == "runs":
            continue
        rows = DeltaTable(str(log.parent)).to_pyarrow_table().to_pylist()
        tables[name] = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return tables


def test_nightly_dag_runs_two_days_and_a_rerun_changes_nothing(airflow: Airflow, trained_lake: Path,
                                                               tmp_path: Path) -> None:
    """`airflow dags test` runs churn's nightly DAG for 2026-03-02 and 2026-03-03 on the trained test lake
    (sources through 2026-03-31, a champion): every task succeeds, each job gets its day, and
    running the first day again leaves every table's rows as they were."""
    lake = tmp_path / "lake"
    shutil.copytree(trained_lake, lake)
    settings = {"NIGHTJAR_ENV": "test", "NIGHTJAR_ARGS": f"--set lake.root={lake}"}
    # A manual run's interval is the day that ends at its logical date: logical date D + 1 processes D.
    days = {"2026-03-02": "2026-03-03", "2026-03-03": "2026-03-04"}

    def run_days(*chosen: str) -> None:
        for day, logical_date in days.items():
            if day not in chosen:
                continue
            started = time.monotonic()
            done = check(airflow.run("dags", "test", "nightjar_churn_nightly", logical_date, **settings))
            output = done.stdout + done.stderr
            for job in ("features", "score", "monitor"):
                assert f"spark-submit.sh {job} --use-case churn --date {day} --env test" in output
            states = dict(airflow.query(
                "select ti.task_id, ti.state from task_instance ti join dag_run r using (dag_id, run_id)"
                " where r.dag_id = 'nightjar_churn_nightly' and date(r.logical_date) = ?", logical_date))
            assert states == dict.fromkeys(NIGHTLY_TASKS, "success")
            print(f"nightly DAG for {day}: {time.monotonic() - started:.0f} s")

    run_days("2026-03-02", "2026-03-03")
    first = table_rows(lake)
    assert {"churn/features", "churn/scores", "churn/monitoring"} <= set(first)
    scores = DeltaTable(str(lake / "churn" / "scores")).to_pandas()
    assert {"2026-03-02", "2026-03-03"} <= {str(ds)[:10] for ds in scores["ds"].unique()}
    # The earlier day again, after the later one ran: as a scheduler's rerun (a cleared run) does.
    # One day only: each job is a JVM of its own (about 80 s for the three jobs of a day here).
    run_days("2026-03-02")
    assert table_rows(lake) == first
