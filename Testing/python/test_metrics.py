"""Metrics on hand-made masks with known answers, and cross-checks against independent implementations."""

import json

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from BrainTumorXAILib.reporting.metrics import (
    EMPTY_POLICY, batch_region_dice, binary_metrics, confusion_counts, dice, hd95, image_diagonal, iou,
    mc_accuracy, overlap_metrics, precision, segmentation_metrics, sensitivity, specificity, surface_distances,
    surface_voxels, volumes_cm3,
)


def cube(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


# ---------------------------------------------------------------- overlap
def test_overlap_of_two_cubes():
    a = cube((20, 20, 20), (2, 2, 2), (12, 12, 12))  # 1000 voxels
    b = cube((20, 20, 20), (7, 2, 2), (17, 12, 12))  # shifted by 5: 500 shared
    assert confusion_counts(a, b) == (500, 500, 500, 8000 - 1500)
    assert dice(a, b) == pytest.approx(2 * 500 / 2000)
    assert iou(a, b) == pytest.approx(500 / 1500)
    assert sensitivity(a, b) == pytest.approx(0.5) and precision(a, b) == pytest.approx(0.5)
    assert specificity(a, b) == pytest.approx((8000 - 1500) / (8000 - 1000))
    small = cube((20, 20, 20), (2, 2, 2), (7, 12, 12))  # half of a, inside it
    assert sensitivity(small, a) == pytest.approx(0.5) and precision(small, a) == 1.0


# ---------------------------------------------------------------- HD95 by hand
def test_hd95_of_single_voxels_with_anisotropic_spacing():
    a = cube((8, 8, 8), (1, 1, 1), (2, 2, 2))
    b = cube((8, 8, 8), (4, 1, 3), (5, 2, 4))
    spacing = (1.0, 2.0, 2.5)
    expected = np.hypot(3 * 1.0, 2 * 2.5)  # sqrt(34) = 5.831 mm
    d_ab, d_ba = surface_distances(a, b, spacing)
    assert d_ab.tolist() == pytest.approx([expected]) and d_ba.tolist() == pytest.approx([expected])
    for method in ("pooled", "max_directed"):
        assert hd95(a, b, spacing, method=method) == pytest.approx(expected)


def test_hd95_of_parallel_planes_with_anisotropic_spacing():
    a = cube((10, 10, 30), (0, 0, 5), (10, 10, 6))
    b = cube((10, 10, 30), (0, 0, 9), (10, 10, 10))
    # Every surface voxel of one plane is 4 slices = 4 * 2.5 mm from the other plane.
    assert hd95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(10.0)
    assert hd95(a, b, (1.0, 1.0, 2.5), method="max_directed") == pytest.approx(10.0)
    assert hd95(a, a, (1.0, 1.0, 2.5)) == 0.0


def test_hd95_of_shifted_cube():
    # A 6^3 cube shifted by k = 2 slices along z (3 mm slices): each face moves by 6 mm, so the
    # directed distances are 0 on the overlapping side walls and up to 6 mm on the caps.
    a = cube((12, 12, 20), (3, 3, 4), (9, 9, 10))
    b = cube((12, 12, 20), (3, 3, 6), (9, 9, 12))
    spacing = (1.0, 1.0, 3.0)
    d_ab, d_ba = surface_distances(a, b, spacing)
    assert d_ab.max() == pytest.approx(6.0) and d_ba.max() == pytest.approx(6.0)
    assert hd95(a, b, spacing) == pytest.approx(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    assert hd95(a, b, spacing) == pytest.approx(6.0)  # the caps hold more than 5% of the surface


def test_pooled_and_max_directed_differ_as_defined():
    # a: one voxel; b: a 10-voxel line along z (2 mm slices) starting at it.  All voxels are surface.
    a = cube((12, 12, 12), (5, 5, 1), (6, 6, 2))
    b = cube((12, 12, 12), (5, 5, 1), (6, 6, 11))
    d_ab, d_ba = surface_distances(a, b, (1, 1, 2))
    assert d_ab.tolist() == [0.0] and sorted(d_ba.tolist()) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    # pooled: 95th percentile of 11 values [0, 0, 2, .., 18] -> rank 9.5 -> 17.0;
    # max_directed: 95th percentile of [0, 2, .., 18] -> rank 8.55 -> 17.1.
    assert hd95(a, b, (1, 1, 2)) == pytest.approx(17.0)
    assert hd95(a, b, (1, 1, 2), method="max_directed") == pytest.approx(17.1)
    with pytest.raises(ValueError, match="HD95 method"):
        hd95(a, b, (1, 1, 2), method="mean")


# ---------------------------------------------------------------- empty masks
def test_empty_mask_policy():
    assert image_diagonal((240, 240, 155), (1.0, 1.0, 1.0)) == pytest.approx(373.13, abs=0.005)
    empty = np.zeros((8, 8, 8), bool)
    full = cube((8, 8, 8), (2, 2, 2), (5, 5, 5))
    both = binary_metrics(empty, empty, (1, 1, 1))
    assert {k: both[k] for k in EMPTY_POLICY["both_empty"]} == EMPTY_POLICY["both_empty"]
    assert both["specificity"] == 1.0
    diagonal = image_diagonal((8, 8, 8), (1, 1, 2))
    for pred, ref in ((empty, full), (full, empty)):
        one = binary_metrics(pred, ref, (1, 1, 2))
        policy = {**EMPTY_POLICY["one_empty"], "hd95": diagonal}
        assert {k: one[k] for k in policy} == pytest.approx(policy)
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(empty, full, (1, 1, 1))


def test_specificity_without_reference_negatives_is_one():
    everything = np.ones((4, 4, 4), bool)
    assert specificity(everything, everything) == 1.0 and specificity(np.zeros_like(everything), everything) == 1.0


def test_bad_inputs_are_refused():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        dice(a, np.zeros((4, 4, 5), bool))
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1, 1))
    with pytest.raises(ValueError, match="spacing"):
        image_diagonal((4, 4, 4), (1, 0, 1))


# ---------------------------------------------------------------- independent implementations
def reference_surface_points(m, spacing):
    """Surface voxels (mask minus 6-connected erosion, outside = background) in mm, written independently."""
    padded = np.pad(m, 1)
    core = padded.copy()
    for axis in range(3):
        for shift in (-1, 1):
            core &= np.roll(padded, shift, axis=axis)
    border = (padded & ~core)[1:-1, 1:-1, 1:-1]
    return np.argwhere(border) * np.asarray(spacing, float)


def reference_hd95_brute_force(a, b, spacing):
    """Exact pairwise distances between all surface points (no tree, no distance transform)."""
    d = cdist(reference_surface_points(a, spacing), reference_surface_points(b, spacing))
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    return np.percentile(np.concatenate([d_ab, d_ba]), 95), max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))


def reference_hd95_edt(a, b, spacing):
    """Euclidean distance transforms with sampling=spacing over the whole image (pooled)."""
    s = ndimage.generate_binary_structure(3, 1)
    sa, sb = a & ~ndimage.binary_erosion(a, s), b & ~ndimage.binary_erosion(b, s)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return np.percentile(np.concatenate([d_ab, d_ba]), 95)


def random_blob(rng, shape, percent=85):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 3)
    return field > np.percentile(field, percent)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_and_hd95_agree_with_independent_implementations(seed):
    rng = np.random.default_rng(seed)
    shape, spacing = (32, 36, 28), (1.0, 1.2, 2.0)
    a, b = random_blob(rng, shape), random_blob(rng, shape, 95)  # scattered islands, touching the border
    # Against the independent np.roll construction (not scipy's erosion, which surface_voxels itself uses).
    assert np.array_equal(np.argwhere(surface_voxels(a)), reference_surface_points(a, (1, 1, 1)).astype(int))
    pooled, max_directed = reference_hd95_brute_force(a, b, spacing)
    assert hd95(a, b, spacing) == pytest.approx(pooled, rel=1e-12)
    assert hd95(a, b, spacing, method="max_directed") == pytest.approx(max_directed, rel=1e-12)
    assert hd95(a, b, spacing) == pytest.approx(reference_hd95_edt(a, b, spacing), rel=1e-9)
    assert hd95(a, b, spacing) <= hd95(a, b, spacing, method="max_directed")
    assert dice(a, b) == pytest.approx(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_and_hd95_agree_with_medpy(seed):
    medpy = pytest.importorskip("medpy.metric.binary", reason="medpy not installed (optional cross-check)")
    rng = np.random.default_rng(seed)
    shape, spacing = (40, 44, 36), (1.0, 1.2, 2.0)
    a, b = random_blob(rng, shape), random_blob(rng, shape)
    # MedPy's hd95 pools both directions, like our default.
    assert hd95(a, b, spacing) == pytest.approx(medpy.hd95(a, b, voxelspacing=spacing), rel=1e-9)
    assert dice(a, b) == pytest.approx(medpy.dc(a, b))
    assert sensitivity(a, b) == pytest.approx(medpy.sensitivity(a, b))
    assert precision(a, b) == pytest.approx(medpy.precision(a, b))


# ---------------------------------------------------------------- classes, regions, volumes
def tumour():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[5:15, 5:15, 5:15] = 2  # edema
    ref[8:12, 8:12, 8:12] = 3  # enhancing
    ref[9:11, 9:11, 9:11] = 1  # necrosis
    return ref


def test_per_class_and_region_layout():
    ref = tumour()
    pred = ref.copy()
    pred[pred == 1] = 3  # necrosis called enhancing: TC and WT still perfect
    m = segmentation_metrics(pred, ref, (1, 1, 1))
    assert set(m["classes"]) == {"NCR", "ED", "ET"} and set(m["regions"]) == {"WT", "TC", "ET"}
    keys = {"dice", "iou", "hd95", "sensitivity", "specificity", "precision", "volume_pred_cm3", "volume_ref_cm3"}
    assert all(set(v) == keys for group in ("classes", "regions") for v in m[group].values())
    assert m["regions"]["WT"]["dice"] == 1.0 and m["regions"]["TC"]["dice"] == 1.0
    assert m["regions"]["TC"]["hd95"] == 0.0
    assert m["classes"]["NCR"]["dice"] == 0.0 and m["classes"]["ED"]["dice"] == 1.0
    assert m["classes"]["NCR"]["hd95"] == pytest.approx(image_diagonal(ref.shape, (1, 1, 1)))  # no NCR predicted
    assert m["regions"]["ET"]["dice"] == pytest.approx(2 * 56 / (64 + 56))
    assert "pooled" in m["hd95_definition"]
    json.dumps(m, allow_nan=False)  # plain floats, no NaN
    assert all(type(x) is float for v in m["regions"].values() for x in v.values())


def test_region_composition():
    ref = tumour()
    m = segmentation_metrics(ref, ref, (1, 1, 1), include_hd95=False)
    c, r = m["classes"], m["regions"]
    assert r["TC"]["volume_ref_cm3"] == pytest.approx(c["NCR"]["volume_ref_cm3"] + c["ET"]["volume_ref_cm3"])
    assert r["WT"]["volume_ref_cm3"] == pytest.approx(sum(v["volume_ref_cm3"] for v in c.values()))
    assert r["ET"] == c["ET"]
    assert all(v["hd95"] is None for v in r.values())
    assert "max of" in segmentation_metrics(ref, ref, (1, 1, 1), hd95_method="max_directed")["hd95_definition"]


def test_volumes():
    v = volumes_cm3(tumour(), (2, 2, 2))
    assert v["regions"]["WT"] == pytest.approx(1000 * 8 / 1000)
    assert v["regions"]["TC"] == pytest.approx(64 * 8 / 1000)
    assert v["classes"]["NCR"] == pytest.approx(8 * 8 / 1000)
    assert v["classes"]["ET"] == pytest.approx(56 * 8 / 1000)


def test_batch_region_dice():
    ref = np.stack([tumour(), tumour()])
    pred = ref.copy()
    pred[1][pred[1] == 1] = 3
    out = batch_region_dice(pred, ref)
    assert out["WT"] == [1.0, 1.0] and out["TC"] == [1.0, 1.0]
    assert out["ET"] == pytest.approx([1.0, 2 * 56 / (64 + 56)])
    with pytest.raises(ValueError):
        batch_region_dice(pred, ref[:1])


def test_mc_accuracy_inside_mask():
    ref = np.array([[[0, 1, 2, 3]]])
    probs = np.zeros((4, 1, 1, 4))
    probs[[0, 1, 2, 0], 0, 0, [0, 1, 2, 3]] = 1.0  # last voxel wrong
    assert mc_accuracy(probs, ref) == pytest.approx(0.75)
    assert mc_accuracy(probs, ref, mask=np.array([[[True, True, True, False]]])) == 1.0
    assert np.isnan(mc_accuracy(probs, ref, mask=np.zeros((1, 1, 4), bool)))


def test_overlap_metrics_is_what_training_reads():
    a = cube((6, 6, 6), (0, 0, 0), (3, 3, 3))
    assert set(overlap_metrics(a, a)) == {"dice", "iou", "sensitivity", "specificity", "precision"}
