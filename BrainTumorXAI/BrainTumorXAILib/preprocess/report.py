"""``summary.json["preprocessing_clinical"]``: what ran, why, how long, and how well it registered."""

from __future__ import annotations

from .pipeline import ClinicalCase, Prepared
from .transforms_io import rigid_parameters


def _registration(result) -> dict:
    moved = rigid_parameters(result.transform)
    return {"mutual_information_before": round(result.mi_before, 4),
            "mutual_information_after": round(result.mi_after, 4),
            "rotation_deg": moved["rotation_deg"], "translation_mm": moved["translation_mm"],
            "iterations": result.iterations, "seconds": round(result.seconds, 3), "plausible": not result.implausible()}


def clinical_summary(clinical: ClinicalCase) -> dict:
    atlas = _registration(clinical.atlas_registration)
    atlas.pop("plausible")  # its translation is the scanner-to-atlas offset: the motion limits do not apply
    return {
        "mode": "full",
        "reason": clinical.decision.reason,
        "matched_by": clinical.files.naming,
        "files": {k: str(v) for k, v in clinical.files.files.items()},
        "native_grid": {"shape": list(clinical.native_case.shape), "affine": clinical.native_case.affine.tolist()},
        "coregistration": {"method": "rigid, Mattes mutual information, 3 levels (SimpleITK)", "reference": "t1ce",
                           **{s: _registration(r) for s, r in clinical.coregistration.items()}},
        "brain_extraction": clinical.brain_info,
        "atlas": {"name": clinical.atlas.name, "shape": list(clinical.atlas.shape), **atlas},
        "n4": clinical.n4,
        "resampling": "each sequence once through its composed transform, linear; maps back to native linear, "
                      "labels = argmax of the resampled probabilities",
        "timings_s": {k: round(v, 3) for k, v in clinical.timings.items()},
        "warnings": list(clinical.warnings),
    }


def prepared_summary(prepared: Prepared) -> dict:
    """The summary of what ``prepare`` decided, and of the full preprocessing when it ran."""
    if prepared.clinical is not None:
        return clinical_summary(prepared.clinical)
    return {"mode": "none", "reason": prepared.decision.reason, "matched_by": prepared.files.naming,
            "files": {k: str(v) for k, v in prepared.files.files.items()}, "warnings": list(prepared.decision.warnings)}
