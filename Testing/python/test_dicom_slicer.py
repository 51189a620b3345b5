"""*Export DICOM SEG* on the slicer-core wheel: a T1ce volume node carrying the DICOM instance UIDs (as Slicer's DICOM
browser leaves them), results on the grid the Logic exports that node to, a SEG that lies on the source slices.

The wheel has neither Slicer's DICOM database (ctkDICOMDatabase) nor its DICOM SEG plugin (DICOMSegmentationPlugin:
Slicer >= 5.12 core, QuantitativeReporting before), so the database is a dictionary with its one lookup and the
Lib's writer is the exporter that runs; reading the SEG back through Slicer's DICOM SEG loader is not possible here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.dicom.study import convert_study, open_study  # noqa: E402
from BrainTumorXAILib.errors import BrainTumorXAIError  # noqa: E402
from BrainTumorXAILib.io.labels import to_internal  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.dicom_export import INSTANCE_UIDS, exportDicomSeg, slicerSegExporter  # noqa: E402
from BrainTumorXAILib.slicer_bridge.nodes import volumeNodeFromNifti, writeNifti  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from dicom_checks import seg_mismatches  # noqa: E402
from dicom_factory import grid_affine, rotation, write_case_study, write_results_on  # noqa: E402


class InstanceFiles:
    """The one lookup of Slicer's DICOM database the export uses: SOP instance UID -> file ('' when unknown)."""

    def __init__(self, files):
        import pydicom

        self.files = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): str(f) for f in files}

    def fileForInstance(self, uid: str) -> str:
        return self.files.get(uid, "")


def test_export_dicom_seg_from_a_dicom_loaded_volume(tmp_path):
    assert slicerSegExporter() is None  # the wheel has no DICOMSegmentationPlugin: the Lib's writer runs
    rng = np.random.default_rng(2)
    affine = grid_affine(rotation(8, -15, 95), (0.9, 0.9, 5.0), (30.0, -60.0, 10.0), flip_slices=True)
    vols = {s: rng.integers(0, 700, (28, 24, 7)).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    files = write_case_study(vols, affine, tmp_path / "in", shuffle="t1ce")
    study = open_study(tmp_path / "in")
    scene, _ = create_headless_scene()
    try:
        volume = volumeNodeFromNifti(scene, convert_study(study, tmp_path)["t1ce"], "T1ce")
        exported = writeNifti(volume, tmp_path / "input_t1ce.nii.gz")  # what the Logic gives the analysis
        results = write_results_on(nib.load(exported), tmp_path / "results", rng)
        database = InstanceFiles(files["t1ce"])
        with pytest.raises(BrainTumorXAIError, match="was not loaded from DICOM"):
            exportDicomSeg(scene, None, volume, results, tmp_path / "seg", database)
        volume.SetAttribute(INSTANCE_UIDS, " ".join(database.files))
        assert exportDicomSeg(scene, None, volume, results, tmp_path / "seg", database) == "BrainTumorXAI"
    finally:
        release_headless_scene(scene)
    seg = nib.load(results / "seg.nii.gz")
    internal = nib.Nifti1Image(to_internal(np.asarray(seg.dataobj), "brats2021"), seg.affine)
    assert seg_mismatches(tmp_path / "seg" / "seg.dcm", files["t1ce"], internal) == 0
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["entropy.dcm", "prob_ED.dcm", "prob_ET.dcm",
                                                                   "prob_NCR.dcm", "seg.dcm"]
