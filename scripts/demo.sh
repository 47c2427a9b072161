#!/usr/bin/env bash
# The README's demo command: set up a virtual environment (if needed), write the demo data, fetch
# the default weights and run the demo cohort. Offline, it stops after naming every missing
# weight file (with the import command for each) and prints the offline smoke-run command.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
"$VENV/bin/python" -m pip install --quiet -e .
MEDZSAD="$VENV/bin/medzsad"
. scripts/_demo_run.sh
