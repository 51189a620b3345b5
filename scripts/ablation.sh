#!/usr/bin/env bash
# Which parts of the generator matter on real MRI: one synthetic-only network per arm of
# training/sources/ablation/, trained from scratch with the same recipe and seed, then measured
# dropout-free on all six expert-labelled BRATS 2013 cases (no arm trains on any real case).
#
#   bash scripts/ablation.sh OUT [ARM ...]     # default: every arm; a cut-off run continues (--resume)
# The recipe is training/recipes/ablation.json (bf16 autocast on a CPU with AMX, fp16 on CUDA). Settings by
# environment: SEED (0; another seed writes OUT/ARM_seedN, to measure the training noise between arms), and
# overrides of the recipe: EPOCHS, STEPS (per epoch), THREADS, AMP (--no-amp for fp32); REALDATA (the data
# root: $BRAINTUMORXAI_REALDATA, else ../shared/realdata).
# Prints one line per arm: mean Dice WT / TC / ET and per case.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/ablation.sh OUT [ARM ...]}"
shift
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=($(cd training/sources/ablation && ls *.json | sed 's/\.json$//'))
PY="${PY:-.venv/bin/python}"
REALDATA="${REALDATA:-${BRAINTUMORXAI_REALDATA:-../shared/realdata}}"
mkdir -p "$OUT"
[ -d "$REALDATA/BRATS2013" ] || { echo "ablation: $REALDATA/BRATS2013 not found (the real cases it is measured on)"; exit 2; }
[ -d "$OUT/brats2013" ] || $PY -m training.convert_brats2013 "$REALDATA/BRATS2013" "$OUT/brats2013"

SEED="${SEED:-0}"
# The recipe's settings (training/recipes/ablation.json); the environment overrides what it names.
OVERRIDES=()
[ -z "${EPOCHS:-}" ] || OVERRIDES+=(--epochs "$EPOCHS")
[ -z "${STEPS:-}" ] || OVERRIDES+=(--steps-per-epoch "$STEPS")
[ -z "${THREADS:-}" ] || OVERRIDES+=(--threads "$THREADS")
[ -z "${AMP:-}" ] || OVERRIDES+=("$AMP")
SUFFIX=""
[ "$SEED" = 0 ] || SUFFIX="_seed$SEED"
for arm in "${ARMS[@]}"; do
    run="$OUT/$arm$SUFFIX"
    resume=()
    [ -f "$run/last.pt" ] && resume=(--resume)
    $PY -m training.train --config training/recipes/ablation.json --sources "training/sources/ablation/$arm.json" \
        --data-root "$REALDATA" --out "$run" "${resume[@]}" "${OVERRIDES[@]}" --seed "$SEED" --quiet
    # the last epoch, not the best on validation: no arm is picked by the cases it is measured on
    $PY -m training.export --run "$run" --checkpoint "$run/last.pt" --sequences t1ce,flair --window 96 \
        --out "$run/export.pt" --note "generator ablation arm $arm (synthetic data only); not a product model"
    $PY -m training.evaluate --checkpoint "$run/export.pt" --data "$OUT/brats2013" --split all --mc-samples 0 \
        --out "$run/eval" --quiet
done

$PY - "$OUT" "$SUFFIX" "${ARMS[@]}" <<'EOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
suffix = sys.argv[2]
for arm in sys.argv[3:]:
    arm += suffix
    rows = list(csv.DictReader(open(out / arm / "eval" / "cases.csv")))
    mean = [sum(float(r[f"dice_{k}"]) for r in rows) / len(rows) for k in ("WT", "TC", "ET")]
    cases = " ".join(f"{r['case']}:{float(r['dice_WT']):.2f}/{float(r['dice_TC']):.2f}/{float(r['dice_ET']):.2f}"
                     for r in rows)
    print(f"{arm:20s} mean WT {mean[0]:.3f} TC {mean[1]:.3f} ET {mean[2]:.3f} | {cases}")
EOF
