"""Marching-cubes surfaces of the brain and the tumour subregions, in world coordinates.

The pipeline mirrors Slicer's labelmap -> closed-surface conversion: flying
edges on the binary mask in voxel index space, windowed-sinc smoothing whose
pass band follows Slicer's "smoothing factor" (default 0.5), then the NIfTI
affine maps the points to RAS millimetres, so flipped and oblique headers are
exact.  Files follow Slicer's model convention: points stored in LPS with a
``SPACE=LPS`` marker (a field-data string array in .vtp, as Slicer writes it);
STL cannot carry the marker and is written in LPS, which Slicer assumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support

from .labels import CLASS_NAMES, TUMOUR_CLASSES

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACE_ARRAY = "SPACE"


def _image_from_mask(mask: np.ndarray) -> vtk.vtkImageData:
    """Mask in voxel index space, padded by one voxel so every surface closes."""
    padded = np.pad(np.asarray(mask, np.uint8), 1)
    image = vtk.vtkImageData()
    image.SetDimensions(*padded.shape)
    image.SetOrigin(-1.0, -1.0, -1.0)  # index 0 of the original stays at 0
    flat = np.ascontiguousarray(padded.transpose(2, 1, 0)).ravel()  # VTK: x fastest
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    return image


def _pass_band(smoothing: float) -> float:
    # Slicer's labelmap -> closed surface rule: 0 -> 1 (almost none), 0.5 -> 0.01, 1 -> 0.0001.
    return 10.0 ** (-4.0 * float(np.clip(smoothing, 0.0, 1.0)))


def _matrix(affine: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(affine[r, c]))
    return m


def _transformed(polydata: vtk.vtkPolyData, affine: np.ndarray) -> vtk.vtkPolyData:
    transform = vtk.vtkTransform()
    transform.SetMatrix(_matrix(affine))
    f = vtk.vtkTransformPolyDataFilter()
    f.SetTransform(transform)
    f.SetInputData(polydata)
    f.Update()
    out = f.GetOutput()
    if np.linalg.det(affine[:3, :3]) < 0:  # a mirroring transform turns the triangles inside out
        rev = vtk.vtkReverseSense()
        rev.SetInputData(out)
        rev.ReverseCellsOn()
        rev.Update()
        out = rev.GetOutput()
    return out


def mask_surface(mask, affine, *, smoothing: float = 0.5, decimation: float = 0.0) -> vtk.vtkPolyData:
    """Closed, smoothed triangle surface of a binary mask, in RAS mm, with outward normals."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return vtk.vtkPolyData()
    fe = vtk.vtkDiscreteFlyingEdges3D()
    fe.SetInputData(_image_from_mask(mask))
    fe.SetValue(0, 1)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    surface = fe.GetOutput()
    if decimation > 0:
        dec = vtk.vtkDecimatePro()
        dec.SetInputData(surface)
        dec.SetTargetReduction(float(decimation))
        dec.PreserveTopologyOn()
        dec.Update()
        surface = dec.GetOutput()
    if smoothing > 0:
        smoother = vtk.vtkWindowedSincPolyDataFilter()
        smoother.SetInputData(surface)
        smoother.SetNumberOfIterations(20)
        smoother.SetPassBand(_pass_band(smoothing))
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.NormalizeCoordinatesOn()
        smoother.Update()
        surface = smoother.GetOutput()
    surface = _transformed(surface, np.asarray(affine, float))
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()  # closed surfaces: normals point outward
    normals.SplittingOff()
    normals.Update()
    return normals.GetOutput()


def case_surfaces(classes, brain_mask, affine, *, smoothing: float = 0.5) -> dict[str, vtk.vtkPolyData]:
    """Surfaces of the brain and of each tumour class (NCR, ED, ET)."""
    classes = np.asarray(classes)
    out = {"brain": mask_surface(brain_mask, affine, smoothing=smoothing)}
    for name in TUMOUR_CLASSES:
        out[name] = mask_surface(classes == CLASS_NAMES.index(name), affine, smoothing=smoothing)
    return out


def _to_space(polydata: vtk.vtkPolyData, matrix: np.ndarray) -> vtk.vtkPolyData:
    transform = vtk.vtkTransform()
    transform.SetMatrix(_matrix(matrix))
    f = vtk.vtkTransformPolyDataFilter()
    f.SetTransform(transform)
    f.SetInputData(polydata)
    f.Update()
    return f.GetOutput()


def write_surface(polydata: vtk.vtkPolyData, path, coordinate_system: str = "LPS") -> Path:
    """Write .vtp/.vtk (tagged with Slicer's SPACE marker) or .stl (LPS, Slicer's assumption)."""
    path = Path(path)
    system = coordinate_system.upper()
    if system not in ("LPS", "RAS"):
        raise ValueError(f"coordinate system must be LPS or RAS, got {coordinate_system!r}")
    data = _to_space(polydata, RAS_TO_LPS) if system == "LPS" else polydata
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".vtp":
        tag = vtk.vtkStringArray()
        tag.SetName(SPACE_ARRAY)
        tag.InsertNextValue(system)
        data.GetFieldData().AddArray(tag)
        writer = vtk.vtkXMLPolyDataWriter()
    elif suffix == ".vtk":
        writer = vtk.vtkPolyDataWriter()
        writer.SetHeader(f"3D Slicer output. SPACE={system}")
    elif suffix == ".stl":
        if system != "LPS":
            raise ValueError("STL files carry no coordinate tag: they are written in LPS, as Slicer assumes")
        writer = vtk.vtkSTLWriter()
        writer.SetFileTypeToBinary()
    else:
        raise ValueError(f"{path}: unsupported surface format (use .vtp, .vtk or .stl)")
    writer.SetFileName(str(path))
    writer.SetInputData(data)
    if not writer.Write():
        raise OSError(f"{path}: could not write the surface")
    return path


def read_surface(path) -> vtk.vtkPolyData:
    """Read a surface written by ``write_surface`` (or Slicer) back into RAS."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".vtp":
        reader = vtk.vtkXMLPolyDataReader()
    elif suffix == ".vtk":
        reader = vtk.vtkPolyDataReader()
    elif suffix == ".stl":
        reader = vtk.vtkSTLReader()
    else:
        raise ValueError(f"{path}: unsupported surface format")
    reader.SetFileName(str(path))
    reader.Update()
    data = reader.GetOutput()
    system = "LPS"  # Slicer's assumption for untagged files
    if suffix == ".vtp":
        tag = data.GetFieldData().GetAbstractArray(SPACE_ARRAY)
        if tag is not None and tag.GetNumberOfValues():
            system = tag.GetValue(0).upper()
    elif suffix == ".vtk":
        header = reader.GetHeader() or ""
        if "SPACE=RAS" in header.upper():
            system = "RAS"
    return _to_space(data, RAS_TO_LPS) if system == "LPS" else data


def write_case_surfaces(surfaces: dict[str, vtk.vtkPolyData], out_dir) -> dict[str, dict[str, Path]]:
    """``<name>.vtp`` and ``<name>.stl`` for every non-empty surface."""
    out_dir = Path(out_dir)
    written = {}
    for name, poly in surfaces.items():
        if poly.GetNumberOfPoints() == 0:
            continue
        written[name] = {fmt: write_surface(poly, out_dir / f"{name}.{fmt}") for fmt in ("vtp", "stl")}
    return written


def surface_stats(polydata: vtk.vtkPolyData) -> dict:
    """Point/cell counts, area (mm2), enclosed volume (mm3) and RAS bounds."""
    if polydata.GetNumberOfPoints() == 0:
        return {"n_points": 0, "n_cells": 0, "area_mm2": 0.0, "volume_mm3": 0.0, "bounds": None}
    tri = vtk.vtkTriangleFilter()
    tri.SetInputData(polydata)
    mass = vtk.vtkMassProperties()
    mass.SetInputConnection(tri.GetOutputPort())
    mass.Update()
    return {"n_points": polydata.GetNumberOfPoints(), "n_cells": polydata.GetNumberOfCells(),
            "area_mm2": mass.GetSurfaceArea(), "volume_mm3": mass.GetVolume(), "bounds": list(polydata.GetBounds())}
