"""Use cases as files: selection, layering, names, and where each use case lives in the lake."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from features.definitions import expand
from nightjar import cli, demo, tables
from nightjar.config_loader import PROJECT_ROOT, load_config, use_cases
from nightjar.errors import ConfigError
from tests.conftest import conf_copy


def _churn_text() -> str:
    return (PROJECT_ROOT / "conf" / "use_cases" / "churn.yaml").read_text()


def test_churn_is_the_default_use_case_and_is_named_by_its_file() -> None:
    config = load_config("local", ["lake.root=/data/lake"])
    assert config.use_case.name == "churn" and config.model_name == "churn"
    assert tables.table_path(config, "scores") == "/data/lake/churn/scores"
    assert tables.model_path(config, "churn", 3) == "/data/lake/churn/models/churn/3"
    assert tables.catalog_name(config, "scores") == "nightjar_churn.scores"
    assert "churn" in use_cases()


def test_the_use_case_file_holds_what_base_yaml_no_longer_does() -> None:
    base = yaml.safe_load((PROJECT_ROOT / "conf" / "base.yaml").read_text())
    assert not {"use_case", "features", "training", "scoring", "generate"} & set(base)
    assert "suites" not in base["validation"]
    churn = yaml.safe_load(_churn_text())
    assert {"use_case", "features", "training", "scoring", "generate", "validation"} <= set(churn)


def test_nightjar_use_case_variable_selects_the_use_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = conf_copy(tmp_path, "", other=_churn_text())
    monkeypatch.setenv("NIGHTJAR_USE_CASE", "other")
    config = load_config("mine", directory=directory)
    assert config.use_case.name == "other" and config.model_name == "other"
    assert tables.database(config) == "nightjar_other"
    assert load_config("mine", directory=directory, use_case="churn").use_case.name == "churn"  # the option wins


@pytest.mark.parametrize("name", ["nope", "a-b", "../churn"])
def test_an_unknown_use_case_exits_2_listing_the_known_ones(tmp_path: Path, name: str) -> None:
    directory = conf_copy(tmp_path, "", other=_churn_text())
    with pytest.raises(ConfigError, match=rf"unknown use case '{name}': no file .* \(use cases: churn, demand, fraud, maintenance, mock_customer, other\)$") as caught:
        load_config("mine", directory=directory, use_case=name)
    assert caught.value.exit_code == 2


def test_job_command_line_takes_use_case(capsys: pytest.CaptureFixture[str]) -> None:
    def body(context: cli.JobContext) -> None:
        raise AssertionError("the body must not run")

    def no_options(parser: argparse.ArgumentParser) -> None:
        pass

    assert cli.run_job("probe", "a test job", no_options, body, "optional", ["--use-case", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nightjar probe: error: unknown use case 'nope': no file ")
    assert err.endswith(f"(use cases: {', '.join(use_cases())})") and len(err.splitlines()) == 1


def test_launcher_rejects_an_unknown_use_case_before_starting_spark() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nightjar.submit", "features", "--use-case", "nope", "--date", "2026-03-31"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("nightjar features: error: unknown use case 'nope'") and "(use cases: churn" in line


def test_layering_order_base_use_case_environment_per_use_case_set(tmp_path: Path) -> None:
    churn = yaml.safe_load(_churn_text())
    assert churn["training"]["seed"] == 42 and churn["scoring"]["reasons"] == 3
    shared = "training:\n  seed: 1\nscoring:\n  reasons: 4\n"
    directory = conf_copy(tmp_path, shared + "use_cases:\n  churn:\n    training:\n      seed: 2\n")
    config = load_config("mine", directory=directory)
    assert config.scoring.reasons == 4  # the environment's shared key beats the use case file
    assert config.training.seed == 2  # the per-use-case override beats the shared key
    assert config.training.days == churn["training"]["days"]  # what no layer above changes stays
    assert load_config("mine", ["training.seed=3"], directory=directory).training.seed == 3  # --set beats all
    other = conf_copy(tmp_path / "other", shared + "use_cases:\n  churn:\n    training:\n      seed: 2\n",
                      other=_churn_text())
    assert load_config("mine", directory=other, use_case="other").training.seed == 1  # churn's override is churn's


def test_the_test_environment_sizes_churn_through_its_per_use_case_section() -> None:
    assert load_config("test").generate.entities == 600
    assert load_config("local").generate.entities == 10_000


@pytest.mark.parametrize(
    ("env_text", "use_case_text", "overrides", "expected"),
    [
        ("use_cases:\n  chrun:\n    training: {seed: 1}\n", None, [], "mine.yaml: use_cases.chrun: unknown use case (use cases: churn, demand, fraud, maintenance, mock_customer)"),
        ("use_cases: [churn]\n", None, [], "mine.yaml: use_cases must map use case names to sections"),
        ("use_cases:\n  churn: 3\n", None, [], "mine.yaml: use_cases.churn: must hold a mapping of keys"),
        ("", None, ["use_case.name=other"], "use_case.name 'other' differs from the use case's file churn.yaml"),
        ("", "use_case:\n  name: other\n", [], "use_case.name 'other' differs from the use case's file churn.yaml"),
        ("", "use_case:\n  entity: {name: customer, key: customer_id, colour: red}\n", [],
         "use_case.entity.colour: unknown key"),
        ("", "use_cases: {}\n", [], "use_cases: unknown key"),  # per-use-case overrides live in environment files
    ],
)
def test_bad_use_case_configuration_names_the_key(
    tmp_path: Path, env_text: str, use_case_text: str | None, overrides: list[str], expected: str,
) -> None:
    directory = conf_copy(tmp_path, env_text)
    if use_case_text is not None:
        churn = yaml.safe_load(_churn_text())
        for key, value in yaml.safe_load(use_case_text).items():
            churn[key] = {**churn.get(key, {}), **value} if isinstance(value, dict) else value
        (directory / "use_cases" / "churn.yaml").write_text(yaml.safe_dump(churn))
    with pytest.raises(ConfigError) as caught:
        load_config("mine", overrides, directory=directory)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_source_may_point_at_a_shared_path_without_changing_the_feature_set() -> None:
    config = load_config("local", ["lake.root=s3a://bucket/lake"])
    assert tables.table_path(config, "transactions") == "s3a://bucket/lake/churn/transactions"
    for path, expected in [
        ("shared/transactions", "s3a://bucket/lake/shared/transactions"),  # relative to lake.root
        ("/data/transactions/", "/data/transactions"),
        ("s3a://other/transactions", "s3a://other/transactions"),
    ]:
        shared = load_config("local", ["lake.root=s3a://bucket/lake", f"use_case.sources.transactions.path={path}"])
        assert tables.table_path(shared, "transactions") == expected
        assert tables.table_path(shared, "customers") == "s3a://bucket/lake/churn/customers"
        assert expand(shared).fingerprint == expand(config).fingerprint


def _old_layout_lake(root: Path) -> None:
    for table in ("customers", "transactions", "features", "runs"):
        (root / table / "_delta_log").mkdir(parents=True)
    for folder in ("models/churn/1", "_gx", "_metastore"):
        (root / folder).mkdir(parents=True)


def test_a_lake_in_the_old_layout_is_refused_with_the_command_that_moves_it(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _old_layout_lake(lake)
    config = load_config("test", [f"lake.root={lake}"])
    with pytest.raises(ConfigError) as caught:
        tables.require_layout(config)
    # The old embedded metastore is not moved: no job uses one any more.
    moved = " ".join(f"{lake}/{name}" for name in ("_gx", "customers", "features", "models", "runs", "transactions"))
    assert str(caught.value) == (
        f"lake.root {lake} holds one use case's tables directly under it (the layout before use cases): "
        f"move them into <lake.root>/<use case>/, for churn: mkdir {lake}/churn && mv {moved} {lake}/churn/ "
        "(README: Lake layout)"
    )
    # The command it gives makes a lake that is accepted, and in which churn finds its tables.
    subprocess.run(f"mkdir {lake}/churn && mv {moved} {lake}/churn/", shell=True, check=True)
    tables.require_layout(config)
    assert Path(tables.table_path(config, "features"), "_delta_log").is_dir()


def test_a_job_on_an_old_layout_lake_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    lake = tmp_path / "lake"
    _old_layout_lake(lake)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*"))

    def body(context: cli.JobContext) -> None:
        raise AssertionError("the body must not run")

    argv = ["--env", "test", "--set", f"lake.root={lake}"]
    assert cli.run_job("probe", "a test job", lambda parser: None, body, "optional", argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"nightjar probe: error: lake.root {lake} holds one use case's tables directly under it")
    assert sorted(p.relative_to(lake) for p in lake.rglob("*")) == before


def test_new_layout_and_shared_sources_are_not_taken_for_the_old_layout(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for folder in ("churn/features/_delta_log", "other/runs/_delta_log", "shared/transactions/_delta_log"):
        (lake / folder).mkdir(parents=True)
    tables.require_layout(load_config("test", [f"lake.root={lake}"]))
    tables.require_layout(load_config("test", [f"lake.root={tmp_path / 'nothing-here'}"]))


def test_make_demo_reads_its_dates_from_the_use_case() -> None:
    assert demo.demo_dates(load_config("local")) == (date(2026, 1, 1), date(2026, 3, 31))  # as before use cases
    result = subprocess.run([sys.executable, "-m", "nightjar.demo", "--use-case", "nope"], capture_output=True,
                            text=True, cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("nightjar demo: error: unknown use case 'nope'")


@pytest.mark.parametrize("name", ["churn", "maintenance", "demand", "fraud"])
def test_each_demo_use_case_loads_expands_and_has_demo_dates(name: str) -> None:
    for env in ("local", "test"):
        config = load_config(env, use_case=name)
        assert expand(config).names
        first, end = demo.demo_dates(config)
        last_training = demo.last_training_date(config)
        assert config.generate is not None and first <= last_training < end == config.generate.end_date


def test_demand_is_keyed_by_store_and_item_and_forecasts_the_next_seven_days() -> None:
    config = load_config("local", use_case="demand")
    assert config.use_case.entity.keys == ["store_id", "item_id"]
    assert (config.use_case.label.task, str(config.use_case.label.horizon)) == ("regression", "1d")
    assert config.use_case.forecast is not None and config.use_case.forecast.horizon_days == 7
    feature_set = expand(config)
    assert feature_set.row_keys == ["store_id", "item_id", "horizon"]
    assert {f"sales_units_sum_1d_lag{n}d" for n in range(1, 7)} | {
        "sales_units_mean_7d_lag7d", "sales_units_mean_28d_lag7d", "zero_share_28d", "age_days", "horizon",
        "target_day_of_week", "target_planned_price", "target_planned_promo"} <= set(feature_set.names)
    assert {spec.source for spec in feature_set.planned} == {"plans"}
    assert config.training.ensemble is not None and len(config.training.ensemble.members) == 3
    # The last horizon's label of T - 7 is T: 56 training dates end a week before T.
    assert demo.demo_dates(config) == (date(2026, 1, 28), date(2026, 3, 31))
    with pytest.raises(ConfigError, match=r"entities \(5001\) must be a multiple of stores \(10\)") as caught:
        load_config("local", ["generate.entities=5001"], use_case="demand")
    assert caught.value.exit_code == 2
