"""BRATS 2013 folders (DeepMedic's republication) -> BraTS 2021 layout, so every tool reads them.

``python -m training.convert_brats2013 SRC_DIR OUT_DIR``: each ``SRC_DIR/<case>/`` with
``Flair_subtrMeanDivStd``, ``T1c_subtrMeanDivStd``, ``OTMultiClass`` and ``brainmask`` becomes
``OUT_DIR/<case>/<case>_flair.nii.gz``, ``_t1ce`` and ``_seg`` (labels 0/1/2/4: BRATS 2013's
non-enhancing 3 joins necrosis as label 1, as BraTS 2017+ defines it).  T1 and T2 do not exist
for these cases: only a checkpoint that can do without them (``optional_sequences``) reads the
result.  The background (a constant in the source) becomes 0, the brain shifted to be positive,
geometry unchanged.  Existing outputs are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.io.nifti_writer import save_volume
from BrainTumorXAILib.io.labels import CONVENTIONS, SEQUENCES

from .generator.real import is_brats2013, read_brats2013


def convert_case(src: Path, out_dir: Path) -> Path:
    case = read_brats2013(src)
    folder = Path(out_dir) / case.case_id
    folder.mkdir(parents=True, exist_ok=True)
    for seq in case.present:
        save_volume(case.images[SEQUENCES.index(seq)], case.affine, folder / f"{case.case_id}_{seq}.nii.gz",
                    dtype=np.float32)
    on_disk = np.asarray(CONVENTIONS["brats2021"], np.uint8)[case.label]
    save_volume(on_disk, case.affine, folder / f"{case.case_id}_seg.nii.gz", dtype=np.uint8)
    return folder


def convert(src_dir: Path, out_dir: Path) -> list[Path]:
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise BrainTumorXAIError(f"{src_dir}: source folder not found")
    sources = [src_dir] if is_brats2013(src_dir) else sorted(p for p in src_dir.iterdir() if is_brats2013(p))
    if not sources:
        raise BrainTumorXAIError(f"{src_dir}: no BRATS 2013 case (a folder with OTMultiClass.nii.gz)")
    return [convert_case(s, out_dir) for s in sources]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.convert_brats2013", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a BRATS 2013 case folder, or a folder of them")
    p.add_argument("out", help="output folder (one BraTS-layout folder per case)")
    args = p.parse_args(argv)

    def run() -> None:
        for folder in convert(Path(args.src), Path(args.out)):
            print(folder)

    return exit_code("training.convert_brats2013", run)


if __name__ == "__main__":
    sys.exit(main())
