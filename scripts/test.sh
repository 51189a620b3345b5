#!/usr/bin/env bash
# Fresh machine: set up .venv and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,slicer
. .venv/bin/activate
export VTK_SMP_BACKEND_IN_USE=STDThread
python -m pytest -q -p no:cacheprovider Testing/python "$@"
