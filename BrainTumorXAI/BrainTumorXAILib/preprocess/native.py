"""Every map made on the atlas grid carried back onto the native T1ce grid, and the preprocessing's own files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.nifti_writer import save_volume
from ..reporting.metrics import class_argmax
from ..reporting.trust import deterministic_entropy_on_case_grid
from .pipeline import ClinicalCase
from .sitk_images import to_array, to_sitk
from .transforms_io import write_transform


def _to_native(clinical: ClinicalCase, arrays: list[np.ndarray], fills: list[float]) -> list[np.ndarray]:
    """Atlas-grid maps onto the native T1ce grid, trilinear; ``fills`` outside the atlas grid."""
    native_to_atlas = clinical.atlas_registration.transform.GetInverse()
    affine = clinical.atlas.affine
    return [to_array(sitk.Resample(to_sitk(a, affine), clinical.t1ce, native_to_atlas, sitk.sitkLinear, float(fill),
                                   sitk.sitkFloat32)) for a, fill in zip(arrays, fills)]


def grid_to_native(clinical: ClinicalCase, grid: dict) -> dict:
    """The analysis's case-grid maps (on the atlas grid) on the native grid.  Probabilities stay a partition of
    unity; the labels are their argmax inside the native brain mask (never nearest-neighbour labels)."""
    brain = clinical.brain
    n_cls = len(grid["probabilities"])
    probs = np.stack(_to_native(clinical, list(grid["probabilities"]), [1.0] + [0.0] * (n_cls - 1)))
    np.clip(probs, 0.0, 1.0, out=probs)
    probs /= np.maximum(probs.sum(axis=0, keepdims=True), 1e-12)
    classes = class_argmax(probs)
    classes[~brain] = 0

    def one(a, hi=None):
        out = _to_native(clinical, [a], [0.0])[0]
        return np.clip(out, 0.0, hi, out=out)

    native = {"probabilities": probs, "classes": classes, "entropy": one(grid["entropy"])}
    if "variance" in grid:
        native["variance"] = np.stack([one(v) for v in grid["variance"]])
        native["mutual_information"] = one(grid["mutual_information"])
    native["gradcam"] = {c: one(m, 1.0) for c, m in grid["gradcam"].items()}
    native["attention"] = {k: one(m, 1.0) for k, m in grid["attention"].items()}
    if "gradcam_locality" in grid:  # grid-free figures of the maps where they were made
        native["gradcam_locality"] = grid["gradcam_locality"]
    evidence = grid.get("sequence_evidence")
    if evidence:  # the table is per class, grid-free; the maps follow every other map
        native["sequence_evidence"] = {**evidence, "maps": {k: one(m, 1.0) * brain
                                                            for k, m in evidence.get("maps", {}).items()}}
    return native


def prediction_to_native(clinical: ClinicalCase, prediction):
    """The same prediction with its case-grid maps and brain mask on the native grid (network maps unchanged)."""
    grid = grid_to_native(clinical, prediction.grid)
    deterministic = deterministic_entropy_on_case_grid(prediction)  # on the atlas grid, where the network maps map
    if deterministic is not None:
        grid["deterministic_entropy"] = np.clip(_to_native(clinical, [deterministic], [0.0])[0], 0.0, None)
    return dataclasses.replace(prediction, grid=grid, brain=clinical.brain)


def write_preprocessing(clinical: ClinicalCase, folder: Path) -> dict:
    """Transforms (ITK .tfm), the native brain mask and the QC figure in the output folder; their paths."""
    folder = Path(folder)
    outputs = {"transforms": {}}
    for seq, result in clinical.coregistration.items():
        name = f"transforms/{seq}_to_t1ce.tfm"
        write_transform(result.transform, folder / name)
        outputs["transforms"][seq] = name
    name = f"transforms/{clinical.atlas.name}_to_t1ce.tfm"
    write_transform(clinical.atlas_registration.transform, folder / name)
    outputs["transforms"]["atlas"] = name
    case = clinical.native_case
    save_volume(clinical.brain.astype(np.uint8), case.affine, folder / "brain_mask.nii.gz", header=case.header,
                dtype=np.uint8)
    outputs["brain_mask"] = "brain_mask.nii.gz"
    try:
        from .qc import write_qc_figure  # matplotlib: optional where the analysis runs in Slicer's Python
    except ImportError:
        outputs["qc_figure"] = None
        clinical.warnings.append("QC figure not drawn: matplotlib is not installed (pip install matplotlib)")
        return outputs
    outputs["qc_figure"] = str(write_qc_figure(clinical, folder / "figures" / "preprocessing_qc.png")
                               .relative_to(folder))
    return outputs

