# Sourced by scripts/demo.sh after the set-up (and run alone by the tests): write the demo data,
# fetch the default weights, run the demo cohort. $MEDZSAD is the medzsad command to use.
# Offline, the fetch step names every missing file at once, says how to import each one, and
# gives the command that runs the whole pipeline offline on the demo data (the smoke cohort).
MEDZSAD=${MEDZSAD:-.venv/bin/medzsad}
WEIGHTS="clip_vitl14_336.openai anomalyclip_vitl14_336.mvtec"
if [ ! -f demo-data/manifest.csv ]; then
  "$MEDZSAD" demo-data demo-data
fi
_fetch_err=$(mktemp)
# shellcheck disable=SC2086
if ! "$MEDZSAD" weights fetch $WEIGHTS 2>"$_fetch_err"; then
  # the CLI writes one line; its parts are separated by " | "
  sed 's/ | /\n/g; s/^medzsad: error: //' "$_fetch_err" >&2
  rm -f "$_fetch_err"
  cat >&2 <<MSG

The demo needs the weights listed above and they could not be downloaded (no internet access?).
Import each file as shown, then run 'bash scripts/demo.sh' again.

Meanwhile the whole pipeline runs offline on the demo data with a tiny random-weight model
(scores are meaningless; every output is marked SMOKE RUN):

  $MEDZSAD run cohorts/smoke.yaml

MSG
  exit 5
fi
rm -f "$_fetch_err"
exec "$MEDZSAD" run cohorts/demo.yaml
