"""Voxel grids in world space: comparison, bounding boxes, resampling.

A grid is a shape (X, Y, Z) plus a 4x4 affine mapping voxel indices (i, j, k)
in nibabel array order to world millimetres.  Voxel ``v`` covers the world box
around ``affine @ v`` of half a voxel on each side, so a grid's extent runs
from index -0.5 to n - 0.5 along each axis.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

# Tolerance for "this voxel-to-voxel map is an exact axis permutation/flip".
_EXACT_TOL = 1e-6


def voxel_spacing(affine) -> np.ndarray:
    """Millimetres per voxel along each array axis (norms of the affine's columns)."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def same_grid(shape_a, affine_a, shape_b, affine_b, tol: float = 1e-4) -> bool:
    """Whether two grids have the same shape and affines equal within ``tol``."""
    if tuple(int(n) for n in shape_a) != tuple(int(n) for n in shape_b):
        return False
    return bool(np.allclose(np.asarray(affine_a, float), np.asarray(affine_b, float), rtol=0.0, atol=tol))


def _corners(shape) -> np.ndarray:
    """The 8 outer voxel-edge corners of a grid, in voxel coordinates (8, 3)."""
    lo_hi = [(-0.5, n - 0.5) for n in shape]
    return np.array(list(itertools.product(*lo_hi)), dtype=np.float64)


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:3, :3].T + affine[:3, 3]


def mask_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box of voxels holding every non-zero voxel of ``mask`` (None when it is empty)."""
    extent = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if present.size == 0:
            return None
        extent.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(extent)


def world_bounding_box(shape, affine) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world box (min, max corners in mm) that holds every voxel of the grid."""
    world = _apply(np.asarray(affine, np.float64), _corners(shape[-3:]))
    return world.min(axis=0), world.max(axis=0)


def grids_overlap(src_shape, src_affine, dst_shape, dst_affine) -> bool:
    """Whether the destination grid's extent meets the source grid's extent at all.

    Tested in source voxel space, where the source extent is a box; the
    destination's corners are mapped there (conservative for oblique pairs).
    """
    to_src = np.linalg.inv(np.asarray(src_affine, np.float64)) @ np.asarray(dst_affine, np.float64)
    pts = _apply(to_src, _corners(dst_shape[-3:]))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    n = np.asarray(src_shape[-3:], dtype=np.float64)
    return bool(np.all(hi > -0.5) and np.all(lo < n - 0.5))


def voxel_to_voxel(src_affine, dst_affine) -> np.ndarray:
    """Matrix mapping destination voxel indices to source voxel indices."""
    return np.linalg.inv(np.asarray(src_affine, np.float64)) @ np.asarray(dst_affine, np.float64)


def _signed_permutation(matrix: np.ndarray) -> tuple[list[int], list[int], list[int]] | None:
    """(source axis, sign, integer offset) per destination axis when the map is a pure
    axis permutation/flip with an integer shift; None otherwise."""
    rot, offset = matrix[:3, :3], matrix[:3, 3]
    rounded = np.round(rot)
    if not np.allclose(rot, rounded, atol=_EXACT_TOL) or not np.allclose(offset, np.round(offset), atol=_EXACT_TOL):
        return None
    if not np.array_equal(np.abs(rounded).sum(axis=0), np.ones(3)) or not np.array_equal(
            np.abs(rounded).sum(axis=1), np.ones(3)):
        return None
    src_axis = [int(np.flatnonzero(rounded[:, a])[0]) for a in range(3)]
    sign = [int(rounded[src_axis[a], a]) for a in range(3)]
    shift = [int(round(offset[src_axis[a]])) for a in range(3)]
    return src_axis, sign, shift


def _resample_exact(array: np.ndarray, perm, dst_shape, cval) -> np.ndarray:
    """Copy voxels for a permutation/flip/integer-shift map: no interpolation at all."""
    src_axis, sign, shift = perm
    lead = array.ndim - 3
    moved = np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in src_axis))
    out = np.full(array.shape[:lead] + tuple(dst_shape), cval, dtype=array.dtype)
    dst_idx, src_idx = [], []
    for a in range(3):
        d = np.arange(dst_shape[a])
        s = sign[a] * d + shift[a]
        ok = (s >= 0) & (s < moved.shape[lead + a])
        dst_idx.append(d[ok])
        src_idx.append(s[ok])
    if all(len(d) for d in dst_idx):
        out[(Ellipsis, *np.ix_(*dst_idx))] = moved[(Ellipsis, *np.ix_(*src_idx))]
    return out


def _inside_source(matrix: np.ndarray, src_shape, dst_shape) -> np.ndarray:
    """Destination voxels whose centre falls inside the source extent (half-voxel margin)."""
    idx = [np.arange(n, dtype=np.float64) for n in dst_shape]
    inside = np.ones(tuple(dst_shape), dtype=bool)
    for a in range(3):
        c = (matrix[a, 0] * idx[0][:, None, None] + matrix[a, 1] * idx[1][None, :, None]
             + matrix[a, 2] * idx[2][None, None, :] + matrix[a, 3])  # fmt: skip
        inside &= (c >= -0.5 - 1e-6) & (c <= src_shape[a] - 0.5 + 1e-6)
    return inside


def resample_to_grid(array, src_affine, dst_shape, dst_affine, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Resample ``array`` (..., X, Y, Z) from its grid onto (dst_shape, dst_affine).

    Each destination voxel centre is mapped through ``inv(src_affine) @ dst_affine``
    into the source and interpolated there (order 1 trilinear, 0 nearest for
    labels).  Within half a voxel of the source border the edge value is used
    (the voxel covers that region); further out the result is ``cval``.  Pure
    permutations/flips/integer shifts are copied exactly.  Leading axes (channels)
    are resampled independently.  Floating arrays keep their dtype; integer arrays
    keep theirs with order 0 and become float32 otherwise.
    """
    array = np.asarray(array)
    if array.ndim < 3:
        raise ValueError(f"expected an array with at least 3 dimensions, got shape {array.shape}")
    dst_shape = tuple(int(n) for n in dst_shape[-3:])
    if order > 0 and not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    matrix = voxel_to_voxel(src_affine, dst_affine)
    perm = _signed_permutation(matrix)
    if perm is not None:
        return _resample_exact(array, perm, dst_shape, cval)
    flat = array.reshape((-1,) + array.shape[-3:])
    inside = _inside_source(matrix, array.shape[-3:], dst_shape)
    out = np.empty((flat.shape[0],) + dst_shape, dtype=array.dtype)
    for c in range(flat.shape[0]):
        ndimage.affine_transform(flat[c], matrix[:3, :3], offset=matrix[:3, 3], output_shape=dst_shape,
                                 output=out[c], order=order, mode="nearest")
        out[c][~inside] = cval
    return out.reshape(array.shape[:-3] + dst_shape)


def resampled_affine(affine, shape, new_spacing) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Grid with the same direction cosines and world extent at ``new_spacing`` mm.

    ``new_spacing`` is a number (isotropic) or one value per axis.  The new shape
    is the old extent divided by the new spacing, rounded; the new grid is
    centred on the old grid's centre so that any rounding is split evenly.
    """
    affine = np.asarray(affine, dtype=np.float64)
    shape = np.asarray(tuple(shape)[-3:], dtype=np.int64)
    old = voxel_spacing(affine)
    new = np.broadcast_to(np.asarray(new_spacing, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(new)) or np.any(new <= 0):
        raise ValueError(f"spacing must be positive millimetres, got {new_spacing!r}")
    new_shape = np.maximum(1, np.round(shape * old / new).astype(np.int64))
    directions = affine[:3, :3] / old
    out = np.eye(4)
    out[:3, :3] = directions * new
    centre = affine[:3, :3] @ ((shape - 1) / 2.0) + affine[:3, 3]
    out[:3, 3] = centre - out[:3, :3] @ ((new_shape - 1) / 2.0)
    return out, tuple(int(n) for n in new_shape)
