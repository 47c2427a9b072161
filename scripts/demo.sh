#!/usr/bin/env bash
# Set up a virtual environment (if needed), fetch the default weights, write the demo cohort and run it.
# Offline, the weights step stops with a message saying which file to download and how to import it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
"$VENV/bin/python" -m pip install --quiet -e .
"$VENV/bin/medzsad" weights fetch clip_vitl14_336.openai
"$VENV/bin/medzsad" weights fetch anomalyclip_vitl14_336.mvtec
"$VENV/bin/medzsad" demo-data demo-data
exec "$VENV/bin/medzsad" run cohorts/demo.yaml
