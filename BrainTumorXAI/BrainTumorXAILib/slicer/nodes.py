"""NIfTI <-> MRML volume node, the one geometry rule every volume goes through.

The node's IJKToRAS matrix is the NIfTI affine unchanged, and the node's array
(k, j, i) is the nibabel array (i, j, k) transposed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import vtk
from vtk.util import numpy_support

from ..errors import BrainTumorXAIError


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
