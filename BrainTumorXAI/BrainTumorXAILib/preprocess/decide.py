"""auto | full | none: does this case need the clinical preprocessing, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

from ..io.case_files import CaseFiles
from ..io.grid import same_grid, voxel_spacing

#: A brain-extracted image is mostly exact zeros and its non-zero part is brain-sized.
MIN_ZERO_FRACTION = 0.4
MAX_BRAIN_ML = 2200.0


@dataclass
class Decision:
    run: str  # "full" or "none"
    reason: str
    warnings: list[str] = field(default_factory=list)
    one_grid: bool = True
    brain_extracted: bool = True


def grid_problem(files: CaseFiles) -> str:
    """Why the sequences are not on one common grid ('' when they are); headers only.  One grid of any voxel size
    needs no co-registration: the analysis resamples it to the network's spacing as it always did."""
    headers = {seq: nib.load(str(path)) for seq, path in files.files.items() if seq != "seg"}
    ref = headers.get("t1ce") or next(iter(headers.values()))
    for seq, image in headers.items():
        if not same_grid(image.shape[:3], image.affine, ref.shape[:3], ref.affine, 1e-3):
            return f"{seq} is on another grid than t1ce ({'x'.join(map(str, image.shape[:3]))})"
    return ""


def looks_brain_extracted(t1ce: np.ndarray, affine: np.ndarray) -> bool:
    """Skull-stripped: mostly exact zeros around a brain-sized non-zero region."""
    nonzero = np.count_nonzero(t1ce)
    zero_fraction = 1.0 - nonzero / t1ce.size
    volume_ml = nonzero * float(np.prod(voxel_spacing(affine))) / 1000.0
    return zero_fraction >= MIN_ZERO_FRACTION and volume_ml <= MAX_BRAIN_ML


def _t1ce_extracted(files: CaseFiles) -> bool:
    image = nib.load(str(files.files["t1ce"]))
    return looks_brain_extracted(np.asarray(image.dataobj), image.affine)


def decide(mode: str, files: CaseFiles) -> Decision:
    """What to run, from the headers and, when they pass, the T1ce's voxels."""
    problem = grid_problem(files)
    extracted = True if problem and mode != "none" else _t1ce_extracted(files)
    if mode == "full":
        return Decision("full", "asked for (--preprocess full)", one_grid=not problem, brain_extracted=extracted)
    if mode == "none":
        warnings = []
        if problem:
            warnings.append(f"{files.files['t1ce'].parent}: not BraTS-preprocessed ({problem}) but --preprocess none: "
                            "the sequences are aligned by their headers only")
        if not extracted:
            warnings.append(f"{files.files['t1ce']}: the T1ce does not look brain-extracted but --preprocess none: "
                            "the skull stays in and may be called tumour")
        return Decision("none", "asked for (--preprocess none)", warnings, not problem, extracted)
    if problem:
        return Decision("full", f"auto: {problem}", one_grid=False, brain_extracted=extracted)
    if not extracted:
        return Decision("full", "auto: the T1ce is not brain-extracted", brain_extracted=False)
    return Decision("none", "auto: BraTS-preprocessed input (one grid, brain-extracted)")
