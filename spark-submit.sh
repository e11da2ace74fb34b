#!/usr/bin/env bash
# The one launcher: ./spark-submit.sh JOB [--use-case NAME] [--env ENV] [--set KEY=VALUE] [--date D | --start D --end D] ...
# Validates the job and configuration, then runs jobs/JOB.py through pyspark's spark-submit with
# the project's packages in --py-files and the local Delta jars in --jars. Exit codes: README.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${NIGHTJAR_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$python" ]]; then
  echo "nightjar: error: no virtualenv at $root/.venv: run 'make setup' first" >&2
  exit 2
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$python" -m nightjar.submit "$@"
