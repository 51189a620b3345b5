#!/usr/bin/env bash
# Fresh machine: set up .venv and analyse the bundled sample case with the bundled demo weights.
# Results (NIfTI maps, surfaces, figures, summary.json, Slicer scene) land in out/SampleCase.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh slicer
. .venv/bin/activate
braintumorxai analyze Resources/SampleCase --out out/SampleCase --overwrite --scene out/SampleCase.mrb "$@"
