#!/usr/bin/env python
"""What DICOM in and out add to an analysis: reading + converting the four series, writing SEG + parametric maps.

    python Testing/dicom_bench.py [--case DIR] [--oblique] [--repeats 3]

The case's sequences are written as a DICOM study (on the case's own grid, or with --oblique resampled once onto an
oblique 0.94 x 0.94 x 4 mm grid, as ``dicom_real_case.py`` does); one quick analysis (no MC, no surfaces or
figures) gives the NIfTI outputs; then the median of --repeats runs of each step is printed (goal: the two
together <= 5 s per case on the 2-core CPU), with the CPU time of the process and its workers (a loaded machine inflates wall time).  ``benchmark.py`` adds these rows for its --case.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib

from BrainTumorXAILib.analysis_options import AnalysisOptions
from BrainTumorXAILib.analyze import analyze_case
from BrainTumorXAILib.dicom.export import write_dicom_results
from BrainTumorXAILib.dicom.study import convert_study, open_study
from BrainTumorXAILib.io.case_files import find_case_files
from BrainTumorXAILib.io.labels import SEQUENCES

sys.path.insert(0, str(Path(__file__).resolve().parent / "python"))
from dicom_factory import oblique_copy, write_case_study  # noqa: E402


def dicom_overhead(case_dir: Path, weights=None, device="cpu", repeats: int = 3, oblique: bool = False) -> dict:
    """Median seconds of 'read' (scan, assign, convert to NIfTI) and 'write' (SEG + probability and entropy maps)."""
    _, files = find_case_files(case_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if oblique:
            vols, affine = oblique_copy({s: files[s] for s in SEQUENCES})
        else:
            ref = nib.load(files["t1ce"])
            vols = {s: nib.load(files[s]).get_fdata().astype("int16") for s in SEQUENCES}
            affine = ref.affine
        write_case_study(vols, affine, tmp / "study")
        study = open_study(tmp / "study")
        analyze_case(tmp / "work", tmp / "out", AnalysisOptions(
            weights=weights, device=str(device), mc_samples=0, surfaces=False, figures=False, gradcam="none",
            mapping=convert_study(study, _fresh(tmp / "work"))))
        read, write, cpu = [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), _cpu_seconds()
            convert_study(open_study(tmp / "study"), _fresh(tmp / "work"))
            t1 = time.perf_counter()
            write_dicom_results(tmp / "out", study.reference, tmp / "dicom", overwrite=True)
            write.append(time.perf_counter() - t1)
            read.append(t1 - t0)
            cpu.append(_cpu_seconds() - c0)
        return {"read": statistics.median(read), "write": statistics.median(write), "cpu": statistics.median(cpu),
                "shape": vols["t1ce"].shape, "files": sum(len(s.files) for s in study.chosen.values())}


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DICOM objects are written by worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def main() -> None:
    from realdata import REALDATA

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, default=REALDATA / "BraTS-GLI-00001-000")
    ap.add_argument("--oblique", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = dicom_overhead(args.case, repeats=args.repeats, oblique=args.oblique)
    print(f"{args.case.name}: {r['files']} DICOM files, T1ce grid {r['shape']}")
    print(f"DICOM in (scan, assign, 4 series -> NIfTI)   {r['read']:7.2f} s")
    print(f"DICOM out (SEG + 3 probability maps + entropy) {r['write']:7.2f} s")
    print(f"together {r['read'] + r['write']:.2f} s (goal <= 5 s); CPU time (this process and its workers) "
          f"{r['cpu']:.2f} s (less sensitive to other load on the machine)")


if __name__ == "__main__":
    main()
