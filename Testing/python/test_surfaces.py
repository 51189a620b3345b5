"""Surfaces: geometry in world coordinates for any header, outward normals, Slicer file convention."""

import numpy as np
import pytest
import vtk
from vtk.util import numpy_support

from BrainTumorXAILib.surfaces import case_surfaces, mask_surface, read_surface, surface_stats, write_case_surfaces, write_surface

OBLIQUE_FLIPPED = np.array([[-1.4, 0.2, 0.0, 40.0], [0.15, 1.45, 0.3, -30.0], [0.0, -0.25, 2.5, 10.0], [0, 0, 0, 1.0]])
AFFINES = {"identity": np.eye(4), "lps": np.diag([-1.0, -1.0, 1.0, 1.0]), "oblique_flipped": OBLIQUE_FLIPPED}


def sphere(shape=(40, 40, 30), centre=(20, 18, 14), radius=8):
    idx = np.indices(shape).transpose(1, 2, 3, 0)
    return np.linalg.norm(idx - np.array(centre), axis=-1) <= radius


def points(poly):
    return numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(float)


def assert_same_cloud(a, b, tol=1e-4):
    """Same point sets whatever the order (STL stores triangles, not shared points)."""
    from scipy.spatial import cKDTree

    assert cKDTree(b).query(a)[0].max() < tol and cKDTree(a).query(b)[0].max() < tol


@pytest.mark.parametrize("name", list(AFFINES))
def test_sphere_volume_centroid_and_bounds_in_world(name):
    affine = AFFINES[name]
    mask = sphere()
    poly = mask_surface(mask, affine)
    voxel_volume = abs(np.linalg.det(affine[:3, :3]))
    stats = surface_stats(poly)
    assert stats["volume_mm3"] == pytest.approx(mask.sum() * voxel_volume, rel=0.05)
    centre = (affine @ np.array([20, 18, 14, 1.0]))[:3]
    np.testing.assert_allclose(points(poly).mean(0), centre, atol=1.0)
    idx = np.argwhere(mask)
    corners = np.array([[x, y, z, 1] for x in (idx[:, 0].min() - .5, idx[:, 0].max() + .5)
                        for y in (idx[:, 1].min() - .5, idx[:, 1].max() + .5)
                        for z in (idx[:, 2].min() - .5, idx[:, 2].max() + .5)])
    world = (affine @ corners.T).T[:, :3]
    p = points(poly)
    assert np.all(p >= world.min(0) - 1e-6) and np.all(p <= world.max(0) + 1e-6)


@pytest.mark.parametrize("name", list(AFFINES))
def test_normals_point_outward(name):
    poly = mask_surface(sphere(), AFFINES[name])
    centre = (AFFINES[name] @ np.array([20, 18, 14, 1.0]))[:3]
    normals = numpy_support.vtk_to_numpy(poly.GetPointData().GetNormals())
    outward = np.einsum("ij,ij->i", normals, points(poly) - centre)
    assert np.mean(outward > 0) > 0.99


def test_vtp_vtk_stl_round_trip_and_slicer_convention(tmp_path):
    poly = mask_surface(sphere(), OBLIQUE_FLIPPED)
    ras = points(poly)
    for ext in ("vtp", "vtk", "stl"):
        path = write_surface(poly, tmp_path / f"s.{ext}")
        assert_same_cloud(points(read_surface(path)), ras)
    # Files hold LPS coordinates with Slicer's SPACE marker.
    r = vtk.vtkXMLPolyDataReader()
    r.SetFileName(str(tmp_path / "s.vtp"))
    r.Update()
    assert r.GetOutput().GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "LPS"
    np.testing.assert_allclose(points(r.GetOutput()), ras * [-1, -1, 1], atol=1e-4)
    assert "SPACE=LPS" in (tmp_path / "s.vtk").read_bytes()[:100].decode("latin-1")


def test_slicer_reads_our_files_in_the_right_place(tmp_path):
    slicer = pytest.importorskip("slicer", reason="slicer-core wheel (extra 'slicer') not installed")
    poly = mask_surface(sphere(), OBLIQUE_FLIPPED)
    scene = slicer.vtkMRMLScene()
    for ext in ("vtp", "stl"):
        path = write_surface(poly, tmp_path / f"s.{ext}")
        model = scene.AddNewNodeByClass("vtkMRMLModelNode")
        storage = scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
        storage.SetFileName(str(path))
        assert storage.ReadData(model)
        assert_same_cloud(points(model.GetPolyData()), points(poly))


def test_case_surfaces_and_empty_classes(tmp_path):
    classes = np.zeros((30, 30, 30), np.uint8)
    classes[10:20, 10:20, 10:20] = 2
    classes[13:17, 13:17, 13:17] = 3
    brain = np.zeros_like(classes, bool)
    brain[3:27, 3:27, 3:27] = True
    surfaces = case_surfaces(classes, brain, np.eye(4))
    assert surfaces["NCR"].GetNumberOfPoints() == 0 and surfaces["ED"].GetNumberOfPoints() > 0
    written = write_case_surfaces(surfaces, tmp_path)
    assert set(written) == {"brain", "ED", "ET"}
    assert all(p.exists() for files in written.values() for p in files.values())
    assert surface_stats(surfaces["NCR"])["n_points"] == 0
