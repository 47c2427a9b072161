# Sourced by scripts/test.sh and scripts/demo.sh: create .venv if needed and install torch first,
# in versions the wheel cache on these machines holds (any in the range works elsewhere).
# pip's own output (and the build backend's notes) go to $VENV/pip.log; on a failure its end is
# shown and the script stops, so a working set-up prints nothing.
PY=${PYTHON:-python3}
VENV=${MEDZSAD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
_pip() {  # pip quietly, its log kept; on a failure the log's end and the command that failed
  if ! "$VENV/bin/python" -m pip "$@" >>"$VENV/pip.log" 2>&1; then
    tail -n 25 "$VENV/pip.log" >&2
    echo "error: pip $* failed; the whole log is $VENV/pip.log" >&2
    if grep -q "No space left on device" "$VENV/pip.log"; then  # say so in one line, with the figure
      echo "error: the disk is full ($(df -Ph "$VENV" | awk 'NR == 2 {print $4 " free on " $6}')); the" \
        "virtual environment needs about 7 GB (torch's CUDA build): free some space and run again" >&2
    fi
    exit 1
  fi
}
_pip install --quiet --upgrade pip
_pip install --quiet "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
