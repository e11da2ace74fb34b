"""The Dask client of a run: the scheduler named in configuration, or a `LocalCluster`."""

from __future__ import annotations

import os
import sys
import types
from contextlib import contextmanager
from typing import Iterator

from distributed import Client, LocalCluster

from nightjar.config import Config
from nightjar.errors import EngineUnavailableError


@contextmanager
def dask_client(config: Config) -> Iterator[Client]:
    """Yield a client for `config.dask`; closes it (and any cluster it started) on exit.

    Raises:
        EngineUnavailableError: the configured scheduler cannot be reached.
    """
    # LightGBM's OpenMP threads spin while idle unless told otherwise, which starves the
    # other worker on a small machine; workers inherit this from the client's process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = config.dask
    if settings.scheduler:
        try:
            client = Client(settings.scheduler, timeout=settings.connect_timeout_s)
        except (OSError, TimeoutError) as error:
            raise EngineUnavailableError(
                f"dask.scheduler {settings.scheduler}: cannot connect ({error})"
            ) from None
        with client:
            yield client
        return
    with _workers_without_main():
        cluster = LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=True,
            host="127.0.0.1",
            # None does not turn the dashboard off in distributed 2026.8: it binds 8787, and a
            # second job on the machine then warns that the port is taken. Any free loopback port.
            dashboard_address="127.0.0.1:0",
        )
    with cluster, Client(cluster) as client:
        yield client


def worker_addresses(client: Client) -> list[str]:
    """The addresses of the workers in the cluster now, sorted, asked of the scheduler.

    Not `client.scheduler_info()["workers"]`: it returns the client's cached identity, which a
    periodic refresh of the client (every 2 s, totals only) replaces with one whose `workers`
    is empty, and when that refresh lands between the method's own fetch and its return the
    cluster looks empty. Under load that made a healthy fit report both of its workers lost.
    """
    identity = client.sync(client.scheduler.identity, n_workers=-1)
    return sorted(identity["workers"])


@contextmanager
def _workers_without_main() -> Iterator[None]:
    """Start worker processes without re-importing the job's `__main__` module in them.

    Spawned processes import the parent's main module first; for a job that is the whole
    job module and everything it imports (Great Expectations among them), and a worker doing
    so under spark-submit failed to start ("Nanny failed to start worker process"). Workers
    need only the functions they are sent, which they import by their own module names.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
