"""A series' slices in space: order along the slice normal (never by file name or instance number), check that
they form one regular volume, and the voxel -> patient affine of that volume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Direction cosines that differ by more than this are different orientations.
ORIENTATION_TOLERANCE = 1e-4
#: A slice may lie this fraction of the slice step off the regular grid (scanner rounding) before the series counts
#: as irregular; the DICOM writers hold the frames to the same tolerance.
POSITION_TOLERANCE = 0.05
#: Slices may be shifted within their plane by this fraction of the pixel spacing (rounded positions).
IN_PLANE_TOLERANCE = 0.1
#: LPS (DICOM patient coordinates) <-> RAS (NIfTI world coordinates).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class GeometryProblem(ValueError):
    """The slices do not form one regular volume (the message says why)."""


@dataclass(frozen=True)
class SliceStack:
    order: tuple[int, ...]  # indices of the input headers, sorted along the normal
    affine_lps: np.ndarray  # voxel (column, row, slice) -> LPS mm
    shape: tuple[int, int, int]  # columns, rows, slices

    @property
    def affine_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.affine_lps


def _floats(value, n: int, what: str) -> np.ndarray:
    try:
        out = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        raise GeometryProblem(f"unreadable {what}") from None
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise GeometryProblem(f"unreadable {what}")
    return out


def stack_slices(headers) -> SliceStack:
    """Order single-frame image headers (pydicom datasets) into one volume, or raise ``GeometryProblem``."""
    if len(headers) < 2:
        raise GeometryProblem("a single image, not a volume")
    first = headers[0]
    for attr in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        if attr not in first:
            raise GeometryProblem(f"no {attr} in the header")
    orientation = _floats(first.ImageOrientationPatient, 6, "ImageOrientationPatient")
    spacing = _floats(first.PixelSpacing, 2, "PixelSpacing")
    size = (int(first.Rows), int(first.Columns))
    positions = []
    for ds in headers:
        other = _floats(ds.get("ImageOrientationPatient", ()), 6, "ImageOrientationPatient")
        if np.max(np.abs(other - orientation)) > ORIENTATION_TOLERANCE:
            raise GeometryProblem("mixed orientations in one series (a localizer or a multi-plane series)")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise GeometryProblem("images of different sizes in one series")
        if np.max(np.abs(_floats(ds.get("PixelSpacing", ()), 2, "PixelSpacing") - spacing)) > 1e-4:
            raise GeometryProblem("images with different pixel spacing in one series")
        positions.append(_floats(ds.get("ImagePositionPatient", ()), 3, "ImagePositionPatient"))
    row, col = orientation[:3], orientation[3:]  # along a row (column index grows), along a column
    normal = np.cross(row, col)
    positions = np.asarray(positions)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along = along[order]
    gaps = np.diff(along)
    if np.min(gaps) < 1e-3:
        raise GeometryProblem(f"two images at the same position ({along[np.argmin(gaps)]:.2f} mm along the normal): "
                              "several echoes, phases or repeats in one series")
    median = float(np.median(gaps))
    if np.any(gaps > 1.5 * median):
        k = int(np.argmax(gaps > 1.5 * median))
        raise GeometryProblem(f"missing slice between {along[k]:.2f} and {along[k + 1]:.2f} mm along the normal "
                              f"(gap {gaps[k]:.2f} mm, spacing {median:.2f} mm)")
    step = float(along[-1] - along[0]) / (len(along) - 1)
    off_grid = np.abs(along - along[0] - step * np.arange(len(along)))
    if np.max(off_grid) > POSITION_TOLERANCE * step:
        k = int(np.argmax(off_grid))
        raise GeometryProblem(f"irregular slice spacing: the slice at {along[k]:.2f} mm along the normal lies "
                              f"{off_grid[k]:.2f} mm off a regular {step:.2f} mm grid")
    # Slices must lie on one line along the normal (a tilted gantry shears the stack: not one regular grid).
    offsets = positions[order] - positions[order[0]]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    if np.max(np.abs(in_plane)) > IN_PLANE_TOLERANCE * spacing.min():
        raise GeometryProblem("slices shifted within their plane (gantry tilt or a sheared stack)")
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]  # PixelSpacing is (between rows, between columns)
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[order[0]]
    return SliceStack(tuple(int(i) for i in order), affine, (size[1], size[0], len(headers)))
