"""Surfaces: geometry in world coordinates for any header, outward normals, Slicer file convention."""

import numpy as np
import pytest
import vtk
from vtk.util import numpy_support

from BrainTumorXAILib.reporting.surfaces import (case_surfaces, mask_surface, read_surface, surface_stats, write_case_surfaces,
                                       write_surface)

OBLIQUE_FLIPPED = np.array([[-1.4, 0.2, 0.0, 40.0], [0.15, 1.45, 0.3, -30.0], [0.0, -0.25, 2.5, 10.0], [0, 0, 0, 1.0]])
AFFINES = {"identity": np.eye(4), "lps_anisotropic": np.diag([-0.9, -1.1, 2.0, 1.0]),
           "oblique_flipped": OBLIQUE_FLIPPED}
CENTRE = np.array([20.0, 18.0, 14.0])
RADIUS = 8


def ball(shape=(40, 40, 30), centre=CENTRE, radius=RADIUS, inner=None):
    """Voxel sphere (a hollow shell when ``inner`` is given)."""
    r = np.linalg.norm(np.indices(shape).transpose(1, 2, 3, 0) - centre, axis=-1)
    return (r <= radius) & (r > inner if inner is not None else True)


def points(poly):
    return numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(float)


def normals(poly):
    return numpy_support.vtk_to_numpy(poly.GetPointData().GetNormals()).astype(float)


def world(affine, ijk):
    return (affine @ np.append(ijk, 1.0))[:3]


def assert_same_cloud(a, b, tol=1e-4):
    """Same point sets whatever the order (STL stores triangles, not shared points)."""
    from scipy.spatial import cKDTree

    assert cKDTree(b).query(a)[0].max() < tol and cKDTree(a).query(b)[0].max() < tol


@pytest.mark.parametrize("name", list(AFFINES))
def test_sphere_volume_centroid_and_bounds_in_world(name):
    affine = AFFINES[name]
    poly = mask_surface(ball(), affine)
    stats = surface_stats(poly)
    voxel_volume = abs(np.linalg.det(affine[:3, :3]))
    assert stats["volume_mm3"] == pytest.approx(4 / 3 * np.pi * RADIUS ** 3 * voxel_volume, rel=0.05)
    np.testing.assert_allclose(points(poly).mean(0), world(affine, CENTRE), atol=1.0)
    # Every point inside the world box of the mask's voxel-edge bounding box.
    lo, hi = CENTRE - RADIUS - 0.5, CENTRE + RADIUS + 0.5
    corners = np.array([world(affine, [x, y, z]) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    p = points(poly)
    assert np.all(p >= corners.min(0) - 1e-6) and np.all(p <= corners.max(0) + 1e-6)
    np.testing.assert_allclose(stats["bounds"], np.ravel(np.c_[p.min(0), p.max(0)]))
    assert stats["area_mm2"] > 0 and stats["n_cells"] > 0


@pytest.mark.parametrize("name", list(AFFINES))
def test_normals_point_outward_also_into_a_cavity(name):
    """A hollow shell (edema around a core): the outer wall's normals point away from the
    centre, the inner wall's into the cavity, and the enclosed volume is the shell's."""
    affine = AFFINES[name]
    shell = ball(radius=12, inner=6)
    poly = mask_surface(shell, affine)
    offset = points(poly) - world(affine, CENTRE)
    radius_vox = np.linalg.norm(np.linalg.solve(affine[:3, :3], offset.T).T, axis=1)
    outward = np.einsum("ij,ij->i", normals(poly), offset) > 0
    inner = radius_vox < 9
    assert outward[~inner].mean() > 0.99 and (~outward[inner]).mean() > 0.99
    expected = 4 / 3 * np.pi * (12 ** 3 - 6 ** 3) * abs(np.linalg.det(affine[:3, :3]))
    assert surface_stats(poly)["volume_mm3"] == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
@pytest.mark.parametrize("ext", ["vtp", "vtk", "stl"])
def test_round_trip_and_slicer_tags(tmp_path, ext, system):
    poly = mask_surface(ball(), OBLIQUE_FLIPPED)
    ras = points(poly)
    path = write_surface(poly, tmp_path / f"s.{ext}", coordinate_system=system)
    assert_same_cloud(points(read_surface(path)), ras)
    # What the file holds: coordinates in ``system``, tagged the way Slicer writes it.
    reader = {"vtp": vtk.vtkXMLPolyDataReader, "vtk": vtk.vtkPolyDataReader, "stl": vtk.vtkSTLReader}[ext]()
    reader.SetFileName(str(path))
    reader.Update()
    stored = points(reader.GetOutput())
    assert_same_cloud(stored, ras * ([-1, -1, 1] if system == "LPS" else 1))
    if ext == "vtp":
        assert reader.GetOutput().GetFieldData().GetAbstractArray("SPACE").GetValue(0) == system
    else:
        assert f"3D Slicer output. SPACE={system}" in reader.GetHeader()
    assert poly.GetFieldData().GetAbstractArray("SPACE") is None  # the caller's surface is untouched


def test_untagged_stl_is_read_as_lps_like_slicer(tmp_path):
    poly = mask_surface(ball(), OBLIQUE_FLIPPED)
    lps = vtk.vtkTransformPolyDataFilter()
    flip = vtk.vtkTransform()
    flip.Scale(-1, -1, 1)
    lps.SetTransform(flip)
    lps.SetInputData(poly)
    writer = vtk.vtkSTLWriter()  # another tool: no header tag
    writer.SetFileName(str(tmp_path / "plain.stl"))
    writer.SetInputConnection(lps.GetOutputPort())
    writer.Write()
    assert_same_cloud(points(read_surface(tmp_path / "plain.stl")), points(poly))


def test_slicer_reads_our_files_and_we_read_slicers(tmp_path):
    slicer = pytest.importorskip("slicer", reason="slicer-core wheel (extra 'slicer') not installed")
    poly = mask_surface(ball(), OBLIQUE_FLIPPED)
    scene = slicer.vtkMRMLScene()
    source = scene.AddNewNodeByClass("vtkMRMLModelNode")
    source.SetAndObservePolyData(poly)
    for ext in ("vtp", "vtk", "stl"):
        for system in ("LPS", "RAS"):
            ours = write_surface(poly, tmp_path / f"ours_{system}.{ext}", coordinate_system=system)
            model = scene.AddNewNodeByClass("vtkMRMLModelNode")
            storage = scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
            storage.SetFileName(str(ours))
            assert storage.ReadData(model)
            assert_same_cloud(points(model.GetPolyData()), points(poly))
            theirs = scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
            theirs.SetCoordinateSystem(theirs.GetCoordinateSystemFromString(system))
            theirs.SetFileName(str(tmp_path / f"slicer_{system}.{ext}"))
            assert theirs.WriteData(source)
            assert_same_cloud(points(read_surface(theirs.GetFileName())), points(poly))


def test_unsupported_inputs_raise(tmp_path):
    poly = mask_surface(ball(), np.eye(4))
    with pytest.raises(ValueError):
        write_surface(poly, tmp_path / "s.obj")
    with pytest.raises(ValueError):
        write_surface(poly, tmp_path / "s.vtp", coordinate_system="XYZ")
    with pytest.raises(FileNotFoundError):
        read_surface(tmp_path / "missing.vtp")


def test_decimation_keeps_the_shape():
    full = mask_surface(ball(), OBLIQUE_FLIPPED)
    reduced = mask_surface(ball(), OBLIQUE_FLIPPED, decimation=0.5)
    assert reduced.GetNumberOfPoints() < 0.7 * full.GetNumberOfPoints()
    assert surface_stats(reduced)["volume_mm3"] == pytest.approx(surface_stats(full)["volume_mm3"], rel=0.05)


def test_case_surfaces_and_empty_classes(tmp_path):
    classes = np.zeros((30, 30, 30), np.uint8)
    classes[10:20, 10:20, 10:20] = 2
    classes[13:17, 13:17, 13:17] = 3
    brain = np.zeros_like(classes, bool)
    brain[3:27, 3:27, 3:27] = True
    surfaces = case_surfaces(classes, brain, np.eye(4), regions=True)
    assert set(surfaces) == {"brain", "NCR", "ED", "ET", "WT", "TC"}
    assert surfaces["NCR"].GetNumberOfPoints() == 0 and surfaces["ED"].GetNumberOfPoints() > 0
    # WT is solid, ED is WT minus the ET core.
    wt, ed, et = (surface_stats(surfaces[n])["volume_mm3"] for n in ("WT", "ED", "ET"))
    assert wt == pytest.approx(ed + et, rel=0.02)
    written = write_case_surfaces(surfaces, tmp_path)
    assert set(written) == {"brain", "ED", "ET", "WT", "TC"}
    assert all(p.exists() and set(files) == {"vtp", "stl"} for files in written.values() for p in files.values())
    assert surface_stats(surfaces["NCR"]) == {"n_points": 0, "n_cells": 0, "area_mm2": 0.0, "volume_mm3": 0.0,
                                              "bounds": None}
    assert mask_surface(np.zeros((4, 4, 4), bool), OBLIQUE_FLIPPED).GetNumberOfPoints() == 0


def test_a_mask_far_from_the_origin_gives_the_same_world_surface():
    """Only the mask's bounding box goes through VTK; its origin keeps the volume's voxel indices."""
    offset = np.array([23, 31, 17])
    big = np.zeros((90, 95, 70), bool)
    big[tuple(slice(o, o + s) for o, s in zip(offset, (40, 40, 30)))] = ball()
    shift = np.eye(4)
    shift[:3, 3] = -offset  # big's voxel -> ball()'s voxel
    small, moved = mask_surface(ball(), OBLIQUE_FLIPPED), mask_surface(big, OBLIQUE_FLIPPED @ shift)
    assert moved.GetNumberOfPoints() == small.GetNumberOfPoints()
    np.testing.assert_allclose(points(moved), points(small), atol=1e-4)
    np.testing.assert_allclose(normals(moved), normals(small), atol=1e-5)


def test_surfaces_import_only_the_vtk_modules_they_use():
    """The ``vtk`` package loads every VTK module (0.7 s of each analysis); the surfaces need nine."""
    import subprocess
    import sys

    code = ("import sys; import BrainTumorXAILib.reporting.surfaces; "
            "print('vtk' in sys.modules, sum(m.startswith('vtkmodules.vtk') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and int(out[1]) < 40


def test_analyze_without_vtk_fails_before_any_work(monkeypatch, tmp_path):
    import importlib.util

    from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
    from BrainTumorXAILib.errors import BrainTumorXAIError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vtkmodules" else real(name, *a))
    with pytest.raises(BrainTumorXAIError, match="surface meshes need VTK"):
        analyze_case(tmp_path / "no-case", tmp_path / "out", AnalysisOptions(device="cpu"))
    assert not (tmp_path / "out").exists()
