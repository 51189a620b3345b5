"""Raw scans in, an atlas-space case out (the BraTS recipe): rigid MI co-registration of every sequence to the
T1ce, brain extraction in native T1ce space, rigid registration of the brain-extracted T1ce to the atlas, and each
sequence resampled once through its composed transform.  Nothing is written here (``native.write_preprocessing``
does, into the analysis's staging folder), so a failure leaves nothing half-written."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import CaseError
from ..io.case_files import CaseFiles
from ..io.case_io import Case, _load_label
from ..io.grid import voxel_spacing
from ..io.labels import SEQUENCES
from .atlas import Atlas, load_atlas, register_to_atlas
from .brain_extraction import check_method, extract_brain, mask_from_file
from .coregister import RigidResult, register_rigid
from .decide import Decision, decide, looks_brain_extracted
from .inputs import find_sequences, read_series
from .n4 import n4_correct
from .options import DEFAULT_BRAIN_EXTRACTION, ClinicalOptions
from .repeatable import run_side_by_side
from .sitk_images import to_array, to_sitk

#: Below this mutual information (nats) after registration a sequence shares no anatomy with the T1ce.
MIN_MI = 0.1
#: A brain outside this volume (mL), or an atlas overlap (Dice) below the figure, is reported as implausible.
BRAIN_ML = (600.0, 2500.0)
MIN_ATLAS_OVERLAP = 0.8


@dataclass
class ClinicalCase:
    files: CaseFiles
    decision: Decision
    native_case: Case  # every sequence on the native T1ce grid (co-registered): figures, post-processing
    atlas_case: Case  # what the model sees
    atlas: Atlas
    t1ce: sitk.Image  # native T1ce (the output grid)
    series: dict  # sequence -> native sitk image, on its own grid
    coregistration: dict[str, RigidResult]  # T1ce point -> sequence point
    atlas_registration: RigidResult  # atlas point -> T1ce point
    brain: np.ndarray  # native brain mask (T1ce grid)
    brain_info: dict
    timings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    n4: bool = False


@dataclass
class Prepared:
    """What ``prepare`` found: the files, the decision, and the preprocessed case when it ran."""

    files: CaseFiles
    decision: Decision
    clinical: ClinicalCase | None = None


def prepare(case_dir, mapping: dict | None, options: ClinicalOptions, optional: tuple[str, ...] = ()) -> Prepared:
    """Decide, and run the full preprocessing when it is needed."""
    files = find_sequences(case_dir, mapping, optional)
    decision = decide(options.mode, files)
    if decision.run == "none":
        return Prepared(files, decision)
    return Prepared(files, decision, run_full(Path(case_dir), files, decision, options))


def run_full(folder: Path, files: CaseFiles, decision: Decision, options: ClinicalOptions) -> ClinicalCase:
    timings: dict[str, float] = {}
    warnings: list[str] = []
    t0 = time.perf_counter()
    present = [s for s in SEQUENCES if s in files.files]
    read = {s: read_series(files.files[s]) for s in present}
    series = {s: to_sitk(read[s][0], read[s][1]) for s in present}
    t1ce_data, t1ce_affine, t1ce_header = read["t1ce"]
    t1ce = series["t1ce"]
    # The user's choices are checked before minutes of registration.
    user_mask = mask_from_file(options.brain_mask, t1ce_data.shape, t1ce_affine) if options.brain_mask else None
    check_method(options.brain_extraction)
    timings["read"] = time.perf_counter() - t0

    # The co-registrations and the brain extraction are independent: side by side, one ITK thread each (a run
    # repeats exactly, repeatable.py).  Each stage's time is its own jobs' (they overlap); the wall time of both
    # is "coregistration+brain_extraction".
    t0 = time.perf_counter()
    jobs = {s: _timed(partial(_coregister, t1ce, series[s], files.files[s], options.seed))
            for s in present if s != "t1ce"}
    jobs["brain"] = _timed(partial(_brain, t1ce, t1ce_data, t1ce_affine, files.files["t1ce"], options, user_mask))
    done = run_side_by_side(jobs)
    timings["coregistration+brain_extraction"] = time.perf_counter() - t0
    coregistration = {s: done[s][0][0] for s in present if s != "t1ce"}
    warnings += [w for s in coregistration for w in done[s][0][1]]  # in sequence order, whatever ended first
    timings["coregistration"] = sum(done[s][1] for s in coregistration)
    (brain, brain_info), timings["brain_extraction"] = done["brain"]
    volume_ml = float(brain.sum() * np.prod(voxel_spacing(t1ce_affine)) / 1000.0)
    brain_info["volume_ml"] = round(volume_ml, 1)
    if not BRAIN_ML[0] <= volume_ml <= BRAIN_ML[1]:
        warnings.append(f"{files.files['t1ce']}: implausible brain mask ({volume_ml:.0f} mL after "
                        f"{brain_info['method']} brain extraction); check the QC figure")

    t0 = time.perf_counter()
    atlas = load_atlas(options.atlas)
    t1ce_brain = to_sitk(np.where(brain, t1ce_data, 0.0), t1ce_affine)
    try:
        to_atlas = register_to_atlas(t1ce_brain, to_sitk(brain.astype(np.uint8), t1ce_affine, sitk.sitkUInt8),
                                     atlas, options.seed)
    except RuntimeError as exc:
        raise CaseError(files.files["t1ce"], f"cannot register the brain-extracted T1ce to the {atlas.name} atlas "
                                             f"({' '.join(str(exc).split())[-160:]})") from exc
    timings["atlas_registration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    brain_sitk = to_sitk(brain.astype(np.float32), t1ce_affine)
    atlas_brain = to_array(sitk.Resample(brain_sitk, atlas.template, to_atlas.transform, sitk.sitkLinear, 0.0)) > 0.5
    overlap = _dice(atlas_brain, to_array(atlas.mask) > 0)
    brain_info["atlas_overlap_dice"] = round(overlap, 4)
    if overlap < MIN_ATLAS_OVERLAP or not to_atlas.mi_after > to_atlas.mi_before:
        warnings.append(f"{files.files['t1ce']}: implausible registration to the {atlas.name} atlas (brain overlap "
                        f"Dice {overlap:.2f}); check the QC figure")
    atlas_images = np.zeros((len(SEQUENCES), *atlas.shape), np.float32)
    native_images = np.zeros((len(SEQUENCES), *t1ce_data.shape), np.float32)
    for s in present:
        c = SEQUENCES.index(s)
        if s == "t1ce":
            through, native_images[c] = to_atlas.transform, t1ce_data
        else:
            through = sitk.CompositeTransform([coregistration[s].transform, to_atlas.transform])
            native_images[c] = to_array(sitk.Resample(series[s], t1ce, coregistration[s].transform,
                                                      sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        moved = sitk.Resample(series[s], atlas.template, through, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        if options.n4:
            moved = n4_correct(moved, to_sitk(atlas_brain.astype(np.uint8), atlas.affine, sitk.sitkUInt8))
        atlas_images[c] = np.where(atlas_brain, to_array(moved), 0.0)
    timings["resample"] = time.perf_counter() - t0

    missing = [s for s in SEQUENCES if s not in present]
    common = dict(case_id=files.case_id, folder=folder, naming=files.naming, files=files.files, reference="t1ce",
                  missing=missing)
    label, convention = _native_label(files, t1ce_data.shape, t1ce_affine)
    native_case = Case(images=native_images, affine=t1ce_affine, header=t1ce_header, label=label,
                       label_convention=convention, resampled=[s for s in present if s != "t1ce"], **common)
    atlas_case = Case(images=atlas_images, affine=atlas.affine, header=None, resampled=list(present), **common)
    return ClinicalCase(files, decision, native_case, atlas_case, atlas, t1ce, series, coregistration, to_atlas,
                        brain, brain_info, timings, warnings, options.n4)


def _timed(fn):
    def run():
        t0 = time.perf_counter()
        return fn(), time.perf_counter() - t0
    return run


def _coregister(t1ce: sitk.Image, image: sitk.Image, path: Path, seed: int) -> tuple[RigidResult, list[str]]:
    """The rigid result and its warnings (a job of its own: the caller keeps the warnings in sequence order)."""
    warnings = []
    try:
        result = register_rigid(t1ce, image, seed=seed)
    except RuntimeError as exc:  # ITK: no overlap, too few samples inside the moving image ...
        raise CaseError(path, f"cannot be co-registered to the T1ce ({' '.join(str(exc).split())[-160:]})") from exc
    if result.mi_after < MIN_MI:
        raise CaseError(path, f"cannot be co-registered to the T1ce: mutual information {result.mi_after:.3f} after "
                              "registration (an unrelated image?)")
    why = result.implausible()
    if why:
        warnings.append(f"{path}: implausible co-registration to the T1ce: {why}; check the QC figure")
    return result, warnings


def _brain(t1ce: sitk.Image, t1ce_data, t1ce_affine, path: Path, options: ClinicalOptions,
           user_mask: np.ndarray | None) -> tuple[np.ndarray, dict]:
    if user_mask is not None:
        return user_mask, {"method": "file", "file": str(options.brain_mask), "seconds": 0.0}
    method = options.brain_extraction
    why = "asked for"
    if method == "auto":
        extracted = looks_brain_extracted(t1ce_data, t1ce_affine)
        method = "none" if extracted else DEFAULT_BRAIN_EXTRACTION
        why = "the T1ce is already brain-extracted" if extracted else "the T1ce is not brain-extracted (default method)"
    mask, info = extract_brain(t1ce, method)
    if not mask.any():
        raise CaseError(path, f"{method} brain extraction found no brain in the T1ce")
    return mask, {**info, "why": why}


def _native_label(files: CaseFiles, shape, affine):
    if "seg" not in files.files:
        return None, "brats2021"
    label, convention, _ = _load_label(files.files["seg"], files.naming, shape, affine)
    return label, convention


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 1.0
