from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from nightjar import session, tables
from nightjar.config_loader import PROJECT_ROOT, load_config
from nightjar.errors import ConfigError
from nightjar.session import spark_conf
from tests.conftest import conf_copy


def test_local_environment_layers_over_base() -> None:
    config = load_config("local")
    assert config.env == "local"
    assert config.spark.master == "local[*]"
    assert config.spark.app_name == "nightjar"  # from base.yaml
    assert config.spark.settings["spark.sql.session.timeZone"] == "UTC"
    assert config.use_case.entity.key == "customer_id"
    assert config.use_case.label.horizon.whole_days == 30


def test_relative_lake_root_is_resolved_against_the_project_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("local").lake.root == str(PROJECT_ROOT / "lake")


def test_object_store_root_is_kept_as_is() -> None:
    config = load_config("local", ["lake.root=s3a://bucket/nightjar"])
    assert config.lake.root == "s3a://bucket/nightjar"


def test_set_overrides_parse_yaml_scalars() -> None:
    config = load_config("local", ["spark.shuffle_partitions=3", "dask.scheduler=tcp://127.0.0.1:8786"])
    assert config.spark.shuffle_partitions == 3
    assert config.dask.scheduler == "tcp://127.0.0.1:8786"


def test_set_reaches_spark_settings_whose_keys_contain_dots() -> None:
    config = load_config("local", ["spark.settings.spark.ui.enabled=false"])
    assert config.spark.settings["spark.ui.enabled"] == "false"


def test_nightjar_env_variable_picks_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_ENV", "test")
    assert load_config().env == "test"


def test_reasons_go_to_the_top_five_percent_unless_a_minimum_score_takes_their_place() -> None:
    scoring = load_config("local").scoring
    assert (scoring.reasons_top_percent, scoring.reasons_min_score) == (5, None)
    scoring = load_config("local", ["scoring.reasons_min_score=0.5"]).scoring
    assert (scoring.reasons_top_percent, scoring.reasons_min_score) == (None, 0.5)
    scoring = load_config("local", ["scoring.reasons_top_percent=null"]).scoring  # every row
    assert (scoring.reasons_top_percent, scoring.reasons_min_score) == (None, None)
    with pytest.raises(ConfigError, match=r"set reasons_min_score or reasons_top_percent, not both \(set the other to null\)"):
        load_config("local", ["scoring.reasons_min_score=0.5", "scoring.reasons_top_percent=1"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("spark.mastr=local[1]", "spark.mastr: unknown key"),
        ("spark.shuffle_partitions=many", "spark.shuffle_partitions: Input should be a valid integer"),
        ("spark.shuffle_partitions=0", "spark.shuffle_partitions: Input should be greater than or equal to 1"),
        ("use_case.label.source=customers", "label.source 'customers' must be an events source"),
        ("use_case.label.source=clicks", "label.source 'clicks' is not one of the sources"),
        ("use_case.entity.key=customer id", "use_case.entity.key: Value error, key column 'customer id' is not an identifier"),
        ("use_case.entity.key=[store_id, store_id]", "use_case.entity.key: Value error, key names a column twice"),
        ("use_case.entity.key=[]", "use_case.entity.key: Value error, key names no column"),
        ("generate.end_date=2026-02-30", "generate.end_date"),
        ("spark", "--set 'spark': expected dotted.key=value"),
        ("spark.master.x=1", "--set spark.master.x: spark.master is a value, not a section"),
        ("validation.suites.source.clicks=[]",
         "validation.suites.source.clicks: not a source table (expected one of: customers, transactions)"),
        ("validation.suites.scores.scores=[{expect: betwen, columns: [score]}]",
         "validation.suites.scores.scores.0: Input tag 'betwen' found using 'expect' does not match"),
        ("validation.suites.scores.scores=[{expect: between, columns: [score]}]",
         "validation.suites.scores.scores.0.between: Value error, give min, max or both"),
        ("validation.suites.scores.scores=[{expect: not_null, colums: [score]}]",
         "validation.suites.scores.scores.0.not_null.colums: unknown key"),
        ("validation.suites.features.features=[{expect: timestamp_in_partition}]",
         "validation.suites.features.features: timestamp_in_partition applies to source tables only"),
        ("validation.drift.severity=fatal", "validation.drift.severity: Input should be 'blocking' or 'warning'"),
        ("validation.keep_results_days=-1", "validation.keep_results_days: Input should be greater than or equal to 0"),
        ("scoring.reasons_min_score=high", "scoring.reasons_min_score: Input should be a valid number"),
        ("use_case.label.horizon_days=30", "use_case.label.horizon_days: unknown key"),
        ("use_case.label.horizon=3x", "use_case.label.horizon: Value error, '3x' is not a duration"),
        ("use_case.label.horizon=0h", "use_case.label.horizon: Value error, '0h' is not a duration"),
        ("features.windows=[7, 3x]", "features.windows.1: Value error, '3x' is not a duration"),
        ("features.windows=[-3]", "features.windows.0: Value error, -3 is not a duration"),
        ("scoring.alert.min_precision=1.5", "scoring.alert.min_precision: Input should be less than or equal to 1"),
        ("scoring.alert.lead=24h", "scoring.alert.lead: unknown key"),
        ("scoring.alert.lead_time=30d", "scoring.alert.lead_time: 30d is not shorter than use_case.label.horizon 30d"),
        ("scoring.alert={lead_time: 1x}", "scoring.alert.lead_time: Value error, '1x' is not a duration"),
        ("generate.stores=4", "generate: Value error, stores applies to the demand scenario only, not 'churn'"),
        ("training.reference.dated=target_date",
         "training.reference.dated: target_date needs a sum label over whole days (use_case.label is 'no_event' over 30d)"),
        ("training.reference.dated=label_date", "training.reference.dated: Input should be 'feature_date' or 'target_date'"),
        ("training.metric=f1", "training.metric: Value error, unknown metric 'f1' (one of: auc, pr_auc, log_loss, rmse)"),
        ("training.metric=rmse",
         "invalid configuration: training.metric: 'rmse' does not measure a classification label (one of: auc, pr_auc, "
         "log_loss)"),
        ("training.params={metric: average_precision}",
         "training.params: Value error, the metric is training.metric, not a LightGBM parameter"),
    ],
)
def test_bad_values_name_the_key_and_the_reason(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        load_config("local", [override])
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_alerts_are_optional_with_defaults_and_for_classification_labels_only() -> None:
    assert load_config("local").scoring.alert is None
    alert = load_config("local", ["scoring.alert={}"]).scoring.alert
    assert (alert.min_precision, str(alert.lead_time)) == (0.9, "24h")
    spend = ["use_case.label={name: spend, kind: sum, source: transactions, horizon: 30d, column: amount}"]
    with pytest.raises(ConfigError, match="^invalid configuration: scoring.alert: alerts apply to classification "
                                          "labels only [(]use_case.label.kind is 'sum'[)]$") as caught:
        load_config("local", [*spend, "scoring.alert.min_precision=0.8"])
    assert caught.value.exit_code == 2
    assert load_config("local", spend).scoring.alert is None


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--env 'prod': no file .*prod.yaml \(environments: .*local.*\)"):
        load_config("prod")


def test_environment_name_cannot_leave_the_conf_folder() -> None:
    with pytest.raises(ConfigError, match="--env '../base'"):
        load_config("../base")


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    directory = conf_copy(tmp_path, "spark:\n  master: [local\n")
    with pytest.raises(ConfigError, match=r"mine.yaml line \d+: not valid YAML"):
        load_config("mine", directory=directory)


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    directory = conf_copy(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="mine.yaml: must hold a mapping"):
        load_config("mine", directory=directory)


def test_environment_variables_are_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = conf_copy(tmp_path, "spark:\n  master: ${MY_MASTER}\n  app_name: ${MY_APP:-fallback}\n")
    monkeypatch.setenv("MY_MASTER", "spark://127.0.0.1:7077")
    config = load_config("mine", directory=directory)
    assert config.spark.master == "spark://127.0.0.1:7077"
    assert config.spark.app_name == "fallback"


def test_an_unset_variable_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = conf_copy(tmp_path, "spark:\n  master: ${MY_MASTER}\n")
    monkeypatch.delenv("MY_MASTER", raising=False)
    with pytest.raises(ConfigError, match=r"spark.master: references \$\{MY_MASTER\}, which is not set"):
        load_config("mine", directory=directory)


def test_cluster_example_is_a_valid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_LAKE_ROOT", "s3a://bucket/lake")
    monkeypatch.setenv("HIVE_METASTORE_URIS", "thrift://metastore:9083")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    config = load_config("cluster.example")
    assert config.spark.master == "yarn"
    assert config.lake.root == "s3a://bucket/lake"
    assert config.dask.scheduler == "tcp://scheduler:8786"
    assert config.spark.settings["spark.sql.session.timeZone"] == "UTC"  # kept from base


def test_configuration_is_immutable() -> None:
    config = load_config("local")
    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.spark.master = "yarn"  # type: ignore[misc]


def test_the_validation_project_lives_beside_the_lake_local_or_remote() -> None:
    assert tables.gx_root(load_config("local", ["lake.root=/data/lake"])) == "/data/lake/churn/_gx"
    assert tables.data_docs_dir(load_config("local", ["lake.root=/data/lake"])) == "/data/lake/churn/_gx/data_docs"
    # On an object store too (GX works on a local copy: validation.results).
    assert tables.gx_root(load_config("local", ["lake.root=s3a://bucket/nightjar"])) == "s3a://bucket/nightjar/churn/_gx"
    remote = load_config("local", ["lake.root=s3a://bucket/nightjar", "validation.gx_root=/srv/nightjar_gx"])
    assert tables.gx_root(remote) == "/srv/nightjar_gx/churn"  # one GX project per use case


def test_java_options_reach_the_driver_after_the_log_settings_and_the_executors() -> None:
    options = '["-XX:TieredStopAtLevel=1", "-Dnightjar.example=1"]'
    no_archive = "spark.class_data_sharing=false"
    conf = spark_conf(load_config("test", [f"spark.java_options={options}", no_archive]))
    driver = conf["spark.driver.extraJavaOptions"].split()
    assert driver[0].startswith("-Dlog4j.configurationFile=file:") and driver[1:] == json.loads(options)
    assert conf["spark.executor.extraJavaOptions"] == "-XX:TieredStopAtLevel=1 -Dnightjar.example=1"
    none = spark_conf(load_config("test", ["spark.java_options=[]", no_archive]))
    assert len(none["spark.driver.extraJavaOptions"].split()) == 1 and "spark.executor.extraJavaOptions" not in none


def test_the_driver_maps_the_class_archive_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = session.class_archive_path()  # `make setup`'s, for pyspark's jars
    assert made.is_file(), f"no class archive at {made}: `make setup` makes it"
    jars = tmp_path / "jars"
    jars.mkdir()
    for jar in session.delta_jars():
        (jars / Path(jar).name).symlink_to(jar)
    monkeypatch.setenv("NIGHTJAR_JARS_DIR", str(jars))

    def driver_options(*overrides: str) -> list[str]:
        return spark_conf(load_config("test", list(overrides)))["spark.driver.extraJavaOptions"].split()

    assert not any("SharedArchiveFile" in option for option in driver_options())  # none made yet
    archive = jars / made.name
    assert session.class_archive_path() == archive
    archive.symlink_to(made)
    options = driver_options()
    assert f"-XX:SharedArchiveFile={archive}" in options
    assert "SharedArchiveFile" not in " ".join(driver_options("spark.class_data_sharing=false"))
    # The archive on another class path (as after an upgrade of pyspark's jars): the JVM starts
    # without it, and the -Xlog options keep its warning out of the job's log.
    quiet = [option for option in options if option.startswith("-Xlog")]
    for extra, warned in (([], True), (quiet, False)):
        started = subprocess.run(["java", f"-XX:SharedArchiveFile={made}", *extra, "-cp", str(tmp_path), "-version"],
                                 capture_output=True, text=True, timeout=60)
        output = started.stdout + started.stderr  # the JVM logs to stdout
        assert started.returncode == 0 and ("warning" in output) == warned, output
