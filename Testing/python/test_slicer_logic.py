"""The Slicer Logic on the slicer-core wheel: nodes, geometry, terminology, hierarchy, .mrb, rendering."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.labels import CLASS_COLORS, TUMOUR_CLASSES  # noqa: E402
from BrainTumorXAILib.slicer_bootstrap import create_headless_scene, release_headless_scene, render_views  # noqa: E402
from BrainTumorXAILib.slicer_logic import (  # noqa: E402
    ATTR_RUN,
    TERMINOLOGY_TYPES,
    BrainTumorXAILogic,
    niftiArrayFromVolume,
)

sys.path.insert(0, str(Path(__file__).parent))
from slicer_results_factory import make_case_and_results  # noqa: E402

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
        data, affine = niftiArrayFromVolume(node)
        np.testing.assert_array_equal(data, arrays["images"][seq])
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
    scene, logic, _, folder, out, _ = loaded
    nodes = logic.runNodes(folder)
    expected_keys = {f"{k}:{c}" for k in ("probability", "variance", "gradcam") for c in TUMOUR_CLASSES}
    assert expected_keys | {"entropy", "mutual_information"} == set(nodes["overlays"])
    files = {"labelmap": "seg.nii.gz", "entropy": "entropy.nii.gz", "mutual_information": "mutual_information.nii.gz",
             **{f"probability:{c}": f"prob_{c}.nii.gz" for c in TUMOUR_CLASSES},
             **{f"variance:{c}": f"mc_variance_{c}.nii.gz" for c in TUMOUR_CLASSES},
             **{f"gradcam:{c}": f"gradcam_{c}.nii.gz" for c in TUMOUR_CLASSES}}
    for key, name in files.items():
        node = nodes["labelmap"] if key == "labelmap" else nodes["overlays"][key]
        img = nib.load(str(out / name))
        data, affine = niftiArrayFromVolume(node)
        np.testing.assert_allclose(affine, img.affine, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(data, np.asarray(img.dataobj), err_msg=key)
        # Slicer's own array view is the nibabel array transposed to (k, j, i).
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), np.asarray(img.dataobj).transpose(2, 1, 0))
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
    scene, logic, inputs, folder, _, _ = loaded
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
    from BrainTumorXAILib.case_io import scan_case

    vols = {s: inputs[s] for s in ("t1", "t1ce", "t2", "flair")}
    folder = logic.exportInputs(vols, tmp_path / "case", "Exported", groundTruth=inputs["seg"])
    found = scan_case(folder)
    assert set(found.files) == {"t1", "t1ce", "t2", "flair", "seg"}
    for seq, node in vols.items():
        img = nib.load(str(found.files[seq]))
        np.testing.assert_allclose(img.affine, _ijk_to_ras(node), atol=1e-5)
    seg_in = np.asarray(nib.load(str(found.files["seg"])).dataobj)
    assert set(np.unique(seg_in)) == {0, 1, 2, 4}  # written in the BraTS 2021 convention


def test_ui_names_referenced_by_the_widget_exist():
    ui = ET.parse(MODULE_DIR / "Resources" / "UI" / "BrainTumorXAI.ui")
    names = {w.get("name") for w in ui.iter("widget")} | {a.get("name") for a in ui.iter("action")}
    tree = ast.parse((MODULE_DIR / "BrainTumorXAI.py").read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used, "the widget references no ui elements"
    assert not used - names, f"missing in BrainTumorXAI.ui: {sorted(used - names)}"


def test_background_process_progress_and_cancel_kills_the_group(tmp_path):
    """Progress lines are parsed; Cancel stops the child and its children and removes the work folder."""
    import os
    import time

    from BrainTumorXAILib.slicer_logic import AnalysisProcess

    work = tmp_path / "work"
    (work / "output").mkdir(parents=True)
    pidfile = tmp_path / "grandchild.pid"
    child = ("import json, subprocess, sys, time\n"
             f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
             f"open({str(pidfile)!r}, 'w').write(str(g.pid))\n"
             "print('plain log line', flush=True)\n"
             "print(json.dumps({'stage': 'inference', 'fraction': 0.25, 'message': 'window 1/4'}), flush=True)\n"
             "time.sleep(60)\n")
    process = AnalysisProcess([sys.executable, "-c", child], cleanupPaths=[work])
    updates, deadline = [], time.time() + 20
    while not updates and time.time() < deadline:
        updates += process.poll()[0]
        time.sleep(0.05)
    assert updates == [{"stage": "inference", "fraction": 0.25, "message": "window 1/4"}]
    process.cancel(grace=1.0)
    assert process.process.returncode is not None and not work.exists()
    assert "plain log line" in process.log
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)
        # A zombie still answers kill(0); reap-state check via /proc when available.
        if Path(f"/proc/{grandchild}/stat").exists() and Path(f"/proc/{grandchild}/stat").read_text().split()[2] == "Z":
            raise ProcessLookupError
