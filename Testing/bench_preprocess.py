"""``Testing/benchmark.py --preprocess [--native-case DIR]``: the clinical preprocessing stage, timed per stage.

Default case: ``../shared/realdata/TCGA-FG-6692_native`` (raw scans: four grids, 5.5 mm slices, skull on).  Rows: read,
co-registration of each sequence to the T1ce (rigid MI), brain extraction (the default ``atlas`` method; ``robex`` too
with --robex), rigid registration to SRI24, the one resampling onto the atlas grid, and the whole ``prepare``
(target: <= 60 s per case on a 2-core CPU).  The ANTs peer row is not run: antspyx 0.6.3 needs numpy<2.4 and
scipy<1.16, older than this project's environment; the row says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from BrainTumorXAILib.preprocess import ClinicalOptions
from BrainTumorXAILib.preprocess.brain_extraction import extract_brain
from BrainTumorXAILib.preprocess.coregister import register_rigid
from BrainTumorXAILib.preprocess.inputs import find_sequences, read_series
from BrainTumorXAILib.preprocess.pipeline import prepare
from BrainTumorXAILib.preprocess.sitk_images import to_sitk

NATIVE = (Path(os.environ.get("BRAINTUMORXAI_REALDATA") or Path(__file__).resolve().parents[2] / "shared" / "realdata")
          / "TCGA-FG-6692_native")


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def preprocessing_rows(case: Path | None = None, robex: bool = False) -> list[tuple[str, float, str]]:
    case = Path(case or NATIVE)
    files, _ = _timed(lambda: find_sequences(case))
    read, t_read = _timed(lambda: {s: read_series(p) for s, p in files.files.items() if s != "seg"})
    images = {s: to_sitk(d, a) for s, (d, a, _) in read.items()}
    rows = [("read the four series", t_read, "")]
    for seq in ("t1", "t2", "flair"):
        if seq in images:
            result, seconds = _timed(lambda: register_rigid(images["t1ce"], images[seq]))
            rows.append((f"co-register {seq} -> t1ce (rigid MI, SimpleITK)", seconds,
                         f"MI {result.mi_before:.3f} -> {result.mi_after:.3f}"))
    for method in ("atlas", "robex") if robex else ("atlas",):
        (mask, _), seconds = _timed(lambda: extract_brain(images["t1ce"], method))
        rows.append((f"brain extraction '{method}'", seconds, f"{mask.sum()} voxels"))
    prepared, seconds = _timed(lambda: prepare(case, None, ClinicalOptions(mode="full")))
    stages = prepared.clinical.timings
    rows += [(f"  prepare: {k}", v, "") for k, v in stages.items()]
    rows.append(("whole prepare (default options)", seconds, "target <= 60 s on a 2-core CPU"))
    rows.append(("ANTs peer (antspyx)", float("nan"), "not run: antspyx 0.6.3 needs numpy<2.4, scipy<1.16"))
    return rows


def print_rows(rows) -> None:
    width = max(len(r[0]) for r in rows)
    for name, seconds, note in rows:
        shown = "     n/a" if np.isnan(seconds) else f"{seconds:8.2f}"
        print(f"{name:<{width}}  {shown} s  {note}")
