#!/usr/bin/env bash
# Fresh machine: set up .venv and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,slicer,web
# Headless Chromium for the web viewer's end-to-end test (Debian package; skipped with a reason if absent).
# Run as root on a Debian/Ubuntu machine without Chromium, this installs the system package (said before it starts).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing the Debian package chromium (apt-get, as root) for the web viewer's browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: chromium could not be installed; the browser test will be skipped"
elif ! command -v chromium >/dev/null 2>&1; then
    echo "scripts/test.sh: chromium not found (install it, e.g. apt-get install chromium); the browser test will be skipped"
fi
# dciodvfy (dicom3tools) validates the written DICOM SEG and parametric maps; dcm2niix is an independent reader
# to compare the series geometry with (each test skipped with a reason if absent).
if ! command -v dciodvfy >/dev/null 2>&1 || ! command -v dcm2niix >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools dcm2niix >/dev/null \
            || echo "note: dicom3tools/dcm2niix could not be installed; their DICOM tests will be skipped"
    fi
fi
. .venv/bin/activate
export VTK_SMP_BACKEND_IN_USE=STDThread
python -m pytest -q -p no:cacheprovider --durations=20 Testing/python "$@"
