#!/usr/bin/env bash
# Which parts of the generator matter on real MRI: one synthetic-only network per arm of
# training/sources/ablation/, trained from scratch with the same recipe and seed, then measured
# dropout-free on all six expert-labelled BRATS 2013 cases (no arm trains on any real case).
#
#   bash scripts/ablation.sh OUT [ARM ...]     # default: every arm; a cut-off run continues (--resume)
# Settings by environment: SEED (0; another seed writes OUT/ARM_seedN, to measure the training noise
# between arms), EPOCHS (default 10), STEPS (per epoch, 100), THREADS (2), AMP (--amp: bf16
# autocast on a CPU with AMX, fp16 on CUDA; AMP= for fp32), REALDATA (../shared/realdata).
# Prints one line per arm: mean Dice WT / TC / ET and per case.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: scripts/ablation.sh OUT [ARM ...]}"
shift
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=($(cd training/sources/ablation && ls *.json | sed 's/\.json$//'))
PY="${PY:-.venv/bin/python}"
REALDATA="${REALDATA:-../shared/realdata}"
AMP="${AMP---amp}"
mkdir -p "$OUT"
[ -d "$REALDATA/BRATS2013" ] || { echo "ablation: $REALDATA/BRATS2013 not found (the real cases it is measured on)"; exit 2; }
[ -d "$OUT/brats2013" ] || $PY -m training.convert_brats2013 "$REALDATA/BRATS2013" "$OUT/brats2013"

SEED="${SEED:-0}"
SUFFIX=""
[ "$SEED" = 0 ] || SUFFIX="_seed$SEED"
for arm in "${ARMS[@]}"; do
    run="$OUT/$arm$SUFFIX"
    resume=()
    [ -f "$run/last.pt" ] && resume=(--resume)
    $PY -m training.train --sources "training/sources/ablation/$arm.json" --out "$run" "${resume[@]}" \
        --model unet --base-channels 16 --depth 4 --dropout 0.1 --decoder light --norm instance \
        --spacing 2.0 --patch 64 --batch 2 --steps-per-epoch "${STEPS:-100}" --foreground-fraction 0.5 \
        --epochs "${EPOCHS:-10}" --lr 0.002 --warmup-steps 100 --val-mc-samples 0 --workers 1 \
        --threads "${THREADS:-2}" $AMP --seed "$SEED" --quiet
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
