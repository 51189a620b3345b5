"""The Slicer Logic on the slicer-core wheel: nodes, geometry, terminology, hierarchy, .mrb, rendering."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.io.labels import CLASS_COLORS, TUMOUR_CLASSES  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.constants import ATTR_RUN, TERMINOLOGY_TYPES  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.nodes import niftiArrayFromVolume  # noqa: E402
from BrainTumorXAILib.slicer_bridge.render import render_views  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from slicer_results_factory import (assert_same_world_array, assert_segmentation_on_grid,  # noqa: E402
                                    flipped_oblique_affine, make_case_and_results)

MODULE_DIR = Path(__file__).resolve().parents[2] / "BrainTumorXAI"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_case_and_results(tmp_path_factory.mktemp("slicer"))


@pytest.fixture(scope="module")
def loaded(results):
    case_dir, out, arrays = results
    scene, logics = create_headless_scene()
    logic = BrainTumorXAILogic(scene)
    inputs = logic.loadCase(case_dir)
    folder = logic.loadResults(out)
    yield scene, logic, inputs, folder, out, arrays
    release_headless_scene(scene)


def _ijk_to_ras(node) -> np.ndarray:
    return niftiArrayFromVolume(node)[1]


def _folder_nodes(scene, folder) -> set:
    sh = scene.GetSubjectHierarchyNode()
    ids = vtk.vtkIdList()
    sh.GetItemChildren(folder, ids, True)
    return {sh.GetItemDataNode(ids.GetId(i)).GetID() for i in range(ids.GetNumberOfIds()) if sh.GetItemDataNode(ids.GetId(i))}


def _assert_same_world_volume(copy, node) -> None:
    """Same voxels at the same RAS positions.  Slicer's NRRD reader turns a left-handed IJK
    grid into the equivalent right-handed one (k reversed), so compare through the index map."""
    (a, ma), (b, mb) = niftiArrayFromVolume(node), niftiArrayFromVolume(copy)
    t = np.linalg.inv(ma) @ mb  # copy index -> original index
    np.testing.assert_allclose(t, np.round(t), atol=1e-5)
    t = np.round(t).astype(int)
    idx = np.indices(b.shape).reshape(3, -1)
    src = t[:3, :3] @ idx + t[:3, 3:4]
    assert all((src[d] >= 0).all() and (src[d] < a.shape[d]).all() for d in range(3))
    np.testing.assert_array_equal(b.reshape(-1), a[src[0], src[1], src[2]])


def test_inputs_loaded_by_sequence_with_exact_geometry(loaded):
    scene, logic, inputs, _, _, arrays = loaded
    assert set(inputs) == {"t1", "t1ce", "t2", "flair", "seg"}
    for seq in ("t1", "t1ce", "t2", "flair"):
        node = inputs[seq]
        assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName().endswith(f"_{seq}")
        assert_same_world_array(node, arrays["images"][seq], flipped_oblique_affine())
        # Read by Slicer's storage node, which stays: saving the scene refers to the user's file.
        storage = node.GetStorageNode()
        assert storage is not None and storage.IsA("vtkMRMLVolumeArchetypeStorageNode")
        assert Path(storage.GetFileName()).name.endswith(f"_{seq}.nii.gz")
    assert inputs["seg"].IsA("vtkMRMLSegmentationNode")
    found = BrainTumorXAILogic.findSequenceVolumes(scene)
    assert {k: v.GetID() for k, v in found.items()} == {s: inputs[s].GetID() for s in ("t1", "t1ce", "t2", "flair")}


def test_find_sequences_by_name_both_conventions():
    scene, _ = create_headless_scene()
    try:
        names = ["BraTS-GLI-00001-000-t2f", "BraTS-GLI-00001-000-t1n", "BraTS-GLI-00001-000-t1c",
                 "BraTS-GLI-00001-000-t2w", "BraTS2021_00001_t1ce", "other"]
        nodes = {n: scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", n) for n in names}
        found = BrainTumorXAILogic.findSequenceVolumes(scene)
        assert found["flair"] is nodes[names[0]] and found["t1"] is nodes[names[1]]
        assert found["t1ce"].GetName() in (names[2], names[4]) and found["t2"] is nodes[names[3]]
    finally:
        release_headless_scene(scene)


def test_every_output_volume_has_the_nifti_affine_and_array(loaded):
    scene, logic, inputs, folder, out, _ = loaded
    nodes = logic.runNodes(folder)
    kinds = ("probability", "variance", "gradcam", "evidence_t1ce", "evidence_flair")
    expected_keys = {f"{k}:{c}" for k in kinds for c in TUMOUR_CLASSES}
    assert expected_keys | {"entropy", "mutual_information"} == set(nodes["overlays"])
    files = {"labelmap": "seg.nii.gz", "entropy": "entropy.nii.gz", "mutual_information": "mutual_information.nii.gz",
             **{f"probability:{c}": f"prob_{c}.nii.gz" for c in TUMOUR_CLASSES},
             **{f"variance:{c}": f"mc_variance_{c}.nii.gz" for c in TUMOUR_CLASSES},
             **{f"gradcam:{c}": f"gradcam_{c}.nii.gz" for c in TUMOUR_CLASSES},
             **{f"evidence_{s}:{c}": f"evidence_{c}_{s}.nii.gz" for c in TUMOUR_CLASSES for s in ("t1ce", "flair")}}
    for key, name in files.items():
        node = nodes["labelmap"] if key == "labelmap" else nodes["overlays"][key]
        img = nib.load(str(out / name))
        data, affine = niftiArrayFromVolume(node)
        assert_same_world_array(node, np.asarray(img.dataobj), img.affine)
        # ... and exactly on the grid of the loaded input volumes (not just consistent with its own file).
        for seq in ("t1ce", "flair"):
            np.testing.assert_allclose(affine, _ijk_to_ras(inputs[seq]), atol=1e-4, err_msg=f"{key} vs {seq}")
            assert node.GetImageData().GetDimensions() == inputs[seq].GetImageData().GetDimensions(), key
        # Slicer's own array view is the (i, j, k) array transposed to (k, j, i).
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), data.transpose(2, 1, 0))
        assert node.GetStorageNode() is None, f"{key}: must not refer to the temporary results file"
    assert nodes["labelmap"].IsA("vtkMRMLLabelMapVolumeNode")
    colors = nodes["labelmap"].GetDisplayNode().GetColorNode()
    assert [colors.GetColorName(v) for v in (1, 2, 4)] == ["NCR", "ED", "ET"]
    prob = nodes["overlays"]["probability:ET"].GetDisplayNode()
    assert (prob.GetWindowLevelMin(), prob.GetWindowLevelMax()) == pytest.approx((0.0, 1.0))
    var = nodes["overlays"]["variance:ED"]
    assert var.GetDisplayNode().GetWindowLevelMax() == pytest.approx(var.GetImageData().GetScalarRange()[1], rel=1e-5)
    assert var.GetDisplayNode().GetColorNodeID() != "vtkMRMLColorTableNodeGrey"


def test_overlay_colour_tables_go_from_cold_to_hot(loaded):
    """A high probability, uncertainty or Grad-CAM value must look hotter than a low one:
    brighter (heat/magma-like tables) or redder instead of bluer (jet-like tables)."""
    _, logic, _, folder, _, _ = loaded

    def rgb(lut, value):
        out = [0.0, 0.0, 0.0]
        lut.GetColor(value, out)
        return np.array(out)

    luminance = np.array([0.2126, 0.7152, 0.0722])
    for key, node in logic.runNodes(folder)["overlays"].items():
        lut = node.GetDisplayNode().GetColorNode().GetLookupTable()
        low, high = (rgb(lut, v) for v in lut.GetRange())
        brighter = luminance @ high > luminance @ low + 0.3
        redder = high[0] - high[2] > low[0] - low[2] + 0.5
        assert brighter or redder, (key, low, high)


def test_segments_terminology_colours_and_surfaces(loaded):
    scene, logic, _, folder, _, arrays = loaded
    seg = logic.runNodes(folder)["segmentation"]
    segmentation = seg.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == list(TUMOUR_CLASSES)
    brain = logic.runNodes(folder)["brain"]
    bounds = [0.0] * 6
    brain.GetRASBounds(bounds)
    for name in TUMOUR_CLASSES:
        segment = segmentation.GetSegment(name)
        assert segment.GetColor() == pytest.approx(CLASS_COLORS[name])
        assert not segment.GetColorAutoGenerated()
        code = TERMINOLOGY_TYPES[name][1]
        assert f"SCT^{code}^" in segment.GetTerminology() and "SCT^49755003^" in segment.GetTerminology()
        # What Slicer's DICOM SEG exporter writes as SegmentAlgorithmType / Name (MANUAL when the tags are missing).
        algorithm_type, algorithm_name = vtk.mutable(""), vtk.mutable("")
        assert segment.GetTag("DICOM.SegmentAlgorithmType", algorithm_type)
        assert segment.GetTag("DICOM.SegmentAlgorithmName", algorithm_name)
        assert (str(algorithm_type), str(algorithm_name)) == ("AUTOMATIC", "BrainTumorXAI")
        surface = seg.GetClosedSurfaceInternalRepresentation(name)
        assert surface is not None and surface.GetNumberOfPoints() > 0, name
        edges = vtk.vtkFeatureEdges()
        edges.SetInputData(surface)
        edges.BoundaryEdgesOn(), edges.NonManifoldEdgesOn(), edges.FeatureEdgesOff(), edges.ManifoldEdgesOff()
        edges.Update()
        assert edges.GetOutput().GetNumberOfCells() == 0, f"{name} surface is not closed"
        sb = surface.GetBounds()
        assert all(sb[2 * a] >= bounds[2 * a] - 3 and sb[2 * a + 1] <= bounds[2 * a + 1] + 3 for a in range(3)), name
    assert seg.GetDisplayNode().GetPreferredDisplayRepresentationName3D() == "Closed surface"
    # The shared labelmap holds the internal classes on the reference grid.
    labelmap = seg.GetBinaryLabelmapInternalRepresentation("ET")
    assert labelmap.GetDimensions() == arrays["classes"].shape


def test_segmentations_are_on_the_input_grid(loaded):
    _, logic, inputs, folder, _, arrays = loaded
    affine = flipped_oblique_affine()  # the grid of the files ``classes`` was written on
    assert_segmentation_on_grid(logic.runNodes(folder)["segmentation"], arrays["classes"], affine)
    assert_segmentation_on_grid(inputs["seg"], arrays["classes"], affine)


def test_ground_truth_is_outlined_in_2d_and_kept_out_of_the_3d_presets(loaded):
    scene, logic, inputs, folder, _, _ = loaded
    gt = inputs["seg"]
    assert gt.GetName() == "BraTS2021_00099 ground truth"
    display = gt.GetDisplayNode()
    assert display.GetVisibility() and display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    assert not display.GetVisibility3D()
    assert logic.groundTruthNodes() == [gt]
    display.SetVisibility3D(True)  # the user turned it on; a preset shows the prediction alone again
    for preset in ("tumour", "WT", "TC", "all"):
        logic.showOnly(preset, folder)
        assert not display.GetVisibility3D(), preset
        assert display.GetVisibility2DOutline()
    seg_display = logic.runNodes(folder)["segmentation"].GetDisplayNode()
    logic.showOnly("TC", folder)
    assert [seg_display.GetSegmentVisibility(c) for c in TUMOUR_CLASSES] == [True, False, True]
    logic.showOnly("WT", folder)
    assert [seg_display.GetSegmentVisibility(c) for c in TUMOUR_CLASSES] == [True, True, True]
    assert gt.GetID() not in _folder_nodes(scene, folder)
    assert "ground_truth" not in logic.runNodes(folder)  # not part of the run


def test_overlay_colour_legend(loaded):
    scene, logic, inputs, folder, _, _ = loaded
    from BrainTumorXAILib.slicer_bridge.mrb_from_results import ensure_slice_views

    ensure_slice_views(scene)
    overlays = logic.runNodes(folder)["overlays"]
    chosen = overlays["probability:ET"]
    legend_of = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode
    try:
        logic.setOverlay(chosen, 0.4, backgroundNode=inputs["flair"], colorLegend=True)
        legend = legend_of(chosen)
        assert legend is not None and legend.IsA("vtkMRMLColorLegendDisplayNode")
        assert legend.GetVisibility() and legend.GetTitleText() == "probability ET"
        assert legend.GetPrimaryDisplayNode() is chosen.GetDisplayNode()
        composite = scene.GetSingletonNode("Red", "vtkMRMLSliceCompositeNode")
        assert composite.GetForegroundVolumeID() == chosen.GetID()
        assert composite.GetBackgroundVolumeID() == inputs["flair"].GetID()
        for key, node in overlays.items():
            if node is not chosen:
                other = legend_of(node)
                assert other is None or not other.GetVisibility(), key

        second = overlays["variance:ED"]
        logic.setOverlay(second, 0.4, colorLegend=True)
        assert legend_of(second).GetVisibility() and not legend_of(chosen).GetVisibility()
        assert legend_of(second).GetTitleText() == "MC variance ED"
        assert legend_of(chosen) is legend  # reused, not a new node per call
        n_legends = scene.GetNumberOfNodesByClass("vtkMRMLColorLegendDisplayNode")
        logic.setOverlay(chosen, 0.4, colorLegend=True)
        assert scene.GetNumberOfNodesByClass("vtkMRMLColorLegendDisplayNode") == n_legends

        logic.setOverlay(None, 0.4, colorLegend=True)  # overlay off: no legend left showing
        assert not any(legend_of(n) is not None and legend_of(n).GetVisibility() for n in overlays.values())
        assert composite.GetForegroundVolumeID() is None
    finally:
        logic.setOverlay(None, 0.0)


def test_table_and_hierarchy(loaded):
    scene, logic, inputs, folder, out, _ = loaded
    nodes = logic.runNodes(folder)
    table = nodes["table"]
    assert table.IsA("vtkMRMLTableNode") and table.GetNumberOfRows() == 6
    df = {table.GetCellText(r, 0) + "/" + table.GetCellText(r, 1): r for r in range(table.GetNumberOfRows())}
    import json

    summary = json.loads((out / "summary.json").read_text())
    vol_col = table.GetColumnIndex("Volume [cm3]")
    dice_col = table.GetColumnIndex("Dice")
    assert float(table.GetCellText(df["WT/region"], vol_col)) == pytest.approx(summary["volumes_cm3"]["regions"]["WT"], rel=1e-5)
    assert float(table.GetCellText(df["TC/region"], dice_col)) == pytest.approx(summary["metrics"]["regions"]["TC"]["dice"])
    # Sequence evidence beside the volumes: one column per sequence the model reads, per class; none for T1/T2.
    evidence = summary["sequence_evidence"]["classes"]
    for seq, title in (("t1ce", "T1ce"), ("flair", "FLAIR")):
        col = table.GetColumnIndex(f"{title} evidence [%]")
        assert "not proof of tumour" in table.GetColumnDescription(f"{title} evidence [%]")
        for name in ("NCR", "ED", "ET"):
            assert float(table.GetCellText(df[f"{name}/class"], col)) == pytest.approx(100 * evidence[name]["share"][seq])
    assert table.GetColumnIndex("T1 evidence [%]") < 0 and table.GetColumnIndex("T2 evidence [%]") < 0
    # How near each class's Grad-CAM map lies to its call: per class, empty for regions and unexplained classes.
    col = table.GetColumnIndex("Grad-CAM within 5 mm [%]")
    assert "lies mostly away" in table.GetColumnDescription("Grad-CAM within 5 mm [%]")
    assert float(table.GetCellText(df["NCR/class"], col)) == pytest.approx(25.0)
    assert float(table.GetCellText(df["ED/class"], col)) == pytest.approx(90.0)
    assert table.GetCellText(df["ET/class"], col) in ("nan", "") and table.GetCellText(df["WT/region"], col) in ("nan", "")
    inside = _folder_nodes(scene, folder)
    expected = {n.GetID() for n in nodes["overlays"].values()} | {nodes[k].GetID() for k in ("segmentation", "labelmap", "brain", "table")}
    assert expected <= inside and len(inside) == len(expected)
    assert inputs["t1"].GetID() not in inside


def test_second_run_gets_its_own_folder(results):
    _, out, _ = results
    scene, _ = create_headless_scene()
    try:
        logic = BrainTumorXAILogic(scene)
        first = logic.loadResults(out)
        before = {n: scene.GetNodeByID(n).GetMTime() for n in _folder_nodes(scene, first)}
        second = logic.loadResults(out)
        sh = scene.GetSubjectHierarchyNode()
        assert sh.GetItemName(first).endswith(" 1") and sh.GetItemName(second).endswith(" 2")
        assert not (_folder_nodes(scene, first) & _folder_nodes(scene, second))
        assert {n: scene.GetNodeByID(n).GetMTime() for n in _folder_nodes(scene, first)} == before
        assert {scene.GetNodeByID(n).GetAttribute(ATTR_RUN) for n in _folder_nodes(scene, second)} == {sh.GetItemName(second)}
        logic.showOnly("NCR", second)
        display = logic.runNodes(second)["segmentation"].GetDisplayNode()
        assert [display.GetSegmentVisibility(c) for c in TUMOUR_CLASSES] == [True, False, False]
        assert all(logic.runNodes(first)["segmentation"].GetDisplayNode().GetSegmentVisibility(c) for c in TUMOUR_CLASSES)
        logic.showOnly("All + brain", second)
        assert logic.runNodes(second)["brain"].GetDisplayNode().GetVisibility()
    finally:
        release_headless_scene(scene)


def test_bad_results_folder_errors_name_the_file(tmp_path):
    from BrainTumorXAILib.errors import BrainTumorXAIError

    scene, _ = create_headless_scene()
    try:
        logic = BrainTumorXAILogic(scene)
        with pytest.raises(BrainTumorXAIError, match="summary.json"):
            logic.loadResults(tmp_path)
        (tmp_path / "summary.json").write_text('{"case": {"id": "x"}, "outputs": {"seg": "seg.nii.gz"}}')
        with pytest.raises(BrainTumorXAIError, match="seg.nii.gz"):
            logic.loadResults(tmp_path)
    finally:
        release_headless_scene(scene)


def test_mrb_round_trip_and_offscreen_render(loaded, tmp_path):
    scene, logic, inputs, folder, _, arrays = loaded
    nodes = logic.runNodes(folder)
    logic.showOnly("all", folder)
    pngs = render_views(scene, tmp_path / "png", size=(320, 320), background_volume=inputs["flair"],
                        segmentation_node=nodes["segmentation"])
    from PIL import Image

    img3d = np.asarray(Image.open(pngs["3d"]).convert("RGB")).astype(int)
    assert (img3d.sum(axis=2) > 30).sum() > 2000, "3D view is blank"
    axial = np.asarray(Image.open(pngs["axial"]).convert("RGB")).astype(int)
    r, g, b = axial[..., 0], axial[..., 1], axial[..., 2]
    assert ((g > r + 40) & (g > b + 40)).sum() > 50, "no edema (green) overlay in the axial view"
    assert ((r > g + 40) & (r > b + 40)).sum() > 10, "no necrosis (red) overlay in the axial view"

    mrb = logic.saveSceneBundle(tmp_path / "scene.mrb")
    fresh, _ = create_headless_scene()
    try:
        assert fresh.ReadFromMRB(str(mrb))
        for node in list(nodes["overlays"].values()) + [nodes["labelmap"]]:
            copy = fresh.GetFirstNodeByName(node.GetName())
            assert copy is not None and copy.GetClassName() == node.GetClassName(), node.GetName()
            _assert_same_world_volume(copy, node)
        seg = fresh.GetFirstNodeByName(nodes["segmentation"].GetName())
        assert seg.GetSegmentation().GetSegment("ET").GetColor() == pytest.approx(CLASS_COLORS["ET"])
        assert_segmentation_on_grid(seg, arrays["classes"], flipped_oblique_affine())
        gt = fresh.GetFirstNodeByName(inputs["seg"].GetName())
        assert gt is not None and not gt.GetDisplayNode().GetVisibility3D()
        assert_segmentation_on_grid(gt, arrays["classes"], flipped_oblique_affine())
        assert fresh.GetFirstNodeByName(nodes["table"].GetName()).GetNumberOfRows() == 6
        assert fresh.GetFirstNodeByName(nodes["brain"].GetName()).GetPolyData().GetNumberOfPoints() > 0
    finally:
        release_headless_scene(fresh)


def test_analysis_command_and_export(loaded, tmp_path):
    scene, logic, inputs, _, _, _ = loaded
    argv = logic.analysisCommand("/in", "/out", weights="/w.pt", device="GPU", mcSamples=5, gradcamClasses=["NCR", "ET"])
    assert argv[1:4] == ["-m", "BrainTumorXAILib.cli", "analyze"]
    assert argv[argv.index("--device") + 1] == "cuda" and argv[argv.index("--gradcam") + 1] == "NCR,ET"
    assert "--progress-json" in argv and argv[argv.index("--weights") + 1] == "/w.pt"
    assert argv[argv.index("--precision") + 1] == "fp32"  # exact unless asked
    fast = logic.analysisCommand("/in", "/out", precision="bf16")
    assert fast[fast.index("--precision") + 1] == "bf16"
    assert "--no-enhancement-check" not in argv  # the check is on unless switched off
    assert "--no-enhancement-check" in logic.analysisCommand("/in", "/out", enhancementCheck=False)
    assert argv[argv.index("--preprocess") + 1] == "auto"  # raw series of any geometry are preprocessed
    clinical = logic.analysisCommand("/in", "/out", preprocess="full", brainExtraction="robex", brainMask="/m.nii.gz")
    assert clinical[clinical.index("--brain-extraction") + 1] == "robex"
    assert clinical[clinical.index("--brain-mask") + 1] == "/m.nii.gz"
    from BrainTumorXAILib.io.case_files import scan_case

    vols = {s: inputs[s] for s in ("t1", "t1ce", "t2", "flair")}
    folder = logic.exportInputs(vols, tmp_path / "case", "Exported", groundTruth=inputs["seg"])
    found = scan_case(folder)
    assert set(found.files) == {"t1", "t1ce", "t2", "flair", "seg"}
    for path in found.files.values():  # temporary files written on the GUI thread: not compressed
        assert path.suffix == ".nii" and path.read_bytes()[:2] != b"\x1f\x8b"
    for seq, node in vols.items():
        img = nib.load(str(found.files[seq]))
        assert img.header["qform_code"] > 0 and img.header["sform_code"] > 0
        np.testing.assert_allclose(img.affine, _ijk_to_ras(node), atol=1e-4)
        np.testing.assert_array_equal(np.asarray(img.dataobj), niftiArrayFromVolume(node)[0])
    seg_in = np.asarray(nib.load(str(found.files["seg"])).dataobj)
    assert set(np.unique(seg_in)) == {0, 1, 2, 4}  # written in the BraTS 2021 convention


def test_module_helpers_moved_into_the_logic():
    """What the module file delegates: case ids for export, the chosen weights, the sample data source."""
    from BrainTumorXAILib.slicer_bridge.extension import REQUIREMENTS, missingRequirements, sampleDataSource
    from BrainTumorXAILib.slicer_bridge.inputs import safeCaseId

    assert safeCaseId("BraTS2021_00001_t1ce") == "BraTS2021-00001"
    assert safeCaseId("BraTS-GLI-00002-000-t1c") == "BraTS-GLI-00002-000"
    assert safeCaseId("___") == "BrainTumorXAI"
    assert BrainTumorXAILogic.chosenWeights(None) is None
    assert BrainTumorXAILogic.chosenWeights(Path(".")) is None
    assert BrainTumorXAILogic.chosenWeights(Path("/x/model.pt")) == "/x/model.pt"
    assert set(missingRequirements()) <= set(REQUIREMENTS)
    source = sampleDataSource("/icons")
    assert source is not None and source["thumbnailFileName"] == "/icons/BrainTumorXAI.png"
    assert len(source["uris"]) == 4 and all(name.endswith(".nii.gz") for name in source["fileNames"])


def test_a_segmentation_exports_as_the_brain_mask_on_the_t1ce_grid(loaded, tmp_path):
    """"Use this segmentation as the brain mask" (issue 26): one 0/1 mask on the T1ce volume's grid."""
    scene, logic, inputs, _, _, _ = loaded
    mask = nib.load(str(logic.exportBrainMask(inputs["seg"], inputs["t1ce"], tmp_path / "brain_mask.nii.gz")))
    labels = nib.load(str(logic._exportGroundTruth(inputs["seg"], inputs["t1ce"], tmp_path / "labels.nii.gz")))
    t1ce, affine = niftiArrayFromVolume(inputs["t1ce"])
    assert mask.shape == t1ce.shape and np.allclose(mask.affine, affine, atol=1e-4)
    values = np.asarray(mask.dataobj)
    assert set(np.unique(values).tolist()) == {0, 1}
    assert values.sum() == np.count_nonzero(np.asarray(labels.dataobj)) > 0
