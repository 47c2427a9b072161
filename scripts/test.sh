#!/usr/bin/env bash
# Set up a virtual environment (if needed) and run the test suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEDZSAD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch/torchvision first, in versions the wheel cache on these machines holds (any in range works).
"$VENV/bin/python" -m pip install --quiet "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
"$VENV/bin/python" -m pip install --quiet -e ".[dev]"
"$VENV/bin/python" -m ruff check medzsad tests bench
"$VENV/bin/python" -m mypy
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
