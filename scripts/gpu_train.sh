#!/usr/bin/env bash
# Train the default model on one CUDA GPU in a few minutes: the recipe of the shipped weights
# (training/recipes/default.json, its sources: synthetic cases made on the fly + the real BRATS 2013
# training cases, sequence dropout), with a larger batch.  The held-out TCGA pair is never used here;
# evaluate the result where the data is (python -m training.evaluate, see the model card).
#
# On a machine with the data (here):
#   bash scripts/gpu_train.sh --stage     # .realdata/ <- the real cases the sources name, .whl/ <- wheels
#                                         # the GPU image lacks (nibabel, nilearn); both git-ignored
# On the GPU machine (device tool: carry [".realdata", ".whl"]; it has torch with CUDA, numpy, scipy):
#   bash scripts/gpu_train.sh             # -> $OUT (or gpu_run/): best.pt, last.pt, metrics.csv, config.json, log
# Settings by environment: RECIPE, SOURCES, MINUTES (wall-clock budget, default 8), EPOCHS, STEPS (per epoch),
# BATCH, PATCH, WORKERS, DEVICE (default cuda; DEVICE=cpu STEPS=2 EPOCHS=1 BATCH=1 smoke-tests the script on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE="${RECIPE:-training/recipes/default.json}"
# An ablation: SOURCES=a copy of the recipe's sources file with e.g. "mimics": false.
SOURCES="${SOURCES:-$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['sources'])" "$RECIPE")}"
REALDATA_SRC="${BRAINTUMORXAI_REALDATA:-../shared/realdata}"

if [ "${1:-}" = "--stage" ]; then
    mkdir -p .realdata .whl
    grep -qx '/.realdata/' .git/info/exclude 2>/dev/null || echo '/.realdata/' >> .git/info/exclude
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    # The sources name their real cases relative to the data root: the same names under .realdata/.
    for case in $(python3 -c "import json, sys; d=json.load(open(sys.argv[1])); print(' '.join(c['path'] for c in d['real']['cases'] + d['validation']))" "$SOURCES"); do
        mkdir -p ".realdata/$case"
        # the BRATS 2013 files the reader needs (not the weight maps: they would not fit the transfer limit)
        for f in "$REALDATA_SRC/$case"/*; do
            case "$(basename "$f")" in weightMap*) ;; *) cp "$f" ".realdata/$case/" ;; esac
        done
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl nibabel nilearn 2>/dev/null || python3 -m pip download -q --no-deps -d .whl nibabel nilearn
    du -sh .realdata .whl
    exit 0
fi

OUT="${OUT:-gpu_run}"
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/BrainTumorXAI:$PWD:${PYTHONPATH:-}"
# On the GPU machine the staged copy .realdata/ is the data root.
REAL="$PWD/.realdata"
[ -d "$REAL" ] || REAL="$REALDATA_SRC"
# The recipe's settings, with a larger batch for the GPU; the environment overrides what it names.
OVERRIDES=(--device "${DEVICE:-cuda}" --batch "${BATCH:-16}" --epochs "${EPOCHS:-20}" --workers "${WORKERS:-12}")
[ -z "${PATCH:-}" ] || OVERRIDES+=(--patch "$PATCH")
[ -z "${STEPS:-}" ] || OVERRIDES+=(--steps-per-epoch "$STEPS")
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
RUN=/tmp/gpu_run_dir
rm -rf "$RUN"
set -o pipefail
timeout $(( ${MINUTES:-8} * 60 )) python3 -m training.train --config "$RECIPE" --sources "$SOURCES" \
    --data-root "$REAL" --out "$RUN" "${OVERRIDES[@]}" \
    --quiet 2>&1 | tee "$OUT/log.txt" || echo "stopped at the time budget (the last finished epoch is saved)"
cp "$RUN"/best.pt "$RUN"/metrics.csv "$RUN"/config.json "$OUT"/ 2>/dev/null || true
cat "$RUN/metrics.csv"
