# Two commands: `make demo` and `make test`. Each sets itself up on a fresh machine
# (virtualenv, pinned packages, Delta jars from Maven Central) and skips what is already there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.fetched

.PHONY: setup demo test clean-lake clean

setup: $(VENV_STAMP) $(JARS_STAMP)

$(VENV_STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Only the io.delta artifacts: everything else they depend on ships inside pyspark.
$(JARS_STAMP): deps/pom.xml
	rm -rf .jars
	cd deps && mvn --batch-mode --quiet dependency:copy-dependencies \
	  -DincludeScope=runtime -DincludeGroupIds=io.delta -DoutputDirectory=../.jars
	touch $@

# The demo's dates follow conf/base.yaml: generate.end_date and its 180 days of history.
DEMO_DATE ?= 2026-03-31
DEMO_FEATURES_START ?= 2026-01-01

demo: setup
	./spark-submit.sh generate
	./spark-submit.sh features --start $(DEMO_FEATURES_START) --end $(DEMO_DATE)
	./spark-submit.sh train --date $(DEMO_DATE)
	./spark-submit.sh score --date $(DEMO_DATE)

test: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest

clean-lake:
	rm -rf lake

clean: clean-lake
	rm -rf $(VENV) .jars build *.egg-info
