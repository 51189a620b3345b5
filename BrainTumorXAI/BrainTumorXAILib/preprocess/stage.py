"""The stage as ``analyze`` calls it: load (preprocessing when needed), carry the prediction back, write the
preprocessing's files."""

from __future__ import annotations

from pathlib import Path

from ..io.case_io import load_case
from .native import prediction_to_native, write_preprocessing
from .options import ClinicalOptions
from .pipeline import Prepared, prepare
from .report import prepared_summary


def load_for_analysis(case_dir, mapping: dict | None, options: ClinicalOptions | None, optional: tuple[str, ...]):
    """(Prepared, the case the model sees): the atlas-space case after full preprocessing, else the case as today."""
    prepared = prepare(case_dir, mapping, options or ClinicalOptions(), optional)
    if prepared.clinical is not None:
        return prepared, prepared.clinical.atlas_case
    if prepared.files.naming == "common names":  # T1.nii.gz, T1GD.nii.gz ...: an explicit mapping for the loader
        mapping = dict(prepared.files.files)
    return prepared, load_case(case_dir, mapping=mapping, optional=optional)


def back_to_native(prepared: Prepared, case, prediction):
    """(native case, prediction on the native grid); unchanged when nothing was preprocessed."""
    if prepared.clinical is None:
        return case, prediction
    return prepared.clinical.native_case, prediction_to_native(prepared.clinical, prediction)


def write_stage_outputs(prepared: Prepared, staging: Path, atlas_outputs=None) -> dict:
    """summary["preprocessing_clinical"], writing the transforms, brain mask and QC figure when it ran;
    ``atlas_outputs``: a callable that writes the atlas-space copies into a folder (returns their names)."""
    if prepared.clinical is None:
        return prepared_summary(prepared)
    outputs = write_preprocessing(prepared.clinical, staging)  # may add a warning: the summary comes after
    if atlas_outputs is not None:
        outputs["atlas_space"] = {"folder": "atlas", "files": atlas_outputs(staging / "atlas")}
    return {**prepared_summary(prepared), "outputs": outputs}
