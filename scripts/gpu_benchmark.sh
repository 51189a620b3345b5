#!/usr/bin/env bash
# Speed figures on a bare CUDA machine, in a few minutes: sets up from wheels, runs
# Testing/benchmark.py on CUDA and writes its figures to one file.
#
#   scripts/gpu_benchmark.sh [OUT_FILE]      (default: gpu_benchmark.txt in the repository root)
#
# Needs: python3 (>= 3.10) with venv, an NVIDIA driver; network access to PyPI and
# the PyTorch wheel index, or pre-downloaded wheels in $WHEELS (pip --find-links).
# TORCH_INDEX picks the CUDA build (default cu126). The real-size case is
# ../shared/realdata/TCGA-FG-6692 when present, else one generated at 240x240x155.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-$PWD/gpu_benchmark.txt}"
VENV="${VENV:-$PWD/.venv-gpu}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cu126}"
PIP_EXTRA=()
[ -n "${WHEELS:-}" ] && PIP_EXTRA=(--find-links "$WHEELS")

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# The CUDA torch build first, so the project's torch>=2.2 requirement is already met by it.
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
    || python -m pip install -q "${PIP_EXTRA[@]}" --index-url "$TORCH_INDEX" torch
python -m pip install -q "${PIP_EXTRA[@]}" -e ".[bench]"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "torch sees no CUDA device"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "on", torch.cuda.get_device_name(0))
PY
{
    echo "# scripts/gpu_benchmark.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    echo "## engine rows (sample case)"
    timeout 300 python Testing/benchmark.py --device cuda --repeats 3 || echo "engine rows failed or timed out"
    echo "## real-size case against MONAI"
    timeout 600 python Testing/benchmark.py --real-size --device cuda --repeats 3 --models demo,2mm64,2mm96 --precisions fp32,bf16,fp16 \
        || echo "real-size rows failed or timed out"
} 2>&1 | tee "$OUT"
echo "figures written to $OUT"
