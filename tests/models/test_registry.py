from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models import registry
from models.ensemble import Ensemble, Offset, from_text
from models.config import SearchDimension
from models.search import draw_params
from nightjar import tables
from nightjar.config import Config
from nightjar.errors import MissingInputError


def alias(version: int, action: str = "gate", name: str = registry.CHAMPION) -> dict:
    return {"alias": name, "version": version, "action": action}


def test_the_champion_history_is_a_stack() -> None:
    rows = [{"alias": None, "version": 1, "action": "register"}, alias(1), alias(2),
            alias(3, name=registry.CHALLENGER), alias(4, "promote")]
    assert registry.champion_version(rows) == 4 and registry.rollback_target(rows) == 2
    rows.append(alias(2, "rollback"))
    assert registry.champion_version(rows) == 2 and registry.rollback_target(rows) == 1
    rows.append(alias(1, "rollback"))
    assert registry.champion_version(rows) == 1 and registry.rollback_target(rows) is None
    assert registry.champion_version([]) is None


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 2))
    return lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(
        features, (features[:, 0] > 0).astype(int), feature_name=["a", "b"]), num_boost_round=3)


@pytest.fixture
def registered(config: Config) -> Path:
    files = registry.model_files(_booster(), {"features": ["a", "b"]})
    return Path(tables.write_model(config, "churn", 1, files))


def test_a_registered_model_loads_and_verifies(config: Config, registered: Path) -> None:
    model = registry.load(config, "churn", 1)
    assert model.features == ["a", "b"] and model.booster.num_trees() == 3
    assert tables.model_versions(config, "churn") == [1]
    assert not [p for p in registered.parent.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.txt").write_text((d / "model.txt").read_text()[:500]), "model.txt is corrupt"),
        (lambda d: (d / "model.txt").unlink(), "model.txt is missing"),
        (lambda d: (d / "metadata.json").write_text("{not json"), "metadata.json is corrupt"),
        (lambda d: (d / "metadata.json").write_text(json.dumps({"features": ["a", "b"]})), "metadata.json is corrupt"),
    ],
    ids=["truncated", "missing", "bad-json", "no-checksum"],
)
def test_a_damaged_model_is_refused(config: Config, registered: Path, damage, message: str) -> None:  # noqa: ANN001
    damage(registered)
    with pytest.raises(MissingInputError, match=message) as error:
        registry.load(config, "churn", 1)
    assert str(registered) in str(error.value) and error.value.exit_code == 4


def test_a_model_text_that_parses_but_was_altered_is_refused(config: Config, registered: Path) -> None:
    text = (registered / "model.txt").read_text()
    (registered / "model.txt").write_text(text.replace("shrinkage=", "shrinkage=0", 1))
    with pytest.raises(MissingInputError, match="SHA-256"):
        registry.load(config, "churn", 1)


def test_an_unknown_version_is_missing(config: Config) -> None:
    with pytest.raises(MissingInputError, match="version 9"):
        registry.load(config, "churn", 9)


def test_model_text_drops_the_run_network_addresses() -> None:
    booster = _booster()
    text = booster.model_to_string().replace("[machines: ]", "[machines: 127.0.0.1:1,127.0.0.1:2]")
    loaded = lgb.Booster(model_str=text)
    assert "[machines: 127.0.0.1:1,127.0.0.1:2]" in loaded.model_to_string()
    stripped = registry.model_text(loaded)
    assert "127.0.0.1" not in stripped and "[local_listen_port:" not in stripped
    rows = np.random.default_rng(1).normal(size=(50, 2))
    assert np.array_equal(lgb.Booster(model_str=stripped).predict(rows), booster.predict(rows))


def test_trials_draw_the_same_parameters_for_the_same_seed() -> None:
    space = {"num_leaves": SearchDimension(low=7, high=63, log=True, integer=True),
             "feature_fraction": SearchDimension(low=0.5, high=1.0)}
    drawn = draw_params(space, 4, seed=3)
    assert drawn == draw_params(space, 4, seed=3)
    assert drawn[:2] == draw_params(space, 2, seed=3)  # more trials never change the first ones
    assert drawn != draw_params(space, 4, seed=4)
    assert all(7 <= p["num_leaves"] <= 63 and isinstance(p["num_leaves"], int) for p in drawn)
    assert all(0.5 <= p["feature_fraction"] <= 1.0 for p in drawn)


@pytest.mark.parametrize("scheme", ["file://", "file:"])
def test_a_lake_root_given_as_a_file_uri_keeps_its_models_in_the_lake(
    make_config, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str,  # noqa: ANN001
) -> None:
    monkeypatch.chdir(tmp_path)  # pathlib once wrote `file:/...` as a relative folder under the working directory
    config = make_config(lake, f"lake.root={scheme}{lake}")
    assert config.lake.root == f"{scheme}{lake}"
    path = tables.write_model(config, "churn", 1, registry.model_files(_booster(), {"features": ["a", "b"]}))
    assert path == f"{scheme}{lake}/churn/models/churn/1"
    assert sorted(p.name for p in (lake / "churn" / "models" / "churn" / "1").iterdir()) == ["metadata.json", "model.txt"]
    assert not (tmp_path / "file:").exists()
    assert tables.model_versions(config, "churn") == [1]
    model = registry.load(config, "churn", 1)
    assert model.booster.num_trees() == 3 and model.path == path
    with pytest.raises(FileExistsError):
        tables.write_model(config, "churn", 1, {"model.txt": "x"})
    (lake / "churn" / "models" / "churn" / "1" / "model.txt").unlink()
    with pytest.raises(MissingInputError, match=f"model churn version 1: {scheme}{lake}/churn/models/churn/1/model.txt is missing"):
        registry.load(config, "churn", 1)
    tables.delete_model(config, "churn", 1)
    assert tables.model_versions(config, "churn") == [] and not (lake / "churn" / "models" / "churn" / "1").exists()
    assert tables.gx_root(config) == f"{lake}/churn/_gx"


def _ensemble() -> Ensemble:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 2))
    label = features[:, 0] + 0.1 * rng.normal(size=300)
    return Ensemble(tuple(
        lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1, "seed": seed, **extra},
                  lgb.Dataset(features, label, feature_name=["a", "b"]), num_boost_round=4)
        for seed, extra in ((1, {}), (2, {"feature_fraction": 0.5}), (3, {"objective": "huber"}))
    ))


@pytest.fixture
def registered_ensemble(config: Config) -> Path:
    members = [{"params": {"seed": seed}, "holdout": {"rmse": 1.0}} for seed in (1, 2, 3)]
    files = registry.model_files(_ensemble(), {"features": ["a", "b"], "ensemble": {"members": members}})
    assert sorted(files) == ["ensemble.json", "member_0.txt", "member_1.txt", "member_2.txt", "metadata.json"]
    return Path(tables.write_model(config, "demand", 1, files))


def test_an_ensemble_is_one_version_that_predicts_its_members_mean(config: Config, registered_ensemble: Path) -> None:
    model = registry.load(config, "demand", 1)
    original = _ensemble()
    assert isinstance(model.booster, Ensemble) and len(model.booster.members) == 3
    rows = np.random.default_rng(5).normal(size=(50, 2))
    expected = np.mean([member.predict(rows) for member in original.members], axis=0)
    np.testing.assert_allclose(model.booster.predict(rows), expected, rtol=0, atol=1e-12)
    # Its one text (what scoring broadcasts) reads back as the same ensemble.
    again = from_text(registry.model_text(model.booster))
    np.testing.assert_allclose(again.predict(rows), expected, rtol=0, atol=1e-12)
    manifest = json.loads((registered_ensemble / "ensemble.json").read_text())
    assert [m["file"] for m in manifest["members"]] == ["member_0.txt", "member_1.txt", "member_2.txt"]
    assert manifest["members"][1]["params"] == {"seed": 2}


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "member_1.txt").write_text((d / "member_1.txt").read_text()[:300]), "member_1.txt is corrupt"),
        (lambda d: (d / "member_2.txt").unlink(), "member_2.txt is missing"),
        (lambda d: (d / "ensemble.json").write_text("{}"), "ensemble.json is corrupt"),
    ],
)
def test_a_damaged_ensemble_is_refused_naming_the_file(
    config: Config, registered_ensemble: Path, damage, message: str,  # noqa: ANN001
) -> None:
    damage(registered_ensemble)
    with pytest.raises(MissingInputError, match=message):
        registry.load(config, "demand", 1)


def test_a_booster_with_an_offset_is_one_version_that_keeps_its_offset(config: Config) -> None:
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.uniform(0.5, 20, 400), rng.normal(size=400)])
    offset = Offset("a", 0.1)
    booster = lgb.train({"objective": "poisson", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(features, rng.poisson(features[:, 0]), feature_name=["a", "b"],
                                    init_score=offset.log(features[:, 0])), num_boost_round=4)
    files = registry.model_files(Ensemble((booster,), offset),
                                 {"features": ["a", "b"], "offset": {"feature": "a", "floor": 0.1}})
    assert sorted(files) == ["ensemble.json", "member_0.txt", "metadata.json"]
    tables.write_model(config, "demand", 1, files)
    model = registry.load(config, "demand", 1).booster
    assert isinstance(model, Ensemble) and model.offset == offset
    expected = np.exp(booster.predict(features, raw_score=True) + np.log(features[:, 0]))
    np.testing.assert_allclose(model.predict(features), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(from_text(registry.model_text(model)).predict(features), expected, rtol=1e-12, atol=0)
