# Sourced by scripts/test.sh and scripts/demo.sh: create .venv if needed and install torch first,
# in versions the wheel cache on these machines holds (any in the range works elsewhere).
PY=${PYTHON:-python3}
VENV=${MEDZSAD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
