"""The module panel's Qt-free part (``BrainTumorXAILib.slicer_bridge.session`` and the install decisions of
``extension``): what Apply needs, the run bookkeeping, the status texts, the slot guard."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is not installed (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("'slicer' is not the slicer-core MRML package", allow_module_level=True)

from BrainTumorXAILib.errors import BrainTumorXAIError  # noqa: E402
from BrainTumorXAILib.slicer_bridge import extension, session  # noqa: E402
from BrainTumorXAILib.slicer_bridge.bootstrap import create_headless_scene, release_headless_scene  # noqa: E402
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic  # noqa: E402
from BrainTumorXAILib.slicer_bridge.session import RunSession  # noqa: E402

SEQS = ("t1", "t1ce", "t2", "flair")


def _params(volumes: dict, **overrides):
    fields = dict(groundTruth=None, useBundledWeights=True, modelPath=Path("."), device="auto", precision="fp32", mcSamples=20,
                  gradcamNCR=True, gradcamED=False, gradcamET=True, enhancementCheck=True)
    fields.update({f"{s}Volume": volumes.get(s) for s in SEQS})
    return SimpleNamespace(**{**fields, **overrides})


@pytest.fixture()
def loaded():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from slicer_results_factory import make_case_and_results

    scene, _ = create_headless_scene()
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            case_dir, _, _ = make_case_and_results(Path(tmp))
            logic = BrainTumorXAILogic(scene)
            yield scene, logic, logic.loadCase(case_dir)
    finally:
        release_headless_scene(scene)


def test_apply_problem_options_and_case_fields_on_the_logic(loaded):
    scene, logic, nodes = loaded
    run = RunSession(logic)
    params = _params(nodes)
    assert run.applyProblem(None) == "No parameter node"
    assert run.applyProblem(params) == "" and run.applyToolTip("") == session.APPLY_TOOLTIP
    assert run.applyProblem(_params(nodes, useBundledWeights=False)).startswith("Choose a checkpoint file")
    assert "not found" in run.applyProblem(_params(nodes, useBundledWeights=False, modelPath=Path("/no/such.pt")))
    assert run.applyProblem(_params({**nodes, "flair": None})) != ""  # FLAIR is never optional
    options = run.runOptions(params)
    assert options["weights"] is None and options["gradcamClasses"] == ["NCR", "ET"]
    assert options["device"] == "auto" and options["mcSamples"] == 20 and options["groundTruth"] is None
    assert options["precision"] == "fp32" and run.runOptions(_params(nodes, precision="bf16"))["precision"] == "bf16"
    assert options["enhancementCheck"] is True
    assert run.runOptions(_params(nodes, enhancementCheck=False))["enhancementCheck"] is False
    run.process = SimpleNamespace(cancelled=False)
    assert run.applyProblem(params) == "An analysis is running" and run.applyToolTip("x") == "x"
    # A loaded case sets all four inputs and the ground truth; a case without a label file clears it.
    fields = session.caseFields(nodes)
    assert fields == {**{f"{s}Volume": nodes[s] for s in SEQS}, "groundTruth": nodes["seg"]}
    assert session.caseFields({"t1ce": nodes["t1ce"]})["groundTruth"] is None
    assert session.loadedStatus(nodes).startswith("Loaded ") and nodes["flair"].GetName() in session.loadedStatus(nodes)
    # Auto-fill as parameter fields: empty selectors get the case's volumes by name.
    empty = _params({})
    assert run.autoFillFields(empty, scene, overwrite=False) == {f"{s}Volume": nodes[s] for s in SEQS}
    assert run.autoFillFields(params, scene, overwrite=False) == {}


def test_texts_and_small_decisions():
    assert session.progressStatus({"stage": "inference", "fraction": 0.25, "message": "window 1/4"}) == (
        25, "inference: window 1/4")
    assert session.progressStatus({}) == (0, ": ")
    assert session.doneStatus([]) == "Done."
    assert session.doneStatus(["t1", "t2"]) == "Done; run without T1, T2 (not given)."
    assert session.doneStatus([], 6.2) == ("Done. 6.2 mL called enhancing by the network is shown as necrotic core: "
                                           "not brighter on T1ce than on T1.")
    assert session.doneStatus(["t2"], 0.0) == "Done; run without T2 (not given)."
    assert session.bundlePath("/a/scene") == "/a/scene.mrb" and session.bundlePath("/a/S.MRB") == "/a/S.MRB"
    assert session.savedStatus("/a/s.mrb") == "Saved /a/s.mrb"
    assert session.backgroundVolume({"flair": "F", "t1ce": "C"}) == "F"
    assert session.backgroundVolume({"flair": None, "t1ce": "C"}) == "C" and session.backgroundVolume({}) is None
    kinds = [k for k, _ in session.OVERLAY_KINDS]
    assert kinds[0] == "none" and set(session.CLASS_OVERLAYS) < set(kinds)
    assert session.overlayUsesClass("gradcam") and not session.overlayUsesClass("entropy")


class _FakeProcess:
    def __init__(self, polls):
        self.polls, self.cancelled, self.cancels, self.log = list(polls), False, [], "line 1\nlast line"

    def poll(self):
        return self.polls.pop(0)

    def cancel(self, grace=5.0, wait=False):
        self.cancelled = True
        self.cancels.append((grace, wait))


class _FakeLogic:
    def __init__(self, process, latest=None):
        self.process, self.latest, self.started, self.finished = process, latest, None, []

    chosenWeights = staticmethod(BrainTumorXAILogic.chosenWeights)
    optionalSequences = staticmethod(lambda weights=None: ("t1", "t2"))

    def startRun(self, volumes, tempRoot, **options):
        self.started = (volumes, tempRoot, options)
        return self.process

    def finishRun(self, process, code):
        self.finished.append((process, code))
        return 42

    def missingSequences(self, folder):
        return ["t2"] if folder == 42 else []

    def unenhancedEtMl(self, folder):
        return 1.25 if folder == 42 else 0.0

    def preprocessingNote(self, folder):
        return ""

    def latestRunFolder(self):
        return self.latest


def test_a_run_from_start_to_finish():
    process = _FakeProcess([([{"stage": "a", "fraction": 0.5, "message": "m"}], None), ([], 0)])
    logic = _FakeLogic(process, latest=7)
    run = RunSession(logic)
    assert run.currentRunFolder() == 7 and run.runFolder == 7  # the latest run of the scene
    run.forgetRunFolder()
    assert run.runFolder is None
    assert run.start(_params({"t1ce": "C", "flair": "F"}, mcSamples=3), "/tmp") is process and run.running
    volumes, root, options = logic.started
    assert volumes == {"t1": None, "t1ce": "C", "t2": None, "flair": "F"} and root == "/tmp"
    assert options["optional"] == ("t1", "t2") and options["mcSamples"] == 3
    assert run.poll() == ([(50, "a: m")], None) and run.running
    shown, ended = run.poll()
    assert shown == [] and ended == (process, 0) and not run.running
    assert run.poll() == ([], None)
    assert run.finish(process, 0) == ("Done; run without T2 (not given). 1.2 mL called enhancing by the network is "
                                      "shown as necrotic core: not brighter on T1ce than on T1.") and run.runFolder == 42
    assert run.currentRunFolder() == 42


def test_cancel_hides_progress_and_close_waits(caplog):
    process = _FakeProcess([([{"stage": "a", "fraction": 0.5}], None), ([], -2)])
    run = RunSession(_FakeLogic(process))
    assert not run.cancel()  # nothing running
    run.start(_params({}), "/tmp")
    assert run.cancel() and process.cancels == [(5.0, False)]
    assert not run.cancel()  # already cancelling
    assert run.poll() == ([], None)  # while cancelling the status line says so, not the progress
    assert run.poll()[1] == (process, -2)
    # A failed run's whole output goes to the log before the Logic raises its one line.
    logic = _FakeLogic(None)
    with caplog.at_level("ERROR"):
        RunSession(logic).finish(process, 3)
    assert "last line" in caplog.text and logic.finished == [(process, 3)]
    other = _FakeProcess([])
    run = RunSession(_FakeLogic(other))
    run.start(_params({}), "/tmp")
    run.close()
    assert other.cancels == [(2.0, True)] and not run.running
    run.close()  # nothing left: no second cancel
    assert other.cancels == [(2.0, True)]


def test_slot_guard_reports_once_and_passes_what_the_slot_takes():
    reports = []
    guard = session.slotGuard("Failed.", lambda owner, *report: reports.append((owner, *report)))

    class Panel:
        @guard
        def onApply(self):
            return "applied"

        @guard
        def onChanged(self, *args):
            return args

        @guard
        def onValue(self, value):
            return value

        @guard
        def onBroken(self):
            raise ValueError("boom")

        @guard
        def onRefused(self):
            raise BrainTumorXAIError("one line")

    panel = Panel()
    # PythonQt passes a *args callable every signal argument: clicked(bool) must still reach onApply().
    assert panel.onApply(True) == "applied" and panel.onChanged(1, 2) == (1, 2) and panel.onValue(0.5, 9) == 0.5
    assert panel.onBroken(False) is None
    (owner, status, text, detail), = reports
    assert owner is panel and status == "Failed. boom" and text == "Failed.\n\nboom" and "Traceback" in detail
    assert panel.onRefused() is None and reports[1][1:] == ("Failed. one line", "Failed.\n\none line", "")
    assert Panel.onApply.__name__ == "onApply"


@pytest.fixture()
def packages(monkeypatch):
    """The install steps of ``extension`` replaced by records; ``state`` says what is installed."""
    state = SimpleNamespace(torch="PyTorch is not installed", extension=True, missing=["nibabel>=5.0"],
                            calls=[], fail=None, busy=0)

    def installTorch():
        state.calls.append(("torch",))
        if state.fail == "torch":
            raise RuntimeError("no network")
        state.torch = ""

    def installRequirements(missing, folder):
        state.calls.append(("pip", list(missing), folder))
        if state.fail == "pip":
            raise RuntimeError("no network")
        if state.fail != "still":
            state.missing = []

    monkeypatch.setattr(extension, "torchProblem", lambda: state.torch)
    monkeypatch.setattr(extension, "pytorchExtensionAvailable", lambda: state.extension)
    monkeypatch.setattr(extension, "missingRequirements", lambda: list(state.missing))
    monkeypatch.setattr(extension, "installTorchWithExtension", installTorch)
    monkeypatch.setattr(extension, "installRequirements", installRequirements)

    @contextlib.contextmanager
    def busy():
        state.busy += 1
        yield

    state.ensure = lambda confirm=None: extension.ensureAnalysisPackages("/tmp", confirm, busy)
    return state


def test_install_asks_first_and_installs_torch_then_the_packages(packages):
    questions = []
    assert packages.ensure(confirm=lambda q: questions.append(q) or True) == ""
    assert packages.calls == [("torch",), ("pip", ["nibabel>=5.0"], "/tmp")] and packages.busy == 2
    assert len(questions) == 2 and "PyTorch >=2.2" in questions[0] and "nibabel>=5.0" in questions[1]
    assert packages.ensure(confirm=lambda q: pytest.fail("nothing left to ask")) == ""


def test_install_declined_failed_or_impossible(packages):
    assert packages.ensure(confirm=lambda q: False) == "PyTorch is not installed" and packages.calls == []
    packages.extension = False
    assert extension.PYTORCH_EXTENSION_HINT in packages.ensure() and packages.calls == []
    packages.extension, packages.fail = True, "torch"
    assert packages.ensure() == "PyTorch installation failed (no network); see the Python console."
    packages.torch, packages.fail, packages.calls = "", "pip", []
    assert packages.ensure() == "Installing nibabel>=5.0 failed (no network); see the Python console."
    assert packages.ensure(confirm=lambda q: False) == "Missing Python packages: nibabel>=5.0"
    packages.fail = "still"
    assert packages.ensure() == "Still missing after the installation: nibabel>=5.0"
    assert extension.analysisPackagesProblem() == "nibabel>=5.0"
    packages.torch = "PyTorch 2.1 is installed"
    assert extension.analysisPackagesProblem() == "PyTorch 2.1 is installed"


def test_the_self_test_installs_only_when_asked(monkeypatch):
    """Extension build machines must not download torch: the end-to-end part runs with what is installed,
    installs first only with BRAINTUMORXAI_TEST_INSTALL=1, else is skipped with the reason."""
    assert not extension.installInTests({}) and not extension.installInTests({"BRAINTUMORXAI_TEST_INSTALL": "0"})
    assert extension.installInTests({"BRAINTUMORXAI_TEST_INSTALL": "1"})
    installs = []

    def install():
        installs.append(1)
        return ""

    monkeypatch.setattr(extension, "analysisPackagesProblem", lambda: "PyTorch is not installed")
    assert extension.selfTestPackagesProblem(install, {}) == "PyTorch is not installed" and installs == []
    assert extension.selfTestPackagesProblem(install, {"BRAINTUMORXAI_TEST_INSTALL": "1"}) == "" and installs == [1]
    monkeypatch.setattr(extension, "analysisPackagesProblem", lambda: "")
    assert extension.selfTestPackagesProblem(install, {"BRAINTUMORXAI_TEST_INSTALL": "1"}) == "" and installs == [1]


def test_torch_comes_through_the_pytorch_extension(monkeypatch):
    """PyTorchUtilsLogic().installTorch with the module's version requirement, as SlicerMONAIAuto3DSeg and
    SlicerNNUnet call it.  The extension itself exists only in Slicer: its logic is a recorder here."""
    calls = []

    class PyTorchUtilsLogic:
        def installTorch(self, **options):
            calls.append(options)
            return None if state["declined"] else object()

    state = {"declined": False, "torch": ""}
    monkeypatch.setitem(sys.modules, "PyTorchUtils", SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    monkeypatch.setattr(extension, "torchProblem", lambda: state["torch"])
    extension.installTorchWithExtension()
    assert calls == [{"askConfirmation": False, "torchVersionRequirement": ">=2.2"}]
    state["declined"] = True
    with pytest.raises(RuntimeError, match="installed nothing"):
        extension.installTorchWithExtension()
    state.update(declined=False, torch="PyTorch 2.1.0 is installed; Brain Tumor XAI needs PyTorch >=2.2")
    with pytest.raises(RuntimeError, match="needs PyTorch >=2.2"):
        extension.installTorchWithExtension()
    # Without the extension the user is told, in one line, where to get it.
    assert "\n" not in extension.PYTORCH_EXTENSION_HINT and "Extensions Manager" in extension.PYTORCH_EXTENSION_HINT
    source = Path(extension.__file__).read_text(encoding="utf-8")
    assert "light_the_torch" not in source and "light-the-torch" not in source


def test_apply_is_disabled_while_packages_install_and_a_closing_scene_cancels_the_run(loaded):
    scene, logic, nodes = loaded
    run = RunSession(logic)
    params = _params(nodes)
    with run.installingPackages():
        assert run.applyProblem(params) == session.INSTALLING  # a second Apply would install again
    assert run.applyProblem(params) == ""
    with pytest.raises(RuntimeError), run.installingPackages():
        raise RuntimeError("pip failed")
    assert not run.installing
    # Closing the scene mid-run: its inputs are gone, the run is cancelled (nothing loads into the empty scene).
    process = _FakeProcess([([], None), ([], -2)])
    run = RunSession(_FakeLogic(process))
    run.runFolder = 5
    assert not run.sceneClosing() and run.runFolder is None  # nothing running: nothing to cancel
    run.start(_params({}), "/tmp")
    assert run.sceneClosing() and process.cancels == [(5.0, False)]
    assert run.poll()[1] is None and run.poll()[1] == (process, -2)


def test_ground_truth_is_never_a_run_output(loaded, tmp_path):
    from slicer_results_factory import make_case_and_results

    scene, logic, nodes = loaded
    _, out, _ = make_case_and_results(tmp_path)
    folder = logic.loadResults(out)
    outputs = logic.runNodes(folder)
    hidden = set(logic.runOutputIDs())
    assert {outputs["segmentation"].GetID(), outputs["labelmap"].GetID(), outputs["table"].GetID()} <= hidden
    assert nodes["seg"].GetID() not in hidden and not {n.GetID() for n in nodes.values()} & hidden
    run = RunSession(logic)
    assert run.applyProblem(_params(nodes, groundTruth=nodes["seg"])) == ""
    problem = run.applyProblem(_params(nodes, groundTruth=outputs["segmentation"]))
    assert problem.startswith(f"Ground truth {outputs['segmentation'].GetName()} is a result of BrainTumorXAI")
    assert run.applyProblem(_params(nodes, groundTruth=outputs["labelmap"])).endswith("not a reference segmentation")


def test_overlay_refresh_error_details_and_checkpoint_filters():
    # Refreshing with the menu on "none" keeps the overlay the user set up; a chosen map is shown.
    assert not session.refreshSetsOverlay("none") and not session.refreshSetsOverlay(None)
    assert session.refreshSetsOverlay("entropy")
    # No details: no detailedText at all ("Show Details…" would read "None").
    assert session.errorDisplayOptions("") == {} and session.errorDisplayOptions("Traceback") == {
        "detailedText": "Traceback"}
    assert "*.ckpt" in session.MODEL_FILE_FILTERS[0] and session.MODEL_FILE_FILTERS[-1].endswith("(*)")
