#!/usr/bin/env bash
# The README's demo command: set up a virtual environment (if needed), write the demo data, fetch
# the default weights and run the demo cohort. Offline, it runs the demo with --smoke and then
# names every missing weight file (with the import command for each), last and alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
_pip install --quiet -e .
MEDZSAD="$VENV/bin/medzsad"
. scripts/_demo_run.sh
