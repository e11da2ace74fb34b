from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import dask
import pytest

from nightjar.config import Config
from nightjar.config_loader import PROJECT_ROOT
from nightjar.dask_cluster import dask_client, worker_addresses
from nightjar.errors import EngineUnavailableError
from tests.conftest import free_port


def test_configured_scheduler_runs_tasks_on_its_workers(
    dask_scheduler: str, make_config: Callable[..., Config], lake: Path,
) -> None:
    config = make_config(lake, f"dask.scheduler={dask_scheduler}")
    with dask_client(config) as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info()["workers"]
        assert {info["name"] for info in workers.values()} == {"worker-0", "worker-1"}
        assert worker_addresses(client) == sorted(workers)
        # A builtin, so the workers need not import the test module.
        futures = [client.submit(os.getpid, workers=[address], pure=False) for address in workers]
        assert len(set(client.gather(futures))) == 2  # two separate worker processes


def test_local_cluster_is_the_default(config: Config) -> None:
    assert config.dask.scheduler is None
    with dask_client(config) as client:
        assert len(worker_addresses(client)) == config.dask.workers
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_the_workers_are_never_missed_while_the_client_refreshes_its_cache(config: Config) -> None:
    # The client's periodic refresh (here every millisecond, 2 s by default) replaces its cached
    # identity with one without workers; `scheduler_info()` returned that cache about one call in
    # four this way, and a training fit under load once reported both its workers lost.
    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}), dask_client(config) as client:
        client.wait_for_workers(config.dask.workers, timeout=60)
        seen = [len(worker_addresses(client)) for _ in range(300)]
        assert seen == [config.dask.workers] * 300


def test_an_unreachable_scheduler_is_a_clear_error(make_config: Callable[..., Config], lake: Path) -> None:
    config = make_config(lake, f"dask.scheduler=tcp://127.0.0.1:{free_port()}", "dask.connect_timeout_s=2")
    with pytest.raises(EngineUnavailableError, match=r"dask.scheduler tcp://127.0.0.1:\d+: cannot connect"):
        with dask_client(config):
            pass


def test_local_workers_start_when_the_main_module_imports_great_expectations(tmp_path: Path) -> None:
    # A job runs as `__main__` (driver.py -> runpy); spawned workers once re-imported it and,
    # with Great Expectations among its imports, failed to start under spark-submit.
    job = tmp_path / "job.py"
    job.write_text(
        "import great_expectations  # noqa: F401\n"
        "from nightjar.config_loader import load_config\n"
        "from nightjar.dask_cluster import dask_client, worker_addresses\n"
        "if __name__ == '__main__':\n"
        "    with dask_client(load_config('test')) as client:\n"
        "        print('sum', client.submit(sum, [1, 2]).result())\n"
    )
    launcher = f"import runpy; runpy.run_path({str(job)!r}, run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=300,
                          cwd=str(PROJECT_ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sum 3" in done.stdout
