"""Lakes built once per test session by the real jobs: generated sources, features, a trained model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs import features as features_job
from jobs import generate as generate_job
from jobs import score as score_job
from jobs import train as train_job
from tests.conftest import run_in_process

# The test data (conf/test.yaml) end on 2026-03-31; with a 30-day horizon, the feature dates
# of `train --date 2026-03-31` are 2026-02-16..2026-03-01, computed here.
TRAIN_DATE = "2026-03-31"
FEATURES_START, FEATURES_END = "2026-02-16", "2026-03-01"


@pytest.fixture(scope="session")
def prepared_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated sources and the features of FEATURES_START..FEATURES_END. Copy it before writing."""
    lake = tmp_path_factory.mktemp("prepared") / "lake"
    assert run_in_process(generate_job, lake) == 0
    assert run_in_process(features_job, lake, "--start", FEATURES_START, "--end", FEATURES_END) == 0
    return lake


@pytest.fixture(scope="session")
def trained_lake(prepared_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared lake with a champion (version 1) trained on it. Copy it before writing."""
    lake = tmp_path_factory.mktemp("trained") / "lake"
    shutil.copytree(prepared_lake, lake)
    assert run_in_process(train_job, lake, "--date", TRAIN_DATE) == 0
    return lake


@pytest.fixture(scope="session")
def scored_lake(trained_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained lake with the scores of FEATURES_END from an uninterrupted run. Copy it before writing."""
    lake = tmp_path_factory.mktemp("scored") / "lake"
    shutil.copytree(trained_lake, lake)
    assert run_in_process(score_job, lake, "--date", FEATURES_END) == 0
    return lake
