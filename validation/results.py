"""The file-backed Great Expectations project under the lake: suites, stored results, Data Docs.

The context is created on first use (with the project, when the folder is new). Each run
stores its suite (rewritten from the configuration, so the stored suite is the one that ran),
its validation result and an updated Data Docs site: static HTML under the lake
(`tables.data_docs_dir`) whose `index.html` lists every run by its run id, and whose pages load
their scripts and styles from the site itself (`validation.offline_docs`). With
`validation.keep_results_days`, results older than that are deleted first.

GX keeps a file-backed project on a local file system only. A project on an object store (the
default for an `s3a://` lake, `<lake root>/<use case>/_gx`) is worked on in a local copy, one per
process: copied down before each suite run and what the run changed copied back after it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context import FileDataContext
from great_expectations.data_context.types.base import ProgressBarsConfig

from nightjar import tables
from nightjar.config import Config
from validation import offline_docs

SITE = "nightjar"
DATASOURCE = "nightjar_statistics"
BATCH = "statistics"
# The statistics frame's index columns, named in unexpected rows (and so in stored results).
# Not `DATE`: in features and models `DATE` is the tables' date column, "ds".
STAT_DATE, STAT_COLUMN = "date", "column"
# GX keeps its configuration in <gx root>/gx; Data Docs go beside it (tables.data_docs_dir).
_DOCS_FROM_CONFIG = "../data_docs"

# GX 1.x resolves stores through one current project per process, the last context created:
# reuse a context only while it is that one (a process validating one lake, as every job does).
_current: tuple[str, FileDataContext] | None = None
# GX logs each Data Docs page it renders and a few deprecations; a nightly job's log wants neither.
logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass(frozen=True)
class StoredRun:
    """A suite's GX result and where it was stored and rendered."""

    result: ExpectationSuiteValidationResult
    result_id: str
    result_path: str
    page: str
    index: str


def context(root: str) -> FileDataContext:
    """The GX context of the project in the local folder `root`, created with its Data Docs site on first use."""
    global _current
    if _current is not None and _current[0] == root:
        return _current[1]
    Path(root).mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=root)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    sites = ctx.list_data_docs_sites()
    if SITE not in sites:
        # Replace GX's default site (deep under uncommitted/) with one an analyst can find.
        for name in list(sites):
            ctx.delete_data_docs_site(name)
        ctx.add_data_docs_site(
            SITE,
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                # Relative to the project's config folder, so a lake copied elsewhere renders in place.
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": _DOCS_FROM_CONFIG},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    ctx.variables.save()
    _current = (root, ctx)
    return ctx


def run_suite(
    config: Config, name: str, expectations: list[gxe.Expectation], statistics: pd.DataFrame, run_id: str,
) -> StoredRun:
    """Validate the statistics frame with the suite `name`, store the result and update Data Docs.

    Args:
        config: the run's configuration (where the project lives).
        name: the suite's name, `<stage>.<table>`.
        expectations: the suite's expectations, in order.
        statistics: one row per (date, column) and one metric column per rule.
        run_id: the Nightjar run id; Data Docs list the result under it.
    """
    root = tables.gx_root(config)
    with _project(root) as folder:
        stored = _run_suite(config, folder, name, expectations, statistics, run_id)
    # Where the project is kept, not the working copy a remote project was run in.
    return StoredRun(
        result=stored.result,
        result_id=stored.result_id,
        result_path=_kept(stored.result_path, folder, root),
        page=_kept(stored.page, folder, root),
        index=f"{tables.data_docs_dir(config)}/index.html",
    )


@contextmanager
def _project(root: str) -> Iterator[str]:
    """The local folder of the project at `root`, held for one suite run; on an object store, a working copy.

    Jobs running side by side share a local project's files: GX saves a suite, its validation
    definition and checkpoint by name, then refuses to run when another process rewrote one of
    them in between ("has changed since it has last been saved"), and a Data Docs build reads
    every stored result while another may be half written. So other processes wait on a lock; a
    suite run takes seconds, and the lock is the operating system's, so a killed process releases it.

    An object store has no such lock, and needs none for that: each process runs GX in its own
    copy, pulled before the run, and pushes back only the files the run added, changed or
    deleted. Two runs at once each add their own result (named by run id), and neither loses
    the other's; the Data Docs index written last may lack the other's run until the next run
    rebuilds it. A process killed before its push leaves the stored project as it was.
    """
    local = tables.local_path(root)
    if local is None:
        folder = _working_copy(root)
        pulled = tables.pull_folder(root, folder)
        yield folder
        tables.push_folder(folder, root, pulled)
        return
    Path(local).mkdir(parents=True, exist_ok=True)
    with open(Path(local) / ".nightjar.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield local
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# A process's local working copies of remote projects, by their location, removed at its exit.
_copies: dict[str, str] = {}


def _working_copy(root: str) -> str:
    if root not in _copies:
        _copies[root] = tempfile.mkdtemp(prefix="nightjar-gx-")
        atexit.register(shutil.rmtree, _copies[root], True)
    return _copies[root]


def _kept(path: str, folder: str, root: str) -> str:
    """`path` in the working copy `folder` as a location under the project's `root`."""
    return root + path[len(folder):] if path.startswith(f"{folder}/") else path


def _run_suite(
    config: Config, folder: str, name: str, expectations: list[gxe.Expectation], statistics: pd.DataFrame,
    run_id: str,
) -> StoredRun:
    ctx = context(folder)
    if config.validation.keep_results_days is not None:
        _prune(ctx, config.validation.keep_results_days)
    source = ctx.data_sources.add_or_update_pandas(DATASOURCE)
    asset = next((a for a in source.assets if a.name == name), None) or source.add_dataframe_asset(name)
    batch = next((b for b in asset.batch_definitions if b.name == BATCH), None) or asset.add_batch_definition_whole_dataframe(BATCH)
    suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            # COMPLETE lists every failing (date, column): the frame is small, and the gate
            # reports each failure from GX's own verdict rather than recomputing it.
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [STAT_DATE, STAT_COLUMN]},
        )
    )
    outcome = checkpoint.run(batch_parameters={"dataframe": statistics}, run_id=RunIdentifier(run_name=run_id))
    # GX's pages load their scripts and styles from CDNs: point them at the site's own copies,
    # so that they render on a cluster without internet (and wherever the site is copied).
    offline_docs.localize_site(f"{folder}/data_docs")
    (key, result), = outcome.run_results.items()
    page = ctx.get_docs_sites_urls(resource_identifier=key, site_name=SITE)[0]["site_url"]
    stored = ctx.validation_results_store.store_backend.get_url_for_key(key.to_tuple())
    return StoredRun(
        result=result,
        result_id="/".join(key.to_tuple()),
        result_path=_local(stored),
        page=_local(page),
        index=f"{folder}/data_docs/index.html",
    )


def _prune(ctx: FileDataContext, keep_days: int) -> None:
    """Delete the stored results of runs older than `keep_days` days (0: every earlier result).

    Their Data Docs pages go with the next site build, which drops pages whose result is gone.
    """
    cutoff = datetime.now(timezone.utc) - timedelta(days=keep_days)
    store = ctx.validation_results_store
    for key in store.list_keys():
        if key.run_id.run_time < cutoff:
            store.remove_key(key)


def _local(url: str) -> str:
    return os.path.normpath(url.removeprefix("file://"))
