"""Which scene volumes the Logic accepts as inputs, and why it refuses the others (slicer-core wheel)."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.io.grid import grids_overlap  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.inputs import _gridsOverlap  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.nodes import updateVolumeFromNiftiArray  # noqa: E402


def _volume(scene, name, shape=(8, 9, 10), affine=None, fill=None, dtype=np.float32):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape) if fill is None else np.full(shape, fill, dtype)
    updateVolumeFromNiftiArray(node, data, np.eye(4) if affine is None else affine)
    return node


def test_input_problem_reasons():
    """The Apply button's tooltip: what would stop the analysis, found before it starts."""
    scene, _ = create_headless_scene()
    try:
        problem = BrainTumorXAILogic.inputProblem
        vols = {s: _volume(scene, s) for s in ("t1", "t1ce", "t2", "flair")}
        assert problem(vols) == ""
        assert "T1ce, FLAIR" in problem({**vols, "t1ce": None, "flair": None})
        assert "different volume" in problem({**vols, "t2": vols["t1"]})
        empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
        assert "no image data" in problem({**vols, "t2": empty})
        assert "empty" in problem({**vols, "t2": _volume(scene, "zeros", fill=0)})
        assert "not a 3D volume" in problem({**vols, "t1": _volume(scene, "flat", shape=(8, 9, 1))})
        # Another grid that overlaps is resampled by the analysis; one elsewhere in space cannot be.
        shifted = np.eye(4)
        shifted[:3, 3] = (3.0, 0.0, 0.0)
        assert problem({**vols, "t2": _volume(scene, "other grid", shape=(5, 6, 7), affine=shifted)}) == ""
        far = np.diag([2.0, 2.0, 2.0, 1.0])
        far[:3, 3] = (500.0, 0.0, 0.0)
        reason = problem({**vols, "flair": _volume(scene, "far away", affine=far)})
        assert "FLAIR (far away) does not overlap the T1ce" in reason
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        moved = _volume(scene, "moved")
        moved.SetAndObserveTransformNodeID(transform.GetID())
        assert "transform" in problem({**vols, "t1": moved})

        # Ground truth: a segmentation needs the NCR/ED/ET segments; a label map BraTS values.
        logic = BrainTumorXAILogic(scene)
        classes = np.zeros((8, 9, 10), np.uint8)
        classes[2:4, 2:4, 2:4], classes[4:6, 4:6, 4:6], classes[6, 6, 6] = 1, 2, 3
        gt = logic._segmentationFromClasses(classes, np.eye(4), "gt")
        assert problem(vols, gt) == ""
        gt.GetSegmentation().RemoveSegment(gt.GetSegmentation().GetSegmentIdBySegmentName("ED"))
        assert problem(vols, gt) == "Ground truth gt has no segment named ED (needs segments NCR, ED, ET)"
        other = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "user segmentation")
        other.GetSegmentation().AddEmptySegment("tumor")
        assert "no segment named NCR, ED, ET" in problem(vols, other)
        labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
        updateVolumeFromNiftiArray(labels, classes, np.eye(4))
        assert problem(vols, labels) == ""
        updateVolumeFromNiftiArray(labels, classes * 3, np.eye(4))
        assert "label values 0..9" in problem(vols, labels)
        updateVolumeFromNiftiArray(labels, classes, far)
        assert "does not overlap" in problem(vols, labels)
    finally:
        release_headless_scene(scene)


def test_apply_check_overlap_matches_the_analysis():
    """The numpy-only overlap test of inputProblem agrees with the one the analysis applies."""
    rng = np.random.default_rng(5)
    results = []
    for _ in range(300):
        a, b = np.eye(4), np.eye(4)
        a[:3, :3] = rng.normal(size=(3, 3)) + np.diag([3.0, 3.0, 3.0])
        b[:3, :3] = np.diag(rng.uniform(0.5, 3.0, size=3))
        a[:3, 3], b[:3, 3] = rng.uniform(-60, 60, size=3), rng.uniform(-60, 60, size=3)
        sa, sb = tuple(int(n) for n in rng.integers(2, 30, size=3)), tuple(int(n) for n in rng.integers(2, 30, size=3))
        expected = grids_overlap(sa, a, sb, b)
        assert _gridsOverlap(sa, a, sb, b) == expected
        results.append(expected)
    assert any(results) and not all(results)
