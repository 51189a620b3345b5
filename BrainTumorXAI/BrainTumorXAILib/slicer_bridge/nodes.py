"""Volume files <-> MRML volume nodes, and the numpy view of a node.

Inside Slicer's GUI process nothing beyond Slicer's bundled Python may be needed before
the analysis runs (nibabel is installed only then), so files are read and written through
Slicer's own storage nodes (:func:`readVolumeFile`, :func:`writeVolumeFile`):
``vtkMRMLVolumeArchetypeStorageNode`` reads NIfTI with ITK, exactly as *Add Data* does.
These storage nodes are part of the slicer-core wheel too, so this is tested headlessly.

Geometry: a node read from a NIfTI file holds the same voxels at the same RAS positions
as nibabel's view of the file.  Slicer's reader (vtkITKArchetypeImageSeriesReader, Slicer
5.6.2-5.10.0) turns a left-handed voxel grid into the equivalent right-handed one (k
reversed), so the node's IJKToRAS is the NIfTI affine only up to that index flip; every
output of a run is on the grid of the exported input node, so they all match each other.
:func:`niftiArrayFromVolume` is the node's data as an (i, j, k) array with its IJKToRAS.

Before a file is handed to ITK its NIfTI header is checked in pure Python
(:func:`niftiHeaderProblem`): an image without a valid orientation (qform and sform codes
0 and a zero voxel size) is refused with one line naming the file, as ``load_case`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import vtk
from vtk.util import numpy_support

from ..errors import BrainTumorXAIError
from .i18n import tr


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
        raise BrainTumorXAIError(tr("{path}: file not found").format(path=path))
    try:
        img = nib.load(str(path))
        shape = tuple(img.shape)
        while len(shape) > 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != 3:
            raise BrainTumorXAIError(tr("{path}: {n}D image of shape {shape}; expected 3D").format(
                path=path, n=len(img.shape), shape=img.shape))
        proxy = img.dataobj
        scaled = getattr(proxy, "slope", 1.0) != 1.0 or getattr(proxy, "inter", 0.0) != 0.0
        data = np.asanyarray(proxy) if not scaled else np.asarray(proxy, dtype=np.float32)
        data = np.asarray(data).reshape(shape)
    except BrainTumorXAIError:
        raise
    except Exception as exc:  # nibabel/gzip raise many types for damaged files
        raise BrainTumorXAIError(tr("{path}: cannot read as NIfTI ({error})").format(
            path=path, error=f"{type(exc).__name__}: {exc}")) from exc
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


# -- files through Slicer's storage nodes ----------------------------------------------

def niftiHeaderProblem(path) -> str:
    """Why a NIfTI file's geometry cannot be trusted ('' when it can), read from the raw header without
    nibabel: the same rule as ``load_case`` (``io.case_io.nifti_orientation_problem``)."""
    from ..io.nifti_header import nifti_orientation_problem

    return nifti_orientation_problem(path)


def removeNodeAndHelpers(scene, node) -> None:
    """Remove ``node`` with its display and storage nodes (a bare ``RemoveNode`` leaves those behind
    outside the application, where no subject-hierarchy plugin cleans up)."""
    helpers = []
    for i in range(node.GetNumberOfDisplayNodes() if hasattr(node, "GetNumberOfDisplayNodes") else 0):
        helpers.append(node.GetNthDisplayNode(i))
    for i in range(node.GetNumberOfStorageNodes() if hasattr(node, "GetNumberOfStorageNodes") else 0):
        helpers.append(node.GetNthStorageNode(i))
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is scene:
            scene.RemoveNode(helper)


def _storageNode(scene, path, nodeClass: str):
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)  # never pick up neighbouring files as a series
    return storage


def readVolumeFile(scene, path, name: str, nodeClass: str = "vtkMRMLScalarVolumeNode", keepStorage: bool = True):
    """Add a volume node read from ``path`` by Slicer's archetype storage node (ITK); errors name the file.

    With ``keepStorage`` the node keeps its storage node (saving the scene refers to the file, as
    after *Add Data*); without, the node holds in-memory data only, so the file may be deleted
    (temporary analysis outputs) and saving the scene writes the data anew.
    """
    from ..errors import CaseError

    path = Path(path)
    if not path.is_file():
        raise CaseError(path, tr("file not found"))
    problem = niftiHeaderProblem(path)
    if problem:
        raise CaseError(path, problem)
    node = scene.AddNewNodeByClass(nodeClass, name)
    storage = _storageNode(scene, path, nodeClass)
    ok = False
    try:
        ok = bool(storage.ReadData(node)) and node.GetImageData() is not None
    finally:
        if not ok:
            scene.RemoveNode(storage)
            scene.RemoveNode(node)
    if not ok:
        raise CaseError(path, tr("Slicer could not read this file as a volume"))
    dims = node.GetImageData().GetDimensions()
    if min(dims) < 1 or node.GetImageData().GetNumberOfScalarComponents() != 1:
        scene.RemoveNode(storage)
        scene.RemoveNode(node)
        raise CaseError(path, tr("not a single 3D scalar volume (dimensions {dims})").format(dims=dims))
    if keepStorage:
        node.SetAndObserveStorageNodeID(storage.GetID())
    else:
        node.SetAndObserveStorageNodeID(None)
        scene.RemoveNode(storage)
    node.CreateDefaultDisplayNodes()
    return node


def writeVolumeFile(volumeNode, path, compress: bool = True) -> Path:
    """Write a volume node as NIfTI (or any format Slicer writes by extension) with a temporary storage node.

    The node's own storage node (the file it was loaded from) is left untouched.  ITK writes
    qform and sform (code 1, scanner) from the node's IJKToRAS.  ``compress=False`` writes the
    data as it is (``.nii``): much faster, for temporary files.
    """
    path = Path(path)
    scene = volumeNode.GetScene()
    storage = _storageNode(scene, path, volumeNode.GetClassName())
    storage.SetUseCompression(bool(compress))
    try:
        if not storage.WriteData(volumeNode) or not path.is_file():
            raise BrainTumorXAIError(tr("{path}: Slicer could not write {name}").format(path=path,
                                                                                     name=volumeNode.GetName()))
    finally:
        scene.RemoveNode(storage)
    return path
