"""BrainTumorXAILogic's inputs: loading BraTS cases, guessing and checking the inputs, exporting them."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

import slicer
import vtk

from ..errors import BrainTumorXAIError
from ..io.labels import NAMINGS, SEQUENCES, TUMOUR_CLASSES
from .constants import ATTR_CASE, ATTR_KIND, ATTR_RUN, ATTR_SEQUENCE, SEQUENCE_TITLES
from .i18n import tr
from .nodes import (arrayFromVtkMatrix, niftiArrayFromVolume, readVolumeFile, removeNodeAndHelpers,
                    updateVolumeFromNiftiArray, writeVolumeFile)


class InputsMixin:
    """Case folders and ground truths into the scene; the Apply button's input check; export for the analysis."""

    def loadCase(self, folder, optional=("t1", "t2")) -> dict:
        """Load a BraTS case folder: {sequence: volume node} plus 'seg' (a segmentation) if it has one.

        Read through Slicer's storage nodes (nothing beyond Slicer's bundled Python is needed).
        Sequences in ``optional`` may be absent from the folder (a checkpoint decides whether the
        analysis can do without them; the Apply check says so).  On any error no node is left behind.
        """
        from ..io.case_files import scan_case

        found = scan_case(folder, optional=tuple(optional))
        batch = f"{found.case_id} {uuid.uuid4().hex[:8]}"  # this load's volumes only are paired by auto-fill
        nodes = {}
        try:
            for seq in SEQUENCES:
                if seq in found.files:
                    nodes[seq] = self.loadSequenceVolume(found.files[seq], seq, found.case_id)
                    nodes[seq].SetAttribute(ATTR_CASE, batch)
            if "seg" in found.files:
                nodes["seg"] = self.loadGroundTruth(found.files["seg"], found.case_id, found.naming)
        except Exception:
            for node in nodes.values():
                removeNodeAndHelpers(self.scene, node)
            raise
        return nodes

    def loadSequenceVolume(self, path, sequence: str, caseId: str):
        node = readVolumeFile(self.scene, path, f"{caseId}_{sequence}")
        node.SetAttribute(ATTR_SEQUENCE, sequence)
        return node

    def loadGroundTruth(self, path, caseId: str, naming: str = "brats2021"):
        """Ground-truth label file as a segmentation with the NCR/ED/ET segments."""
        from ..io.labels import detect_label_convention, to_internal

        labelmap = readVolumeFile(self.scene, path, f"{caseId} ground truth labels", "vtkMRMLLabelMapVolumeNode",
                                  keepStorage=False)
        try:
            data, affine = niftiArrayFromVolume(labelmap)
        finally:
            removeNodeAndHelpers(self.scene, labelmap)
        values = np.unique(data)
        convention = detect_label_convention(values)
        if convention is None:
            raise BrainTumorXAIError(tr("{path}: label values {values} fit neither BraTS convention").format(
                path=path, values=values.tolist()))
        if convention == "ambiguous":
            convention = "brats2023" if naming == "brats2023" else "brats2021"
        classes = to_internal(data.astype(np.int64), convention)
        node = self._segmentationFromClasses(classes, affine, f"{caseId} ground truth")
        node.SetAttribute(ATTR_KIND, "ground_truth")
        self.styleGroundTruth(node)
        return node

    @staticmethod
    def styleGroundTruth(node) -> None:
        """Reference segmentation out of the prediction's way: outline only in the slice views
        (the prediction is filled in the same class colours), hidden in 3D until asked for."""
        display = node.GetDisplayNode()
        if display is None:
            node.CreateDefaultDisplayNodes()
            display = node.GetDisplayNode()
        display.SetVisibility(True)
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)
        display.SetVisibility3D(False)
        display.SetSliceIntersectionThickness(2)

    def groundTruthNodes(self) -> list:
        """Segmentations loaded as ground truth (loadCase) in the scene."""
        nodes = self.scene.GetNodesByClass("vtkMRMLSegmentationNode")
        found = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
        return [n for n in found if n.GetAttribute(ATTR_KIND) == "ground_truth"]

    @staticmethod
    def caseKey(scene, node) -> str:
        """The case a volume belongs to, for pairing inputs: its *Load case* batch, else its subject-hierarchy
        parent (a DICOM study, a folder); '' for volumes loaded loose (Add Data), which count as one case."""
        batch = node.GetAttribute(ATTR_CASE)
        if batch:
            return f"load:{batch}"
        shNode = scene.GetSubjectHierarchyNode()
        item = shNode.GetItemByDataNode(node) if shNode is not None else 0
        parent = shNode.GetItemParent(item) if item else 0
        return f"item:{parent}" if parent and parent != shNode.GetSceneItemID() else ""

    @staticmethod
    def _candidateVolumes(scene) -> list:
        """Scalar volumes that may be inputs (no label maps, no analysis outputs), in the order they were added."""
        volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
        return [v for v in volumes if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(ATTR_KIND)]

    @classmethod
    def findSequenceVolumes(cls, scene, caseKey: str | None = None) -> dict:
        """Guess {sequence: node} from volume names in ``scene`` (BraTS 2021 and 2023 names, plain names);
        with ``caseKey`` among the volumes of that case only (:meth:`caseKey`)."""
        # Checked in order: the more specific spellings first, so "t1ce" is not taken for "t1".
        patterns = {
            "t1ce": ("t1ce", "t1c", "t1gd", "t1-ce", "t1_ce", "t1post", "t1 ce", "t1+c"),
            "flair": ("flair", "t2f", "t2-flair", "t2_flair"),
            "t2": ("t2w", "t2"),
            "t1": ("t1n", "t1w", "t1"),
        }
        found: dict = {}
        volumes = cls._candidateVolumes(scene)
        if caseKey is not None:
            volumes = [v for v in volumes if cls.caseKey(scene, v) == caseKey]
        for v in volumes:  # an explicit tag beats any name
            seq = v.GetAttribute(ATTR_SEQUENCE)
            if seq in SEQUENCES and seq not in found:
                found[seq] = v
        taken = {v.GetID() for v in found.values()}
        for seq, keys in patterns.items():
            if seq in found:
                continue
            for v in volumes:
                if v.GetID() in taken:
                    continue
                name = (v.GetName() or "").lower()
                tokens = [t for t in name.replace("-", "_").replace(" ", "_").replace(".", "_").split("_") if t]
                last = tokens[-1] if tokens else ""
                if any(last == k or name.endswith(k) for k in keys) or any(t in keys for t in tokens):
                    found[seq] = v
                    taken.add(v.GetID())
                    break
        return {seq: found[seq] for seq in SEQUENCES if seq in found}

    def resultVolumeIDs(self) -> list[str]:
        """IDs of the scalar volumes that are analysis outputs (maps of a run): kept out of the input selectors."""
        volumes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        nodes = [volumes.GetItemAsObject(i) for i in range(volumes.GetNumberOfItems())]
        return [n.GetID() for n in nodes if n.GetAttribute(ATTR_KIND)]

    def runOutputIDs(self) -> list[str]:
        """IDs of every node a run made (its segmentation and label map too): kept out of the ground-truth selector."""
        nodes = self.scene.GetNodes()
        found = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
        return [n.GetID() for n in found if n.GetAttribute(ATTR_RUN)]

    @classmethod
    def autoFillChoice(cls, current: dict, scene, overwrite: bool = False) -> dict:
        """{sequence: node} to set in the input selectors from the volume names in ``scene``.

        A selector is (re)filled when it is empty, when it shows the same volume as another one
        (a stale or accidental choice), when it shows an analysis output, or always with ``overwrite``;
        it is never set to a volume another selector keeps, nor to a volume of another case
        (:meth:`caseKey`) than the T1ce shown (else the inputs kept, else the volume added last):
        one patient's T1ce is never paired with another patient's T1.
        """
        chosen = dict(current)

        def nodeId(node):
            return node.GetID() if node is not None else None

        def elsewhere(seq, node):
            return node is not None and any(nodeId(chosen.get(o)) == node.GetID() for o in SEQUENCES if o != seq)

        def refilled(seq):
            node = chosen.get(seq)
            return overwrite or node is None or bool(node.GetAttribute(ATTR_KIND)) or elsewhere(seq, node)

        anchors = [chosen.get("t1ce")] + [chosen.get(s) for s in SEQUENCES if not refilled(s)]
        anchors = [n for n in anchors if n is not None and not n.GetAttribute(ATTR_KIND)] \
            or cls._candidateVolumes(scene)[-1:]
        found = cls.findSequenceVolumes(scene, cls.caseKey(scene, anchors[0])) if anchors else {}

        for seq in SEQUENCES:
            node = chosen.get(seq)
            if not refilled(seq):
                continue
            candidate = found.get(seq)
            if candidate is not None and not elsewhere(seq, candidate):
                chosen[seq] = candidate
            elif node is not None and node.GetAttribute(ATTR_KIND):
                chosen[seq] = None
        return {s: chosen.get(s) for s in SEQUENCES if nodeId(chosen.get(s)) != nodeId(current.get(s))}

    @staticmethod
    def inputProblem(volumes: dict, groundTruth=None, optional=()) -> str:
        """Why these inputs cannot be analysed ('' when they can); the Apply button's tooltip.

        ``volumes`` is {sequence: volume node or None}.  Checks what the analysis process would
        reject: missing or repeated inputs, volumes without 3D image data or with a single value,
        transformed volumes (the export writes voxels and IJKToRAS only), sequences whose grid does
        not overlap the T1ce grid in space (other grids are resampled), and a ground truth without
        NCR/ED/ET segments or with values outside the BraTS labels.  Sequences in ``optional`` (those
        the chosen checkpoint can do without) may be left empty.
        """
        titles = SEQUENCE_TITLES
        optional = set(optional) - {"t1ce"}  # the reference grid is never optional
        missing = [titles[s] for s in SEQUENCES if volumes.get(s) is None and s not in optional]
        if missing:
            return tr("Select the input volume(s): {names}").format(names=", ".join(missing))
        given = [s for s in SEQUENCES if volumes.get(s) is not None]
        if len({volumes[s].GetID() for s in given}) < len(given):
            return tr("Each input must be a different volume")
        grids = {}
        for seq in given:
            node = volumes[seq]
            image = node.GetImageData()
            if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
                return tr("{title} ({name}) has no image data").format(title=titles[seq], name=node.GetName())
            dims = tuple(image.GetDimensions())
            if min(dims) < 2:
                return tr("{title} ({name}) is not a 3D volume (dimensions {dims})").format(
                    title=titles[seq], name=node.GetName(), dims="x".join(str(d) for d in dims))
            if image.GetNumberOfScalarComponents() != 1:
                return tr("{title} ({name}) has {n} components; expected a scalar volume").format(
                    title=titles[seq], name=node.GetName(), n=image.GetNumberOfScalarComponents())
            lo, hi = image.GetScalarRange()
            if lo == hi:
                return tr("{title} ({name}) is empty: every voxel is {value}").format(
                    title=titles[seq], name=node.GetName(), value=f"{lo:g}")
            if node.GetParentTransformNode() is not None:
                return tr("{title} ({name}) is transformed: harden or remove the transform first").format(
                    title=titles[seq], name=node.GetName())
            m = vtk.vtkMatrix4x4()
            node.GetIJKToRASMatrix(m)
            grids[seq] = (dims, arrayFromVtkMatrix(m))
        refShape, refAffine = grids["t1ce"]
        for seq in given:
            shape, affine = grids[seq]
            if seq != "t1ce" and not _gridsOverlap(shape, affine, refShape, refAffine):
                return tr("{title} ({name}) does not overlap the T1ce volume in space (dimensions {dims} vs {refDims}); "
                          "it cannot be resampled onto the T1ce grid").format(
                    title=titles[seq], name=volumes[seq].GetName(), dims="x".join(str(d) for d in shape),
                    refDims="x".join(str(d) for d in refShape))
        if groundTruth is None:
            return ""
        name = groundTruth.GetName()
        if groundTruth.GetAttribute(ATTR_RUN):
            return tr("Ground truth {name} is a result of {run}, not a reference segmentation").format(
                name=name, run=groundTruth.GetAttribute(ATTR_RUN))
        if groundTruth.IsA("vtkMRMLSegmentationNode"):
            segmentation = groundTruth.GetSegmentation()
            absent = [c for c in TUMOUR_CLASSES if not segmentation.GetSegmentIdBySegmentName(c)]
            if absent:
                return tr("Ground truth {name} has no segment named {absent} (needs segments {needed})").format(
                    name=name, absent=", ".join(absent), needed=", ".join(TUMOUR_CLASSES))
            return ""
        if groundTruth.IsA("vtkMRMLScalarVolumeNode"):
            image = groundTruth.GetImageData()
            if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
                return tr("Ground truth {name} has no image data").format(name=name)
            lo, hi = image.GetScalarRange()
            if lo < 0 or hi > 4:
                return tr("Ground truth {name} has label values {lo}..{hi}; expected BraTS labels 0-4").format(
                    name=name, lo=f"{lo:g}", hi=f"{hi:g}")
            if groundTruth.GetParentTransformNode() is not None:
                return tr("Ground truth {name} is transformed: harden or remove the transform first").format(name=name)
            m = vtk.vtkMatrix4x4()
            groundTruth.GetIJKToRASMatrix(m)
            if not _gridsOverlap(tuple(image.GetDimensions()), arrayFromVtkMatrix(m), refShape, refAffine):
                return tr("Ground truth {name} does not overlap the T1ce volume in space").format(name=name)
            return ""
        return tr("Ground truth {name} is neither a segmentation nor a label map").format(name=name)

    def exportInputs(self, volumes: dict, folder, caseId: str = "BrainTumorXAI", groundTruth=None,
                     optional=()) -> Path:
        """Write the selected nodes as a BraTS 2021-named NIfTI case folder for the background process.

        Written by Slicer's storage nodes (no nibabel in the GUI process) uncompressed (``.nii``): this runs on
        the GUI thread and the files live only until the run ends.  Sequences in ``optional`` left empty are
        simply not written; the analysis reads the checkpoint and runs without them.
        """
        folder = Path(folder)
        missing = [s for s in SEQUENCES if volumes.get(s) is None and s not in optional]
        if missing:
            raise BrainTumorXAIError(tr("missing input volume(s): {names}").format(names=", ".join(missing)))
        folder.mkdir(parents=True, exist_ok=True)
        for seq in SEQUENCES:
            if volumes.get(seq) is not None:
                writeVolumeFile(volumes[seq], folder / f"{caseId}_{seq}.nii", compress=False)
        if groundTruth is not None:
            self._exportGroundTruth(groundTruth, volumes["t1ce"], folder / f"{caseId}_seg.nii")
        return folder

    def exportBrainMask(self, segmentationNode, referenceVolume, path) -> Path:
        """"Use this segmentation as the brain mask": its visible segments as one 0/1 mask on the T1ce volume's grid
        (for ``--brain-mask``)."""
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BrainTumorXAI brain mask export")
        try:
            slicer.vtkSlicerSegmentationsModuleLogic.ExportVisibleSegmentsToLabelmapNode(segmentationNode, labelmap,
                                                                                        referenceVolume)
            data, affine = niftiArrayFromVolume(labelmap)
            updateVolumeFromNiftiArray(labelmap, (np.asarray(data) > 0).astype(np.uint8), affine)
            return writeVolumeFile(labelmap, path)
        finally:
            self.scene.RemoveNode(labelmap)

    def _exportGroundTruth(self, node, referenceVolume, path) -> Path:
        """The ground truth as a BraTS 2021 label file on the reference volume's grid (storage node, no nibabel)."""
        from ..io.labels import from_internal

        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BrainTumorXAI export")
        try:
            if node.IsA("vtkMRMLSegmentationNode"):
                ids = vtk.vtkStringArray()
                segmentation = node.GetSegmentation()
                for name in TUMOUR_CLASSES:
                    segmentId = segmentation.GetSegmentIdBySegmentName(name)
                    if not segmentId:
                        raise BrainTumorXAIError(tr("ground truth {node}: no segment named {name}").format(
                            node=node.GetName(), name=name))
                    ids.InsertNextValue(segmentId)
                slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(node, ids, labelmap, referenceVolume)
                classes, affine = niftiArrayFromVolume(labelmap)  # label i+1 = ids[i] = internal class
                data = from_internal(classes, "brats2021")
            else:
                data, affine = niftiArrayFromVolume(node)
            updateVolumeFromNiftiArray(labelmap, np.asarray(data, dtype=np.uint8), affine)
            return writeVolumeFile(labelmap, path, compress=False)
        finally:
            self.scene.RemoveNode(labelmap)


def _gridsOverlap(shape, affine, refShape, refAffine) -> bool:
    """Whether two voxel grids (voxel i covering i - 0.5 .. i + 0.5) meet in world space.

    Same test as ``grid.grids_overlap`` (which the analysis uses), in numpy alone: the
    Apply-button check runs in Slicer's GUI process, where scipy may not be installed yet.
    """
    corners = np.array([[x, y, z, 1.0] for x in (-0.5, refShape[0] - 0.5) for y in (-0.5, refShape[1] - 0.5)
                        for z in (-0.5, refShape[2] - 0.5)])
    inSource = corners @ (np.linalg.inv(np.asarray(affine, float)) @ np.asarray(refAffine, float)).T
    lo, hi = inSource[:, :3].min(axis=0), inSource[:, :3].max(axis=0)
    n = np.asarray(shape[:3], dtype=float)
    return bool(np.all(hi > -0.5) and np.all(lo < n - 0.5))


def safeCaseId(name: str) -> str:
    """A case id for the exported BraTS 2021 file names (no separators that the naming uses)."""
    stem = name
    suffixes = sorted({s for naming in NAMINGS.values() for key, s in naming.items() if key != "seg"}, key=len)
    for suffix in reversed(suffixes):  # longest first: "_t1ce" before "_t1"
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    cleaned = "".join(ch if ch.isalnum() or ch in "-" else "-" for ch in stem).strip("-")
    return cleaned or "BrainTumorXAI"
