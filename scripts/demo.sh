#!/usr/bin/env bash
# Set up a virtual environment (if needed), fetch the default weights, write the demo cohort and run it.
# Offline, the weights step stops with a message saying which file to download and how to import it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MEDZSAD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
"$VENV/bin/python" -m pip install --quiet -e .
"$VENV/bin/medzsad" weights fetch clip_vitl14_336.openai
"$VENV/bin/medzsad" weights fetch anomalyclip_vitl14_336.mvtec
"$VENV/bin/medzsad" demo-data demo-data
exec "$VENV/bin/medzsad" run cohorts/demo.yaml
