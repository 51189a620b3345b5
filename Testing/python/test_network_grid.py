"""Grid helpers and preprocessing: exact inverse on every kind of affine, normalisation, shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from BrainTumorXAILib.io import grid
from BrainTumorXAILib.io.labels import SEQUENCES
from BrainTumorXAILib.io.intensity import brain_mask, normalise
from BrainTumorXAILib.io.network_grid import PreprocessTransform, preprocess
from nifti_factory import lps_affine, oblique_affine, phantom, world_coordinates, world_ramp

SHAPE = (20, 22, 18)


def _images(shape=SHAPE) -> np.ndarray:
    images, _ = phantom(shape)
    return np.stack([images[s] for s in SEQUENCES]).astype(np.float32)


def _permuted_flipped() -> np.ndarray:
    """Array axes permuted (i->y, j->z, k->x) and flipped, 0.8/1.5/3 mm."""
    a = np.zeros((4, 4))
    a[1, 0], a[2, 1], a[0, 2], a[3, 3] = -0.8, 1.5, -3.0, 1.0
    a[:3, 3] = (40.0, -12.0, 7.5)
    return a


AFFINES = {
    "identity": np.eye(4),
    "lps": lps_affine(),
    "permuted_flipped_anisotropic": _permuted_flipped(),
    "oblique_anisotropic": oblique_affine(),
}


# --------------------------------------------------------------------------- grid helpers


def test_voxel_spacing_and_same_grid():
    a = _permuted_flipped()
    np.testing.assert_allclose(grid.voxel_spacing(a), [0.8, 1.5, 3.0])
    assert grid.same_grid(SHAPE, a, SHAPE, a + 5e-5)
    assert not grid.same_grid(SHAPE, a, SHAPE, a + 1e-3)
    assert not grid.same_grid(SHAPE, a, (20, 22, 19), a)


def test_world_bounding_box():
    lo, hi = grid.world_bounding_box((10, 20, 30), lps_affine((2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)))
    np.testing.assert_allclose(lo, [-19.0, -19.5, -0.5])
    np.testing.assert_allclose(hi, [1.0, 0.5, 29.5])


@pytest.mark.parametrize("name", list(AFFINES))
def test_resampled_affine_keeps_directions_and_extent(name):
    affine = AFFINES[name]
    new, shape = grid.resampled_affine(affine, SHAPE, 0.5)
    np.testing.assert_allclose(grid.voxel_spacing(new), 0.5)
    directions = affine[:3, :3] / grid.voxel_spacing(affine)
    np.testing.assert_allclose(new[:3, :3] / 0.5, directions, atol=1e-12)
    lo, hi = grid.world_bounding_box(SHAPE, affine)
    nlo, nhi = grid.world_bounding_box(shape, new)
    np.testing.assert_allclose(nlo, lo, atol=0.5)
    np.testing.assert_allclose(nhi, hi, atol=0.5)
    np.testing.assert_allclose((nlo + nhi) / 2, (lo + hi) / 2, atol=1e-9)  # centred


@pytest.mark.parametrize("name", list(AFFINES))
def test_resample_linear_ramp_matches_world(name):
    src = AFFINES[name]
    dst, dst_shape = grid.resampled_affine(src, SHAPE, (1.3, 0.7, 1.1))
    out = grid.resample_to_grid(world_ramp(SHAPE, src), src, dst_shape, dst)
    # Compare where the destination voxel centre lies a full voxel inside the source.
    to_src = grid.voxel_to_voxel(src, dst)
    idx = np.indices(dst_shape).reshape(3, -1)
    pos = (to_src[:3, :3] @ idx + to_src[:3, 3:4]).reshape((3, *dst_shape))
    inner = np.all((pos >= 1) & (pos <= np.array(SHAPE)[:, None, None, None] - 2), axis=0)
    assert inner.sum() > 500
    np.testing.assert_allclose(out[inner], world_ramp(dst_shape, dst)[inner], atol=1e-3)


def test_resample_channels_and_labels():
    src = lps_affine()
    dst = src @ np.array([[1, 0, 0, 0.4], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    labels = np.zeros(SHAPE, np.uint8)
    labels[5:10, 5:10, 5:10] = 4
    out = grid.resample_to_grid(labels, src, SHAPE, dst, order=0)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 4}
    stacked = grid.resample_to_grid(np.stack([labels, labels]).astype(np.float32), src, SHAPE, dst, order=0)
    assert stacked.shape == (2, *SHAPE)
    np.testing.assert_array_equal(stacked[1], out)


def test_exact_copy_for_flips_and_permutations():
    src = _permuted_flipped()
    flip = np.array([[0, 1, 0, 0], [-1, 0, 0, 19], [0, 0, 1, -2], [0, 0, 0, 1]], float)
    dst = src @ flip  # dst voxel (i, j, k) = src voxel (j, 19 - i, k - 2)
    data = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    out = grid.resample_to_grid(data, src, (20, 20, 18), dst, cval=-1.0)
    i, j, k = np.indices((20, 20, 16))
    np.testing.assert_array_equal(out[:, :, 2:], data[j, 19 - i, k])
    assert np.all(out[:, :, :2] == -1.0)


def test_overlap():
    a = lps_affine()
    assert grid.grids_overlap(SHAPE, a, SHAPE, a)
    far = lps_affine(origin=(500.0, 0.0, 0.0))
    assert not grid.grids_overlap(SHAPE, a, SHAPE, far)


# --------------------------------------------------------------------------- brain mask and normalisation


def test_brain_mask_from_zero_background():
    images = _images()
    mask = brain_mask(images)
    assert mask.dtype == bool and mask.any() and not mask.all()
    np.testing.assert_array_equal(mask, np.any(images != 0, axis=0))


def test_brain_mask_noisy_background_fallback():
    images = _images((24, 24, 24))
    truth = images[0] != 0
    noisy = images + np.abs(np.random.default_rng(0).normal(0, 3, images.shape)).astype(np.float32) + 0.1
    mask = brain_mask(noisy)
    assert (mask ^ truth).sum() < 0.02 * truth.sum()


def test_brain_mask_fallback_is_the_plain_formula():
    """The in-place fallback gives exactly the mask of the plain formula (mean of |c| / p99(|c|), Otsu,
    largest component, scipy's hole filling), negative intensities included."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    from BrainTumorXAILib.io.mask_ops import largest_component

    rng = np.random.default_rng(4)
    images = _images((28, 26, 24))
    noisy = images + rng.normal(0, 3, images.shape).astype(np.float32)
    noisy[1, 12:15, 11:14, 10:13] = 0.0  # a hole inside the brain
    signal = np.mean([np.abs(c) / max(float(np.percentile(np.abs(c), 99)), 1e-12) for c in noisy], axis=0)
    expected = ndimage.binary_fill_holes(largest_component(signal > threshold_otsu(signal)))
    np.testing.assert_array_equal(brain_mask(noisy), expected)


def test_fill_holes_matches_scipy():
    from scipy import ndimage

    from BrainTumorXAILib.io.mask_ops import fill_holes

    rng = np.random.default_rng(5)
    for density in (0.0, 0.3, 0.6, 0.9, 1.0):
        mask = rng.random((17, 15, 13)) < density
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    shell = np.zeros((9, 9, 9), bool)
    shell[2:7, 2:7, 2:7] = True
    shell[3:6, 3:6, 3:6] = False
    assert fill_holes(shell)[4, 4, 4] and fill_holes(shell).sum() == 125


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_normalise(method):
    images = _images()
    mask = brain_mask(images)
    out = normalise(images, mask, method)
    assert out.dtype == np.float32 and np.all(out[:, ~mask] == 0)
    for c in range(out.shape[0]):
        inside = out[c][mask].astype(np.float64)
        if method == "zscore":
            assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-5
        else:
            assert inside.min() == 0 and abs(inside.max() - 1) < 1e-6


def test_normalise_constant_channel_is_clear_error():
    images = _images()
    mask = brain_mask(images)
    images[2][mask] = 7.0
    with pytest.raises(ValueError, match="channel 2 is constant"):
        normalise(images, mask)


# --------------------------------------------------------------------------- preprocess and its inverse


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("crop", ["brain", "fixed", "none"])
def test_invert_apply_is_exact_without_resampling(name, crop):
    images = _images()
    net, net_mask, t = preprocess(images, AFFINES[name], crop=crop, window=32, margin=2, multiple_of=16)
    assert net.shape[1:] == t.output_shape and net_mask.shape == t.output_shape
    assert all(n % 16 == 0 for n in t.output_shape)
    back = t.invert(t.apply(images), fill=-5.0)
    # The crop box lives on the reoriented grid; map it back to find the kept input voxels.
    kept = np.zeros(t.resampled_shape, bool)
    kept[tuple(slice(a, b) for a, b in zip(t.crop_start, t.crop_stop))] = True
    inside = t.invert(t.crop_and_pad(kept), order=0).astype(bool)
    assert inside.sum() == np.prod(np.subtract(t.crop_stop, t.crop_start))
    np.testing.assert_array_equal(back[:, inside], images[:, inside])
    assert np.all(back[:, ~inside] == -5.0)
    # A network-grid map of world coordinates lands on the same world positions.
    world_net = world_coordinates(t.output_shape, t.network_affine)
    world_back = t.invert(world_net, fill=np.nan)
    expected = world_coordinates(SHAPE, AFFINES[name])
    np.testing.assert_allclose(world_back[:, inside], expected[:, inside], atol=1e-9)


@pytest.mark.parametrize("name", list(AFFINES))
def test_network_sees_the_same_anatomy_whatever_the_header_orientation(name):
    """A flipped/permuted file of the same head gives the same network input (LPS axis order)."""
    images = _images()
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    ref, _, _ = preprocess(images, lps, crop="none", multiple_of=1)
    net, _, t = preprocess(images, AFFINES[name], crop="none", multiple_of=1)
    # Store the same head in this header's axis order (exact flips/permutations of the LPS array).
    from nibabel import orientations as nio
    to_file = nio.ornt_transform(nio.axcodes2ornt(("L", "P", "S")), nio.io_orientation(AFFINES[name]))
    stored = np.stack([nio.apply_orientation(c, to_file) for c in images])
    file_affine = lps @ nio.inv_ornt_aff(to_file, images.shape[1:])
    assert nio.aff2axcodes(file_affine) == nio.aff2axcodes(AFFINES[name])
    again, _, _ = preprocess(stored, file_affine, crop="none", multiple_of=1)
    np.testing.assert_allclose(again, ref, atol=1e-5)
    assert nio.aff2axcodes(t.network_affine) == ("L", "P", "S")


def test_brain_crop_keeps_whole_brain():
    images = _images()
    mask = brain_mask(images)
    net, net_mask, t = preprocess(images, lps_affine(), margin=2)
    assert net_mask.sum() == mask.sum()
    np.testing.assert_array_equal(t.invert(net_mask.astype(np.uint8), order=0).astype(bool), mask)


@pytest.mark.parametrize("name", list(AFFINES))
def test_round_trip_with_target_spacing_is_geometrically_exact(name):
    affine = AFFINES[name]
    ramp = world_ramp(SHAPE, affine)
    images = np.stack([ramp, ramp * 0.5 + 3.0])
    mask = np.zeros(SHAPE, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    net, net_mask, t = preprocess(images, affine, spacing=(0.9, 1.3, 1.1), crop="none", mask=mask, multiple_of=8)
    assert t.resamples and t.target_spacing == (0.9, 1.3, 1.1)
    np.testing.assert_allclose(grid.voxel_spacing(t.network_affine), (0.9, 1.3, 1.1))
    # On the network grid the ramp is the same function of world position.
    on_net = t.apply(ramp)
    expected_net = world_ramp(t.output_shape, t.network_affine)
    net_inner = t.apply(np.pad(np.ones((16, 18, 14), np.uint8), 2), order=0).astype(bool)
    np.testing.assert_allclose(on_net[net_inner], expected_net[net_inner], atol=1e-3)
    # And back on the input grid, away from the border.
    back = t.invert(on_net)
    inner = (slice(3, -3),) * 3
    np.testing.assert_allclose(back[inner], ramp[inner], atol=1e-3)
    # A map defined on the network grid in world terms lands where the input voxel was.
    np.testing.assert_allclose(t.invert(expected_net)[inner], ramp[inner], atol=1e-3)


def test_zscore_inside_network_mask():
    net, net_mask, _ = preprocess(_images(), lps_affine())
    for c in range(net.shape[0]):
        inside = net[c][net_mask].astype(np.float64)
        assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-5
        assert np.all(net[c][~net_mask] == 0)


def test_fixed_window_shapes():
    images = _images((140, 150, 100))
    net, net_mask, t = preprocess(images, lps_affine(), crop="fixed", window=128)
    assert t.output_shape == (128, 128, 128) and net.shape == (4, 128, 128, 128)
    lo = np.array([np.flatnonzero(np.any(brain_mask(images), axis=tuple(b for b in range(3) if b != a)))[[0, -1]]
                   for a in range(3)])  # fmt: skip
    centre = (lo[:, 0] + lo[:, 1] + 1) // 2
    net_centre = centre - np.array(t.crop_start) + np.array(t.pad_before)
    np.testing.assert_array_equal(net_centre, [64, 64, 64])
    assert t.pad_before[2] + t.pad_after[2] == 28  # only 100 slices along z


def test_brain_crop_padding_to_multiple():
    images = _images((37, 41, 29))
    _, _, t = preprocess(images, lps_affine(), crop="brain", margin=3, multiple_of=16)
    sizes = np.subtract(t.crop_stop, t.crop_start)
    assert all(n % 16 == 0 for n in t.output_shape)
    assert np.all(np.array(t.output_shape) - sizes < 16)
    assert np.all(np.abs(np.subtract(t.pad_before, t.pad_after)) <= 1)


def test_transform_dict_round_trip():
    _, _, t = preprocess(_images(), oblique_affine(), spacing=1.5, crop="brain")
    data = json.loads(json.dumps(t.to_dict()))
    back = PreprocessTransform.from_dict(data)
    assert back.to_dict() == t.to_dict() and back == t
    np.testing.assert_array_equal(back.network_affine, t.network_affine)
    probe = np.random.default_rng(0).random(t.output_shape).astype(np.float32)
    np.testing.assert_array_equal(back.invert(probe), t.invert(probe))


def test_preprocess_errors():
    images = _images()
    with pytest.raises(ValueError, match="empty"):
        preprocess(images, np.eye(4), mask=np.zeros(SHAPE, bool))
    with pytest.raises(ValueError, match="crop"):
        preprocess(images, np.eye(4), crop="tight")
    with pytest.raises(ValueError, match="network volume"):
        preprocess(images, np.eye(4))[2].invert(np.zeros((3, 3, 3)))


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (0.7, 1.9, 3.1)])
def test_invert_stack_matches_invert(name, spacing):
    """invert_stack (separable, only the box the crop reaches) gives transform.invert's values (scipy) up to
    float32 rounding, with each volume's own fill outside the crop, on up- and downsampling axes alike."""
    from BrainTumorXAILib.io.network_grid import invert_stack

    shape = (40, 36, 30)
    mask = np.zeros(shape, bool)
    mask[14:26, 12:23, 10:19] = True
    _, _, t = preprocess(np.stack([world_ramp(shape, AFFINES[name])]), AFFINES[name], spacing=spacing,
                         mask=mask, multiple_of=8)
    rng = np.random.default_rng(3)
    volumes = [rng.random(t.output_shape).astype(np.float32) for _ in range(3)]
    fills = [1.0, 0.0, -2.5]
    stacked = invert_stack(t, volumes, fills)
    assert stacked.dtype == np.float32 and stacked.shape == (3, *shape)
    for got, volume, fill in zip(stacked, volumes, fills):
        expected = t.invert(volume, order=1, fill=fill)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
        assert np.any(got == fill) and np.any(got != fill)
