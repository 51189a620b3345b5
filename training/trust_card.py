"""Attach a trust card to a checkpoint: ``python -m training.trust_card --checkpoint CKPT --eval EVAL_DIR
--out NEW.pt --source TEXT``.

The card (``BrainTumorXAILib.reporting.checkpoint_trust``) holds the mean uncertainty-quality figures of a
``training.evaluate`` run on validation cases — ECE, entropy AUROC/AUPRC, the QU-BraTS score of the entropy
and of both baselines, per region — so that every analysis shows the reader how far the maps were found
trustworthy.  The card is written into a copy's ``provenance["trust"]``; the original stays as it was.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.models.checkpoint import load_checkpoint, save_checkpoint_dict
from BrainTumorXAILib.models.head_calibration import checkpoint_temperature
from BrainTumorXAILib.reporting.checkpoint_trust import ESTIMATORS, REGION_NAMES, TRUST_FORMAT, validate_trust

from .io_utils import refuse_in_place

#: Card figure -> the evaluate column it is the mean of ({r}: the region).
COLUMNS = {"ece": "ece_{r}", "auroc_entropy": "auroc_entropy_{r}", "auprc_entropy": "auprc_entropy_{r}",
           "qubrats": "qubrats_entropy_{r}", "qubrats_zero": "qubrats_zero_{r}",
           "qubrats_deterministic": "qubrats_deterministic_entropy_{r}"}


def card_from_evaluation(eval_dir: Path, source: str, estimator: str = "mc_dropout",
                         temperature: float | None = None) -> dict:
    path = Path(eval_dir) / "cases.csv"
    if not path.is_file():
        raise BrainTumorXAIError(f"{path}: no cases.csv (run training.evaluate into this folder first)")
    rows = list(csv.DictReader(path.open()))
    if not rows:
        raise BrainTumorXAIError(f"{path}: no evaluated case")
    regions = {}
    for r in REGION_NAMES:
        figures = {}
        for key, column in COLUMNS.items():
            values = [float(row[column.format(r=r)]) for row in rows if row.get(column.format(r=r)) not in (None, "")]
            values = [v for v in values if np.isfinite(v)]
            if values:
                figures[key] = float(np.mean(values))
        regions[r] = figures
    card = {"format": TRUST_FORMAT, "source": source, "cases": len(rows), "estimator": estimator,
            "temperature": temperature, "regions": regions}
    valid = validate_trust(card)
    if valid is None:
        raise BrainTumorXAIError(f"{path}: the figures do not make a valid trust card")
    return valid


def attach(checkpoint: Path, card: dict, out: Path) -> None:
    ckpt = load_checkpoint(checkpoint)
    save_checkpoint_dict({**ckpt, "provenance": {**ckpt["provenance"], "trust": card}}, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.trust_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--eval", type=Path, required=True, help="a training.evaluate output folder (validation cases)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint copy to write")
    p.add_argument("--source", required=True, help="what the figures were measured on (shown to readers)")
    p.add_argument("--estimator", default="mc_dropout", choices=ESTIMATORS)
    a = p.parse_args(argv)
    refuse_in_place(p, a.out, a.checkpoint)

    def run() -> None:
        card = card_from_evaluation(a.eval, a.source, a.estimator,
                                    checkpoint_temperature(load_checkpoint(a.checkpoint), a.checkpoint))
        attach(a.checkpoint, card, a.out)
        print(f"{a.out}: trust card from {card['cases']} case(s) of {a.eval}")

    return exit_code("training.trust_card", run)


if __name__ == "__main__":
    sys.exit(main())
