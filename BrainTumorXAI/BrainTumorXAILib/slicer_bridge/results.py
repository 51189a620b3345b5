"""BrainTumorXAILogic's results: an ``analyze`` results folder as nodes in its own subject-hierarchy folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import slicer
import vtk
from vtk.util import numpy_support

from ..errors import BrainTumorXAIError
from ..io.labels import (ALGORITHM_NAME, CLASS_COLORS, CLASS_LONG_NAMES, CLASS_NAMES, CONVENTIONS, REGIONS,
                         TUMOUR_CLASSES)
from .constants import (ATTR_CLASS, ATTR_KIND, ATTR_OUTPUT, ATTR_RUN, BRAIN_COLOR, BRAIN_OPACITY, OVERLAY_TITLES,
                        RUN_FOLDER_PREFIX, terminologyEntry)
from ..reporting.evidence_table import SEQUENCE_LABELS
from ..reporting.locality_text import LOCALITY_COLUMN, LOCALITY_FLOOR, MARGIN_MM, locality_share
from .i18n import tr
from .nodes import niftiArrayFromVolume, readVolumeFile, removeNodeAndHelpers, vtkMatrixFromArray
from .preprocessing_view import ATTR_PREPROCESSING, ATTR_QC_FIGURE, preprocessingStatus, qcFigurePath

#: Subject-hierarchy folder attribute: the sequences the run did without (comma-separated, may be empty).
ATTR_MISSING = "BrainTumorXAI.MissingSequences"
#: Folder attribute: mL of predicted enhancing tumour that the enhancement check shows as necrotic core (not
#: brighter on T1ce than on T1); empty when it changed nothing or did not run.
ATTR_UNENHANCED = "BrainTumorXAI.UnenhancedEtMl"


def summaryUnenhancedEtMl(summary: dict) -> float:
    """mL of predicted ET the run's enhancement check relabelled (0 when none, or for runs without the check)."""
    step = (summary.get("postprocessing") or {}).get("enhancement_check") or {}
    return float(step.get("et_ml_relabelled") or 0.0)


class ResultsMixin:
    """Load results, build the segmentation, surfaces and table; find the nodes of a run again."""

    @staticmethod
    def readSummary(outDir) -> dict:
        outDir = Path(outDir)
        path = outDir / "summary.json"
        if not outDir.is_dir():
            raise BrainTumorXAIError(tr("{path}: results folder not found").format(path=outDir))
        if not path.is_file():
            raise BrainTumorXAIError(tr("{path}: not found (not a finished BrainTumorXAI results folder)").format(path=path))
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BrainTumorXAIError(tr("{path}: not valid JSON ({error})").format(path=path, error=exc)) from exc
        if not isinstance(summary, dict) or "outputs" not in summary or "case" not in summary:
            raise BrainTumorXAIError(tr("{path}: no 'case'/'outputs' entries (not a BrainTumorXAI summary)").format(path=path))
        return summary

    def _newRunFolder(self, caseId: str) -> int:
        shNode = self.scene.GetSubjectHierarchyNode()
        prefix = f"{RUN_FOLDER_PREFIX} {caseId} "
        children = vtk.vtkIdList()
        shNode.GetItemChildren(shNode.GetSceneItemID(), children, True)
        used = []
        for i in range(children.GetNumberOfIds()):
            name = shNode.GetItemName(children.GetId(i)) or ""
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                used.append(int(name[len(prefix):]))
        folder = shNode.CreateFolderItem(shNode.GetSceneItemID(), f"{prefix}{max(used, default=0) + 1}")
        shNode.SetItemAttribute(folder, ATTR_KIND, "run")
        return folder

    def _placeInFolder(self, node, folderItem: int, runName: str, kind: str, className: str | None = None) -> None:
        shNode = self.scene.GetSubjectHierarchyNode()
        node.SetAttribute(ATTR_RUN, runName)
        node.SetAttribute(ATTR_KIND, kind)
        if className:
            node.SetAttribute(ATTR_CLASS, className)
        item = shNode.GetItemByDataNode(node)
        if not item:
            item = shNode.CreateItem(folderItem, node)
        shNode.SetItemParent(item, folderItem)

    def loadResults(self, outDir, includeBackground: bool = False, show: bool = True) -> int:
        """Load an ``analyze`` results folder into a new subject-hierarchy folder; returns its item id.

        Each call makes a new folder "BrainTumorXAI <case id> <n>", so earlier runs stay untouched.
        Background-class probability/variance maps are skipped unless ``includeBackground``.
        """
        outDir = Path(outDir).resolve()
        summary = self.readSummary(outDir)
        outputs = summary["outputs"]
        caseId = str(summary["case"].get("id", outDir.name))
        convention = summary["case"].get("label_convention") or "brats2021"
        if convention not in CONVENTIONS:
            raise BrainTumorXAIError(tr("{path}: unknown label convention {convention}").format(
                path=outDir / "summary.json", convention=repr(convention)))

        def path(rel):
            p = outDir / rel
            if not p.is_file():
                raise BrainTumorXAIError(tr("{path}: listed in summary.json but missing").format(path=p))
            return p

        if not outputs.get("seg"):
            raise BrainTumorXAIError(tr("{path}: no 'seg' output listed").format(path=outDir / "summary.json"))
        folder = self._newRunFolder(caseId)
        try:
            self._loadRun(outDir, summary, folder, convention, path, includeBackground)
        except Exception:
            self.removeRun(folder)  # a failed load leaves no half-filled folder behind
            raise
        if show:
            self.showOnly("tumour", folder)
        return folder

    def _loadRun(self, outDir: Path, summary: dict, folder: int, convention: str, path, includeBackground: bool) -> None:
        outputs = summary["outputs"]
        shNode = self.scene.GetSubjectHierarchyNode()
        runName = shNode.GetItemName(folder)
        shNode.SetItemAttribute(folder, ATTR_OUTPUT, str(outDir))
        missing = [str(s) for s in (summary["case"].get("missing_sequences") or [])]
        unenhanced = summaryUnenhancedEtMl(summary)
        notes = {ATTR_MISSING: ",".join(missing), ATTR_UNENHANCED: f"{unenhanced:.3f}" if unenhanced > 0 else "",
                 ATTR_PREPROCESSING: preprocessingStatus(summary)}
        qcFigure = qcFigurePath(outDir, summary)
        shNode.SetItemAttribute(folder, ATTR_QC_FIGURE, str(qcFigure) if qcFigure else "")
        for attribute, value in notes.items():
            shNode.SetItemAttribute(folder, attribute, value)

        # Label map with a colour table named after the classes (values in the case's own convention).
        # Read by Slicer's storage nodes, kept as in-memory data: the temporary results folder may go.
        labelmap = readVolumeFile(self.scene, path(outputs["seg"]), f"{runName} labels", "vtkMRMLLabelMapVolumeNode",
                                  keepStorage=False)
        labelmap.GetDisplayNode().SetAndObserveColorNodeID(self._labelColorTable(convention).GetID())
        self._placeInFolder(labelmap, folder, runName, "labelmap")
        disk, affine = niftiArrayFromVolume(labelmap)
        from ..io.labels import to_internal

        classes = to_internal(disk, convention)
        segmentation = self._segmentationFromClasses(classes, affine, f"{runName} segmentation")
        self._placeInFolder(segmentation, folder, runName, "segmentation")

        # Scalar maps: probabilities, MC variance, entropy, mutual information, Grad-CAM.
        def addMap(kind, rel, className=None):
            title = OVERLAY_TITLES[kind] + (f" {className}" if className else "")
            node = readVolumeFile(self.scene, path(rel), f"{runName} {title}", keepStorage=False)
            self._styleOverlay(node, kind)
            self._placeInFolder(node, folder, runName, kind, className)
            return node

        for kind, key in (("probability", "probabilities"), ("variance", "mc_variance"), ("gradcam", "gradcam")):
            for className in CLASS_NAMES:
                rel = (outputs.get(key) or {}).get(className)
                if rel and (includeBackground or className != "background"):
                    addMap(kind, rel, className)
        for kind in ("entropy", "mutual_information"):
            if outputs.get(kind):
                addMap(kind, outputs[kind])
        for className, files in ((outputs.get("sequence_evidence") or {}).get("volumes") or {}).items():
            for sequence, rel in files.items():
                addMap(f"evidence_{sequence}", rel, className)

        brainFiles = (outputs.get("surfaces") or {}).get("brain") or {}
        if brainFiles.get("vtp") or brainFiles.get("stl"):
            brain = self._loadSurface(path(brainFiles.get("vtp") or brainFiles["stl"]), f"{runName} brain")
            self._placeInFolder(brain, folder, runName, "brain")

        table = self._resultsTable(summary, f"{runName} results")
        for attribute, value in notes.items():  # the table keeps them too: a restored scene may lose the folder's
            table.SetAttribute(attribute, value)
        self._placeInFolder(table, folder, runName, "table")

        # The trust report's review regions ("where to look") and the checkpoint's own uncertainty figures.
        from .review import ReviewLogic

        review = ReviewLogic(self.scene)
        review.addCheckpointTrustColumn(table, summary)
        review.addRunReviewTable(summary, folder, runName, self._placeInFolder)

    def removeRun(self, folderItem: int) -> None:
        """Remove a run's folder and every node in it."""
        shNode = self.scene.GetSubjectHierarchyNode()
        children = vtk.vtkIdList()
        shNode.GetItemChildren(folderItem, children, True)
        for i in range(children.GetNumberOfIds()):
            node = shNode.GetItemDataNode(children.GetId(i))
            if node is not None:
                removeNodeAndHelpers(self.scene, node)
        shNode.RemoveItem(folderItem)

    def missingSequences(self, folderItem: int | None = None) -> list[str]:
        """The sequences a run did without (summary.json's ``missing_sequences``), also after a scene restore."""
        return [s for s in self._runNote(folderItem, ATTR_MISSING).split(",") if s]

    def unenhancedEtMl(self, folderItem: int | None = None) -> float:
        """mL of predicted enhancing tumour the run shows as necrotic core (the enhancement check), also after a
        scene restore."""
        return float(self._runNote(folderItem, ATTR_UNENHANCED) or 0.0)

    def preprocessingNote(self, folderItem: int | None = None) -> str:
        """The run's clinical preprocessing in one line (:func:`preprocessingStatus`), also after a scene restore."""
        return self._runNote(folderItem, ATTR_PREPROCESSING)

    def qcFigure(self, folderItem: int | None = None) -> Path | None:
        """The run's registration QC figure while its file exists (None without one)."""
        value = self._runNote(folderItem, ATTR_QC_FIGURE)
        return Path(value) if value and Path(value).is_file() else None

    def _runNote(self, folderItem: int | None, attribute: str) -> str:
        """A run's note: its folder's attribute, else its results table's (latest run when None; '' without)."""
        if folderItem is None:
            folderItem = self.latestRunFolder()
        if folderItem is None:
            return ""
        value = self.scene.GetSubjectHierarchyNode().GetItemAttribute(folderItem, attribute)
        if not value:
            table = self.runNodes(folderItem).get("table")
            value = table.GetAttribute(attribute) if table is not None else ""
        return value or ""

    def _segmentationFromClasses(self, classes: np.ndarray, affine: np.ndarray, name: str):
        """Segmentation with NCR/ED/ET segments sharing one labelmap (label value = internal class)."""
        segNode = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        try:
            self._fillSegmentation(segNode, classes, affine)
        except Exception:
            removeNodeAndHelpers(self.scene, segNode)  # no empty segmentation left behind
            raise
        return segNode

    @staticmethod
    def _fillSegmentation(segNode, classes: np.ndarray, affine: np.ndarray) -> None:
        segNode.CreateDefaultDisplayNodes()
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(*classes.shape)
        kji = np.ascontiguousarray(np.asarray(classes, dtype=np.uint8).transpose(2, 1, 0))
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(kji.ravel(), deep=True,
                                                                    array_type=vtk.VTK_UNSIGNED_CHAR))
        image.SetImageToWorldMatrix(vtkMatrixFromArray(affine))
        segmentation = segNode.GetSegmentation()
        segmentation.SetSourceRepresentationName(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
        # Geometry of the reference volume, so editing and export stay on the NIfTI grid.
        segmentation.SetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
            slicer.vtkSegmentationConverter.SerializeImageGeometry(image))
        for index, className in enumerate(CLASS_NAMES):
            if className == "background":
                continue
            segment = slicer.vtkSegment()
            segment.SetName(className)
            segment.SetNameAutoGenerated(False)
            # vtkSegment.SetTerminology exists only from Slicer 5.10, where it is exactly this SetTag call;
            # GetTerminologyEntryTagName() ("TerminologyEntry") is declared in 5.6.2, 5.8.1 and 5.10.0.
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminologyEntry(className))
            segment.SetColor(*CLASS_COLORS[className])
            # Keep our colour: an auto-generated colour would be replaced by the terminology's
            # recommended one (none for "Neoplasm, Primary" -> grey).
            segment.SetColorAutoGenerated(False)
            segment.SetTag("BrainTumorXAI.LongName", CLASS_LONG_NAMES[className])
            # Read by Slicer's DICOM SEG exporter (core and QuantitativeReporting); without them it writes MANUAL.
            segment.SetTag("DICOM.SegmentAlgorithmType", "AUTOMATIC")
            segment.SetTag("DICOM.SegmentAlgorithmName", ALGORITHM_NAME)
            segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), image)
            segment.SetLabelValue(index)
            segmentation.AddSegment(segment, className)
        segNode.CreateClosedSurfaceRepresentation()
        display = segNode.GetDisplayNode()
        display.SetPreferredDisplayRepresentationName3D(slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName())
        display.SetVisibility2DFill(True)
        display.SetVisibility2DOutline(True)
        display.SetOpacity2DFill(0.35)
        display.SetSegmentOpacity3D("ED", 0.45)

    def _loadSurface(self, path, name: str):
        from ..reporting.surfaces import read_surface

        polydata = read_surface(path)  # honours the file's SPACE tag, returns RAS
        model = self.scene.AddNewNodeByClass("vtkMRMLModelNode", name)
        model.SetAndObservePolyData(polydata)
        model.CreateDefaultDisplayNodes()
        display = model.GetDisplayNode()
        display.SetColor(*BRAIN_COLOR)
        display.SetOpacity(BRAIN_OPACITY)
        display.SetBackfaceCulling(True)  # only the near side of a translucent shell
        display.SetVisibility2D(False)
        return model

    def _resultsTable(self, summary: dict, name: str):
        """Volumes in cm3 per class and region, with Dice/IoU/HD95 per region and class when metrics exist."""
        table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        vols = summary.get("volumes_cm3") or {}
        metrics = summary.get("metrics") or {}
        columns = [("Structure", vtk.vtkStringArray), ("Kind", vtk.vtkStringArray),
                   ("Volume [cm3]", vtk.vtkDoubleArray)]
        metricColumns = [("Dice", "dice"), ("IoU", "iou"), ("HD95 [mm]", "hd95"), ("Sensitivity", "sensitivity"),
                         ("Precision", "precision")] if metrics else []
        arrays = {}
        for title, cls in columns + [(t, vtk.vtkDoubleArray) for t, _ in metricColumns]:
            array = cls()
            array.SetName(title)
            arrays[title] = array
        rows = [(c, "class") for c in TUMOUR_CLASSES] + [(r, "region") for r in REGIONS]
        for structure, kind in rows:
            group = "classes" if kind == "class" else "regions"
            arrays["Structure"].InsertNextValue(structure)
            arrays["Kind"].InsertNextValue(kind)
            arrays["Volume [cm3]"].InsertNextValue(_number((vols.get(group) or {}).get(structure)))
            entry = (metrics.get(group) or {}).get(structure) or {}
            for title, key in metricColumns:
                arrays[title].InsertNextValue(_number(entry.get(key)))
        for title in arrays:
            table.AddColumn(arrays[title])
        table.SetColumnUnitLabel("Volume [cm3]", "cm3")
        table.SetColumnDescription("Volume [cm3]", tr("Predicted volume"))
        if metrics:
            table.SetColumnDescription("Dice", tr("Dice coefficient against the ground truth"))
            table.SetColumnUnitLabel("HD95 [mm]", "mm")
        _addEvidenceColumns(table, summary.get("sequence_evidence"), [s for s, _ in rows])
        _addLocalityColumn(table, summary.get("gradcam_locality"), [s for s, _ in rows])
        table.SetUseColumnTitleAsColumnHeader(True)
        return table

    def runFolders(self) -> list[int]:
        """Subject-hierarchy folders of the runs in the scene, oldest first.

        Found from the folder attribute, and from the nodes' run attribute as well, so runs of a
        scene restored from a saved .mrb (or whose folder lost its attribute) are found too.
        """
        shNode = self.scene.GetSubjectHierarchyNode()
        children = vtk.vtkIdList()
        shNode.GetItemChildren(shNode.GetSceneItemID(), children, True)
        folders = []
        for i in range(children.GetNumberOfIds()):
            item = children.GetId(i)
            node = shNode.GetItemDataNode(item)
            if node is None:
                if shNode.GetItemAttribute(item, ATTR_KIND) == "run":
                    folders.append(item)
            elif node.GetAttribute(ATTR_RUN):
                parent = shNode.GetItemParent(item)
                if parent and parent != shNode.GetSceneItemID() and shNode.GetItemName(parent) == node.GetAttribute(ATTR_RUN):
                    folders.append(parent)
        return sorted(set(folders), key=folders.index)

    def latestRunFolder(self) -> int | None:
        """The most recent run's folder (None when the scene has no run)."""
        folders = self.runFolders()
        return folders[-1] if folders else None

    def runNodes(self, folderItem: int | None = None) -> dict:
        """{'segmentation', 'labelmap', 'brain', 'table', 'overlays': {key: node}} of a run (default: latest).

        Overlay keys are 'probability:NCR', 'variance:ED', 'gradcam:ET', 'entropy', 'mutual_information'.
        Works from attributes, so also for runs restored from a saved scene.
        """
        if folderItem is None:
            folderItem = self.latestRunFolder()
            if folderItem is None:
                raise BrainTumorXAIError(tr("no BrainTumorXAI results in the scene"))
        shNode = self.scene.GetSubjectHierarchyNode()
        children = vtk.vtkIdList()
        shNode.GetItemChildren(folderItem, children, True)
        result = {"overlays": {}}
        for i in range(children.GetNumberOfIds()):
            node = shNode.GetItemDataNode(children.GetId(i))
            if node is None:
                continue
            kind = node.GetAttribute(ATTR_KIND)
            if kind in OVERLAY_TITLES:
                className = node.GetAttribute(ATTR_CLASS)
                result["overlays"][f"{kind}:{className}" if className else kind] = node
            elif kind:
                result[kind] = node
        return result


def _number(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _addLocalityColumn(table, locality: dict | None, structures: list[str]) -> None:
    """The share of each class's Grad-CAM map within the margin of its call (empty for regions and absent classes)."""
    if not locality:
        return
    title = LOCALITY_COLUMN
    array = vtk.vtkDoubleArray()
    array.SetName(title)
    for structure in structures:
        share = locality_share(locality.get(structure))
        array.InsertNextValue(_number(None if share is None else 100.0 * share))
    table.AddColumn(array)
    table.SetColumnUnitLabel(title, "%")
    table.SetColumnDescription(title, tr("Share of this class's Grad-CAM map within {margin} mm of the predicted region; "
                                         "below {floor} % the map lies mostly away from the call and does not show "
                                         "what it rests on").format(margin=f"{MARGIN_MM:g}",
                                                                    floor=f"{100 * LOCALITY_FLOOR:.0f}"))


def _addEvidenceColumns(table, evidence: dict | None, structures: list[str]) -> None:
    """Beside the volumes: the share of each class's evidence per sequence the model reads (empty for regions)."""
    if not evidence:
        return
    read = [s for s, info in evidence.get("sequences", {}).items() if info.get("read")]
    unread = [SEQUENCE_LABELS[s] for s, info in evidence.get("sequences", {}).items() if not info.get("read")]
    for sequence in read:
        title = f"{SEQUENCE_LABELS[sequence]} evidence [%]"
        array = vtk.vtkDoubleArray()
        array.SetName(title)
        for structure in structures:
            share = ((evidence.get("classes", {}).get(structure) or {}).get("share") or {}).get(sequence)
            array.InsertNextValue(_number(None if share is None else 100.0 * share))
        table.AddColumn(array)
        table.SetColumnUnitLabel(title, "%")
        table.SetColumnDescription(title, f"Share of this class's call that rests on {SEQUENCE_LABELS[sequence]} "
                                          f"({evidence.get('method')}): an attribution of the network's output, not "
                                          "proof of tumour" + (f"; not read by this model: {', '.join(unread)}"
                                                               if unread else ""))

