# Sourced by scripts/demo.sh after the set-up (and run alone by the tests): write the demo data,
# fetch the default weights, run the demo cohort. $MEDZSAD is the medzsad command to use.
# Offline, the demo cohort runs with --smoke (the tiny random-weight model: every output marked
# SMOKE), so the command always ends with a review page; then the one message that matters is
# printed last: which weight files to import, and how.
MEDZSAD=${MEDZSAD:-.venv/bin/medzsad}
WEIGHTS="clip_vitl14_336.openai anomalyclip_vitl14_336.mvtec"
if [ ! -f demo-data/manifest.csv ]; then
  "$MEDZSAD" demo-data demo-data >/dev/null
fi
_fetch_err=$(mktemp)
# shellcheck disable=SC2086
if "$MEDZSAD" weights fetch $WEIGHTS 2>"$_fetch_err"; then
  rm -f "$_fetch_err"
  exec "$MEDZSAD" run cohorts/demo.yaml
fi
echo "The default weights could not be downloaded; running the demo offline with the tiny random model." >&2
"$MEDZSAD" run cohorts/demo.yaml --smoke -q || true
{
  echo
  echo "================================================================================"
  sed 's/^medzsad: error: //' "$_fetch_err"
  cat <<MSG

Import each file as shown, then run 'bash scripts/demo.sh' again for the real demo.

Meanwhile the demo cohort ran offline with a tiny random-weight model (scores are
meaningless; every output is marked SMOKE RUN). Its review page:

  reports/demo/report.html

Run it again yourself with:  $MEDZSAD run cohorts/demo.yaml --smoke
MSG
} >&2
rm -f "$_fetch_err"
exit 5
