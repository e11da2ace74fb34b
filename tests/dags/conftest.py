"""A real Airflow for the DAG tests: its own virtualenv's `airflow`, a temporary AIRFLOW_HOME, SQLite."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nightjar.config_loader import PROJECT_ROOT

AIRFLOW_VENV = PROJECT_ROOT / ".airflow-venv"
DAGS = PROJECT_ROOT / "dags"
# Test-only DAGs (tests/dags/airflow_dags/), deployed beside the real ones.
TEST_DAGS = Path(__file__).parent / "airflow_dags"


@dataclass
class Airflow:
    """One Airflow installation: AIRFLOW_HOME with its SQLite database and a dags folder of symlinks.

    The dags folder holds symlinks to the repository's `dags/` files, as the README's deployment
    does, so the DAGs find the checkout through the real location of their file.
    """

    home: Path
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an `airflow` command: this home, no examples, and no Nightjar on the path."""
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("AIRFLOW")}
        environment.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            # The DAGs' first day: before the test lake's dates (catchup and backfills need it).
            NIGHTJAR_START_DATE="2026-03-01",
            **self.environment, **extra,
        )
        return environment

    def run(self, *arguments: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        """Run `airflow ARGUMENTS` from Airflow's virtualenv, capturing its output."""
        return subprocess.run(
            [str(AIRFLOW_VENV / "bin" / "airflow"), *arguments], capture_output=True, text=True,
            timeout=timeout, env=self.env(**extra), cwd=self.home,
        )

    def python(self, script: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
        """Run a Python script with Airflow's virtualenv's interpreter (which has no Nightjar)."""
        return subprocess.run(
            [str(AIRFLOW_VENV / "bin" / "python"), "-c", script], capture_output=True, text=True,
            timeout=timeout, env=self.env(**extra), cwd=self.home,
        )

    def query(self, sql: str, *parameters: object) -> list[tuple]:
        """Rows of a query on the metadata database."""
        with sqlite3.connect(self.home / "airflow.db") as connection:
            return connection.execute(sql, parameters).fetchall()


def check(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Fail the test with the command's output unless it exited 0."""
    assert done.returncode == 0, f"{done.args} exited {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata database after `airflow db migrate`, once per session (tests copy it)."""
    assert (AIRFLOW_VENV / ".installed").exists(), "no Airflow virtualenv: `make test` installs it (make .airflow-venv/.installed)"
    template = Airflow(tmp_path_factory.mktemp("airflow-template"))
    template.dags_folder.mkdir()
    check(template.run("db", "migrate"))
    return template.home / "airflow.db"


@pytest.fixture
def airflow(migrated_airflow_db: Path, tmp_path: Path) -> Airflow:
    """A fresh Airflow home for one test: the migrated database, and the DAGs deployed by symlink."""
    instance = Airflow(tmp_path / "airflow")
    instance.dags_folder.mkdir(parents=True)
    shutil.copy(migrated_airflow_db, instance.home / "airflow.db")
    for source in [*DAGS.glob("*.py"), DAGS / ".airflowignore", *TEST_DAGS.glob("*.py")]:
        (instance.dags_folder / source.name).symlink_to(source)
    return instance
