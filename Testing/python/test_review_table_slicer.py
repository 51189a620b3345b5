"""The review table on slicer-core: rows from summary.json, a selected row centres the slice views."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.slicer.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer.review import ReviewLogic  # noqa: E402


def test_table_rows_and_jump(tmp_path):
    regions = [{"rank": 1, "boundary": "ED|background", "volume_ml": 1.5, "mean_entropy": 0.9,
                "peak_ras": [12.0, -30.5, 18.0]},
               {"rank": 2, "boundary": "ET|NCR", "volume_ml": 0.4, "mean_entropy": 0.8, "peak_ras": [-5.0, 4.0, 2.0]}]
    (tmp_path / "summary.json").write_text(json.dumps({"trust_report": {"review": {"regions": regions}}}))
    scene, _ = create_headless_scene()
    try:
        red = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        red.SetName("Red"), red.SetLayoutName("Red"), red.SetOrientationToAxial()
        logic = ReviewLogic(scene)
        node = logic.reviewTableFromSummary(tmp_path)
        assert node.GetNumberOfRows() == 2
        assert node.GetCellText(1, 1) == "ET|NCR"
        assert logic.regionPosition(node, 0) == pytest.approx((12.0, -30.5, 18.0))
        assert logic.jumpToRegion(node, 0) == pytest.approx((12.0, -30.5, 18.0))
        centre = np.array([red.GetSliceToRAS().GetElement(i, 3) for i in range(3)])
        assert centre == pytest.approx([12.0, -30.5, 18.0])
        assert ReviewLogic.reviewRegions({"trust_report": None}) == []
    finally:
        release_headless_scene(scene)
