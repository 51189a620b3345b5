"""The module's side of the clinical preprocessing (issue 26): the choices into analyze's argv, a segmentation as the
brain mask, the status line and the registration QC figure of a run (Qt-free; the Logic on the slicer-core wheel)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from BrainTumorXAILib.slicer_bridge.preprocessing_view import (brainExtractionOptions, brainMaskProblem,
                                                               preprocessingStatus, qcFigurePath)

FULL = {"mode": "full", "brain_extraction": {"method": "atlas"}, "warnings": [],
        "outputs": {"qc_figure": "figures/preprocessing_qc.png"}}
WARNING = "/in/case/flair.nii.gz: implausible co-registration to the T1ce: rotation 40 deg; check the QC figure"


def test_status_line_says_what_ran_and_the_first_warning_in_one_line():
    assert preprocessingStatus({}) == "" and preprocessingStatus({"preprocessing_clinical": {"mode": "none"}}) == ""
    full = preprocessingStatus({"preprocessing_clinical": FULL})
    assert full.startswith("Raw scans preprocessed") and "atlas" in full and "T1ce grid" in full
    warned = preprocessingStatus({"preprocessing_clinical": {**FULL, "warnings": [WARNING + "\n", "second one"]}})
    assert "\n" not in warned and f"Check the registration: {WARNING} (+1 more in summary.json)" in warned
    raw_kept = preprocessingStatus({"preprocessing_clinical": {"mode": "none", "warnings": ["not brain-extracted"]}})
    assert raw_kept == "Check the registration: not brain-extracted"


def test_brain_extraction_choice_and_the_segmentation_it_needs():
    assert brainExtractionOptions("robex", "S") == {"brainExtraction": "robex", "brainMaskSegmentation": None}
    assert brainExtractionOptions("segmentation", "S") == {"brainExtraction": "auto", "brainMaskSegmentation": "S"}
    assert brainMaskProblem("segmentation", None).startswith("Choose the segmentation")
    assert brainMaskProblem("segmentation", "S") == "" and brainMaskProblem("atlas", None) == ""


def test_qc_figure_path_only_when_drawn(tmp_path):
    summary = {"preprocessing_clinical": FULL}
    assert qcFigurePath(tmp_path, summary) is None
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "preprocessing_qc.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert qcFigurePath(tmp_path, summary) == tmp_path / "figures" / "preprocessing_qc.png"
    assert qcFigurePath(tmp_path, {"preprocessing_clinical": {**FULL, "outputs": {"qc_figure": None}}}) is None


slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.nodes import niftiArrayFromVolume  # noqa: E402
from BrainTumorXAILib.slicer_bridge.session import RunSession  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from slicer_results_factory import make_case_and_results  # noqa: E402


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    case_dir, out, _ = make_case_and_results(root)
    scene, _ = create_headless_scene()
    logic = BrainTumorXAILogic(scene)
    yield logic, logic.loadCase(case_dir), out
    release_headless_scene(scene)


def test_a_segmentation_as_the_brain_mask_reaches_the_command(case, tmp_path):
    logic, inputs, _ = case
    params = SimpleNamespace(**{f"{s}Volume": inputs[s] for s in ("t1", "t1ce", "t2", "flair")},
                             groundTruth=None, useBundledWeights=True, modelPath=Path("."), device="auto",
                             precision="fp32", mcSamples=0, gradcamNCR=False, gradcamED=False, gradcamET=False,
                             preprocess="full", brainExtraction="segmentation", brainMaskSegmentation=None)
    run = RunSession(logic)
    assert run.applyProblem(params).startswith("Choose the segmentation")
    params.brainMaskSegmentation = inputs["seg"]
    assert run.applyProblem(params) == ""
    options = run.runOptions(params)
    if shutil.which("true") is None:
        pytest.skip("no `true` program to stand in for the analysis")
    process = logic.startRun(run.volumes(params), tmp_path, **options, python=shutil.which("true"))
    try:
        argv = process.argv
        assert argv[argv.index("--preprocess") + 1] == "full"
        mask_path = Path(argv[argv.index("--brain-mask") + 1])
        assert mask_path.parent.parent == process.workFolder  # exported into the run's own work folder
        mask = nib.load(str(mask_path))
        t1ce, affine = niftiArrayFromVolume(inputs["t1ce"])
        assert mask.shape == t1ce.shape and np.allclose(mask.affine, affine, atol=1e-4)
        assert np.asarray(mask.dataobj).sum() > 0
    finally:
        process.cancel(grace=1.0, wait=True)
        shutil.rmtree(process.workFolder, ignore_errors=True)


def test_a_finished_run_keeps_its_qc_figure_and_warns_in_the_status(case, tmp_path):
    logic, _, out = case
    work = tmp_path / "BrainTumorXAI-run"
    shutil.copytree(out, work / "output")
    summary = json.loads((work / "output" / "summary.json").read_text())
    summary["preprocessing_clinical"] = {**FULL, "warnings": [WARNING]}
    (work / "output" / "summary.json").write_text(json.dumps(summary))
    (work / "output" / "figures").mkdir(exist_ok=True)
    (work / "output" / "figures" / "preprocessing_qc.png").write_bytes(b"\x89PNG\r\n\x1a\nqc")
    run = RunSession(logic)
    status = run.finish(SimpleNamespace(workFolder=work, log=""), 0)
    assert not work.exists()  # the work folder goes; the QC figure stays beside it
    assert status.startswith("Done") and f"Check the registration: {WARNING}" in status and "\n" not in status
    figure = logic.qcFigure(run.runFolder)
    assert figure is not None and figure.parent == tmp_path and figure.read_bytes().endswith(b"qc")
    assert logic.preprocessingNote(run.runFolder) in status
