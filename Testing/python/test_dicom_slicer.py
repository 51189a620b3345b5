"""*Export DICOM SEG* on the slicer-core wheel: a T1ce volume node carrying the DICOM instance UIDs (as Slicer's DICOM
browser leaves them), results on the grid the Logic exports that node to, a SEG that lies on the source slices.

The wheel has neither Slicer's DICOM database (ctkDICOMDatabase) nor its DICOM SEG plugin (DICOMSegmentationPlugin:
Slicer >= 5.12 core, QuantitativeReporting before), so the database is a dictionary with its one lookup and the
Lib's writer is the exporter that runs; reading the SEG back through Slicer's DICOM SEG loader is not possible here.
The hand-over to Slicer's own exporter is checked against what that exporter reads from the scene.
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
import vtk  # noqa: E402

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
            exportDicomSeg(scene, None, volume, results, tmp_path, database)
        volume.SetAttribute(INSTANCE_UIDS, " ".join(database.files))
        chosen = tmp_path / "chosen"  # a folder the user picked, with their own files in it
        chosen.mkdir()
        (chosen / "notes.txt").write_text("mine")
        first = exportDicomSeg(scene, None, volume, results, chosen, database)
        second = exportDicomSeg(scene, None, volume, results, chosen, database)
    finally:
        release_headless_scene(scene)
    assert (first["exporter"], first["mapsSkipped"]) == ("BrainTumorXAI", "")
    assert (chosen / "notes.txt").read_text() == "mine"  # never replaced or emptied
    assert first["folder"].parent == second["folder"].parent == chosen and first["folder"] != second["folder"]
    seg = nib.load(results / "seg.nii.gz")
    internal = nib.Nifti1Image(to_internal(np.asarray(seg.dataobj), "brats2021"), seg.affine)
    for written in (first, second):
        assert seg_mismatches(written["folder"] / "seg.dcm", files["t1ce"], internal) == 0
        assert sorted(p.name for p in written["folder"].iterdir()) == ["entropy.dcm", "prob_ED.dcm", "prob_ET.dcm",
                                                                      "prob_NCR.dcm", "seg.dcm"]


class SlicerExporterContract:
    """What Slicer's ``DICOMSegmentationExporter`` (Slicer main, Modules/Scripted/DICOMPlugins/
    DICOMSegmentationPlugin.py, read at commit 583e9b3; QuantitativeReporting's has the same checks) reads from the
    scene before it runs dcmqi: the class itself imports Slicer's application modules and cannot run on the wheel,
    so this stand-in asserts each of its preconditions on the real MRML nodes and writes a marker file."""

    calls: list = []

    def __init__(self, segmentationNode, contentCreatorName=None):
        self.segmentationNode = segmentationNode

    def export(self, outputDirectory, segFileName, metadata, segmentIDs=None, skipEmpty=False):
        node = self.segmentationNode
        volume = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
        assert volume is not None, "Referenced volume is not found for the segmentation"
        assert volume.GetAttribute(INSTANCE_UIDS), "VolumeNode has no attribute DICOM.instanceUIDs"
        segmentation = node.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            kind, name, entry = vtk.mutable(""), vtk.mutable(""), vtk.mutable("")
            assert segment.GetTag("DICOM.SegmentAlgorithmType", kind) and str(kind) == "AUTOMATIC"
            assert segment.GetTag("DICOM.SegmentAlgorithmName", name) and str(name)  # required unless MANUAL
            assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), entry)
            assert str(entry).count("SCT^") >= 2, "no terminology category and type"
        assert Path(outputDirectory).is_dir() and skipEmpty
        (Path(outputDirectory) / segFileName).write_text("written by Slicer's exporter")
        SlicerExporterContract.calls.append(metadata)

    def cleanup(self):
        pass


def test_slicer_exporter_gets_what_it_reads_and_the_lib_adds_the_maps(tmp_path, monkeypatch):
    from BrainTumorXAILib.slicer_bridge import dicom_export
    from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic

    monkeypatch.setattr(dicom_export, "slicerSegExporter", lambda: SlicerExporterContract)
    rng = np.random.default_rng(4)
    affine = grid_affine(rotation(-5, 12, 30), (1.0, 1.0, 4.0), (10.0, 20.0, -30.0))
    vols = {s: rng.integers(0, 700, (26, 22, 6)).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    files = write_case_study(vols, affine, tmp_path / "in")
    study = open_study(tmp_path / "in")
    scene, _ = create_headless_scene()
    try:
        volume = volumeNodeFromNifti(scene, convert_study(study, tmp_path)["t1ce"], "T1ce")
        exported = nib.load(writeNifti(volume, tmp_path / "input_t1ce.nii.gz"))
        results = write_results_on(exported, tmp_path / "results", rng)
        classes = to_internal(np.asarray(nib.load(results / "seg.nii.gz").dataobj), "brats2021")
        seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segmentation")
        BrainTumorXAILogic(scene)._fillSegmentation(seg_node, classes, nib.load(results / "seg.nii.gz").affine)
        database = InstanceFiles(files["t1ce"])
        volume.SetAttribute(INSTANCE_UIDS, " ".join(database.files))
        written = dicom_export.exportDicomSeg(scene, seg_node, volume, results, tmp_path / "chosen", database)
    finally:
        release_headless_scene(scene)
    assert written["exporter"] == "Slicer" and written["mapsSkipped"] == ""
    assert "research" in SlicerExporterContract.calls[-1]["SeriesDescription"]
    assert sorted(p.name for p in written["folder"].iterdir()) == ["entropy.dcm", "prob_ED.dcm", "prob_ET.dcm",
                                                                  "prob_NCR.dcm", "seg.dcm"]
    assert (written["folder"] / "seg.dcm").read_text() == "written by Slicer's exporter"
