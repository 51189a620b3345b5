"""The module panel: the widgets of ``Resources/UI/BrainTumorXAI.ui`` wired to the Logic.

Only what needs Qt is here; what Apply needs, the run bookkeeping and every status text are the
Qt-free :class:`BrainTumorXAILib.slicer_bridge.session.RunSession`'s.  Slicer APIs used here were checked
against Slicer's source at v5.6.2, v5.8.1 and v5.10.0 (notes at each use).
"""

import ctk
import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.util import VTKObservationMixin

from BrainTumorXAILib.io.labels import TUMOUR_CLASSES
from BrainTumorXAILib.slicer_bridge.constants import ATTR_OUTPUT
from BrainTumorXAILib.slicer_bridge.dicom_export import exportDicomSeg
from BrainTumorXAILib.slicer_bridge.review import REVIEW_KIND, ReviewLogic
from BrainTumorXAILib.slicer_bridge.session import (
    CANCELLED, CANCELLING, LOADING_RESULTS, MODEL_FILE_FILTERS, OVERLAY_KINDS, SCENE_CLOSED, STARTING, RunSession,
    backgroundVolume, bundlePath, caseFields, loadedStatus, overlayUsesClass, refreshSetsOverlay, savedStatus)

from .dialogs import ensureAnalysisPackages, guarded, waitCursor
from .parameters import BrainTumorXAIParameterNode

SELECTORS = ("t1Selector", "t1ceSelector", "t2Selector", "flairSelector")
PRESET_BUTTONS = (("tumourOnlyButton", "tumour"), ("ncrButton", "NCR"), ("edButton", "ED"), ("etButton", "ET"),
                  ("wtButton", "WT"), ("tcButton", "TC"), ("allBrainButton", "all"))


class BrainTumorXAIPanel(VTKObservationMixin):
    """Built by the module widget's ``setup``: the .ui goes into ``layout`` at once."""

    def __init__(self, layout, uiPath: str, logic) -> None:
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self.session = RunSession(logic)
        self.review = ReviewLogic(slicer.mrmlScene)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._shown = False  # between enter() and exit(): only then does the panel follow the scene
        self._loadingCase = False  # Load case sets the inputs itself: no auto-fill from its new volumes
        self._stale = False  # the scene changed while hidden: refresh on enter()
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._pollProcess)

        self.uiWidget = slicer.util.loadUI(uiPath)
        layout.addWidget(self.uiWidget)
        self.ui = slicer.util.childWidgetVariables(self.uiWidget)
        self.uiWidget.setMRMLScene(slicer.mrmlScene)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Readable
        self.ui.modelPathLineEdit.nameFilters = list(MODEL_FILE_FILTERS)
        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.autoFillButton.connect("clicked(bool)", lambda: self.autoFillInputs(overwrite=True))
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        for button, preset in PRESET_BUTTONS:
            getattr(self.ui, button).connect("clicked(bool)", lambda checked, p=preset: self.onPreset(p))
        self.ui.saveSceneButton.connect("clicked(bool)", self.onSaveScene)
        self.ui.showQcButton.connect("clicked(bool)", self.onShowQc)
        self._addExportDicomButton()
        for key, title in OVERLAY_KINDS:
            self.ui.overlayKindComboBox.addItem(title, key)
        for className in TUMOUR_CLASSES:
            self.ui.overlayClassComboBox.addItem(className)
        self.ui.overlayKindComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.overlayClassComboBox.connect("currentIndexChanged(int)", self.onOverlayChanged)
        self.ui.overlayOpacitySlider.connect("valueChanged(double)", self.onOverlayChanged)
        # qMRMLTableView's selectionChanged() signal and Q_INVOKABLE sortFilterProxyModel(): Slicer v5.6.2,
        # v5.8.1 and v5.10.0 (Libs/MRML/Widgets/qMRMLTableView.h).
        self.ui.reviewTableView.connect("selectionChanged()", self.onReviewSelection)
        self.ui.uncertaintyHereButton.connect("clicked(bool)", self.onUncertaintyHere)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.hide()
        self.initializeParameterNode()
        self._refreshRuns()

    def enter(self) -> None:
        """The module is shown: follow the scene again (volumes added fill the inputs)."""
        self._shown = True
        # VTKObservationMixin.hasObserver: Slicer 5.6.2-5.10.0 (a second addObserver would only warn).
        if not self.hasObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded):
            self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()
        if self._stale:
            self._stale = False
            self._refreshRuns()

    def exit(self) -> None:
        """Another module is shown: stop reacting to its nodes (a running analysis goes on)."""
        self._shown = False
        if self.hasObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded):
            self.removeObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

    def cleanup(self) -> None:
        self._timer.stop()
        self.session.close()
        self.removeObservers()

    # ------------------------------------------------------------ scene events
    def onSceneStartClose(self, caller, event) -> None:
        if self.session.sceneClosing():  # its inputs are gone: its results must not land in the empty scene
            self.ui.cancelButton.enabled = False
            self.ui.statusLabel.text = SCENE_CLOSED

    def onSceneEndClose(self, caller, event) -> None:
        if self._shown:  # as Slicer's module template: a hidden module waits for enter()
            self.initializeParameterNode()
            self._refreshRuns()
        else:
            self._stale = True

    def onSceneEndImport(self, caller, event) -> None:
        # A scene or .mrb opened: its runs (found from the subject hierarchy) get the presets and overlays.
        self.session.forgetRunFolder()
        if self._shown:
            self._refreshRuns()
        else:
            self._stale = True

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        # Volumes the user loads (Add Data, DICOM, Sample Data) fill empty or repeated selectors by name.
        # Deferred: the node gets its name and attributes after this event.
        if node.IsA("vtkMRMLScalarVolumeNode") and self._parameterNode and not slicer.mrmlScene.IsImporting() \
                and not self._loadingCase:
            qt.QTimer.singleShot(0, self._deferredAutoFill)

    def _deferredAutoFill(self) -> None:
        if self._shown and not self._loadingCase:
            self.autoFillInputs(overwrite=False)

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

    def _setFields(self, fields: dict) -> None:
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            for name, node in fields.items():
                setattr(self._parameterNode, name, node)

    def _hideResultsFromSelectors(self) -> None:
        for selector in SELECTORS:  # analysis outputs never appear as inputs
            getattr(self.ui, selector).sortFilterProxyModel().hiddenNodeIDs = self.logic.resultVolumeIDs()
        # nor a run's own segmentation or label map as its ground truth or brain mask
        for selector in (self.ui.groundTruthSelector, self.ui.brainMaskSelector):
            selector.sortFilterProxyModel().hiddenNodeIDs = self.logic.runOutputIDs()

    def autoFillInputs(self, overwrite: bool) -> None:
        if not self._parameterNode:
            return
        self._hideResultsFromSelectors()
        self._setFields(self.session.autoFillFields(self._parameterNode, slicer.mrmlScene, overwrite))

    def _checkCanApply(self, caller=None, event=None) -> None:
        problem = self.session.applyProblem(self._parameterNode)
        self.ui.modelPathLineEdit.enabled = not self._parameterNode.useBundledWeights if self._parameterNode else False
        self.ui.applyButton.enabled = not problem
        self.ui.applyButton.toolTip = self.session.applyToolTip(problem)

    # ------------------------------------------------------------ actions
    @guarded(_("Failed to load the case."))
    def onLoadCase(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Select a BraTS case folder"))
        if not folder:
            return
        self._loadingCase = True
        try:
            with waitCursor():
                nodes = self.logic.loadCase(folder)
            self._setFields(caseFields(nodes))  # this case's volumes, None for one it lacks
        finally:
            self._loadingCase = False
        slicer.util.setSliceViewerLayers(background=backgroundVolume(nodes), fit=True)
        self.ui.statusLabel.text = loadedStatus(nodes)

    @guarded(_("Failed to start the analysis."))
    def onApplyButton(self) -> None:
        problem = self.session.applyProblem(self._parameterNode)  # also: packages installing already
        if not problem:
            try:
                with self.session.installingPackages():
                    self._setBusy(True)  # Slicer's pip helpers process events: no second Apply meanwhile
                    problem = ensureAnalysisPackages()
            finally:
                self._setBusy(False)  # after the session's installing flag is down: Apply follows it again
        if problem:
            self.ui.statusLabel.text = problem
            slicer.util.errorDisplay(problem)
            return
        self.session.start(self._parameterNode, slicer.app.temporaryPath)
        self._setRunning(True)
        self._timer.start()

    def onCancelButton(self) -> None:
        if self.session.cancel():
            self.ui.cancelButton.enabled = False
            self.ui.statusLabel.text = CANCELLING

    def _setBusy(self, busy: bool) -> None:
        """Inputs, settings and Load case locked; Apply follows the session (disabled while busy)."""
        self.ui.inputsCollapsibleButton.enabled = not busy
        self.ui.settingsCollapsibleButton.enabled = not busy
        self.ui.loadCaseButton.enabled = not busy
        self._checkCanApply()

    def _setRunning(self, running: bool) -> None:
        self.ui.cancelButton.enabled = running
        self.ui.progressBar.setVisible(running)
        if running:
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = STARTING
        self._setBusy(running)

    def _pollProcess(self) -> None:
        if not self.session.running:
            self._timer.stop()
            return
        shown, ended = self.session.poll()
        for percent, status in shown:
            self.ui.progressBar.value = percent
            self.ui.statusLabel.text = status
        if ended is None:
            return
        self._timer.stop()
        self._setRunning(False)
        process, code = ended
        if process.cancelled:  # its poll() has deleted the work folder
            self.ui.statusLabel.text = CANCELLED
            return
        self._finishRun(process, code)

    @guarded(_("Failed to load the results."))
    def _finishRun(self, process, code: int) -> None:
        self.ui.statusLabel.text = LOADING_RESULTS
        done = self.session.finish(process, code)
        self._refreshRuns()
        self.ui.statusLabel.text = done
        background = backgroundVolume(self.session.volumes(self._parameterNode))
        if background is not None:
            slicer.util.setSliceViewerLayers(background=background, fit=True)
        layoutManager = slicer.app.layoutManager()
        if layoutManager and layoutManager.threeDWidget(0):
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def _refreshRuns(self) -> None:
        """Outputs section for the current run (the latest one, also of a restored scene)."""
        hasRun = self.session.currentRunFolder() is not None
        self.ui.outputsCollapsibleButton.enabled = hasRun
        self.exportDicomButton.enabled = hasRun
        self.ui.showQcButton.enabled = hasRun and self.logic.qcFigure(self.session.runFolder) is not None
        nodes = self.logic.runNodes(self.session.runFolder) if hasRun else {}
        if hasRun:
            self.ui.outputsCollapsibleButton.collapsed = False
            self.ui.resultsTableView.setMRMLTableNode(nodes.get("table"))
            if refreshSetsOverlay(self.ui.overlayKindComboBox.currentData):  # "none" keeps the user's overlay
                self.onOverlayChanged()
        self._showReviewTable(nodes.get(REVIEW_KIND))
        self._hideResultsFromSelectors()

    # ------------------------------------------------------------ where to look (review regions)
    def _showReviewTable(self, node) -> None:
        self.ui.reviewTableView.setMRMLTableNode(node)
        rows = node.GetNumberOfRows() if node is not None else 0
        self.ui.reviewCollapsibleButton.enabled = node is not None
        self.ui.uncertaintyHereButton.enabled = rows > 0
        if node is None:
            self.ui.reviewStatusLabel.text = _("No review regions in these results (no trust report).")
        elif rows == 0:
            self.ui.reviewStatusLabel.text = _("No region of high uncertainty inside the brain.")
        else:
            self.ui.reviewStatusLabel.text = _("{n} regions of high uncertainty, most important first: select one "
                                               "to look at it.").format(n=rows)

    def _selectedReviewRow(self) -> int:
        """The table row of the selected view row (-1: none).  The view sorts through its proxy model."""
        view = self.ui.reviewTableView
        node = view.mrmlTableNode()
        indexes = view.selectionModel().selectedIndexes() if view.selectionModel() else []
        if node is None or not indexes:
            return -1
        return self.review.tableRow(node, view.sortFilterProxyModel().mapToSource(indexes[0]).row())

    @guarded(_("Failed to show the region."))
    def onReviewSelection(self) -> None:
        row = self._selectedReviewRow()
        if row >= 0:
            self._showUncertaintyAt(row)

    @guarded(_("Failed to show the region."))
    def onUncertaintyHere(self) -> None:
        row = self._selectedReviewRow()
        self._showUncertaintyAt(row if row >= 0 else 0)

    def _showUncertaintyAt(self, row: int) -> None:
        """Centre the slice views on the region and show the entropy overlay (the overlay menu follows)."""
        node = self.ui.reviewTableView.mrmlTableNode()
        if node is None or self.session.runFolder is None or node.GetNumberOfRows() == 0:
            return
        self.review.showUncertaintyAt(self.logic, node, row, self.session.runFolder, self.ui.overlayOpacitySlider.value)
        combo = self.ui.overlayKindComboBox
        blocked = combo.blockSignals(True)
        combo.currentIndex = combo.findData("entropy")
        combo.blockSignals(blocked)
        self.ui.overlayClassComboBox.enabled = overlayUsesClass("entropy")

    @guarded(_("Failed to change the view."))
    def onPreset(self, preset: str) -> None:
        self.logic.showOnly(preset, self.session.runFolder)

    @guarded(_("Failed to show the overlay."))
    def onOverlayChanged(self, *args) -> None:
        if self.session.runFolder is None:
            return
        kind = self.ui.overlayKindComboBox.currentData
        self.ui.overlayClassComboBox.enabled = overlayUsesClass(kind)
        node = self.logic.overlayNode(kind, self.ui.overlayClassComboBox.currentText, self.session.runFolder)
        self.logic.setOverlay(node, self.ui.overlayOpacitySlider.value, colorLegend=True)

    def _addExportDicomButton(self) -> None:
        """*Export DICOM SEG* below *Save scene bundle* (the Outputs grid's next row)."""
        self.exportDicomButton = qt.QPushButton(_("Export DICOM SEG…"))
        self.exportDicomButton.toolTip = _("Write the segmentation and the probability and entropy maps as DICOM "
                                           "referencing the T1ce series it was loaded from, into a new folder inside "
                                           "the one you choose (research use)")
        layout = self.ui.outputsCollapsibleButton.layout()
        layout.addWidget(self.exportDicomButton, layout.rowCount(), 0, 1, 2)
        self.exportDicomButton.connect("clicked(bool)", self.onExportDicomSeg)

    @guarded(_("Failed to export the DICOM SEG."))
    def onExportDicomSeg(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export DICOM SEG into folder"))
        if not folder:
            return
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        resultsFolder = shNode.GetItemAttribute(self.session.runFolder, ATTR_OUTPUT)
        with waitCursor():
            written = exportDicomSeg(slicer.mrmlScene, self.logic.runNodes(self.session.runFolder).get("segmentation"),
                                     self._parameterNode.t1ceVolume, resultsFolder, folder,
                                     getattr(slicer, "dicomDatabase", None))
        status = _("DICOM SEG written to {folder} ({exporter} exporter)").format(
            folder=written["folder"], exporter=written["exporter"])
        if written["mapsSkipped"]:
            status += "; " + _("no parametric maps: {reason}").format(reason=written["mapsSkipped"])
        self.ui.statusLabel.text = status

    @guarded(_("Failed to show the registration QC."))
    def onShowQc(self) -> None:
        # The PNG in the system's image viewer: QDesktopServices is wrapped by PythonQt in Slicer 5.6, 5.8, 5.10.
        figure = self.logic.qcFigure(self.session.runFolder)
        if figure is not None:
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(figure)))

    @guarded(_("Failed to save the scene."))
    def onSaveScene(self) -> None:
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Save scene bundle"), "",
                                              _("Medical Reality Bundle (*.mrb)"))
        if path:
            saved = self.logic.saveSceneBundle(bundlePath(path))
            self.ui.statusLabel.text = savedStatus(saved)
