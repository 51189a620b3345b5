"""Brain Tumor XAI: the 3D Slicer module.

Only what needs the GUI lives here: widget wiring, dialogs, the self-test.  Everything that can be
tested without Qt is in the Logic, ``BrainTumorXAILib/slicer/`` (``BrainTumorXAILogic``), which the
test suite runs on the slicer-core wheel.  Slicer APIs used here were checked against Slicer's
source at v5.6.2, v5.8.1 and v5.10.0 (notes at each use).
"""

import logging
import os
import sys
import unittest
from pathlib import Path
from typing import Annotated, Optional, Union

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.labels import SEQUENCES, TUMOUR_CLASSES
from BrainTumorXAILib.slicer import extension
from BrainTumorXAILib.slicer.logic import BrainTumorXAILogic

LIB_PACKAGE = "BrainTumorXAILib"


class BrainTumorXAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Brain Tumor XAI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["BrainTumorXAI developers"]
        self.parent.helpText = _("""
Segments gliomas in BraTS-style MRI (T1, T1ce, T2, FLAIR) with a 3D U-Net and explains the result:
per-class softmax probabilities, Monte Carlo Dropout variance, predictive entropy and mutual information,
Grad-CAM 3D heatmaps, and closed surfaces of the tumour subregions (NCR red, ED green, ET yellow)
inside a translucent brain. The analysis runs in a separate process; Slicer stays responsive and the run
can be cancelled. Each run gets its own subject-hierarchy folder with a results table (volumes, and
Dice/HD95 when a ground truth is given). T1 and T2 may be left empty when the chosen model allows it.
<p><b>Research use only: not for diagnosis.</b> The bundled demo weights are for trying the module.</p>
See the <a href="https://github.com/braintumorxai/SlicerBrainTumorXAI#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Input layout and label conventions follow the BraTS challenge (Menze et al. 2015, Baid et al. 2021).
Uncertainty by Monte Carlo Dropout (Gal and Ghahramani 2016); Grad-CAM after Selvaraju et al. 2017.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled synthetic BraTS case in Sample Data (file names and checksums only: no scipy at start-up)."""
    import SampleData

    source = extension.sampleDataSource(os.path.join(os.path.dirname(__file__), "Resources", "Icons"))
    if source is not None:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source)


@parameterNodeWrapper
class BrainTumorXAIParameterNode:
    """
    t1Volume, t1ceVolume, t2Volume, flairVolume - the BraTS inputs (T1/T2 may be empty if the model allows it).
    groundTruth - optional reference segmentation (segments named NCR/ED/ET) or BraTS label map.
    useBundledWeights - the bundled demo weights; else modelPath, a checkpoint file.
    device - auto, CPU or GPU.  mcSamples - Monte Carlo Dropout samples (0: deterministic only).
    gradcamNCR/ED/ET - classes to compute Grad-CAM for.  overlayOpacity - opacity of the slice overlay.
    """

    t1Volume: Optional[vtkMRMLScalarVolumeNode]
    t1ceVolume: Optional[vtkMRMLScalarVolumeNode]
    t2Volume: Optional[vtkMRMLScalarVolumeNode]
    flairVolume: Optional[vtkMRMLScalarVolumeNode]
    groundTruth: Optional[Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]]
    useBundledWeights: bool = True
    modelPath: Path
    device: Annotated[str, Choice(["auto", "CPU", "GPU"])] = "auto"
    mcSamples: Annotated[int, WithinRange(0, 200)] = 20
    gradcamNCR: bool = True
    gradcamED: bool = True
    gradcamET: bool = True
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


def guarded(message):
    """Decorator for Qt slots: an exception becomes one error dialog (the message and the error's line,
    the traceback as details) and the slot returns None.  ``slicer.util.tryWithErrorDisplay`` re-raises
    after its dialog (5.6.2-5.10.0), which would let the exception escape the Qt slot."""

    def decorate(slot):
        def wrapper(self, *args):
            try:
                return slot(self, *args)
            except Exception as exc:
                import traceback

                logging.error(traceback.format_exc())
                self.ui.statusLabel.text = f"{message} {exc}"
                detail = traceback.format_exc() if not isinstance(exc, BrainTumorXAIError) else ""
                if not slicer.app.testingEnabled():
                    slicer.util.errorDisplay(f"{message}\n\n{exc}", detailedText=detail or None)
                return None

        return wrapper

    return decorate


def ensureAnalysisPackages(interactive: bool = True) -> str:
    """Install what the analysis process needs into Slicer's Python; '' when ready, else why not.

    torch comes through the PyTorch extension (the CPU/CUDA build that fits), never a bare
    ``pip install torch``; it is only looked up here, never imported into the GUI process.
    """
    problem = extension.torchProblem()
    if problem:
        if not extension.pytorchExtensionAvailable():
            return f"{problem}. {extension.PYTORCH_EXTENSION_HINT}"
        if interactive and not slicer.util.confirmOkCancelDisplay(
                _("{problem}. Install PyTorch {requirement} now (through the PyTorch extension)? This downloads "
                  "several hundred MB and may take a few minutes.").format(
                    problem=problem, requirement=extension.TORCH_REQUIREMENT)):
            return problem
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            extension.installTorchWithExtension(BrainTumorXAILogic.pythonExecutable())
        except Exception as exc:
            return _("PyTorch installation failed ({error}); see the Python console.").format(error=exc)
        finally:
            slicer.app.restoreOverrideCursor()
    missing = extension.missingRequirements()
    if missing:
        if interactive and not slicer.util.confirmOkCancelDisplay(
                _("The analysis needs these Python packages: {names}. Install them now?").format(
                    names=", ".join(missing))):
            return _("Missing Python packages: {names}").format(names=", ".join(missing))
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            extension.installRequirements(missing, slicer.app.temporaryPath)
        except Exception as exc:
            return _("Installing {names} failed ({error}); see the Python console.").format(
                names=", ".join(missing), error=exc)
        finally:
            slicer.app.restoreOverrideCursor()
        still = extension.missingRequirements()
        if still:
            return _("Still missing after the installation: {names}").format(names=", ".join(still))
    return ""


class BrainTumorXAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    OVERLAY_KINDS = [("none", _("None")), ("probability", _("Probability")), ("variance", _("MC variance")),
                     ("entropy", _("Entropy")), ("mutual_information", _("Mutual information")),
                     ("gradcam", _("Grad-CAM"))]
    SELECTORS = {"t1": "t1Selector", "t1ce": "t1ceSelector", "t2": "t2Selector", "flair": "flairSelector"}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._runFolder = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._pollProcess)

    # ------------------------------------------------------------ set-up
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainTumorXAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainTumorXAILogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        import ctk

        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.ui.modelPathLineEdit.nameFilters = [_("PyTorch checkpoint (*.pt *.pth)")]
        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.autoFillButton.connect("clicked(bool)", lambda: self.autoFillInputs(overwrite=True))
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        for button, preset in (("tumourOnlyButton", "tumour"), ("ncrButton", "NCR"), ("edButton", "ED"),
                               ("etButton", "ET"), ("wtButton", "WT"), ("tcButton", "TC"), ("allBrainButton", "all")):
            getattr(self.ui, button).connect("clicked(bool)", lambda checked, p=preset: self.onPreset(p))
        self.ui.saveSceneButton.connect("clicked(bool)", self.onSaveScene)
        for key, title in self.OVERLAY_KINDS:
            self.ui.overlayKindComboBox.addItem(title, key)
        for className in TUMOUR_CLASSES:
            self.ui.overlayClassComboBox.addItem(className)
        self.ui.overlayKindComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.overlayClassComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.overlayOpacitySlider.connect("valueChanged(double)", self.onOverlayChanged)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.hide()
        self.initializeParameterNode()
        self._refreshRuns()

    def cleanup(self) -> None:
        self._timer.stop()
        if self._process is not None:  # Slicer is closing (or the module reloads): end the run and its clean-up
            self._process.cancel(grace=2.0, wait=True)
            self._process = None
        self.removeObservers()

    def onReload(self) -> None:
        """Developer Reload: also drop the BrainTumorXAILib modules, so the edited package is imported anew
        (``reloadScriptedModule`` reloads only the module file; Slicer 5.6.2-5.10.0)."""
        for name in sorted(n for n in sys.modules if n == LIB_PACKAGE or n.startswith(LIB_PACKAGE + ".")):
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        self._runFolder = None

    def onSceneEndClose(self, caller, event) -> None:
        self.initializeParameterNode()
        self._refreshRuns()

    def onSceneEndImport(self, caller, event) -> None:
        # A scene or .mrb opened: its runs (found from the subject hierarchy) get the presets and overlays.
        self._runFolder = None
        self._refreshRuns()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        # Volumes the user loads (Add Data, DICOM, Sample Data) fill empty or repeated selectors by name.
        # Deferred: the node gets its name and attributes after this event.
        if node.IsA("vtkMRMLScalarVolumeNode") and self._parameterNode and not slicer.mrmlScene.IsImporting():
            qt.QTimer.singleShot(0, lambda: self.autoFillInputs(overwrite=False))

    # ------------------------------------------------------------ parameter node
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.autoFillInputs(overwrite=False)

    def setParameterNode(self, node) -> None:
        """Wrap and connect ``node`` to the GUI once; entering the module again changes nothing.

        Reconnecting on each enter() loses settings in Slicer 5.6/5.8: there ``connectGui`` returns no
        tag (fixed in 5.10 by b5a65a49a0), ``disconnectGui`` cannot undo it, and the stale connector of
        the device combo box writes its first choice back while the new one fills the box.
        """
        if self._parameterNode is not None and node is self._parameterNode.parameterNode:
            return
        if self._parameterNode is not None:
            if self._parameterNodeGuiTag is not None:
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = BrainTumorXAIParameterNode(node) if node is not None else None
        self._parameterNodeGuiTag = None
        if self._parameterNode is not None:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)  # None before Slicer 5.10
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _volumes(self) -> dict:
        return {s: getattr(self._parameterNode, f"{s}Volume") for s in SEQUENCES}

    def autoFillInputs(self, overwrite: bool) -> None:
        if not self._parameterNode:
            return
        for selector in self.SELECTORS.values():  # analysis outputs never appear as inputs
            getattr(self.ui, selector).sortFilterProxyModel().hiddenNodeIDs = self.logic.resultVolumeIDs()
        changes = self.logic.autoFillChoice(self._volumes(), slicer.mrmlScene, overwrite=overwrite)
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            for seq, node in changes.items():
                setattr(self._parameterNode, f"{seq}Volume", node)

    def _weights(self):
        p = self._parameterNode
        return self.logic.chosenWeights(p.modelPath, useBundled=p.useBundledWeights)

    def _inputProblem(self) -> str:
        """Why Apply is not possible right now ('' when it is); the checks themselves are the Logic's."""
        p = self._parameterNode
        if p is None:
            return _("No parameter node")
        if self._process is not None:
            return _("An analysis is running")
        problem = self.logic.weightsProblem(p.modelPath, useBundled=p.useBundledWeights)
        if problem:
            return problem
        return self.logic.inputProblem(self._volumes(), p.groundTruth, optional=self.logic.optionalSequences(self._weights()))

    def _checkCanApply(self, caller=None, event=None) -> None:
        problem = self._inputProblem()
        self.ui.modelPathLineEdit.enabled = not self._parameterNode.useBundledWeights if self._parameterNode else False
        self.ui.applyButton.enabled = not problem
        self.ui.applyButton.toolTip = problem or _("Segment the tumour and compute the explanation maps")

    # ------------------------------------------------------------ actions
    @guarded(_("Failed to load the case."))
    def onLoadCase(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Select a BraTS case folder"))
        if not folder:
            return
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            nodes = self.logic.loadCase(folder)
        finally:
            slicer.app.restoreOverrideCursor()
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            for seq in SEQUENCES:
                setattr(self._parameterNode, f"{seq}Volume", nodes.get(seq))
            # A case without a label file must not keep the previous case's ground truth.
            self._parameterNode.groundTruth = nodes.get("seg")
        slicer.util.setSliceViewerLayers(background=nodes.get("flair") or nodes["t1ce"], fit=True)
        self.ui.statusLabel.text = _("Loaded {names}").format(names=", ".join(n.GetName() for n in nodes.values()))

    @guarded(_("Failed to start the analysis."))
    def onApplyButton(self) -> None:
        problem = self._inputProblem() or ensureAnalysisPackages()
        if problem:
            self.ui.statusLabel.text = problem
            slicer.util.errorDisplay(problem)
            return
        p = self._parameterNode
        self._process = self.logic.startRun(
            self._volumes(), slicer.app.temporaryPath, groundTruth=p.groundTruth,
            optional=self.logic.optionalSequences(self._weights()), weights=self._weights(), device=p.device,
            mcSamples=p.mcSamples, gradcamClasses=[c for c in TUMOUR_CLASSES if getattr(p, f"gradcam{c}")])
        self._setRunning(True)
        self._timer.start()

    def onCancelButton(self) -> None:
        if self._process is None or self._process.cancelled:
            return
        # Returns at once; later polls see the process end, kill it after the grace period, delete its folder.
        self._process.cancel(grace=5.0)
        self.ui.cancelButton.enabled = False
        self.ui.statusLabel.text = _("Cancelling…")

    def _setRunning(self, running: bool) -> None:
        self.ui.cancelButton.enabled = running
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.settingsCollapsibleButton.enabled = not running
        self.ui.loadCaseButton.enabled = not running
        self.ui.progressBar.setVisible(running)
        if running:
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Starting…")
        self._checkCanApply()

    def _pollProcess(self) -> None:
        if self._process is None:
            self._timer.stop()
            return
        updates, code = self._process.poll()
        if not self._process.cancelled:  # while cancelling the status line says so until the process is gone
            for update in updates:
                self.ui.progressBar.value = int(100 * float(update.get("fraction", 0.0)))
                self.ui.statusLabel.text = f"{update.get('stage', '')}: {update.get('message', '')}"
        if code is None:
            return
        self._timer.stop()
        process, self._process = self._process, None
        self._setRunning(False)
        if process.cancelled:  # its poll() has deleted the work folder
            self.ui.statusLabel.text = _("Cancelled; nothing was added to the scene.")
            return
        self._finishRun(process, code)

    @guarded(_("Failed to load the results."))
    def _finishRun(self, process, code: int) -> None:
        if code != 0:
            logging.error(process.log)
        self.ui.statusLabel.text = _("Loading the results…")
        self._runFolder = self.logic.finishRun(process, code)  # the work folder is gone afterwards, whatever happens
        self._refreshRuns()
        missing = self.logic.missingSequences(self._runFolder)
        self.ui.statusLabel.text = (_("Done; run without {names} (not given).").format(
            names=", ".join(m.upper() for m in missing)) if missing else _("Done."))
        background = self._parameterNode.flairVolume or self._parameterNode.t1ceVolume
        if background is not None:
            slicer.util.setSliceViewerLayers(background=background, fit=True)
        layoutManager = slicer.app.layoutManager()
        if layoutManager and layoutManager.threeDWidget(0):
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def _refreshRuns(self) -> None:
        """Outputs section for the current run (the latest one, also of a restored scene)."""
        if self._runFolder is None:
            self._runFolder = self.logic.latestRunFolder()
        hasRun = self._runFolder is not None
        self.ui.outputsCollapsibleButton.enabled = hasRun
        if hasRun:
            self.ui.outputsCollapsibleButton.collapsed = False
            self.ui.resultsTableView.setMRMLTableNode(self.logic.runNodes(self._runFolder).get("table"))
            self.onOverlayChanged()
        for selector in self.SELECTORS.values():
            getattr(self.ui, selector).sortFilterProxyModel().hiddenNodeIDs = self.logic.resultVolumeIDs()

    @guarded(_("Failed to change the view."))
    def onPreset(self, preset: str) -> None:
        self.logic.showOnly(preset, self._runFolder)

    @guarded(_("Failed to show the overlay."))
    def onOverlayChanged(self, *args) -> None:
        if self._runFolder is None:
            return
        kind = self.ui.overlayKindComboBox.currentData
        self.ui.overlayClassComboBox.enabled = kind in ("probability", "variance", "gradcam")
        node = self.logic.overlayNode(kind, self.ui.overlayClassComboBox.currentText, self._runFolder)
        self.logic.setOverlay(node, self.ui.overlayOpacitySlider.value, colorLegend=True)

    @guarded(_("Failed to save the scene."))
    def onSaveScene(self) -> None:
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Save scene bundle"), "",
                                              _("Medical Reality Bundle (*.mrb)"))
        if path:
            saved = self.logic.saveSceneBundle(path if path.lower().endswith(".mrb") else path + ".mrb")
            self.ui.statusLabel.text = _("Saved {path}").format(path=saved)


class BrainTumorXAITest(ScriptedLoadableModuleTest):
    """Loading through Slicer's readers (always), then the real analysis on the bundled sample case with the
    demo weights on CPU (its packages are installed non-interactively in testing mode, else it is skipped)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_BrainTumorXAI_loading()
        self.setUp()
        self.test_BrainTumorXAI_endToEnd()

    def test_BrainTumorXAI_loading(self):
        from BrainTumorXAILib.resources import sample_case_path

        logic = BrainTumorXAILogic()
        inputs = logic.loadCase(sample_case_path())
        self.assertEqual(set(inputs), {*SEQUENCES, "seg"})
        found = logic.findSequenceVolumes(slicer.mrmlScene)
        self.assertEqual({s: n.GetID() for s, n in found.items()}, {s: inputs[s].GetID() for s in SEQUENCES})
        self.assertEqual(logic.inputProblem({s: inputs[s] for s in SEQUENCES}, inputs["seg"]), "")
        self.delayDisplay("Loading test passed")

    def test_BrainTumorXAI_endToEnd(self):
        import tempfile

        from BrainTumorXAILib.resources import demo_weights_path, sample_case_path

        problem = ensureAnalysisPackages(interactive=False) \
            if slicer.app.testingEnabled() and not os.environ.get("BRAINTUMORXAI_TEST_NO_INSTALL") \
            else (extension.torchProblem() or ", ".join(extension.missingRequirements()))
        if problem:
            raise unittest.SkipTest(f"analysis packages unavailable: {problem}")
        logic = BrainTumorXAILogic()
        inputs = logic.loadCase(sample_case_path())
        process = logic.startRun({s: inputs[s] for s in SEQUENCES}, tempfile.gettempdir(), groundTruth=inputs["seg"],
                                 weights=demo_weights_path(), device="cpu", mcSamples=2, gradcamClasses=["ET"])
        fractions = []
        while True:
            updates, code = process.poll()
            fractions += [u["fraction"] for u in updates]
            if code is not None:
                break
            slicer.app.processEvents()
            qt.QThread.msleep(100)
        folder = logic.finishRun(process, code)
        self.assertFalse(process.workFolder.exists(), "temporary results must be removed once loaded")
        self.assertTrue(fractions and fractions == sorted(fractions), "progress must move forward")
        nodes = logic.runNodes(folder)
        self.assertEqual(len(nodes["overlays"]), 3 + 3 + 1 + 2)  # prob, var per class, Grad-CAM ET, H, MI
        for node in [nodes["labelmap"], *nodes["overlays"].values()]:
            self.assertEqual(node.GetImageData().GetDimensions(), inputs["t1ce"].GetImageData().GetDimensions())
        self.assertGreaterEqual(nodes["table"].GetColumnIndex("Dice"), 0)
        logic.showOnly("ET", folder)
        display = nodes["segmentation"].GetDisplayNode()
        self.assertEqual([display.GetSegmentVisibility(n) for n in TUMOUR_CLASSES], [False, False, True])
        logic.setOverlay(nodes["overlays"]["gradcam:ET"], 0.4, colorLegend=True)
        composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(composite.GetForegroundVolumeID(), nodes["overlays"]["gradcam:ET"].GetID())
        self.assertEqual(logic.missingSequences(folder), [])
        self.delayDisplay("End-to-end test passed")
