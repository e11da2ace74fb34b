"""A lake on an object store: the nightly path on `s3a://` against a real S3-compatible server.

A `moto` server process on 127.0.0.1 stands in for S3. Every job is a real `./spark-submit.sh`
process, as a scheduler launches it, whose environment alone names the endpoint and holds the
credentials (README: "A lake on an object store"); delta-rs, pyarrow and boto3 here read back
what they wrote.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from deltalake import DeltaTable

from nightjar import tables
from nightjar.config_loader import PROJECT_ROOT, load_config
from nightjar.session import spark_conf
from tests.conftest import FEATURES_END, FEATURES_START, TRAIN_DATE, free_port, wait_until

BUCKET = "nightjar-test"
LAKE = f"s3a://{BUCKET}/lake"
# moto accepts any key; what matters is that the jobs get them from the environment only.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "nightjar-test-key", "AWS_SECRET_ACCESS_KEY": "nightjar-test-secret"}


def test_spark_reaches_the_endpoint_the_environment_names_and_never_holds_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    conf = spark_conf(load_config("test", [f"lake.root={LAKE}"]))
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert "hadoop-aws-3.5.0.jar" in conf["spark.jars"]
    assert not any(secret in value for value in conf.values() for secret in CREDENTIALS.values())
    # A local lake neither loads the s3a jars (the AWS SDK bundle alone is ~690 MB) nor sets s3a.
    local = spark_conf(load_config("test", ["lake.root=/data/lake"]))
    assert "hadoop-aws" not in local["spark.jars"] and not any(key.startswith("spark.hadoop.fs.s3a") for key in local)
    # An environment's own setting wins over the variable.
    override = load_config("test", [f"lake.root={LAKE}", "spark.settings.spark.hadoop.fs.s3a.endpoint=https://s3.example"])
    assert spark_conf(override)["spark.hadoop.fs.s3a.endpoint"] == "https://s3.example"


def test_a_pushed_folder_sends_back_only_its_own_changes(tmp_path: Path) -> None:
    stored, mine = tmp_path / "stored", str(tmp_path / "mine")
    (stored / "a").mkdir(parents=True)
    (stored / "a" / "kept.json").write_text("1")
    (stored / "gone.json").write_text("2")
    (stored / "index.html").write_text("old")
    pulled = tables.pull_folder(str(stored), mine)
    assert sorted(pulled) == ["a/kept.json", "gone.json", "index.html"]
    Path(mine, "gone.json").unlink()
    Path(mine, "index.html").write_text("new")
    Path(mine, "b").mkdir()
    Path(mine, "b", "mine.json").write_text("3")
    (stored / "theirs.json").write_text("4")  # another process's push in between
    tables.push_folder(mine, str(stored), pulled)
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()) == [
        "a/kept.json", "b/mine.json", "index.html", "theirs.json",
    ]
    assert (stored / "index.html").read_text() == "new"


@pytest.fixture(scope="module")
def s3_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real `moto` S3 server process on a free port of 127.0.0.1 holding an empty bucket.

    Yields the environment variables a job needs to reach it: the endpoint, region, plain HTTP
    allowed (delta-rs refuses it otherwise) and the credentials.
    """
    work = tmp_path_factory.mktemp("moto")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(work / "moto.log", "w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, 60,
                   "the moto S3 server")
        environment = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            **CREDENTIALS,
        }
        _s3(environment).create_bucket(Bucket=BUCKET)
        yield environment
    finally:
        server.terminate()
        server.wait(timeout=20)


def _s3(environment: dict[str, str]):  # noqa: ANN202 - boto3's client classes are generated
    return boto3.client(
        "s3", endpoint_url=environment["AWS_ENDPOINT_URL"], region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"], aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
    )


def _keys(environment: dict[str, str], prefix: str) -> list[str]:
    pages = _s3(environment).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _table(environment: dict[str, str], name: str) -> DeltaTable:
    """Table `name` of churn on the object store, read by delta-rs with explicit storage options."""
    options = {key: value for key, value in environment.items()}
    return DeltaTable(f"{LAKE}/churn/{name}", storage_options=options)


def _rows(table: DeltaTable) -> list[str]:
    """The table's rows but their run id, as sorted JSON (exact values; any column type compares)."""
    rows = table.to_pyarrow_table().to_pylist()
    return sorted(json.dumps({k: v for k, v in row.items() if k != "run_id"}, sort_keys=True, default=str) for row in rows)


def _launch(environment: dict[str, str], cwd: Path, job: str, *argv: str) -> subprocess.CompletedProcess:
    """`./spark-submit.sh JOB` on the object-store lake, from `cwd`, with the S3 variables in its environment only."""
    # Nothing from this process's own AWS settings may leak in: the job sees exactly `environment`.
    clean = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return subprocess.run(
        [str(PROJECT_ROOT / "spark-submit.sh"), job, "--env", "test", "--set", f"lake.root={LAKE}", *argv],
        capture_output=True, text=True, timeout=600, cwd=cwd, env={**clean, **environment},
    )


def test_the_nightly_path_runs_on_an_object_store(
    s3_environment: dict[str, str], scored_lake: Path, tmp_path: Path,
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    local_lake = PROJECT_ROOT / "lake"
    local_lake_before = local_lake.exists()
    steps = [
        ("generate",),
        ("features", "--start", FEATURES_START, "--end", FEATURES_END),
        ("train", "--date", TRAIN_DATE),
        ("score", "--date", FEATURES_END),
        ("sql", "SELECT ds, count(*) AS n FROM nightjar_churn.scores GROUP BY ds"),
    ]
    finished = []
    for job, *argv in steps:
        done = _launch(s3_environment, cwd, job, *argv)
        assert done.returncode == 0, f"{job} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        finished.append(done)

    # delta-rs reads the scores from the store: one row per customer with features on the date.
    day = [("ds", "=", date.fromisoformat(FEATURES_END))]
    scores = _table(s3_environment, "scores").to_pandas(filters=day)
    features = _table(s3_environment, "features").to_pandas(filters=day, columns=["customer_id"])
    assert len(scores) == len(features) > 0
    assert set(scores["customer_id"]) == set(features["customer_id"])
    assert scores["score"].between(0, 1).all() and (scores["model_version"] == 1).all()
    # `sql` reached the same table through the s3a file system.
    assert f"|{FEATURES_END}|{len(scores)}|" in finished[-1].stdout.replace(" ", "")

    # Models, registry, training snapshot, runs and GX results all live on the object store.
    keys = _keys(s3_environment, "lake/churn/")
    name = load_config("test", [f"lake.root={LAKE}"]).model_name
    for expected in (f"lake/churn/models/{name}/1/model.txt", f"lake/churn/models/{name}/1/metadata.json",
                     "lake/churn/_gx/data_docs/index.html"):
        assert expected in keys, expected
    for table in ("registry", "training_set", "runs", "features", "scores"):
        assert f"lake/churn/{table}/_delta_log/00000000000000000000.json" in keys, table
    results = [key for key in keys if key.startswith("lake/churn/_gx/gx/uncommitted/validations/")]
    assert any(key.startswith("lake/churn/_gx/gx/uncommitted/validations/features/features/") for key in results)
    assert any(key.startswith("lake/churn/_gx/gx/uncommitted/validations/source/transactions/") for key in results)
    runs = _table(s3_environment, "runs").to_pandas()
    assert sorted(runs["job"]) == ["features", "generate", "score", "train"]
    assert set(runs["status"]) == {"succeeded"}

    # The same model and the same scores, value for value, as the same path on a local lake
    # (the session's scored lake: generate, features, train and score in local mode).
    local_config = load_config("test", [f"lake.root={scored_lake}"])
    stored = _s3(s3_environment).get_object(Bucket=BUCKET, Key=f"lake/churn/models/{name}/1/model.txt")
    assert stored["Body"].read().decode() == (scored_lake / "churn" / "models" / name / "1" / "model.txt").read_text()
    local_scores = DeltaTable(tables.table_path(local_config, "scores"))
    assert _rows(_table(s3_environment, "scores")) == _rows(local_scores) and len(_rows(local_scores)) == len(scores)

    # Nothing went to a local lake: not the default ./lake, not the working directory.
    assert local_lake.exists() == local_lake_before
    assert not [path for path in cwd.rglob("*") if path.suffix in (".parquet", ".json", ".txt") or path.name == "churn"]
