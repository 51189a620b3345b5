import importlib.util
import logging
import os
import shutil
import tempfile
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

# The analysis core and the Qt-free Logic live in BrainTumorXAILib (usable without Slicer's GUI too).
from BrainTumorXAILib.io.labels import SEQUENCES, TUMOUR_CLASSES
from BrainTumorXAILib.slicer.extension import missingRequirements, sampleDataSource, torchMissing
from BrainTumorXAILib.slicer.inputs import safeCaseId
from BrainTumorXAILib.slicer.logic import BrainTumorXAILogic


#
# BrainTumorXAI
#


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
Dice/HD95 when a ground truth is given).
<p><b>Research use only: not for diagnosis.</b> The bundled demo weights are for trying the module.</p>
See the <a href="https://github.com/braintumorxai/SlicerBrainTumorXAI#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Input layout and label conventions follow the BraTS challenge (Menze et al. 2015, Baid et al. 2021).
Uncertainty by Monte Carlo Dropout (Gal and Ghahramani 2016); Grad-CAM after Selvaraju et al. 2017.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled synthetic BraTS case in the Sample Data module (it ships with the extension)."""
    import SampleData

    source = sampleDataSource(os.path.join(os.path.dirname(__file__), "Resources/Icons"))
    if source is not None:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source)


#
# Parameter node
#


@parameterNodeWrapper
class BrainTumorXAIParameterNode:
    """
    t1Volume, t1ceVolume, t2Volume, flairVolume - the four BraTS input sequences.
    groundTruth - optional reference segmentation (segments named NCR/ED/ET) or BraTS label map.
    modelPath - checkpoint; empty uses the bundled demo weights.
    device - auto, CPU or GPU.
    mcSamples - Monte Carlo Dropout samples (0: deterministic only).
    gradcamNCR/ED/ET - classes to compute Grad-CAM for.
    overlayOpacity - foreground opacity of the selected overlay.
    """

    t1Volume: vtkMRMLScalarVolumeNode
    t1ceVolume: vtkMRMLScalarVolumeNode
    t2Volume: vtkMRMLScalarVolumeNode
    flairVolume: vtkMRMLScalarVolumeNode
    groundTruth: Optional[Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]]
    modelPath: Path
    device: Annotated[str, Choice(["auto", "CPU", "GPU"])] = "auto"
    mcSamples: Annotated[int, WithinRange(0, 200)] = 20
    gradcamNCR: bool = True
    gradcamED: bool = True
    gradcamET: bool = True
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5


#
# Widget
#


class BrainTumorXAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    OVERLAY_KINDS = [("none", _("None")), ("probability", _("Probability")), ("variance", _("MC variance")),
                     ("entropy", _("Entropy")), ("mutual_information", _("Mutual information")),
                     ("gradcam", _("Grad-CAM"))]

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._workDir = None
        self._runFolder = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._pollProcess)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainTumorXAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainTumorXAILogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.modelPathLineEdit.filters = ctkPathFilters()
        self.ui.modelPathLineEdit.nameFilters = ["PyTorch checkpoint (*.pt *.pth)"]
        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.autoFillButton.connect("clicked(bool)", lambda: self.autoFillInputs(overwrite=True))
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.tumourOnlyButton.connect("clicked(bool)", lambda: self.onPreset("tumour"))
        self.ui.ncrButton.connect("clicked(bool)", lambda: self.onPreset("NCR"))
        self.ui.edButton.connect("clicked(bool)", lambda: self.onPreset("ED"))
        self.ui.etButton.connect("clicked(bool)", lambda: self.onPreset("ET"))
        self.ui.wtButton.connect("clicked(bool)", lambda: self.onPreset("WT"))
        self.ui.tcButton.connect("clicked(bool)", lambda: self.onPreset("TC"))
        self.ui.allBrainButton.connect("clicked(bool)", lambda: self.onPreset("all"))
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
        self.ui.outputsCollapsibleButton.enabled = False
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._timer.stop()
        if self._process is not None:
            # Slicer is closing: no later poll will come, so end the run (and its clean-up) here.
            self._process.cancel(grace=2.0, wait=True)
            self._process = None
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._runFolder = None
        self.ui.outputsCollapsibleButton.enabled = False
        if self.parent.isEntered:
            self.initializeParameterNode()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        # Volumes loaded by the user (Add Data, DICOM, Sample Data) fill empty selectors by name.
        if node.IsA("vtkMRMLScalarVolumeNode") and self._parameterNode:
            qt.QTimer.singleShot(0, lambda: self.autoFillInputs(overwrite=False))

    def initializeParameterNode(self) -> None:
        self.setParameterNode(BrainTumorXAIParameterNode(self.logic.getParameterNode()))
        self.autoFillInputs(overwrite=False)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def autoFillInputs(self, overwrite: bool) -> None:
        if not self._parameterNode:
            return
        found = BrainTumorXAILogic.findSequenceVolumes(slicer.mrmlScene)
        for seq in SEQUENCES:
            attr = f"{seq}Volume"
            if seq in found and (overwrite or getattr(self._parameterNode, attr) is None):
                setattr(self._parameterNode, attr, found[seq])

    def _inputProblem(self) -> str:
        """Why Apply is not possible right now ('' when it is)."""
        p = self._parameterNode
        if p is None:
            return _("No parameter node")
        if self._process is not None:
            return _("An analysis is running")
        # Inputs and ground truth: the Logic's checks (missing, empty, transformed or non-overlapping
        # volumes, a ground truth without NCR/ED/ET segments), so they are tested without Qt.
        volumes = {s: getattr(p, f"{s}Volume") for s in SEQUENCES}
        problem = BrainTumorXAILogic.inputProblem(volumes, p.groundTruth)
        if problem:
            return problem
        weights = BrainTumorXAILogic.chosenWeights(p.modelPath)
        if weights and not Path(weights).is_file():
            return _("Model file not found: {path}").format(path=p.modelPath)
        return ""

    def _checkCanApply(self, caller=None, event=None) -> None:
        problem = self._inputProblem()
        self.ui.applyButton.enabled = not problem
        self.ui.applyButton.toolTip = problem or _("Segment the tumour and compute the explanation maps")

    # ------------------------------------------------------------- actions
    def onLoadCase(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Select a BraTS case folder"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to load the case."), waitCursor=True):
            nodes = self.logic.loadCase(folder)
            for seq in SEQUENCES:
                setattr(self._parameterNode, f"{seq}Volume", nodes[seq])
            # A case without a label file must not keep the previous case's ground truth.
            self._parameterNode.groundTruth = nodes.get("seg")
            slicer.util.setSliceViewerLayers(background=nodes["flair"], fit=True)

    def ensureDependencies(self) -> bool:
        """torch through the PyTorch extension (right CUDA build) when present, else pip; asks first.

        Only looks packages up (importlib.util.find_spec): the analysis runs in its own process, so
        torch and the rest are never imported into Slicer's GUI process.  Install errors are shown.
        """
        if torchMissing():
            if not slicer.util.confirmOkCancelDisplay(
                    _("Brain Tumor XAI needs PyTorch, which is not installed yet. Install it now? "
                      "This downloads several hundred MB and may take a few minutes.")):
                return False
            installed = False
            with slicer.util.tryWithErrorDisplay(_("PyTorch installation failed; see the Python console."),
                                                 waitCursor=True):
                if importlib.util.find_spec("PyTorchUtils") is not None:
                    import PyTorchUtils

                    torchLogic = PyTorchUtils.PyTorchUtilsLogic()
                    if not torchLogic.torchInstalled() and torchLogic.installTorch(askConfirmation=False) is None:
                        raise RuntimeError(_("The PyTorch extension could not install torch."))
                else:
                    slicer.util.pip_install("torch")
                importlib.invalidate_caches()
                if torchMissing():
                    raise RuntimeError(_("torch is still not importable after the installation."))
                installed = True
            if not installed:
                return False
        missing = missingRequirements()
        if missing:
            if not slicer.util.confirmOkCancelDisplay(
                    _("Brain Tumor XAI needs these Python packages: {names}. Install them now?").format(names=", ".join(missing))):
                return False
            installed = False
            with slicer.util.tryWithErrorDisplay(_("Installing the Python packages failed; see the Python console."),
                                                 waitCursor=True):
                slicer.util.pip_install(missing)
                installed = True
            if not installed:
                return False
        return True

    def onApplyButton(self) -> None:
        problem = self._inputProblem()
        if problem:
            slicer.util.errorDisplay(problem)
            return
        if not self.ensureDependencies():
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Failed to start the analysis."), waitCursor=True):
            self._workDir = Path(tempfile.mkdtemp(prefix="BrainTumorXAI-", dir=slicer.app.temporaryPath))
            volumes = {s: getattr(p, f"{s}Volume") for s in SEQUENCES}
            caseId = safeCaseId(volumes["t1ce"].GetName())
            caseDir = self.logic.exportInputs(volumes, self._workDir / "input" / caseId, caseId, groundTruth=p.groundTruth)
            gradcam = [c for c in TUMOUR_CLASSES if getattr(p, f"gradcam{c}")]
            weights = BrainTumorXAILogic.chosenWeights(p.modelPath)
            self._process = self.logic.startAnalysis(caseDir, self._workDir / "output", cleanupPaths=[self._workDir],
                                                     weights=weights, device=p.device, mcSamples=p.mcSamples,
                                                     gradcamClasses=gradcam)
            self._setRunning(True)
            self._timer.start()

    def onCancelButton(self) -> None:
        if self._process is None or self._process.cancelled:
            return
        # Returns at once (SIGINT to the process group); the timer's polls see the process end,
        # kill it if it is still there after the grace period, and delete the temporary folder.
        self._process.cancel(grace=5.0)
        self.ui.cancelButton.enabled = False
        self.ui.statusLabel.text = _("Cancelling…")

    def _setRunning(self, running: bool) -> None:
        self.ui.applyButton.enabled = not running
        self.ui.cancelButton.enabled = running
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.settingsCollapsibleButton.enabled = not running
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
        if self._process.cancelled:
            updates = []  # the status line says "Cancelling…" until the process is gone
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
        if code != 0:
            logging.error(process.log)
            lastLine = process.log.strip().splitlines()[-1] if process.log.strip() else ""
            self.ui.statusLabel.text = _("Analysis failed: {message}").format(message=lastLine)
            slicer.util.errorDisplay(_("The analysis failed (exit code {code}).").format(code=code),
                                     detailedText=process.log)
            shutil.rmtree(self._workDir, ignore_errors=True)
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to load the results."), waitCursor=True):
            self._runFolder = self.logic.loadResults(self._workDir / "output")
            shutil.rmtree(self._workDir / "input", ignore_errors=True)
            self._showRun()
            self.ui.statusLabel.text = _("Done. Results in {folder}").format(folder=self._workDir / "output")

    def _showRun(self) -> None:
        nodes = self.logic.runNodes(self._runFolder)
        self.ui.outputsCollapsibleButton.enabled = True
        self.ui.outputsCollapsibleButton.collapsed = False
        self.ui.resultsTableView.setMRMLTableNode(nodes.get("table"))
        background = self._parameterNode.flairVolume if self._parameterNode else None
        if background is not None:
            slicer.util.setSliceViewerLayers(background=background, fit=True)
        self.onOverlayChanged()
        layoutManager = slicer.app.layoutManager()
        if layoutManager and layoutManager.threeDWidget(0):
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def onPreset(self, preset: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to change the view."), waitCursor=False):
            self.logic.showOnly(preset, self._runFolder)

    def onOverlayChanged(self, *args) -> None:
        if self._runFolder is None:
            return
        kind = self.ui.overlayKindComboBox.currentData
        className = self.ui.overlayClassComboBox.currentText
        self.ui.overlayClassComboBox.enabled = kind in ("probability", "variance", "gradcam")
        node = self.logic.overlayNode(kind, className, self._runFolder)
        self.logic.setOverlay(node, self.ui.overlayOpacitySlider.value, colorLegend=True)

    def onSaveScene(self) -> None:
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Save scene bundle"), "",
                                              "Medical Reality Bundle (*.mrb)")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Failed to save the scene."), waitCursor=True):
                self.logic.saveSceneBundle(path if path.lower().endswith(".mrb") else path + ".mrb")


def ctkPathFilters():
    import ctk

    return ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable


#
# Test
#


class BrainTumorXAITest(ScriptedLoadableModuleTest):
    """Runs the real Logic on the bundled sample case with the demo weights on CPU."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_BrainTumorXAI_endToEnd()

    def test_BrainTumorXAI_endToEnd(self):
        import json

        import numpy as np

        from BrainTumorXAILib.io.labels import CLASS_COLORS
        from BrainTumorXAILib.resources import demo_weights_path, sample_case_path
        from BrainTumorXAILib.slicer.nodes import niftiArrayFromVolume

        caseFolder, weights = sample_case_path(), demo_weights_path()
        self.assertTrue(caseFolder.is_dir(), f"sample case missing: {caseFolder}")
        self.assertTrue(weights.is_file(), f"demo weights missing: {weights}")
        logic = BrainTumorXAILogic()

        self.delayDisplay("Loading the sample case")
        inputs = logic.loadCase(caseFolder)
        for seq in SEQUENCES:
            self.assertTrue(inputs[seq].IsA("vtkMRMLScalarVolumeNode"))
        found = BrainTumorXAILogic.findSequenceVolumes(slicer.mrmlScene)
        self.assertEqual({s: n.GetID() for s, n in found.items()}, {s: inputs[s].GetID() for s in SEQUENCES})

        self.delayDisplay("Running the analysis in a background process")
        work = Path(tempfile.mkdtemp(prefix="BrainTumorXAITest-", dir=slicer.app.temporaryPath))
        try:
            caseDir = logic.exportInputs({s: inputs[s] for s in SEQUENCES}, work / "input" / "Test", "Test",
                                         groundTruth=inputs.get("seg"))
            process = logic.startAnalysis(caseDir, work / "output", weights=weights, device="cpu", mcSamples=2,
                                          gradcamClasses=["ET"])
            fractions = []
            while True:
                updates, code = process.poll()
                fractions += [u["fraction"] for u in updates]
                if code is not None:
                    break
                slicer.app.processEvents()
                qt.QThread.msleep(100)
            self.assertEqual(code, 0, process.log)
            self.assertTrue(fractions and fractions == sorted(fractions), "progress must move forward")

            folder = logic.loadResults(work / "output")
            nodes = logic.runNodes(folder)
            summary = json.loads((work / "output" / "summary.json").read_text())

            # Geometry: every output volume sits on the reference input's grid.
            _, referenceAffine = niftiArrayFromVolume(inputs["t1ce"])
            volumes = [nodes["labelmap"]] + list(nodes["overlays"].values())
            self.assertEqual(len(nodes["overlays"]), 3 + 3 + 1 + 2)  # prob, var per class, Grad-CAM ET, H, MI
            for node in volumes:
                data, affine = niftiArrayFromVolume(node)
                self.assertTrue(np.allclose(affine, referenceAffine, atol=1e-4), node.GetName())
                self.assertEqual(node.GetImageData().GetDimensions(), inputs["t1ce"].GetImageData().GetDimensions())
            prob = niftiArrayFromVolume(nodes["overlays"]["probability:NCR"])[0]
            self.assertTrue(prob.min() >= 0.0 and prob.max() <= 1.0)

            # Segmentation: names, colours (ET must not turn grey), closed surfaces.
            seg = nodes["segmentation"].GetSegmentation()
            self.assertEqual([seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())],
                             list(TUMOUR_CLASSES))
            for name in TUMOUR_CLASSES:
                self.assertEqual(tuple(round(c, 3) for c in seg.GetSegment(name).GetColor()),
                                 tuple(round(c, 3) for c in CLASS_COLORS[name]))
            self.assertTrue(seg.ContainsRepresentation("Closed surface"))
            wt = summary["volumes_cm3"]["regions"]["WT"]
            if wt > 0:
                points = sum(nodes["segmentation"].GetClosedSurfaceInternalRepresentation(n).GetNumberOfPoints()
                             for n in TUMOUR_CLASSES if nodes["segmentation"].GetClosedSurfaceInternalRepresentation(n))
                self.assertGreater(points, 0)
            self.assertGreater(nodes["brain"].GetPolyData().GetNumberOfPoints(), 0)

            # Table: volumes match summary.json, Dice present because the sample has a ground truth.
            table = nodes["table"]
            self.assertEqual(table.GetNumberOfRows(), 6)
            volumeColumn = table.GetColumnIndex("Volume [cm3]")
            self.assertAlmostEqual(float(table.GetCellText(3, volumeColumn)), wt, places=3)
            if "seg" in inputs:
                self.assertGreaterEqual(table.GetColumnIndex("Dice"), 0)

            # Presets and overlays work on the loaded run.
            logic.showOnly("ET", folder)
            display = nodes["segmentation"].GetDisplayNode()
            self.assertEqual([display.GetSegmentVisibility(n) for n in TUMOUR_CLASSES], [False, False, True])
            logic.showOnly("WT", folder)
            self.assertEqual([display.GetSegmentVisibility(n) for n in TUMOUR_CLASSES], [True, True, True])
            if "seg" in inputs:  # the ground truth: outlines in 2D, never in the 3D presets
                gtDisplay = inputs["seg"].GetDisplayNode()
                self.assertFalse(gtDisplay.GetVisibility3D() or gtDisplay.GetVisibility2DFill())
            logic.setOverlay(nodes["overlays"]["gradcam:ET"], 0.4, colorLegend=True)
            composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
            self.assertEqual(composite.GetForegroundVolumeID(), nodes["overlays"]["gradcam:ET"].GetID())
            legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(nodes["overlays"]["gradcam:ET"])
            self.assertTrue(legend is not None and legend.GetVisibility())

            # A second load is a second folder.
            second = logic.loadResults(work / "output")
            self.assertNotEqual(second, folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.delayDisplay("Test passed")
