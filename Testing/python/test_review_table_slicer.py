"""The review table on slicer-core: rows from summary.json, a selected row centres the slice views."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.review import ReviewLogic  # noqa: E402


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


def _with_trust_report(out, regions, card=None) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    summary["trust_report"] = {"review": {"regions": regions}}
    summary.setdefault("model", {})["trust"] = card
    (out / "summary.json").write_text(json.dumps(summary))
    return summary


def test_loaded_run_has_its_review_table_and_the_preset_shows_entropy_there(tmp_path):
    from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic
    from BrainTumorXAILib.slicer_bridge.review import REVIEW_KIND, TRUST_COLUMN
    from BrainTumorXAILib.reporting.checkpoint_trust import NOT_MEASURED, TRUST_FORMAT
    from slicer_results_factory import make_case_and_results

    _, out, _ = make_case_and_results(tmp_path)
    regions = [{"rank": 1, "boundary": "ED|background", "volume_ml": 2.0, "mean_entropy": 0.7,
                "peak_ras": [40.0, -25.0, 12.0]},
               {"rank": 2, "boundary": "ET|ED", "volume_ml": 0.5, "mean_entropy": 0.6, "peak_ras": [30.0, -20.0, 5.0]}]
    card = {"format": TRUST_FORMAT, "source": "validation", "cases": 12, "temperature": 1.3,
            "regions": {"WT": {"ece": 0.031, "auroc_entropy": 0.91, "qubrats": 0.88, "qubrats_zero": 0.8},
                        "ET": {"ece": float("nan"), "auroc_entropy": 1.7}}}  # invalid figures are dropped
    _with_trust_report(out, regions, card)
    scene, _ = create_headless_scene()
    try:
        views = {}
        for name in ("Red", "Yellow"):
            views[name] = scene.AddNewNodeByClass("vtkMRMLSliceNode")
            views[name].SetName(name), views[name].SetLayoutName(name)
        views["Red"].SetOrientationToAxial()
        views["Yellow"].SetOrientationToSagittal()
        scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode").SetLayoutName("Red")
        logic = BrainTumorXAILogic(scene)
        folder = logic.loadResults(out)
        nodes = logic.runNodes(folder)
        review = nodes[REVIEW_KIND]
        assert review.GetNumberOfRows() == 2 and review.GetAttribute("BrainTumorXAI.Kind") == REVIEW_KIND
        assert review.GetUseColumnTitleAsColumnHeader() and review.GetLocked()
        assert ReviewLogic.tableRow(review, 1) == 1 and ReviewLogic.tableRow(review, 2) == -1
        review.SetUseColumnTitleAsColumnHeader(False)  # then the first model row holds the titles
        assert ReviewLogic.tableRow(review, 1) == 0
        review.SetUseColumnTitleAsColumnHeader(True)

        position, entropy = ReviewLogic(scene).showUncertaintyAt(logic, review, 1, folder, opacity=0.4)
        assert position == pytest.approx((30.0, -20.0, 5.0))
        assert entropy is nodes["overlays"]["entropy"]
        composite = scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
        assert composite.GetForegroundVolumeID() == entropy.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.4)
        for name in ("Red", "Yellow"):
            m = views[name].GetSliceToRAS()
            assert [m.GetElement(i, 3) for i in range(3)] == pytest.approx([30.0, -20.0, 5.0])

        table = nodes["table"]
        col = table.GetColumnIndex(TRUST_COLUMN)
        rows = {(table.GetCellText(r, 0), table.GetCellText(r, 1)): table.GetCellText(r, col)
                for r in range(table.GetNumberOfRows())}
        assert rows[("WT", "region")] == "ECE 0.031 · AUROC 0.910 · QU-BraTS 0.880 (zero 0.800)"
        assert rows[("ET", "region")] == NOT_MEASURED and rows[("TC", "region")] == NOT_MEASURED
        assert rows[("ET", "class")] == ""
        assert "12 cases" in table.GetColumnDescription(TRUST_COLUMN)
        assert "T = 1.3" in table.GetColumnDescription(TRUST_COLUMN)
    finally:
        release_headless_scene(scene)


def test_results_without_a_trust_report_have_no_review_table_and_say_not_measured(tmp_path):
    from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic
    from BrainTumorXAILib.slicer_bridge.review import TRUST_COLUMN
    from BrainTumorXAILib.reporting.checkpoint_trust import NOT_MEASURED
    from slicer_results_factory import make_case_and_results

    _, out, _ = make_case_and_results(tmp_path)
    scene, _ = create_headless_scene()
    try:
        logic = BrainTumorXAILogic(scene)
        nodes = logic.runNodes(logic.loadResults(out))
        assert "review" not in nodes
        table = nodes["table"]
        col = table.GetColumnIndex(TRUST_COLUMN)
        texts = [table.GetCellText(r, col) for r in range(table.GetNumberOfRows())]
        assert texts.count(NOT_MEASURED) == 3 and texts.count("") == 3
        assert table.GetColumnDescription(TRUST_COLUMN) == NOT_MEASURED
    finally:
        release_headless_scene(scene)
