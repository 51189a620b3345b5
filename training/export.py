"""Export a run's checkpoint for inference: ``python -m training.export --run RUN_DIR --out FILE.pt [--note TEXT]``.

Keeps the architecture, weights, sequence order, label names and
normalisation recipe, drops the optimiser/scheduler state, and adds the note
(for example where the training data came from) to the provenance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from BrainTumorXAILib.errors import BrainTumorXAIError


def export(run: Path, out: Path, checkpoint: str = "best", note: str | None = None, overwrite: bool = False) -> Path:
    source = run / f"{checkpoint}.pt" if checkpoint in ("best", "last") else Path(checkpoint)
    if out.exists() and not overwrite:
        raise BrainTumorXAIError(f"{out}: exists (use --overwrite to replace it)")
    ckpt = load_checkpoint(source)
    model, _ = load_model(ckpt)
    provenance = dict(ckpt["provenance"])
    provenance["exported_from"] = str(source)
    if note:
        provenance["note"] = note
    return save_checkpoint(out, model, sequences=ckpt["sequences"], class_names=ckpt["class_names"],
                           normalisation=ckpt["normalisation"], provenance=provenance)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--note", help="added to the provenance (e.g. what the training data was)")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    try:
        path = export(a.run, a.out, a.checkpoint, a.note, a.overwrite)
    except BrainTumorXAIError as exc:
        print(f"training.export: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
