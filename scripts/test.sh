#!/usr/bin/env bash
# The README's test command: does all the set-up a fresh machine needs, then runs the checks.
#   1. system packages the tests use (scripts/_system.sh: installed as root with apt-get when
#      missing, otherwise the exact command to run is printed and the script stops)
#   2. .venv with medzsad[dev] (scripts/_venv.sh; reused when present)
#   3. ruff, mypy, lint-imports (the layers contract), pytest
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_system.sh
. scripts/_venv.sh
_pip install --quiet -e ".[dev]"
"$VENV/bin/python" -m ruff check medzsad tests bench
"$VENV/bin/python" -m mypy
"$VENV/bin/lint-imports" --no-cache  # the layers contract (pyproject.toml, docs/architecture.md)
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
