# Two commands: `make demo` and `make test`. Each sets itself up on a fresh machine
# (virtualenv, pinned packages, Delta jars from Maven Central) and skips what is already there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.fetched
CLASS_ARCHIVE := .jars/spark-classes.jsa

.PHONY: setup demo test clean-lake clean

setup: $(VENV_STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE)

$(VENV_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Only the io.delta artifacts: everything else they depend on ships inside pyspark.
# .jars/s3a: the s3a file system (hadoop-aws, matching pyspark's Hadoop client 3.5.0) and what it
# needs that pyspark lacks: the AWS SDK v2 bundle (about 690 MB, so sessions load it only for
# an s3a:// lake), the analytics accelerator and wildfly-openssl. Not Delta's Hadoop client:
# pyspark ships its own.
$(JARS_STAMP): deps/pom.xml
	rm -rf .jars
	cd deps && mvn --batch-mode --quiet dependency:copy-dependencies \
	  -DincludeScope=runtime -DincludeGroupIds=io.delta -DoutputDirectory=../.jars
	cd deps && mvn --batch-mode --quiet dependency:copy-dependencies -DincludeScope=runtime \
	  -DincludeGroupIds=org.apache.hadoop,software.amazon.awssdk,software.amazon.s3.analyticsaccelerator,org.wildfly.openssl \
	  -DexcludeArtifactIds=hadoop-client-api,hadoop-client-runtime -DoutputDirectory=../.jars/s3a
	touch $@

# The classes a Spark driver loads at start, archived once for JDK class data sharing: every
# job's JVM then maps them instead of loading them (nightjar/class_archive.py). Remade when
# pyspark's packages or the jars change; a stale one is ignored by the JVM.
$(CLASS_ARCHIVE): $(VENV_STAMP) $(JARS_STAMP)
	$(PY) -m nightjar.class_archive

# The use case the demo runs: `make demo USE_CASE=NAME` runs conf/use_cases/NAME.yaml.
USE_CASE ?= churn

# The dates come from the use case's file (python -m nightjar.demo): its generate.end_date, and
# the feature dates training on it uses (for churn: 2026-01-01 .. 2026-03-01), then that date's.
demo: setup
	@set -e; dates="$$($(PY) -m nightjar.demo --use-case $(USE_CASE))"; set -- $$dates; set -x; \
	./spark-submit.sh generate --use-case $(USE_CASE); \
	./spark-submit.sh features --use-case $(USE_CASE) --start $$1 --end $$3; \
	./spark-submit.sh features --use-case $(USE_CASE) --date $$2; \
	./spark-submit.sh train --use-case $(USE_CASE) --date $$2; \
	./spark-submit.sh score --use-case $(USE_CASE) --date $$2

# Two test processes (pytest-xdist), each with its own session-scoped SparkSession; a file's
# tests stay in one process, so module fixtures are built once. Much of the suite's time is JVM
# starts, Delta commits and single-threaded driver work of launched jobs, which two processes
# overlap on two cores. Files run in collection order (tests/benchmarks, the longest, first;
# xdist would otherwise start with the files of most tests and leave the long ones to the end).
# `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2

test: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Airflow runs in a virtualenv of its own (it pins its own pandas and numpy), installed from the
# lock file without resolving: the DAGs in dags/ import nothing from Nightjar, and tests/dags run
# real `airflow` commands from it.
AIRFLOW_VENV := .airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

$(AIRFLOW_STAMP): dags/requirements-airflow.lock
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --no-deps -r dags/requirements-airflow.lock
	touch $@

test: $(AIRFLOW_STAMP)

clean-lake:
	rm -rf lake

clean: clean-lake
	rm -rf $(VENV) .jars .vendor $(AIRFLOW_VENV) build *.egg-info

# Offline reports. The Data Docs pages' front-end assets (Bootstrap, jQuery, bootstrap-table,
# Vega, Font Awesome ...: the versions GX's templates load from CDNs), fetched once from the npm
# registry at the versions deps/vendor/package-lock.json pins, so that no job downloads anything
# and the pages render on a cluster without internet (validation/offline_docs.py).
# --legacy-peer-deps: GX pairs Bootstrap 4.3.1 with popper.js 1.12.9, older than the 1.14.7
# Bootstrap declares as its peer; npm would refuse the pair, and the pages use it.
VENDOR_STAMP := .vendor/.installed

setup: $(VENDOR_STAMP)

$(VENDOR_STAMP): deps/vendor/package.json deps/vendor/package-lock.json
	rm -rf .vendor
	mkdir -p .vendor
	cp deps/vendor/package.json deps/vendor/package-lock.json .vendor/
	cd .vendor && npm ci --ignore-scripts --no-audit --no-fund --legacy-peer-deps --loglevel=error >/dev/null
	touch $@

# Headless Chromium (Debian's package) for the tests that render pages as a person sees them
# (tests/render.py); not needed to run jobs. apt-get needs root, as CI runs `make test`.
.PHONY: chromium
test: chromium

chromium:
	@command -v chromium >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "make test needs Debian's chromium: apt-get install chromium as root" >&2; exit 2; }; \
	  echo "installing Debian's chromium (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
