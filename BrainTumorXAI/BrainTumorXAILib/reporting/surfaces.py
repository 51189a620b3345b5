"""Marching-cubes surfaces of the brain and the tumour subregions, in world coordinates.

The pipeline mirrors Slicer's labelmap -> closed-surface conversion: flying
edges on the binary mask in voxel index space, windowed-sinc smoothing whose
pass band follows Slicer's "smoothing factor" (default 0.5), then the NIfTI
affine maps the points to RAS millimetres, so flipped and oblique headers are
exact.

Files follow Slicer's model convention (vtkMRMLModelStorageNode, Slicer >= 4.11):
points are stored in LPS and tagged ``SPACE=LPS`` -- a one-value string array
named ``SPACE`` in the field data of .vtp, and the text "3D Slicer output.
SPACE=LPS" in the header of legacy .vtk and of STL (the 80-byte binary header).
Slicer reads the tag when present and otherwise assumes LPS, so even an STL
whose header is lost by another tool still lands in the right place.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# The VTK modules used, not the ``vtk`` package (which loads all ~150 of them, a noticeable start-up cost).
from vtkmodules.util import numpy_support
from vtkmodules.util.vtkConstants import VTK_UNSIGNED_CHAR
from vtkmodules.vtkCommonCore import vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkFieldData, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import (vtkDecimatePro, vtkMassProperties, vtkPolyDataNormals, vtkReverseSense,
                                      vtkTriangleFilter, vtkWindowedSincPolyDataFilter)
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformPolyDataFilter
from vtkmodules.vtkIOGeometry import vtkSTLReader, vtkSTLWriter
from vtkmodules.vtkIOLegacy import vtkPolyDataReader, vtkPolyDataWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLPolyDataWriter

from ..io.grid import mask_box
from ..io.labels import CLASS_NAMES, TUMOUR_CLASSES, region_mask
from ..runtime import usable_cpus

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse
SPACE_ARRAY = "SPACE"  # Slicer's tag name ("following NRRD naming convention")
SYSTEMS = ("LPS", "RAS")
FORMATS = (".vtp", ".vtk", ".stl")


def _image_from_mask(mask: np.ndarray, corner=(0, 0, 0)) -> vtkImageData:
    """Mask (a box of a volume whose first voxel is ``corner``) in the volume's voxel index space,
    padded by one voxel so every surface closes."""
    padded = np.pad(np.asarray(mask, np.uint8), 1)
    image = vtkImageData()
    image.SetDimensions(*padded.shape)
    image.SetOrigin(*(float(c) - 1.0 for c in corner))  # the volume's index 0 stays at 0
    flat = np.ascontiguousarray(padded.transpose(2, 1, 0)).ravel()  # VTK: x fastest
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True, array_type=VTK_UNSIGNED_CHAR))
    return image


def _pass_band(smoothing: float) -> float:
    # Slicer's labelmap -> closed surface rule: 0 -> 1 (almost none), 0.5 -> 0.01, 1 -> 0.0001.
    return 10.0 ** (-4.0 * float(np.clip(smoothing, 0.0, 1.0)))


def _matrix(affine: np.ndarray) -> vtkMatrix4x4:
    m = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(affine[r, c]))
    return m


def _transformed(polydata: vtkPolyData, affine: np.ndarray) -> vtkPolyData:
    """Points mapped by ``affine``; triangle winding kept outward for mirroring affines too."""
    transform = vtkTransform()
    transform.SetMatrix(_matrix(affine))
    f = vtkTransformPolyDataFilter()
    f.SetTransform(transform)
    f.SetInputData(polydata)
    f.Update()
    out = f.GetOutput()
    if np.linalg.det(affine[:3, :3]) < 0:  # a mirroring transform turns the triangles inside out
        rev = vtkReverseSense()
        rev.SetInputData(out)
        rev.ReverseCellsOn()
        rev.Update()
        out = rev.GetOutput()
    return out


def mask_surface(mask, affine, *, smoothing: float = 0.5, decimation: float = 0.0) -> vtkPolyData:
    """Closed, smoothed triangle surface of a binary mask, in RAS mm, with outward normals.

    Same steps and parameters as Slicer's binary labelmap -> closed surface
    conversion (decimation before smoothing, 20 windowed-sinc iterations).
    """
    mask = np.asarray(mask, bool)
    box = mask_box(mask)
    if box is None:
        return vtkPolyData()
    fe = vtkDiscreteFlyingEdges3D()
    # Only the mask's box: the same triangles in the same order (voxel indices are kept by the origin),
    # without copying and scanning the empty rest of the volume.
    fe.SetInputData(_image_from_mask(mask[box], corner=[b.start for b in box]))
    fe.SetValue(0, 1)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    surface = fe.GetOutput()
    if decimation > 0:
        dec = vtkDecimatePro()
        dec.SetInputData(surface)
        dec.SetTargetReduction(float(decimation))
        dec.SetFeatureAngle(60)
        dec.SplittingOff()
        dec.PreserveTopologyOn()
        dec.SetMaximumError(1)
        dec.Update()
        surface = dec.GetOutput()
    if smoothing > 0:
        smoother = vtkWindowedSincPolyDataFilter()
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
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    # Flying edges already winds every component outward (cavities included), so no
    # AutoOrientNormals: it would point a hollow shell's inner wall into the solid, and no
    # consistency pass: its ordering is already consistent (identical triangles and normals
    # with and without it on a real brain and on noisy tumour surfaces), and the pass is slow.
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    normals.SplittingOff()
    normals.Update()
    return normals.GetOutput()


def case_surfaces(classes, brain_mask, affine, *, smoothing: float = 0.5,
                  regions: bool = False) -> dict[str, vtkPolyData]:
    """Surfaces of the brain and of each tumour class (NCR, ED, ET); with ``regions``
    also of the whole tumour (WT) and tumour core (TC) (the ET region is the ET class)."""
    classes = np.asarray(classes)
    masks = {"brain": lambda: brain_mask}
    masks.update({name: (lambda i=CLASS_NAMES.index(name): classes == i) for name in TUMOUR_CLASSES})
    if regions:
        masks.update({name: (lambda n=name: region_mask(classes, n)) for name in ("WT", "TC")})
    return _in_threads({name: (lambda m=m: mask_surface(m(), affine, smoothing=smoothing)) for name, m in masks.items()})


def _in_threads(jobs: dict) -> dict:
    """{name: job()} with the jobs run in threads: VTK releases the GIL inside its filters and
    writers, so independent surfaces build and write on several cores at once."""
    workers = max(1, min(len(jobs), usable_cpus()))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="surface") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
    return {name: future.result() for name, future in futures.items()}


def _with_space_tag(polydata: vtkPolyData, system: str) -> vtkPolyData:
    """Shallow copy carrying Slicer's SPACE field array (the caller's object stays untouched)."""
    tagged = vtkPolyData()
    tagged.ShallowCopy(polydata)
    fields = vtkFieldData()
    fields.ShallowCopy(polydata.GetFieldData())
    tag = vtkStringArray()
    tag.SetName(SPACE_ARRAY)
    tag.InsertNextValue(system)
    fields.AddArray(tag)  # replaces an existing SPACE array of the same name
    tagged.SetFieldData(fields)
    return tagged


def _space_from_header(header: str | None) -> str | None:
    """Slicer's rule: look for "SPACE=RAS" / "SPACE=LPS" anywhere in the header text."""
    for system in SYSTEMS:
        if header and f"SPACE={system}" in header:
            return system
    return None


def _space_from_field_data(polydata: vtkPolyData) -> str | None:
    """Read and drop the SPACE array (as Slicer does, so re-writing cannot clash)."""
    tag = polydata.GetFieldData().GetAbstractArray(SPACE_ARRAY)
    if tag is None or not tag.GetNumberOfValues():
        return None
    value = str(tag.GetValue(0)).upper()
    polydata.GetFieldData().RemoveArray(SPACE_ARRAY)
    return next((system for system in SYSTEMS if system in value), None)


def write_surface(polydata: vtkPolyData, path, coordinate_system: str = "LPS") -> Path:
    """Write a RAS surface as .vtp, .vtk (legacy 4.2) or binary .stl, the points converted to
    ``coordinate_system`` and tagged the way Slicer writes and reads it (see the module doc)."""
    path = Path(path)
    system = coordinate_system.upper()
    if system not in SYSTEMS:
        raise ValueError(f"coordinate system must be LPS or RAS, got {coordinate_system!r}")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported surface format (use {', '.join(FORMATS)})")
    data = _transformed(polydata, RAS_TO_LPS) if system == "LPS" else polydata
    header = f"3D Slicer output. SPACE={system}"
    if suffix == ".vtp":
        writer = vtkXMLPolyDataWriter()
        # Raw appended binary, zlib level 1: the defaults (base64, zlib level 5) are slower and write bigger
        # files; zlib keeps every reader (Slicer, ParaView, vtk.js, meshio) able to open it.
        writer.SetCompressorTypeToZLib()
        writer.SetCompressionLevel(1)
        writer.EncodeAppendedDataOff()
        data = _with_space_tag(data, system)
    elif suffix == ".vtk":
        writer = vtkPolyDataWriter()
        writer.SetFileVersion(42)  # as Slicer: 5.1 is unreadable by Slicer 4 (VTK < 9) and most other tools
        writer.SetFileTypeToBinary()
        writer.SetHeader(header)
    else:
        writer = vtkSTLWriter()
        writer.SetFileTypeToBinary()
        writer.SetHeader(header)  # fits the 80-byte binary STL header
        triangles = vtkTriangleFilter()  # STL holds triangles only
        triangles.SetInputData(data)
        triangles.Update()
        data = triangles.GetOutput()
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.SetFileName(str(path))
    writer.SetInputData(data)
    if not writer.Write():
        raise OSError(f"{path}: could not write the surface")
    return path


def read_surface(path) -> vtkPolyData:
    """Read a .vtp/.vtk/.stl surface (ours or Slicer's) back into RAS, honouring its SPACE
    tag; untagged files are taken as LPS, as Slicer does."""
    path = Path(path)
    suffix = path.suffix.lower()
    readers = {".vtp": vtkXMLPolyDataReader, ".vtk": vtkPolyDataReader, ".stl": vtkSTLReader}
    if suffix not in readers:
        raise ValueError(f"{path}: unsupported surface format (use {', '.join(FORMATS)})")
    if not path.is_file():
        raise FileNotFoundError(path)
    reader = readers[suffix]()
    reader.SetFileName(str(path))
    reader.Update()
    data = reader.GetOutput()
    if suffix == ".vtp":
        system = _space_from_field_data(data)
    else:
        system = _space_from_header(reader.GetHeader())
    return data if system == "RAS" else _transformed(data, RAS_TO_LPS)


def write_case_surfaces(surfaces: dict[str, vtkPolyData], out_dir) -> dict[str, dict[str, Path]]:
    """``<name>.vtp`` and ``<name>.stl`` for every non-empty surface."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = {(name, fmt): (lambda p=poly, f=out_dir / f"{name}.{fmt}": write_surface(p, f))
            for name, poly in surfaces.items() if poly.GetNumberOfPoints() > 0 for fmt in ("vtp", "stl")}
    written: dict[str, dict[str, Path]] = {}
    for (name, fmt), path in _in_threads(jobs).items():
        written.setdefault(name, {})[fmt] = path
    return written


def surface_stats(polydata: vtkPolyData) -> dict:
    """Point/cell counts, area (mm2), enclosed volume (mm3) and RAS bounds."""
    if polydata.GetNumberOfPoints() == 0:
        return {"n_points": 0, "n_cells": 0, "area_mm2": 0.0, "volume_mm3": 0.0, "bounds": None}
    tri = vtkTriangleFilter()
    tri.SetInputData(polydata)
    mass = vtkMassProperties()
    mass.SetInputConnection(tri.GetOutputPort())
    mass.Update()
    return {"n_points": polydata.GetNumberOfPoints(), "n_cells": polydata.GetNumberOfCells(),
            "area_mm2": mass.GetSurfaceArea(), "volume_mm3": mass.GetVolume(), "bounds": list(polydata.GetBounds())}
