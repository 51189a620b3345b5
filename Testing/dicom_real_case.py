#!/usr/bin/env python
"""A real case as a DICOM study against the same case as NIfTI (the issue-30 real-data target).

    python Testing/dicom_real_case.py [--case DIR] [--mc-samples 20] [--work DIR]

The case's four sequences are resampled once onto one oblique thick-slice grid (12/-8/6 degrees, 0.94 x 0.94 x 4 mm)
and written twice from the same int16 voxels: as NIfTI files and as a DICOM study of four MR series (the T1ce one
with shuffled, renamed files).  Both are analysed with default options (except --mc-samples); prints the Dice per
region between the two segmentations (target >= 0.99), the DICOM SEG's pixels that differ from the DICOM run's
seg.nii.gz at the same place (target 0), and the DICOM read / write seconds from summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from BrainTumorXAILib.analysis_options import AnalysisOptions
from BrainTumorXAILib.analyze import analyze_case
from BrainTumorXAILib.dicom.run import analyze_dicom
from BrainTumorXAILib.io.case_files import find_case_files
from BrainTumorXAILib.io.labels import REGIONS, SEQUENCES, to_internal

sys.path.insert(0, str(Path(__file__).resolve().parent / "python"))
from dicom_checks import seg_mismatches  # noqa: E402
from dicom_factory import oblique_copy, write_case_study  # noqa: E402
from realdata import REALDATA  # noqa: E402


def internal_on(reference: nib.Nifti1Image, seg_path: Path) -> np.ndarray:
    """Internal classes of a seg.nii.gz on ``reference``'s voxel grid (same grid up to axis order/direction)."""
    seg = nib.load(seg_path)
    m = np.linalg.solve(seg.affine, reference.affine)
    perm = np.rint(m[:3, :3]).astype(int)
    assert np.allclose(m[:3, :3], perm, atol=1e-3), "segmentations on different grids"
    index = np.indices(reference.shape[:3]).reshape(3, -1)
    moved = perm @ index + np.rint(m[:3, 3]).astype(int)[:, None]
    return to_internal(np.asarray(seg.dataobj)[tuple(moved)].reshape(reference.shape[:3]), "brats2021")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, default=REALDATA / "BraTS-GLI-00001-000")
    ap.add_argument("--mc-samples", type=int, default=20)
    ap.add_argument("--work", type=Path, help="keep the made study and the results here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        _, files = find_case_files(args.case)
        vols, affine = oblique_copy({s: files[s] for s in SEQUENCES})
        nifti = work / "nifti"
        nifti.mkdir(parents=True)
        for seq, vol in vols.items():
            nib.save(nib.Nifti1Image(vol, affine), nifti / f"case_{seq}.nii.gz")
        written = write_case_study(vols, affine, work / "dicom_in", shuffle="t1ce")
        print(f"{args.case.name}: oblique grid {vols['t1ce'].shape}, "
              f"{sum(len(f) for f in written.values())} DICOM files")
        options = AnalysisOptions(mc_samples=args.mc_samples)
        t0 = time.perf_counter()
        analyze_case(nifti, work / "out_nifti", options)
        t1 = time.perf_counter()
        summary = analyze_dicom(work / "dicom_in", work / "out_dicom", options)
        t2 = time.perf_counter()
        ref = nib.load(nifti / "case_t1ce.nii.gz")
        a, b = internal_on(ref, work / "out_nifti" / "seg.nii.gz"), internal_on(ref, work / "out_dicom" / "seg.nii.gz")
        for region, classes in REGIONS.items():
            x, y = np.isin(a, classes), np.isin(b, classes)
            dice = 2 * np.count_nonzero(x & y) / max(np.count_nonzero(x) + np.count_nonzero(y), 1)
            print(f"Dice NIfTI vs DICOM input, {region}: {dice:.4f} "
                  f"({np.count_nonzero(x)} / {np.count_nonzero(y)} voxels)")
        seg = nib.load(work / "out_dicom" / "seg.nii.gz")
        internal = nib.Nifti1Image(to_internal(np.asarray(seg.dataobj), "brats2021"), seg.affine)
        print(f"DICOM SEG pixels differing from seg.nii.gz: "
              f"{seg_mismatches(work / 'out_dicom' / 'dicom' / 'seg.dcm', written['t1ce'], internal)}")
        timings = json.loads((work / "out_dicom" / "summary.json").read_text())["timings_s"]
        print(f"analyze NIfTI {t1 - t0:.1f} s, DICOM {t2 - t1:.1f} s; "
              f"DICOM read+convert {timings['dicom_read']:.2f} s, "
              f"SEG + {len(summary['dicom_outputs']['maps'])} maps written {timings['dicom_write']:.2f} s")


if __name__ == "__main__":
    main()
