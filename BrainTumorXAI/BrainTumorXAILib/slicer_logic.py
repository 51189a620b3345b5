"""BrainTumorXAILogic: everything the Slicer module does, without Qt.

It imports with the slicer-core wheel alone (tests, ``analyze --scene``, the
web viewer) and inside the Slicer application, where it derives from
``ScriptedLoadableModuleLogic``.  The scene is passed explicitly; by default
it is ``slicer.mrmlScene`` when that exists.

Geometry rule used everywhere (one helper, :func:`volumeNodeFromNifti`): the
node's IJKToRAS matrix is the NIfTI affine unchanged, and the node's array
(k, j, i) is the nibabel array (i, j, k) transposed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

import slicer
import vtk
from vtk.util import numpy_support

from .errors import BrainTumorXAIError
from .labels import CLASS_COLORS, CLASS_LONG_NAMES, CLASS_NAMES, CONVENTIONS, REGIONS, SEQUENCES, TUMOUR_CLASSES

try:  # inside the Slicer application
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as _LogicBase
except ImportError:  # slicer-core wheel: no Qt, no ScriptedLoadableModule

    class _LogicBase:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__.removesuffix("Logic")
            self.isSingletonParameterNode = True


# -- terminology --------------------------------------------------------------------
# Codes of Slicer's "DICOM master list" segmentation terminology (the same entries
# Slicer's General Anatomy list and MONAI Auto3DSeg's BraTS models use):
# category Morphologically Altered Structure (SCT 49755003); types Necrosis (SCT 6574001),
# Edema (SCT 79654002), Neoplasm, Primary (SCT 86049000); anatomic region Brain (SCT 12738006).
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
_CATEGORY = ("SCT", "49755003", "Morphologically Altered Structure")
_REGION = ("SCT", "12738006", "Brain")
TERMINOLOGY_TYPES = {
    "NCR": ("SCT", "6574001", "Necrosis"),
    "ED": ("SCT", "79654002", "Edema"),
    "ET": ("SCT", "86049000", "Neoplasm, Primary"),
}


def terminologyEntry(className: str) -> str:
    """Serialized Slicer terminology entry of a tumour class (vtkSegment.SetTerminology format)."""
    triple = "^".join
    return "~".join([TERMINOLOGY_CONTEXT, triple(_CATEGORY), triple(TERMINOLOGY_TYPES[className]), "^^",
                     ANATOMIC_CONTEXT, triple(_REGION), "^^"])


# -- display defaults -----------------------------------------------------------------
#: Colour node per overlay kind: the first one present in the scene wins (Slicer's file-based
#: tables like Inferno/Viridis exist in the application; the wheel has only the built-in ones).
OVERLAY_COLORS = {  # fallbacks chosen dark/cold at 0 and bright/hot at the maximum, like the first choice
    "probability": ("Inferno", "vtkMRMLColorTableNodeIron"),
    "variance": ("Viridis", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "entropy": ("Magma", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "mutual_information": ("Magma", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "gradcam": ("ColdToHotRainbow", "vtkMRMLPETProceduralColorNodePET-Rainbow2"),
}
OVERLAY_TITLES = {"probability": "probability", "variance": "MC variance", "entropy": "entropy",
                  "mutual_information": "mutual information", "gradcam": "Grad-CAM"}
BRAIN_COLOR = (0.90, 0.82, 0.76)
BRAIN_OPACITY = 0.15
PRESETS = {"tumour": TUMOUR_CLASSES, "tumor": TUMOUR_CLASSES, "ncr": ("NCR",), "ed": ("ED",), "et": ("ET",),
           "wt": ("NCR", "ED", "ET"), "tc": ("NCR", "ET"), "all": TUMOUR_CLASSES}

ATTR_RUN = "BrainTumorXAI.Run"  # folder name of the run a node belongs to
ATTR_KIND = "BrainTumorXAI.Kind"  # segmentation, labelmap, probability, variance, ..., brain, table, input
ATTR_CLASS = "BrainTumorXAI.Class"
ATTR_SEQUENCE = "BrainTumorXAI.Sequence"
ATTR_OUTPUT = "BrainTumorXAI.OutputFolder"
RUN_FOLDER_PREFIX = "BrainTumorXAI"
SEQUENCE_TITLES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}


# -- NIfTI <-> node -------------------------------------------------------------------
def vtkMatrixFromArray(a) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r][c]))
    return m


def arrayFromVtkMatrix(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def readNifti(path) -> tuple[np.ndarray, np.ndarray]:
    """(array in nibabel (i, j, k) order, affine) of a 3D NIfTI file; errors name the file."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise BrainTumorXAIError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        shape = tuple(img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise BrainTumorXAIError(f"{path}: {len(img.shape)}D image of shape {img.shape}; expected 3D")
        proxy = img.dataobj
        scaled = getattr(proxy, "slope", 1.0) != 1.0 or getattr(proxy, "inter", 0.0) != 0.0
        data = np.asanyarray(proxy) if not scaled else np.asarray(proxy, dtype=np.float32)
        data = np.asarray(data).reshape(shape)
    except BrainTumorXAIError:
        raise
    except Exception as exc:  # nibabel/gzip raise many types for damaged files
        raise BrainTumorXAIError(f"{path}: cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    elif data.dtype == bool:
        data = data.astype(np.uint8)
    return data, np.asarray(img.affine, dtype=np.float64)


def updateVolumeFromNiftiArray(volumeNode, data: np.ndarray, affine: np.ndarray) -> None:
    """Set image data and IJKToRAS of ``volumeNode`` from a nibabel-ordered array and its affine."""
    kji = np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0))
    image = vtk.vtkImageData()
    image.SetDimensions(*data.shape)  # VTK x = i, fastest varying in the (k, j, i) C-order buffer
    vtkArray = numpy_support.numpy_to_vtk(kji.ravel(), deep=True,
                                          array_type=numpy_support.get_vtk_array_type(kji.dtype))
    vtkArray.SetName("ImageScalars")
    image.GetPointData().SetScalars(vtkArray)
    volumeNode.SetIJKToRASMatrix(vtkMatrixFromArray(affine))
    volumeNode.SetAndObserveImageData(image)


def volumeNodeFromNifti(scene, path, name: str, nodeClass: str = "vtkMRMLScalarVolumeNode"):
    """Add a volume node read from a NIfTI file (the one loader every volume goes through)."""
    data, affine = readNifti(path)
    node = scene.AddNewNodeByClass(nodeClass, name)
    updateVolumeFromNiftiArray(node, data, affine)
    node.CreateDefaultDisplayNodes()
    return node


def niftiArrayFromVolume(volumeNode) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`updateVolumeFromNiftiArray`: ((i, j, k) array, affine)."""
    image = volumeNode.GetImageData()
    dims = image.GetDimensions()
    kji = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return np.ascontiguousarray(kji.transpose(2, 1, 0)), arrayFromVtkMatrix(m)


def writeNifti(volumeNode, path) -> Path:
    import nibabel as nib

    data, affine = niftiArrayFromVolume(volumeNode)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = Path(path)
    nib.save(img, str(path))
    return path


# -- background analysis process ----------------------------------------------------------
class AnalysisProcess:
    """``braintumorxai analyze`` in a separate process, read without blocking.

    A reader thread turns stdout lines starting with "{" into progress dicts
    ({"stage", "fraction", "message"}); :meth:`poll` hands them over (call it
    from a GUI timer).  :meth:`cancel` never blocks by default: it sends SIGINT
    to the whole process group (so the CLI removes its staging folder) and
    returns; later :meth:`poll` calls escalate to SIGKILL once ``grace`` seconds
    have passed, and when the process has exited they kill any stragglers of its
    group and delete ``cleanupPaths``, so a cancelled run leaves nothing behind.
    ``cancel(wait=True)`` does all of that before returning (shutdown, scripts).
    """

    def __init__(self, argv: list[str], env: dict | None = None, cleanupPaths=()):
        self.argv = list(argv)
        self.cleanupPaths = [Path(p) for p in cleanupPaths]
        self._queue: queue.Queue = queue.Queue()
        self._log: list[str] = []
        self.cancelled = False
        self._killDeadline: float | None = None  # time.monotonic() after which a cancelled run is killed
        self._killed = False
        self._finished = False
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # own process group: cancel reaches the children too
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        bufsize=1, env=env, **kwargs)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line.lstrip().startswith("{"):
                try:
                    self._queue.put(json.loads(line))
                    continue
                except ValueError:
                    pass
            self._log.append(line)
        self.process.stdout.close()

    def poll(self) -> tuple[list[dict], int | None]:
        """(new progress dicts, return code or None while running).

        After :meth:`cancel` this also kills the process group once the grace period is
        over, and cleans up (stragglers, ``cleanupPaths``) as soon as the process has exited.
        """
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        code = self.process.poll()
        if code is None and self.cancelled and not self._killed and self._killDeadline is not None \
                and time.monotonic() >= self._killDeadline:
            self._kill()
            try:
                code = self.process.wait(0.5)  # SIGKILL takes effect at once; reap it now if we can
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:
            self._reader.join(timeout=5)
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            if self.cancelled:
                self._finish()
        return items, code

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def log(self) -> str:
        """Everything the process printed that was not a progress line (errors end up here)."""
        return "\n".join(self._log)

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        if self.cancelled:
            self._finish()
        return code

    def cancel(self, grace: float = 5.0, wait: bool = False) -> None:
        """Interrupt the run: SIGINT to its process group now, SIGKILL from :meth:`poll` after ``grace`` s.

        Returns at once unless ``wait``; then it blocks until the process is gone and cleaned up.
        """
        if not self.cancelled:
            self.cancelled = True
            self._killDeadline = time.monotonic() + max(0.0, float(grace))
            if self.process.poll() is None:
                self._signal(None)
        if wait:
            try:
                self.process.wait(max(0.0, self._killDeadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill()
                self.process.wait()
            self.wait()

    def _signal(self, sig) -> None:
        try:
            if os.name == "nt":  # no process-group SIGINT on Windows: end the tree at once
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)], capture_output=True)
            else:
                os.killpg(self.process.pid, signal.SIGINT if sig is None else sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def _kill(self) -> None:
        self._killed = True
        self._signal(signal.SIGKILL if os.name != "nt" else None)

    def _finish(self) -> None:
        """After a cancelled run exited: end what is left of its process group, delete ``cleanupPaths``."""
        if self._finished:
            return
        self._finished = True
        if os.name != "nt":
            self._signal(signal.SIGKILL)  # children that outlived the interrupted CLI
        for path in self.cleanupPaths:
            shutil.rmtree(path, ignore_errors=True)


# -- the logic --------------------------------------------------------------------------
class BrainTumorXAILogic(_LogicBase):
    """Load BraTS cases and analysis results as MRML nodes, drive the background analysis."""

    def __init__(self, scene=None) -> None:
        _LogicBase.__init__(self)
        self.scene = scene if scene is not None else getattr(slicer, "mrmlScene", None)
        if self.scene is None:
            raise BrainTumorXAIError("no MRML scene: pass one (slicer_bootstrap.create_headless_scene())")

    # ---------------------------------------------------------------- inputs
    def loadCase(self, folder) -> dict:
        """Load a BraTS case folder: {sequence: volume node} plus 'seg' (a segmentation) if it has one."""
        from .case_io import scan_case

        found = scan_case(folder)
        nodes = {}
        for seq in SEQUENCES:
            if seq in found.files:
                nodes[seq] = self.loadSequenceVolume(found.files[seq], seq, found.case_id)
        if "seg" in found.files:
            nodes["seg"] = self.loadGroundTruth(found.files["seg"], found.case_id, found.naming)
        return nodes

    def loadSequenceVolume(self, path, sequence: str, caseId: str):
        node = volumeNodeFromNifti(self.scene, path, f"{caseId}_{sequence}")
        node.SetAttribute(ATTR_SEQUENCE, sequence)
        return node

    def loadGroundTruth(self, path, caseId: str, naming: str = "brats2021"):
        """Ground-truth label file as a segmentation with the NCR/ED/ET segments."""
        from .labels import detect_label_convention, to_internal

        data, affine = readNifti(path)
        values = np.unique(data)
        convention = detect_label_convention(values)
        if convention is None:
            raise BrainTumorXAIError(f"{path}: label values {values.tolist()} fit neither BraTS convention")
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
    def findSequenceVolumes(scene) -> dict:
        """Guess {sequence: node} from volume names in ``scene`` (BraTS 2021 and 2023 names, plain names)."""
        # Checked in order: the more specific spellings first, so "t1ce" is not taken for "t1".
        patterns = {
            "t1ce": ("t1ce", "t1c", "t1gd", "t1-ce", "t1_ce", "t1post", "t1 ce", "t1+c"),
            "flair": ("flair", "t2f", "t2-flair", "t2_flair"),
            "t2": ("t2w", "t2"),
            "t1": ("t1n", "t1w", "t1"),
        }
        found: dict = {}
        volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                   for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
        volumes = [v for v in volumes if not v.IsA("vtkMRMLLabelMapVolumeNode") and not v.GetAttribute(ATTR_KIND)]
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

    @staticmethod
    def inputProblem(volumes: dict, groundTruth=None) -> str:
        """Why these inputs cannot be analysed ('' when they can); the Apply button's tooltip.

        ``volumes`` is {sequence: volume node or None}.  Checks what the analysis process would
        reject: missing or repeated inputs, volumes without 3D image data or with a single value,
        transformed volumes (the export writes voxels and IJKToRAS only), sequences whose grid does
        not overlap the T1ce grid in space (other grids are resampled), and a ground truth without
        NCR/ED/ET segments or with values outside the BraTS labels.
        """
        titles = SEQUENCE_TITLES
        missing = [titles[s] for s in SEQUENCES if volumes.get(s) is None]
        if missing:
            return f"Select the input volume(s): {', '.join(missing)}"
        if len({volumes[s].GetID() for s in SEQUENCES}) < len(SEQUENCES):
            return "The four inputs must be four different volumes"
        grids = {}
        for seq in SEQUENCES:
            node = volumes[seq]
            image = node.GetImageData()
            if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
                return f"{titles[seq]} ({node.GetName()}) has no image data"
            dims = tuple(image.GetDimensions())
            if min(dims) < 2:
                return f"{titles[seq]} ({node.GetName()}) is not a 3D volume (dimensions {dims[0]}x{dims[1]}x{dims[2]})"
            if image.GetNumberOfScalarComponents() != 1:
                return f"{titles[seq]} ({node.GetName()}) has {image.GetNumberOfScalarComponents()} components; expected a scalar volume"
            lo, hi = image.GetScalarRange()
            if lo == hi:
                return f"{titles[seq]} ({node.GetName()}) is empty: every voxel is {lo:g}"
            if node.GetParentTransformNode() is not None:
                return f"{titles[seq]} ({node.GetName()}) is transformed: harden or remove the transform first"
            m = vtk.vtkMatrix4x4()
            node.GetIJKToRASMatrix(m)
            grids[seq] = (dims, arrayFromVtkMatrix(m))
        refShape, refAffine = grids["t1ce"]
        for seq in SEQUENCES:
            shape, affine = grids[seq]
            if seq != "t1ce" and not _gridsOverlap(shape, affine, refShape, refAffine):
                return (f"{titles[seq]} ({volumes[seq].GetName()}) does not overlap the T1ce volume in space "
                        f"(dimensions {shape[0]}x{shape[1]}x{shape[2]} vs {refShape[0]}x{refShape[1]}x{refShape[2]}); "
                        "it cannot be resampled onto the T1ce grid")
        if groundTruth is None:
            return ""
        name = groundTruth.GetName()
        if groundTruth.IsA("vtkMRMLSegmentationNode"):
            segmentation = groundTruth.GetSegmentation()
            absent = [c for c in TUMOUR_CLASSES if not segmentation.GetSegmentIdBySegmentName(c)]
            if absent:
                return (f"Ground truth {name} has no segment named {', '.join(absent)} "
                        f"(needs segments {', '.join(TUMOUR_CLASSES)})")
            return ""
        if groundTruth.IsA("vtkMRMLScalarVolumeNode"):
            image = groundTruth.GetImageData()
            if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
                return f"Ground truth {name} has no image data"
            lo, hi = image.GetScalarRange()
            if lo < 0 or hi > 4:
                return f"Ground truth {name} has label values {lo:g}..{hi:g}; expected BraTS labels 0-4"
            if groundTruth.GetParentTransformNode() is not None:
                return f"Ground truth {name} is transformed: harden or remove the transform first"
            m = vtk.vtkMatrix4x4()
            groundTruth.GetIJKToRASMatrix(m)
            if not _gridsOverlap(tuple(image.GetDimensions()), arrayFromVtkMatrix(m), refShape, refAffine):
                return f"Ground truth {name} does not overlap the T1ce volume in space"
            return ""
        return f"Ground truth {name} is neither a segmentation nor a label map"

    def exportInputs(self, volumes: dict, folder, caseId: str = "BrainTumorXAI", groundTruth=None) -> Path:
        """Write the selected nodes as a BraTS 2021-named NIfTI case folder for the background process."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        missing = [s for s in SEQUENCES if volumes.get(s) is None]
        if missing:
            raise BrainTumorXAIError(f"missing input volume(s): {', '.join(missing)}")
        for seq in SEQUENCES:
            writeNifti(volumes[seq], folder / f"{caseId}_{seq}.nii.gz")
        if groundTruth is not None:
            self._exportGroundTruth(groundTruth, volumes["t1ce"], folder / f"{caseId}_seg.nii.gz")
        return folder

    def _exportGroundTruth(self, node, referenceVolume, path) -> Path:
        import nibabel as nib

        from .labels import from_internal

        if node.IsA("vtkMRMLSegmentationNode"):
            ids = vtk.vtkStringArray()
            segmentation = node.GetSegmentation()
            for name in TUMOUR_CLASSES:
                segmentId = segmentation.GetSegmentIdBySegmentName(name)
                if not segmentId:
                    raise BrainTumorXAIError(f"ground truth {node.GetName()}: no segment named {name}")
                ids.InsertNextValue(segmentId)
            labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "BrainTumorXAI export")
            try:
                slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(node, ids, labelmap, referenceVolume)
                classes, affine = niftiArrayFromVolume(labelmap)  # label i+1 = ids[i] = internal class
            finally:
                self.scene.RemoveNode(labelmap)
            data = from_internal(classes, "brats2021")
        else:
            data, affine = niftiArrayFromVolume(node)
        img = nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine)
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
        nib.save(img, str(path))
        return Path(path)

    # ---------------------------------------------------------------- background process
    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's console Python (PythonSlicer) when running inside Slicer, else this interpreter."""
        exe_dir = Path(sys.executable).parent
        for name in ("PythonSlicer", "PythonSlicer.exe"):
            for candidate in (exe_dir / name, exe_dir.parent / "bin" / name):
                if candidate.is_file():
                    return str(candidate)
        found = shutil.which("PythonSlicer")
        return found or sys.executable

    @staticmethod
    def analysisEnvironment() -> dict:
        """Environment for the child: this package importable, unbuffered output."""
        env = dict(os.environ)
        libParent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (libParent, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def analysisCommand(self, caseFolder, outDir, weights=None, device: str = "auto", mcSamples: int = 20,
                        gradcamClasses=TUMOUR_CLASSES, python: str | None = None, extra=()) -> list[str]:
        """argv of ``python -m BrainTumorXAILib.cli analyze`` with machine-readable progress."""
        device = {"gpu": "cuda"}.get(str(device).lower(), str(device).lower())
        gradcam = ",".join(gradcamClasses) if gradcamClasses else "none"
        argv = [python or self.pythonExecutable(), "-m", "BrainTumorXAILib.cli", "analyze", str(caseFolder),
                "--out", str(outDir), "--device", device, "--mc-samples", str(int(mcSamples)),
                "--gradcam", gradcam, "--progress-json"]
        if weights:
            argv += ["--weights", str(weights)]
        return argv + list(extra)

    def startAnalysis(self, caseFolder, outDir, cleanupPaths=(), **kwargs) -> AnalysisProcess:
        return AnalysisProcess(self.analysisCommand(caseFolder, outDir, **kwargs), self.analysisEnvironment(),
                               cleanupPaths=cleanupPaths)

    # ---------------------------------------------------------------- results
    @staticmethod
    def readSummary(outDir) -> dict:
        outDir = Path(outDir)
        path = outDir / "summary.json"
        if not outDir.is_dir():
            raise BrainTumorXAIError(f"{outDir}: results folder not found")
        if not path.is_file():
            raise BrainTumorXAIError(f"{path}: not found (not a finished BrainTumorXAI results folder)")
        try:
            summary = json.loads(path.read_text())
        except ValueError as exc:
            raise BrainTumorXAIError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(summary, dict) or "outputs" not in summary or "case" not in summary:
            raise BrainTumorXAIError(f"{path}: no 'case'/'outputs' entries (not a BrainTumorXAI summary)")
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
            raise BrainTumorXAIError(f"{outDir / 'summary.json'}: unknown label convention {convention!r}")

        def path(rel):
            p = outDir / rel
            if not p.is_file():
                raise BrainTumorXAIError(f"{p}: listed in summary.json but missing")
            return p

        if not outputs.get("seg"):
            raise BrainTumorXAIError(f"{outDir / 'summary.json'}: no 'seg' output listed")
        shNode = self.scene.GetSubjectHierarchyNode()
        folder = self._newRunFolder(caseId)
        runName = shNode.GetItemName(folder)
        shNode.SetItemAttribute(folder, ATTR_OUTPUT, str(outDir))

        # Label map with a colour table named after the classes (values in the case's own convention).
        labelmap = volumeNodeFromNifti(self.scene, path(outputs["seg"]), f"{runName} labels", "vtkMRMLLabelMapVolumeNode")
        labelmap.GetDisplayNode().SetAndObserveColorNodeID(self._labelColorTable(convention).GetID())
        self._placeInFolder(labelmap, folder, runName, "labelmap")
        disk, affine = niftiArrayFromVolume(labelmap)
        from .labels import to_internal

        classes = to_internal(disk, convention)
        segmentation = self._segmentationFromClasses(classes, affine, f"{runName} segmentation")
        self._placeInFolder(segmentation, folder, runName, "segmentation")

        # Scalar maps: probabilities, MC variance, entropy, mutual information, Grad-CAM.
        def addMap(kind, rel, className=None):
            title = OVERLAY_TITLES[kind] + (f" {className}" if className else "")
            node = volumeNodeFromNifti(self.scene, path(rel), f"{runName} {title}")
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

        brainFiles = (outputs.get("surfaces") or {}).get("brain") or {}
        if brainFiles.get("vtp") or brainFiles.get("stl"):
            brain = self._loadSurface(path(brainFiles.get("vtp") or brainFiles["stl"]), f"{runName} brain")
            self._placeInFolder(brain, folder, runName, "brain")

        table = self._resultsTable(summary, f"{runName} results")
        self._placeInFolder(table, folder, runName, "table")
        if show:
            self.showOnly("tumour", folder)
        return folder

    def _segmentationFromClasses(self, classes: np.ndarray, affine: np.ndarray, name: str):
        """Segmentation with NCR/ED/ET segments sharing one labelmap (label value = internal class)."""
        segNode = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
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
            segment.SetTerminology(terminologyEntry(className))
            segment.SetColor(*CLASS_COLORS[className])
            # Keep our colour: an auto-generated colour would be replaced by the terminology's
            # recommended one (none for "Neoplasm, Primary" -> grey).
            segment.SetColorAutoGenerated(False)
            segment.SetTag("BrainTumorXAI.LongName", CLASS_LONG_NAMES[className])
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
        return segNode

    def _labelColorTable(self, convention: str):
        name = f"BrainTumorXAI {convention} labels"
        existing = self.scene.GetFirstNodeByName(name)
        if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
            return existing
        values = CONVENTIONS[convention]
        table = self.scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
        table.SetTypeToUser()
        table.SetNumberOfColors(max(values) + 1)
        for v in range(max(values) + 1):
            table.SetColor(v, "", 0.0, 0.0, 0.0, 0.0)
        table.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for index, value in enumerate(values):
            if index:
                className = CLASS_NAMES[index]
                table.SetColor(value, className, *CLASS_COLORS[className], 1.0)
        table.SetAttribute("Category", "BrainTumorXAI")
        return table

    def _colorNodeId(self, kind: str) -> str:
        for candidate in OVERLAY_COLORS[kind]:
            node = self.scene.GetNodeByID(candidate) or self.scene.GetFirstNodeByName(candidate)
            if node is not None and node.IsA("vtkMRMLColorNode"):
                return node.GetID()
        return "vtkMRMLColorTableNodeGrey"

    def _styleOverlay(self, node, kind: str) -> None:
        """Colour table, window/level on the map's meaningful range, near-zero voxels transparent."""
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self._colorNodeId(kind))
        display.SetAutoWindowLevel(False)
        lo, hi = node.GetImageData().GetScalarRange()
        if kind in ("probability", "gradcam"):
            lo, hi = 0.0, 1.0
        else:
            lo, hi = 0.0, max(float(hi), 1e-6)
        display.SetWindowLevelMinMax(lo, hi)
        # As a foreground layer only voxels carrying signal are drawn over the anatomy.
        display.SetLowerThreshold(lo + 0.02 * (hi - lo))
        display.SetUpperThreshold(hi + 1e6)
        display.ApplyThresholdOn()
        display.SetInterpolate(True)
        node.SetAttribute("BrainTumorXAI.Range", f"{lo:g} {hi:g}")

    def _loadSurface(self, path, name: str):
        from .surfaces import read_surface

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
        table.SetColumnDescription("Volume [cm3]", "Predicted volume")
        if metrics:
            table.SetColumnDescription("Dice", "Dice coefficient against the ground truth")
            table.SetColumnUnitLabel("HD95 [mm]", "mm")
        table.SetUseColumnTitleAsColumnHeader(True)
        return table

    # ---------------------------------------------------------------- run lookup and display
    def runFolders(self) -> list[int]:
        shNode = self.scene.GetSubjectHierarchyNode()
        children = vtk.vtkIdList()
        shNode.GetItemChildren(shNode.GetSceneItemID(), children, True)
        return [children.GetId(i) for i in range(children.GetNumberOfIds())
                if shNode.GetItemAttribute(children.GetId(i), ATTR_KIND) == "run"]

    def runNodes(self, folderItem: int | None = None) -> dict:
        """{'segmentation', 'labelmap', 'brain', 'table', 'overlays': {key: node}} of a run (default: latest).

        Overlay keys are 'probability:NCR', 'variance:ED', 'gradcam:ET', 'entropy', 'mutual_information'.
        Works from attributes, so also for runs restored from a saved scene.
        """
        if folderItem is None:
            folders = self.runFolders()
            if not folders:
                raise BrainTumorXAIError("no BrainTumorXAI results in the scene")
            folderItem = folders[-1]
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

    def setOverlay(self, volumeNode, opacity: float = 0.5, backgroundNode=None, colorLegend: bool = False) -> None:
        """Show ``volumeNode`` (or nothing) as the foreground layer of every slice view.

        With ``colorLegend`` the overlay gets a colour legend (title and value range of its
        colour table); the legends of all other BrainTumorXAI overlays are hidden either way.
        """
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            if backgroundNode is not None:
                composite.SetBackgroundVolumeID(backgroundNode.GetID())
            composite.SetForegroundVolumeID(volumeNode.GetID() if volumeNode is not None else None)
            composite.SetForegroundOpacity(float(opacity))
        for node in self._overlayNodes():
            if node is volumeNode:
                continue
            legend = self.colorLegend(node, create=False)
            if legend is not None:
                legend.SetVisibility(False)
        if volumeNode is not None:
            legend = self.colorLegend(volumeNode, create=colorLegend)
            if legend is not None:
                legend.SetVisibility(bool(colorLegend))

    def _overlayNodes(self) -> list:
        volumes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        found = [volumes.GetItemAsObject(i) for i in range(volumes.GetNumberOfItems())]
        return [n for n in found if n.GetAttribute(ATTR_KIND) in OVERLAY_TITLES]

    def colorLegend(self, volumeNode, create: bool = True):
        """The colour legend display node of an overlay volume (made on first use when ``create``), or None."""
        colorLogic = slicer.vtkSlicerColorLogic
        legend = colorLogic.GetColorLegendDisplayNode(volumeNode)
        if legend is not None or not create or volumeNode.GetDisplayNode() is None:
            return legend
        if not self.scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
            self.scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # bare scenes (slicer-core wheel)
        legend = colorLogic.AddDefaultColorLegendDisplayNode(volumeNode)
        if legend is None:
            return None
        kind = volumeNode.GetAttribute(ATTR_KIND)
        className = volumeNode.GetAttribute(ATTR_CLASS)
        title = OVERLAY_TITLES.get(kind, volumeNode.GetName()) + (f" {className}" if className else "")
        legend.SetName(f"{volumeNode.GetName()} legend")
        legend.SetTitleText(title)
        # Probabilities and Grad-CAM run 0..1; variance, entropy and MI can be small numbers.
        legend.SetLabelFormat("%.1f" if kind in ("probability", "gradcam") else "%.3g")
        legend.SetUseColorNamesForLabels(False)
        return legend

    def showOnly(self, preset: str, folderItem: int | None = None) -> None:
        """View presets: 'tumour' (all segments, no brain), 'NCR'/'ED'/'ET' (one segment), 'WT'/'TC'
        (the region's segments), 'all' (segments and the translucent brain)."""
        key = preset.strip().lower().replace(" + brain", "").replace(" only", "")
        if key not in PRESETS:
            raise ValueError(f"unknown view preset {preset!r}; expected tumour, NCR, ED, ET, WT, TC or all")
        nodes = self.runNodes(folderItem)
        visible = set(PRESETS[key])
        segNode = nodes.get("segmentation")
        if segNode is not None:
            display = segNode.GetDisplayNode()
            display.SetVisibility(True)
            for className in TUMOUR_CLASSES:
                display.SetSegmentVisibility(className, className in visible)
        brain = nodes.get("brain")
        if brain is not None:
            brain.GetDisplayNode().SetVisibility(key == "all")
        # A preset shows the prediction: ground-truth surfaces (same colours) would hide or mimic it.
        for groundTruth in self.groundTruthNodes():
            if groundTruth.GetDisplayNode() is not None:
                groundTruth.GetDisplayNode().SetVisibility3D(False)

    def saveSceneBundle(self, path) -> Path:
        """Write the whole scene as a Slicer data bundle (.mrb)."""
        path = Path(path).resolve()
        if path.suffix.lower() != ".mrb":
            raise BrainTumorXAIError(f"{path}: scene bundles must end in .mrb")
        path.parent.mkdir(parents=True, exist_ok=True)
        messages = slicer.vtkMRMLMessageCollection()
        cache = self.scene.GetCacheManager()
        if cache is not None and not cache.GetRemoteCacheDirectory():
            # Without a cache folder Slicer stages the bundle next to the file system root.
            import tempfile

            cache.SetRemoteCacheDirectory(tempfile.gettempdir())
        if not self.scene.WriteToMRB(str(path), None, messages) or not path.is_file():
            raise BrainTumorXAIError(f"{path}: could not write the scene bundle: {messages.GetAllMessagesAsString()}")
        return path


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


def _number(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


logging.getLogger(__name__).addHandler(logging.NullHandler())
