"""Export a run's checkpoint for inference: ``python -m training.export --run RUN_DIR --out FILE.pt [--note TEXT]``.

Keeps the architecture, weights, sequence order, label names and
normalisation recipe, drops the optimiser/scheduler state, and adds the note
(for example where the training data came from) to the provenance.

``--window N`` sets the inference window recorded in the recipe (a measured choice: at a coarse
spacing one window can cover the whole brain).  ``--sequences t1ce,flair`` keeps only those input
channels: the first convolution's weights of the others are dropped, which is exactly the network
fed with zeros there, as sequence dropout trained it; the sequences left out become optional at
inference (the case may lack them, and they are not read when present).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from BrainTumorXAILib.models.factory import build_model_from_config
from BrainTumorXAILib.errors import BrainTumorXAIError


def first_conv_key(state: dict, n_inputs: int) -> str:
    """The state-dict key of the first convolution's weights (the one that reads the input sequences)."""
    return next(k for k, v in state.items() if k.endswith(".weight") and v.dim() == 5 and v.shape[1] == n_inputs)


def keep_sequences(model, sequences: list[str], keep: list[str]):
    """The same network reading only ``keep`` (first-layer weights of the other channels dropped)."""
    unknown = [s for s in keep if s not in sequences]
    if unknown or not keep:
        raise BrainTumorXAIError(f"cannot keep sequences {keep}: the checkpoint reads {sequences}")
    index = [sequences.index(s) for s in keep]
    config = dict(model.config)
    config["in_channels"] = len(keep)
    smaller = build_model_from_config(config)
    state = model.state_dict()
    first = first_conv_key(state, len(sequences))
    state[first] = state[first][:, index].clone()
    smaller.load_state_dict(state)
    return smaller.eval()


def widen_sequences(ckpt: dict, sequences: list[str]) -> dict:
    """``keep_sequences`` undone: the checkpoint's architecture and weights for a network reading ``sequences``
    (a superset of its own), with zero first-layer weights for the sequences it lacks -- exactly the same
    network as long as those inputs are zero (a training run that withholds them, as the default's does)."""
    own = list(ckpt["sequences"])
    if own == list(sequences):
        return ckpt
    if any(s not in sequences for s in own):
        raise BrainTumorXAIError(f"cannot widen a checkpoint reading {own} to {list(sequences)}")
    state = dict(ckpt["state_dict"])
    first = first_conv_key(state, len(own))
    narrow = state[first]
    wide = narrow.new_zeros((narrow.shape[0], len(sequences), *narrow.shape[2:]))
    for i, seq in enumerate(own):
        wide[:, sequences.index(seq)] = narrow[:, i]
    state[first] = wide
    architecture = dict(ckpt["architecture"], in_channels=len(sequences))
    return dict(ckpt, state_dict=state, architecture=architecture, sequences=list(sequences))


def export(run: Path, out: Path, checkpoint: str = "best", note: str | None = None, overwrite: bool = False,
           window: int | None = None, sequences: list[str] | None = None) -> Path:
    source = run / f"{checkpoint}.pt" if checkpoint in ("best", "last") else Path(checkpoint)
    if out.exists() and not overwrite:
        raise BrainTumorXAIError(f"{out}: exists (use --overwrite to replace it)")
    ckpt = load_checkpoint(source)
    model, _ = load_model(ckpt)
    provenance = dict(ckpt["provenance"])
    provenance["exported_from"] = str(source)
    if note:
        provenance["note"] = note
    normalisation = dict(ckpt["normalisation"])
    if window:
        multiple = int(normalisation.get("multiple_of", 16))
        if window % multiple:
            raise BrainTumorXAIError(f"--window {window} must be a multiple of {multiple}")
        normalisation["window"] = int(window)
    kept = list(ckpt["sequences"])
    if sequences:
        model = keep_sequences(model, kept, list(sequences))
        dropped = [s for s in kept if s not in sequences]
        normalisation["optional_sequences"] = sorted(set(normalisation.get("optional_sequences", [])) | set(dropped))
        kept = list(sequences)
    return save_checkpoint(out, model, sequences=kept, class_names=ckpt["class_names"],
                           normalisation=normalisation, provenance=provenance)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--note", help="added to the provenance (e.g. what the training data was)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--window", type=int, help="inference window recorded in the recipe (default: as trained)")
    p.add_argument("--sequences", help="keep only these input sequences, e.g. t1ce,flair")
    a = p.parse_args(argv)
    try:
        path = export(a.run, a.out, a.checkpoint, a.note, a.overwrite, a.window,
                      [s for s in (a.sequences or "").split(",") if s] or None)
    except BrainTumorXAIError as exc:
        print(f"training.export: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
