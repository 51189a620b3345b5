#!/usr/bin/env bash
# Create (or reuse) .venv with the project and the given extras, CPU torch by default.
# Usage: scripts/setup.sh EXTRAS   e.g. scripts/setup.sh test,slicer
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-slicer}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip "setuptools>=77" >/dev/null 2>&1 || true
# torch 2.13.0 first: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[${extras}]"
