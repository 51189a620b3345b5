"""Whole cases from the training generator, written as BraTS folders for held-out checks.

``python -m training.synthetic_set OUT_DIR --n 8 --seed 9000 --kinds nonenhancing``: each case is one
generator draw (a deformed atlas brain at ``--spacing`` mm in a ``--size``^3 grid, which holds a whole
brain at 2 mm) written as ``OUT_DIR/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz`` (labels 0/1/2/4).
Seeds far from the training stream's keep the draws out of training.  ``--kinds`` restricts the
tumour kinds, so that one behaviour can be measured alone: ``nonenhancing`` (low-grade tumours) asks
how much enhancing tumour a model invents where none exists.  Existing cases are never overwritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.io.nifti_writer import save_volume
from BrainTumorXAILib.io.labels import CONVENTIONS, SEQUENCES

from .generator.synthetic import SynthSettings, synthetic_patch
from .generator.tumour_labels import KINDS


def write_case(folder: Path, image: np.ndarray, label: np.ndarray, spacing: float) -> Path:
    if folder.exists():
        raise BrainTumorXAIError(f"{folder}: already exists (never overwritten)")
    folder.mkdir(parents=True)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    for index, seq in enumerate(SEQUENCES):
        save_volume(image[index], affine, folder / f"{folder.name}_{seq}.nii.gz", dtype=np.float32)
    on_disk = np.asarray(CONVENTIONS["brats2021"], np.uint8)[label]
    save_volume(on_disk, affine, folder / f"{folder.name}_seg.nii.gz", dtype=np.uint8)
    return folder


def write_set(out: Path, n: int, seed: int, kinds: list[str], size: int = 96, spacing: float = 2.0,
              prefix: str = "Synth") -> list[Path]:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise BrainTumorXAIError(f"--kinds: unknown tumour kind {', '.join(unknown)} (known: {', '.join(KINDS)})")
    settings = SynthSettings(spacing=spacing, healthy_prob=0.0, kinds={k: KINDS[k] for k in kinds})
    folders = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, label = synthetic_patch(rng, size, settings)
        folders.append(write_case(Path(out) / f"{prefix}-{seed}-{i:03d}", image, label, spacing))
    return folders


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.synthetic_set", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output folder (one BraTS-layout folder per case)")
    p.add_argument("--n", type=int, default=8, help="number of cases")
    p.add_argument("--seed", type=int, default=9000, help="first seed (keep it away from training seeds)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"tumour kinds, comma-separated ({', '.join(KINDS)})")
    p.add_argument("--size", type=int, default=96, help="grid edge in voxels")
    p.add_argument("--spacing", type=float, default=2.0, help="voxel size in mm")
    p.add_argument("--prefix", default="Synth", help="case name prefix")
    args = p.parse_args(argv)

    def run() -> None:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        for folder in write_set(Path(args.out), args.n, args.seed, kinds, args.size, args.spacing, args.prefix):
            print(folder)

    return exit_code("training.synthetic_set", run)


if __name__ == "__main__":
    raise SystemExit(main())
