"""``braintumorxai analyze --scene``: the .mrb it writes opens in a fresh scene with every node on the input grid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.cli import main  # noqa: E402
from BrainTumorXAILib.io.labels import SEQUENCES, TUMOUR_CLASSES, to_internal  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.constants import ATTR_KIND  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.nodes import niftiArrayFromVolume  # noqa: E402
from BrainTumorXAILib.slicer_bridge.mrb_from_results import SLICE_VIEWS, ensure_slice_views  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from slicer_results_factory import assert_segmentation_on_grid  # noqa: E402

CASE_ID = "BraTS2021_00311"
SHAPE = (40, 44, 32)


def _oblique_right_handed() -> np.ndarray:
    """Rotated, anisotropic, off-centre and right-handed: Slicer's readers keep such an IJKToRAS as is."""
    a, b = np.deg2rad(12.0), np.deg2rad(-8.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([3.0, 2.8, 3.5])
    affine[:3, 3] = (-55.0, -70.0, -40.0)
    assert np.linalg.det(affine[:3, :3]) > 0
    return affine


AFFINE = _oblique_right_handed()


@pytest.fixture(scope="module")
def scene_run(tmp_path_factory, tiny_checkpoint):
    from BrainTumorXAILib.synth import generate_case

    root = tmp_path_factory.mktemp("scene_cli")
    case = generate_case(root / "cases", CASE_ID, seed=11, shape=SHAPE, spacing=3.0, affine=AFFINE)
    out, mrb = root / "result", root / "bundle" / "case.mrb"
    code = main(["analyze", str(case), "--out", str(out), "--weights", str(tiny_checkpoint), "--device", "cpu",
                 "--mc-samples", "2", "--gradcam", "ET", "--no-figures", "--quiet", "--scene", str(mrb)])
    assert code == 0
    assert mrb.is_file() and mrb.stat().st_size > 0
    return case, out, mrb


@pytest.fixture()
def reloaded(scene_run):
    _, _, mrb = scene_run
    scene, _ = create_headless_scene()
    try:
        assert scene.ReadFromMRB(str(mrb))
        yield scene
    finally:
        release_headless_scene(scene)


def _node(scene, name):
    node = scene.GetFirstNodeByName(name)
    assert node is not None, f"{name} not in the reloaded scene"
    return node


def test_inputs_come_back_on_the_input_grid(scene_run, reloaded):
    case, _, _ = scene_run
    for seq in SEQUENCES:
        node = _node(reloaded, f"{CASE_ID}_{seq}")
        assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetAttribute("BrainTumorXAI.Sequence") == seq
        data, ijk_to_ras = niftiArrayFromVolume(node)
        img = nib.load(str(case / f"{CASE_ID}_{seq}.nii.gz"))
        np.testing.assert_allclose(ijk_to_ras, AFFINE, atol=1e-4, err_msg=seq)
        np.testing.assert_allclose(ijk_to_ras, img.affine, atol=1e-4, err_msg=seq)
        np.testing.assert_array_equal(data, np.asarray(img.dataobj), err_msg=seq)


def test_results_come_back_on_the_input_grid(scene_run, reloaded):
    _, out, _ = scene_run
    summary = json.loads((out / "summary.json").read_text())
    logic = BrainTumorXAILogic(reloaded)
    folders = logic.runFolders()
    assert len(folders) == 1
    nodes = logic.runNodes(folders[0])
    expected = {f"{k}:{c}" for k in ("probability", "variance") for c in TUMOUR_CLASSES} | {
        "gradcam:ET", "entropy", "mutual_information"}
    # The sequence evidence maps the analysis wrote (evidence_{class}_{sequence}.nii.gz), each one overlay.
    expected |= {f"evidence_{p.name[len('evidence_'):-len('.nii.gz')].split('_', 1)[1]}:"
                 f"{p.name[len('evidence_'):].split('_', 1)[0]}" for p in out.glob("evidence_*.nii.gz")}
    assert set(nodes["overlays"]) == expected
    for key, node in list(nodes["overlays"].items()) + [("labelmap", nodes["labelmap"])]:
        data, ijk_to_ras = niftiArrayFromVolume(node)
        np.testing.assert_allclose(ijk_to_ras, AFFINE, atol=1e-4, err_msg=key)
        assert data.shape == SHAPE, key
    assert nodes["labelmap"].IsA("vtkMRMLLabelMapVolumeNode")
    seg_file = nib.load(str(out / "seg.nii.gz"))
    np.testing.assert_array_equal(niftiArrayFromVolume(nodes["labelmap"])[0], np.asarray(seg_file.dataobj))
    classes = to_internal(np.asarray(seg_file.dataobj).astype(np.int64), summary["case"]["label_convention"])

    segmentation = nodes["segmentation"]
    names = [segmentation.GetSegmentation().GetNthSegment(i).GetName()
             for i in range(segmentation.GetSegmentation().GetNumberOfSegments())]
    assert names == list(TUMOUR_CLASSES)
    assert_segmentation_on_grid(segmentation, classes, AFFINE)
    assert nodes["table"].GetNumberOfRows() == 6
    if "brain" in nodes:
        assert nodes["brain"].GetPolyData().GetNumberOfPoints() > 0
    # Ground truth of the case is not part of the scene (only the prediction and its maps).
    segs = reloaded.GetNodesByClass("vtkMRMLSegmentationNode")
    assert all(segs.GetItemAsObject(i).GetAttribute(ATTR_KIND) != "ground_truth" for i in range(segs.GetNumberOfItems()))


def test_flair_is_the_background_of_the_slice_views(reloaded):
    flair = _node(reloaded, f"{CASE_ID}_flair")
    for view in SLICE_VIEWS:
        composite = reloaded.GetSingletonNode(view, "vtkMRMLSliceCompositeNode")
        assert composite is not None, view
        assert composite.GetBackgroundVolumeID() == flair.GetID(), view
        assert composite.GetForegroundVolumeID() is None, view


def test_opening_the_bundle_updates_existing_slice_views(scene_run):
    """Like Slicer, whose layout owns the Red/Yellow/Green composite nodes before a bundle is opened:
    the bundle's settings land in those nodes."""
    _, _, mrb = scene_run
    scene, _ = create_headless_scene()
    try:
        before = {view: node.GetID() for view, node in zip(SLICE_VIEWS, ensure_slice_views(scene))}
        assert scene.ReadFromMRB(str(mrb))
        flair = _node(scene, f"{CASE_ID}_flair")
        assert scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode") == len(SLICE_VIEWS)
        for view in SLICE_VIEWS:
            composite = scene.GetSingletonNode(view, "vtkMRMLSliceCompositeNode")
            assert composite.GetID() == before[view]
            assert composite.GetBackgroundVolumeID() == flair.GetID(), view
    finally:
        release_headless_scene(scene)


def test_existing_scene_file_is_not_overwritten(scene_run, tiny_checkpoint, tmp_path, capsys):
    case, _, mrb = scene_run
    before = mrb.read_bytes()
    code = main(["analyze", str(case), "--out", str(tmp_path / "again"), "--weights", str(tiny_checkpoint),
                 "--device", "cpu", "--mc-samples", "0", "--gradcam", "none", "--no-figures", "--no-surfaces",
                 "--quiet", "--scene", str(mrb)])
    assert code != 0 and str(mrb.name) in capsys.readouterr().err
    assert mrb.read_bytes() == before
