"""A NIfTI output on the T1ce grid -> one frame per source slice, paired by physical position.

The output's voxel grid must be the source series' grid up to axis order and direction (a NIfTI writer may flip
or permute axes); anything else (another grid, a resampled copy) is refused rather than interpolated, because a
frame must hold exactly the values that lie on its source slice.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from . import DicomError
from .geometry import IN_PLANE_TOLERANCE, POSITION_TOLERANCE
from .scan import Series

#: Voxel-index tolerance of the grid match (float32 header round-off).
_INDEX_TOLERANCE = 1e-3


def _source_index_map(affine_out: np.ndarray, affine_src: np.ndarray, shape_out, shape_src, path: Path):
    """Signed permutation taking source voxel indices to output voxel indices, or raise."""
    m = np.linalg.solve(affine_out, affine_src)  # source index -> output index
    rot = np.round(m[:3, :3])
    shift = np.round(m[:3, 3])
    if (np.max(np.abs(m[:3, :3] - rot)) > _INDEX_TOLERANCE or np.max(np.abs(m[:3, 3] - shift)) > _INDEX_TOLERANCE
            or sorted(np.abs(rot).sum(axis=0)) != [1, 1, 1] or sorted(np.abs(rot).sum(axis=1)) != [1, 1, 1]):
        raise DicomError(path, "not on the source series' voxel grid (the DICOM objects need the T1ce grid)")
    corners = np.array([[i, j, k] for i in (0, shape_src[0] - 1) for j in (0, shape_src[1] - 1)
                        for k in (0, shape_src[2] - 1)], float)
    mapped = corners @ rot.T + shift
    if mapped.min() < 0 or np.any(mapped.max(axis=0) > np.asarray(shape_out) - 1):
        raise DicomError(path, "does not cover the source series' volume")
    return rot.astype(int), shift.astype(int)


def volume_on_source(path: Path, series: Series) -> np.ndarray:
    """The NIfTI volume at ``path`` as an array (column, row, slice) in the source series' stack order."""
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    if data.ndim != 3:
        raise DicomError(path, f"expected a 3D volume, got shape {data.shape}")
    rot, shift = _source_index_map(image.affine, series.stack.affine_ras, data.shape, series.stack.shape, path)
    # Output axis a holds source axis b (rot[a, b] = +-1): transpose to source order, then cut and flip (views only).
    out_axis = [int(np.flatnonzero(rot[:, b])[0]) for b in range(3)]
    cuts = []
    for b, a in enumerate(out_axis):
        n, start = series.stack.shape[b], int(shift[a])
        cuts.append(slice(start, start + n) if rot[a, b] > 0 else slice(start, start - n, -1) if start - n >= 0
                    else slice(start, None, -1))
    return data.transpose(out_axis)[tuple(cuts)]


def frames_for_source(volume: np.ndarray, series: Series) -> np.ndarray:
    """(slices, rows, columns) frames; frame n lies on ``series.headers[n]``, checked by its ImagePositionPatient."""
    affine_lps = series.stack.affine_lps
    tolerance = POSITION_TOLERANCE * np.linalg.norm(affine_lps[:3, 2]) + IN_PLANE_TOLERANCE * np.linalg.norm(
        affine_lps[:3, :2], axis=0).min()
    for n, ds in enumerate(series.headers):
        expected = affine_lps @ np.array([0.0, 0.0, n, 1.0])
        position = np.array([float(v) for v in ds.ImagePositionPatient])
        if np.linalg.norm(position - expected[:3]) > tolerance:
            raise DicomError(series.files[n], "slice position does not match the series' stack")
    return np.ascontiguousarray(volume.transpose(2, 1, 0))
