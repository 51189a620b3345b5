"""The Slicer Logic around a run, on the slicer-core wheel: optional inputs, orientation checks in
Slicer loading, runs found again in a restored scene, clean-up after failures, the checkpoint read
without torch, auto-fill, the non-blocking reader, the install helpers and the sample data source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.errors import BrainTumorXAIError, CaseError  # noqa: E402
from BrainTumorXAILib.io.case_files import scan_case  # noqa: E402
from BrainTumorXAILib.io.labels import TUMOUR_CLASSES  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.constants import TERMINOLOGY_TYPES, terminologyEntry  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.process import AnalysisProcess  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from slicer_results_factory import assert_same_world_array, flipped_oblique_affine, make_case_and_results  # noqa: E402

SEQS = ("t1", "t1ce", "t2", "flair")


@pytest.fixture()
def scene():
    scene, _ = create_headless_scene()
    yield scene
    release_headless_scene(scene)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_case_and_results(tmp_path_factory.mktemp("runs"))


def _volume_count(scene) -> int:
    return scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")


def test_optional_inputs_load_check_and_export(results, scene, tmp_path):
    case_dir, _, arrays = results
    partial = tmp_path / case_dir.name
    shutil.copytree(case_dir, partial)
    for seq in ("t1", "t2"):
        (partial / f"{case_dir.name}_{seq}.nii.gz").unlink()
    logic = BrainTumorXAILogic(scene)
    inputs = logic.loadCase(partial)
    assert set(inputs) == {"t1ce", "flair", "seg"}
    assert_same_world_array(inputs["flair"], arrays["images"]["flair"], flipped_oblique_affine())
    volumes = {s: inputs.get(s) for s in SEQS}
    assert logic.inputProblem(volumes) == "Select the input volume(s): T1, T2"
    assert logic.inputProblem(volumes, optional=("t1", "t2")) == ""
    assert logic.inputProblem({**volumes, "t1ce": None}, optional=("t1", "t2", "t1ce")) == "Select the input volume(s): T1ce"
    with pytest.raises(BrainTumorXAIError, match="t1, t2"):
        logic.exportInputs(volumes, tmp_path / "export-refused", "X")
    assert not (tmp_path / "export-refused").exists()
    folder = logic.exportInputs(volumes, tmp_path / "export", "X", optional=("t1", "t2"))
    found = scan_case(folder, optional=("t1", "t2"))
    assert set(found.files) == {"t1ce", "flair"}
    written = nib.load(str(found.files["flair"]))
    assert_same_world_array(inputs["flair"], np.asarray(written.dataobj), written.affine)


def _no_orientation_copy(src: Path, dst: Path) -> None:
    """``src`` with qform/sform codes 0 and a zero voxel size (raw header bytes; nibabel would fix them)."""
    import gzip
    import struct

    raw = bytearray(gzip.open(src, "rb").read())
    raw[80:92] = struct.pack("<3f", 0.0, 0.0, 0.0)
    raw[252:256] = struct.pack("<2h", 0, 0)
    gzip.open(dst, "wb").write(bytes(raw))


def test_slicer_loading_refuses_an_image_without_orientation(results, scene, tmp_path):
    case_dir, _, _ = results
    bad_case = tmp_path / case_dir.name
    shutil.copytree(case_dir, bad_case)
    bad = bad_case / f"{case_dir.name}_t2.nii.gz"
    _no_orientation_copy(case_dir / bad.name, bad)
    logic = BrainTumorXAILogic(scene)
    with pytest.raises(CaseError) as err:
        logic.loadCase(bad_case)
    assert str(err.value).startswith(f"{bad}: no valid orientation") and "\n" not in str(err.value)
    assert _volume_count(scene) == 0 and scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLDisplayNode") == 0 or all(
        scene.GetNthNodeByClass(i, "vtkMRMLDisplayNode").IsA("vtkMRMLColorLegendDisplayNode")
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLDisplayNode")))
    from BrainTumorXAILib.io.case_io import load_case

    with pytest.raises(CaseError, match="no valid orientation"):  # the command line says the same
        load_case(bad_case)


def test_runs_of_a_restored_scene_get_presets_overlays_and_missing_sequences(results, scene, tmp_path):
    case_dir, out, _ = results
    restored_out = tmp_path / "out"
    shutil.copytree(out, restored_out)
    summary = json.loads((restored_out / "summary.json").read_text())
    summary["case"]["missing_sequences"] = ["t2"]
    summary["postprocessing"] = {"enhancement_check": {"applied": True, "et_ml_relabelled": 6.2}}
    (restored_out / "summary.json").write_text(json.dumps(summary))
    logic = BrainTumorXAILogic(scene)
    logic.loadCase(case_dir)
    logic.loadResults(restored_out)
    shutil.rmtree(restored_out)  # in-memory nodes: the bundle must not need the temporary files
    mrb = logic.saveSceneBundle(tmp_path / "saved.mrb")
    fresh, _ = create_headless_scene()
    try:
        assert fresh.ReadFromMRB(str(mrb))
        restored = BrainTumorXAILogic(fresh)
        folder = restored.latestRunFolder()
        assert folder is not None and restored.runFolders() == [folder]
        nodes = restored.runNodes(folder)
        assert {"segmentation", "labelmap", "table", "brain"} <= set(nodes)
        maps = {f"{k}:{c}" for k in ("probability", "variance", "gradcam") for c in TUMOUR_CLASSES}
        evidence = {f"evidence_{s}:{c}" for s in ("t1ce", "flair") for c in TUMOUR_CLASSES}  # the sequences read
        assert set(nodes["overlays"]) == maps | evidence | {"entropy", "mutual_information"}
        restored.showOnly("ET")
        display = nodes["segmentation"].GetDisplayNode()
        assert [display.GetSegmentVisibility(c) for c in TUMOUR_CLASSES] == [False, False, True]
        gradcam = restored.overlayNode("gradcam", "ET")
        assert gradcam is nodes["overlays"]["gradcam:ET"] and gradcam.GetImageData() is not None
        assert restored.missingSequences(folder) == ["t2"]
        assert restored.unenhancedEtMl(folder) == pytest.approx(6.2)
        # Result maps stay out of the input selectors and out of auto-fill.
        assert set(restored.resultVolumeIDs()) == {n.GetID() for n in nodes["overlays"].values()} | {nodes["labelmap"].GetID()}
    finally:
        release_headless_scene(fresh)


def test_failed_start_export_and_load_leave_nothing_behind(results, scene, tmp_path):
    case_dir, out, _ = results
    logic = BrainTumorXAILogic(scene)
    inputs = logic.loadCase(case_dir)
    volumes = {s: inputs[s] for s in SEQS}
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    with pytest.raises(BrainTumorXAIError, match="cannot start the analysis"):
        logic.startRun(volumes, temp_root, python=str(tmp_path / "no-such-python"))
    assert list(temp_root.iterdir()) == []
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "no image")
    with pytest.raises(Exception):
        logic.startRun({**volumes, "t2": empty}, temp_root)
    assert list(temp_root.iterdir()) == []

    def finished_process(code: int, outputs: Path | None):
        work = temp_root / f"work{code}"
        if outputs is not None:
            shutil.copytree(outputs, work / "output")
        else:
            (work / "output").mkdir(parents=True)
        process = AnalysisProcess([sys.executable, "-c", f"print('first'); print('analyze: error: bad thing'); raise SystemExit({code})"])
        process.workFolder = work
        assert process.wait(20) == code
        return process

    with pytest.raises(BrainTumorXAIError, match=r"exit code 2\): analyze: error: bad thing"):
        logic.finishRun(finished_process(2, None), 2)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "prob_ET.nii.gz").unlink()
    logic._labelColorTable("brats2021")  # shared by every run, made once
    nodes_before = scene.GetNumberOfNodes()
    with pytest.raises(BrainTumorXAIError, match="prob_ET.nii.gz: listed in summary.json but missing") as failed:
        logic.finishRun(finished_process(0, broken), 0)
    assert logic.runFolders() == [] and scene.GetNumberOfNodes() == nodes_before  # no half-loaded run
    # Results that cannot be loaded are the user's: kept, and the message names their folder.
    kept = temp_root / "work0" / "output"
    assert str(failed.value).endswith(f"they are kept in {kept}") and (kept / "summary.json").is_file()
    shutil.rmtree(temp_root / "work0")
    folder = logic.finishRun(finished_process(0, out), 0)
    assert list(temp_root.iterdir()) == [] and logic.runFolders() == [folder]
    assert logic.runNodes(folder)["overlays"]["probability:ET"].GetImageData() is not None


def test_checkpoint_optional_sequences_are_read_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from BrainTumorXAILib.models import build_model
    from BrainTumorXAILib.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "opt.pt", build_model("unet", base_channels=4, depth=2),
                           normalisation={"method": "zscore", "optional_sequences": ["t2", "t1"]},
                           provenance={"seed": 0})
    plain = save_checkpoint(tmp_path / "plain.pt", build_model("unet", base_channels=4, depth=2),
                            normalisation={"method": "zscore"}, provenance={"seed": 0})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code = ("import sys; from BrainTumorXAILib.slicer_bridge.checkpoint_info import checkpointOptionalSequences as f; "
            f"print(f({str(path)!r}), f({str(plain)!r}), f({str(tmp_path / 'junk.pt')!r}), 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["('t1',", "'t2')", "()", "()", "False"], out.stderr
    assert BrainTumorXAILogic.optionalSequences(path) == ("t1", "t2")
    assert BrainTumorXAILogic.optionalSequences(None) == ("t1", "t2")  # the bundled default weights read T1ce + FLAIR


def test_auto_fill_replaces_empty_repeated_and_output_choices(scene):
    def volume(name, **attributes):
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        for key, value in attributes.items():
            node.SetAttribute(key, value)
        return node

    t1, t1ce, t2, flair = (volume(f"Case_{s}") for s in SEQS)
    output = volume("run probability ET", **{"BrainTumorXAI.Kind": "probability"})
    choose = BrainTumorXAILogic.autoFillChoice
    # A fresh module: every selector took the first volume (noneEnabled=false did that) -> all fixed.
    current = {s: t1 for s in SEQS}
    changes = choose(current, scene)
    assert {s: n.GetName() for s, n in {**current, **changes}.items()} == {s: f"Case_{s}" for s in SEQS}
    # User choices are kept; only empty, repeated or output selections change.
    assert choose({"t1": t2, "t1ce": t1ce, "t2": None, "flair": flair}, scene) == {}
    assert choose({"t1": t1, "t1ce": output, "t2": t2, "flair": flair}, scene) == {"t1ce": t1ce}
    scene.RemoveNode(t1ce)
    assert choose({"t1": t1, "t1ce": output, "t2": t2, "flair": flair}, scene) == {"t1ce": None}
    assert output.GetID() not in {n.GetID() for n in BrainTumorXAILogic.findSequenceVolumes(scene).values()}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_poll_never_blocks_while_a_launcher_child_holds_the_pipe():
    """PythonSlicer is a launcher: it can exit while its interpreter still writes.  poll() must return
    at once and report the exit only when the output is complete; undecodable bytes do not stop it."""
    child = ("import subprocess, sys\n"
             "sys.stdout.buffer.write(b'bad bytes \\xff\\xfe here\\n'); sys.stdout.flush()\n"
             "subprocess.Popen([sys.executable, '-c', 'import time, json; time.sleep(1.0); "
             "print(json.dumps({\\\"stage\\\": \\\"done\\\", \\\"fraction\\\": 1.0}), flush=True)'])\n")
    process = AnalysisProcess([sys.executable, "-c", child])
    updates, slowest, code = [], 0.0, None
    deadline = time.monotonic() + 20
    while code is None and time.monotonic() < deadline:
        started = time.monotonic()
        items, code = process.poll()
        slowest = max(slowest, time.monotonic() - started)
        updates += items
        time.sleep(0.02)
    assert code == 0 and slowest < 0.2, slowest
    assert updates == [{"stage": "done", "fraction": 1.0}], "exit reported before the output was complete"
    assert "bad bytes \ufffd\ufffd here" in process.log


def test_analysis_command_environment_and_install_helpers():
    from BrainTumorXAILib.slicer_bridge import extension

    logic_cls = BrainTumorXAILogic
    argv = logic_cls.analysisCommand(logic_cls.__new__(logic_cls), "/in", "/out")
    assert "--no-figures" in argv and "--progress-json" in argv
    env = logic_cls.analysisEnvironment()
    assert env["PYTHONIOENCODING"] == "utf-8" and env["PYTHONUNBUFFERED"] == "1"
    assert extension.versionTuple("2.13.0+cu121") == (2, 13, 0) and extension.versionTuple("2.2.0a0") == (2, 2, 0)
    assert extension.versionTuple("2.1.2") < extension.TORCH_MINIMUM <= extension.versionTuple("2.2")
    import importlib.metadata

    assert f"numpy=={importlib.metadata.version('numpy')}" in extension.constraintsText().splitlines()
    names = {r.split(">")[0] for r in extension.REQUIREMENTS}
    assert not names & {"nilearn", "tqdm", "torch"}  # not imported by the analysis process (torch: its own installer)
    assert "matplotlib" in names  # the registration QC figure of raw scans, shown by the module
    assert set(extension.missingRequirements()) <= set(extension.REQUIREMENTS)


def test_sample_data_source_has_checksums_and_imports_no_scipy(tmp_path):
    from BrainTumorXAILib.slicer_bridge.extension import sampleDataSource, sha256

    source = sampleDataSource("/icons")
    assert source is not None and source["thumbnailFileName"] == "/icons/BrainTumorXAI.png"
    # The file types under the keyword the running Slicer takes (the signatures of 5.6.2 and 5.8.1/5.10.0).
    from BrainTumorXAILib.slicer_bridge.extension import sampleDataFileTypesKeyword

    def register_5_6(category, sampleName, uris, fileNames, nodeNames, loadFileType="VolumeFile", checksums=None):
        pass

    def register_5_8(category, sampleName, uris, fileNames, nodeNames, loadFileTypes=None, checksums=None,
                     loadFileType=None):
        pass

    assert sampleDataFileTypesKeyword(register_5_6) == "loadFileType"
    assert sampleDataFileTypesKeyword(register_5_8) == "loadFileTypes"
    assert source["loadFileTypes"] == ["VolumeFile"] * 4 and "loadFileType" not in source
    assert sampleDataSource("/icons", "loadFileType")["loadFileType"] == ["VolumeFile"] * 4
    assert [n.rsplit("_", 1)[1] for n in source["nodeNames"]] == list(SEQS)
    for uri, checksum in zip(source["uris"], source["checksums"]):
        path = Path(uri.removeprefix("file://"))
        assert checksum == f"SHA256:{sha256(path)}" and path.name in source["fileNames"]
    code = ("import sys; from BrainTumorXAILib.slicer_bridge.extension import sampleDataSource; "
            "assert sampleDataSource('/icons'); print(sorted(m for m in ('scipy', 'nibabel', 'torch', 'skimage') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def _segment_class(broken: str):
    """vtkSegment as Slicer 5.6/5.8 declare it (no SetTerminology/GetTerminology/HasTerminology, added in 5.10),
    with ``broken`` (a method name) failing as well."""

    def missing(self, *args):
        raise AttributeError("'vtkSegment' object has no attribute (not declared before Slicer 5.10)")

    def failing(self, *args):
        raise RuntimeError(f"{broken} failed")

    methods = {name: missing for name in ("SetTerminology", "GetTerminology", "HasTerminology")}
    if broken:
        methods[broken] = failing
    return type("vtkSegment58", (slicer.vtkSegment,), methods)


def test_segments_get_their_terminology_without_the_5_10_api(results, scene, monkeypatch):
    """Load case and a run's results work where vtkSegment has no SetTerminology (Slicer 5.6/5.8)."""
    case_dir, out, _ = results
    real = slicer.vtkSegment
    monkeypatch.setattr(slicer, "vtkSegment", _segment_class(""))
    logic = BrainTumorXAILogic(scene)
    truth = logic.loadCase(case_dir)["seg"].GetSegmentation()
    segmentation = logic.runNodes(logic.loadResults(out))["segmentation"].GetSegmentation()
    assert real.GetTerminologyEntryTagName() == "TerminologyEntry"
    for seg in (truth, segmentation):
        for name, (_, code, _) in TERMINOLOGY_TYPES.items():
            # Read back through the real 5.10+ getter of the wheel: the same tag as SetTerminology writes.
            entry = real.GetTerminology(seg.GetSegment(seg.GetSegmentIdBySegmentName(name)))
            assert entry == terminologyEntry(name) and f"SCT^{code}^" in entry


def test_a_failed_ground_truth_leaves_no_empty_segmentation(results, scene, monkeypatch):
    case_dir, _, _ = results
    monkeypatch.setattr(slicer, "vtkSegment", _segment_class("SetTag"))
    with pytest.raises(RuntimeError, match="SetTag failed"):
        BrainTumorXAILogic(scene).loadCase(case_dir)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0 and _volume_count(scene) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_the_self_test_loop_has_a_deadline_and_never_leaves_the_analysis_running(tmp_path):
    """The self-test's wait (``pollUntilDone``): a run past the deadline, or an error while waiting, is cancelled
    and gone (folders removed) before the error goes on; a finished run hands over all its progress."""
    from BrainTumorXAILib.slicer_bridge.process import pollUntilDone

    def sleeper(name):
        work = tmp_path / name
        work.mkdir()
        code = "import json, time; print(json.dumps({'fraction': 0.1}), flush=True); time.sleep(120)"
        return AnalysisProcess([sys.executable, "-c", code], cleanupPaths=[work]), work

    slow, work = sleeper("slow")
    pumps = []
    with pytest.raises(BrainTumorXAIError, match="did not finish within 1 s"):
        pollUntilDone(slow, 1.0, pump=lambda: pumps.append(1))
    assert slow.process.poll() is not None and not work.exists() and pumps

    def broken_pump():
        raise RuntimeError("the application failed")

    failing, work = sleeper("failing")
    with pytest.raises(RuntimeError, match="application failed"):
        pollUntilDone(failing, 60.0, pump=broken_pump)
    assert failing.process.poll() is not None and not work.exists()
    quick = AnalysisProcess([sys.executable, "-c", "import json\nfor f in (0.5, 1.0): print(json.dumps({'fraction': f}))"])
    updates, code = pollUntilDone(quick, 60.0)
    assert code == 0 and [u["fraction"] for u in updates] == [0.5, 1.0]


def test_auto_fill_never_pairs_volumes_of_two_cases(results, scene, tmp_path):
    """Load case A, then case B without T1: B's inputs stay without T1 (A's T1 is another patient's), whatever
    auto-fill is asked; volumes of one DICOM study (one subject-hierarchy parent) are paired among themselves."""
    from BrainTumorXAILib.slicer_bridge.session import caseFields

    case_dir, _, _ = results
    logic = BrainTumorXAILogic(scene)
    first = logic.loadCase(case_dir)
    partial = tmp_path / "other" / case_dir.name
    shutil.copytree(case_dir, partial)
    (partial / f"{case_dir.name}_t1.nii.gz").unlink()
    second = logic.loadCase(partial)
    choose = BrainTumorXAILogic.autoFillChoice
    assert logic.caseKey(scene, first["t1ce"]) == logic.caseKey(scene, first["flair"]) \
        != logic.caseKey(scene, second["t1ce"])
    shown = {s: n for s, n in caseFields(second).items()}  # what Load case put into the selectors
    current = {s: shown[f"{s}Volume"] for s in SEQS}
    assert current["t1"] is None
    assert choose(current, scene) == {}  # the queued auto-fill after loading
    assert choose(current, scene, overwrite=True) == {}  # the Auto-fill button: B's own volumes again, no T1
    # Nothing chosen: the case added last, complete in itself.
    assert {s: n.GetID() for s, n in choose({s: None for s in SEQS}, scene).items()} == \
        {s: second[s].GetID() for s in ("t1ce", "t2", "flair")}
    # With A's T1ce shown, A's volumes fill the rest.
    assert {s: n.GetID() for s, n in choose({"t1ce": first["t1ce"]}, scene).items()} == \
        {s: first[s].GetID() for s in ("t1", "t2", "flair")}
    # Volumes without a load batch: paired by their subject-hierarchy folder (a DICOM study), never across two.
    shNode = scene.GetSubjectHierarchyNode()
    studies = [shNode.CreateFolderItem(shNode.GetSceneItemID(), f"study {i}") for i in (1, 2)]
    loose = {}
    for study, names in zip(studies, (("t1", "t1ce", "t2", "flair"), ("t1ce", "flair"))):
        for seq in names:
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{seq.upper()} series")
            shNode.CreateItem(study, node)  # the application's subject-hierarchy plugins do this (DICOM import)
            loose[(study, seq)] = node
    picked = choose({"t1ce": loose[(studies[1], "t1ce")]}, scene)
    assert {s: n.GetID() for s, n in picked.items()} == {"flair": loose[(studies[1], "flair")].GetID()}
