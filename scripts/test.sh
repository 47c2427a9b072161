#!/usr/bin/env bash
# Set up a virtual environment (if needed) and run the test suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
"$VENV/bin/python" -m pip install --quiet -e ".[dev]"
"$VENV/bin/python" -m ruff check medzsad tests bench
"$VENV/bin/python" -m mypy
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
