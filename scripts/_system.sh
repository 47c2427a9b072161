# Sourced by scripts/test.sh: the system programs the tests run our outputs through.
#   dicom3tools        dciodvfy/dcentvfy validate every DICOM object we write
#   orthanc            a real PACS the SEG/Parametric Map go into and come back from
#   orthanc-dicomweb   its DICOMweb plugin
#   chromium           renders report.html headless (images loaded, no console errors)
#   openssl            makes the throw-away CA of the PACS TLS tests
# Nothing is installed when all of them are present (fast reruns). As root with apt-get they are
# installed; otherwise this stops and prints the exact command to run.
MEDZSAD_APT_PACKAGES="dicom3tools orthanc orthanc-dicomweb chromium openssl"
_medzsad_missing_packages() {
  local missing=""
  command -v dciodvfy >/dev/null 2>&1 && command -v dcentvfy >/dev/null 2>&1 || missing="$missing dicom3tools"
  command -v Orthanc >/dev/null 2>&1 || missing="$missing orthanc"
  ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so* /usr/lib/orthanc/libOrthancDicomWeb.so* \
    >/dev/null 2>&1 || missing="$missing orthanc-dicomweb"
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing="$missing chromium"
  command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
  echo "${missing# }"
}
_MISSING=$(_medzsad_missing_packages)
if [ -n "$_MISSING" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages the tests need: $_MISSING" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $_MISSING >/dev/null
    _MISSING=$(_medzsad_missing_packages)
  fi
  if [ -n "$_MISSING" ]; then
    echo "error: the tests need these system packages, which are not installed: $_MISSING" >&2
    echo "install them (Debian/Ubuntu) with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends $_MISSING" >&2
    echo "then rerun: bash scripts/test.sh" >&2
    exit 2
  fi
fi
unset _MISSING
