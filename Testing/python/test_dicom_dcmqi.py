"""The written DICOM objects read back by dcmqi, the converter Slicer's own DICOM plugins run to load them
(``segimage2itkimage --mergeSegments`` for a SEG, ``paramap2itkimage`` for a Parametric Map: Slicer main,
Modules/Scripted/DICOMPlugins, read at commit 583e9b3; QuantitativeReporting runs the same tools on 5.6-5.10).
What dcmqi writes is compared with the NIfTI outputs in physical space, and the SEG's labelmap is imported into a
segmentation node on the slicer-core wheel the way the plugin imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

dcmqi = pytest.importorskip("dcmqi", reason="dcmqi (the converter Slicer's DICOM SEG/PM plugins run) not installed")
sitk = pytest.importorskip("SimpleITK")

from BrainTumorXAILib.io.labels import CLASS_COLORS, TERMINOLOGY_TYPES, TUMOUR_CLASSES, to_internal  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import grid_affine, random_study_with_results, rotation  # noqa: E402

SHAPE = (28, 24, 7)
AFFINE = grid_affine(rotation(11, -7, 200), (1.05, 0.9, 4.5), (-20.0, 35.0, 12.0), flip_slices=True)


def _run(tool: str, *args, out: Path) -> None:
    out.mkdir(exist_ok=True)  # dcmqi writes into an existing folder
    result = subprocess.run([str(dcmqi._lookup(tool)), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, f"{tool} failed ({result.returncode}): {result.stdout[-800:]} {result.stderr}"


def _seg_to_nrrd(root: Path) -> None:
    """The plugin's call: one merged labelmap ``1.nrrd`` and the segment descriptions ``meta.json``."""
    out = root / "seg_out"
    if not (out / "1.nrrd").exists():
        _run("segimage2itkimage", "--inputDICOM", root / "dicom" / "seg.dcm", "--outputDirectory", out,
             "--mergeSegments", out=out)


def _on_nifti_grid(image, reference: nib.Nifti1Image) -> np.ndarray:
    """A SimpleITK image's voxels re-indexed onto ``reference``'s voxel grid (it must be the same grid)."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    m = np.linalg.solve(np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, reference.affine)  # reference index -> image index
    perm = np.rint(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-3) and np.allclose(m[:3, 3], np.rint(m[:3, 3]), atol=1e-2)
    index = np.indices(reference.shape).reshape(3, -1)
    moved = (perm @ index + np.rint(m[:3, 3])[:, None]).astype(int)
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return data[tuple(moved)].reshape(reference.shape)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcmqi")
    _, results, _ = random_study_with_results(root, SHAPE, AFFINE, seed=11)
    return root, results


def test_seg_loads_through_dcmqi_as_slicer_loads_it(written):
    root, results = written
    _seg_to_nrrd(root)
    seg = nib.load(results / "seg.nii.gz")
    expected = to_internal(np.asarray(seg.dataobj), "brats2021")
    meta = json.loads((root / "seg_out" / "meta.json").read_text())
    segments = meta["segmentAttributes"][0]
    assert [s["SegmentLabel"] for s in segments] == list(TUMOUR_CLASSES)
    label_of = {s["SegmentLabel"]: s["labelID"] for s in segments}
    loaded = _on_nifti_grid(sitk.ReadImage(str(root / "seg_out" / "1.nrrd")), seg)
    for number, name in enumerate(TUMOUR_CLASSES, start=1):
        assert np.array_equal(loaded == label_of[name], expected == number), name
    for s in segments:
        code = s["SegmentedPropertyTypeCodeSequence"]
        assert (code["CodingSchemeDesignator"], code["CodeValue"], code["CodeMeaning"]) == TERMINOLOGY_TYPES[
            s["SegmentLabel"]]
        assert (s["SegmentAlgorithmType"], s["SegmentAlgorithmName"]) == ("AUTOMATIC", "BrainTumorXAI")
        assert np.allclose(np.asarray(s["recommendedDisplayRGBValue"]) / 255, CLASS_COLORS[s["SegmentLabel"]],
                           atol=0.01)


def test_seg_labelmap_imports_into_a_segmentation_node(written):
    slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("'slicer' is not the slicer-core MRML package")
    root, results = written
    _seg_to_nrrd(root)
    from vtk.util import numpy_support

    from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene

    scene, _ = create_headless_scene()
    try:
        label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "seg")
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(root / "seg_out" / "1.nrrd"))
        storage.SetSingleFile(True)
        assert storage.ReadData(label)
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "imported")
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label, segmentation)
        seg = segmentation.GetSegmentation()
        counts = []
        for index in range(seg.GetNumberOfSegments()):  # the segments share one labelmap, told by label value
            segment = seg.GetNthSegment(index)
            voxels = segmentation.GetBinaryLabelmapInternalRepresentation(seg.GetNthSegmentID(index))
            array = numpy_support.vtk_to_numpy(voxels.GetPointData().GetScalars())
            counts.append(int(np.count_nonzero(array == segment.GetLabelValue())))
    finally:
        release_headless_scene(scene)
    expected = to_internal(np.asarray(nib.load(results / "seg.nii.gz").dataobj), "brats2021")
    assert sorted(counts) == sorted(int(np.count_nonzero(expected == n)) for n in (1, 2, 3))


@pytest.mark.parametrize("name", ["prob_ET", "entropy"])
def test_parametric_maps_load_through_dcmqi_with_exact_values(written, name):
    root, results = written
    out = root / f"pm_{name}"
    _run("paramap2itkimage", "--inputDICOM", root / "dicom" / f"{name}.dcm", "--outputDirectory", out, out=out)
    reference = nib.load(results / f"{name}.nii.gz")
    loaded = _on_nifti_grid(sitk.ReadImage(str(out / "pmap.nrrd")), reference)
    assert np.array_equal(loaded, np.asarray(reference.dataobj, dtype=np.float32))
