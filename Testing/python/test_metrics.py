"""Metrics on hand-made masks with known answers, and a cross-check against an independent HD95."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from BrainTumorXAILib.metrics import (
    binary_metrics, dice, hd95, image_diagonal, iou, mc_accuracy, overlap_metrics, segmentation_metrics,
    volumes_cm3,
)


def cube(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_overlap_of_two_cubes():
    a = cube((20, 20, 20), (2, 2, 2), (12, 12, 12))  # 1000 voxels
    b = cube((20, 20, 20), (7, 2, 2), (17, 12, 12))  # shifted by 5: 500 shared
    assert dice(a, b) == pytest.approx(2 * 500 / 2000)
    assert iou(a, b) == pytest.approx(500 / 1500)
    m = overlap_metrics(a, b)
    assert m["sensitivity"] == pytest.approx(0.5) and m["precision"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx((8000 - 1500) / (8000 - 1000))


def test_hd95_of_parallel_planes_with_anisotropic_spacing():
    a = cube((10, 10, 30), (0, 0, 5), (10, 10, 6))
    b = cube((10, 10, 30), (0, 0, 9), (10, 10, 10))
    # Every surface voxel of one plane is 4 slices = 4 * 2.5 mm from the other plane.
    assert hd95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(10.0)
    assert hd95(a, b, (1.0, 1.0, 2.5), method="max_directed") == pytest.approx(10.0)
    assert hd95(a, a, (1.0, 1.0, 2.5)) == 0.0


def test_empty_mask_policy():
    shape, spacing = (240, 240, 155), (1.0, 1.0, 1.0)
    assert image_diagonal(shape, spacing) == pytest.approx(373.13, abs=0.01)
    empty = np.zeros((8, 8, 8), bool)
    full = cube((8, 8, 8), (2, 2, 2), (5, 5, 5))
    both = binary_metrics(empty, empty, (1, 1, 1))
    assert both["dice"] == 1 and both["iou"] == 1 and both["hd95"] == 0 and both["precision"] == 1
    one = binary_metrics(empty, full, (1, 1, 2))
    assert one["dice"] == 0 and one["iou"] == 0 and one["precision"] == 0 and one["sensitivity"] == 0
    assert one["hd95"] == pytest.approx(image_diagonal((8, 8, 8), (1, 1, 2)))


def reference_hd95(a, b, spacing):
    """Independent implementation: k-d tree over surface-voxel coordinates in mm."""
    def surface_points(m):
        border = m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(3, 1))
        return np.argwhere(border) * np.asarray(spacing)
    pa, pb = surface_points(a), surface_points(b)
    d_ab = cKDTree(pb).query(pa)[0]
    d_ba = cKDTree(pa).query(pb)[0]
    return np.percentile(np.concatenate([d_ab, d_ba]), 95)


def random_blob(rng, shape):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    return field > np.percentile(field, 85)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_and_hd95_agree_with_independent_implementations(seed):
    rng = np.random.default_rng(seed)
    shape, spacing = (40, 44, 36), (1.0, 1.2, 2.0)
    a, b = random_blob(rng, shape), random_blob(rng, shape)
    assert hd95(a, b, spacing) == pytest.approx(reference_hd95(a, b, spacing), rel=1e-9)
    expected_dice = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    assert dice(a, b) == pytest.approx(expected_dice)
    import medpy.metric.binary as medpy  # pooled HD95, like ours

    assert hd95(a, b, spacing) == pytest.approx(medpy.hd95(a, b, voxelspacing=spacing), rel=1e-6)
    assert dice(a, b) == pytest.approx(medpy.dc(a, b))


def test_per_class_and_region_layout():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:15] = 2  # edema
    ref[8:12, 8:12, 8:12] = 3  # enhancing
    ref[9:11, 9:11, 9:11] = 1  # necrosis
    pred = ref.copy()
    pred[pred == 1] = 3  # necrosis called enhancing: TC and WT still perfect
    m = segmentation_metrics(pred, ref, (1, 1, 1))
    assert set(m["classes"]) == {"NCR", "ED", "ET"} and set(m["regions"]) == {"WT", "TC", "ET"}
    assert m["regions"]["WT"]["dice"] == 1.0 and m["regions"]["TC"]["dice"] == 1.0
    assert m["classes"]["NCR"]["dice"] == 0.0 and m["classes"]["ED"]["dice"] == 1.0
    assert m["regions"]["ET"]["dice"] == pytest.approx(2 * 56 / (64 + 56))
    v = volumes_cm3(ref, (2, 2, 2))
    assert v["regions"]["WT"] == pytest.approx(1000 * 8 / 1000)
    assert v["classes"]["NCR"] == pytest.approx(8 * 8 / 1000)


def test_mc_accuracy_inside_mask():
    ref = np.array([[[0, 1, 2, 3]]])
    probs = np.zeros((4, 1, 1, 4))
    probs[[0, 1, 2, 0], 0, 0, [0, 1, 2, 3]] = 1.0  # last voxel wrong
    assert mc_accuracy(probs, ref) == pytest.approx(0.75)
    assert mc_accuracy(probs, ref, mask=np.array([[[True, True, True, False]]])) == 1.0
