"""Independent checks of written DICOM objects in physical space: every frame is compared, pixel by pixel, with
the NIfTI volume sampled at the patient positions of the frame's pixels (found from its own plane position and
orientation, not from the writer's index bookkeeping)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def source_positions(files) -> dict[str, np.ndarray]:
    """SOPInstanceUID -> ImagePositionPatient of each source file."""
    out = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = np.array([float(v) for v in ds.ImagePositionPatient])
    return out


def _sample(nifti: nib.Nifti1Image, origin, row_cos, col_cos, spacing, rows, cols) -> np.ndarray:
    """NIfTI values at the (rows, cols) pixel centres of a plane given in LPS."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    points = origin + c[..., None] * row_cos * spacing[1] + r[..., None] * col_cos * spacing[0]
    ras = np.c_[points.reshape(-1, 3), np.ones(points.size // 3)] @ LPS.T
    index = ras @ np.linalg.inv(nifti.affine).T
    rounded = np.rint(index[:, :3]).astype(int)
    assert np.max(np.abs(index[:, :3] - rounded)) < 1e-2, "frame pixels are not on the NIfTI voxel centres"
    data = np.asanyarray(nifti.dataobj)
    return data[tuple(rounded.T)].reshape(rows, cols)


def frame_geometry(ds, frame: int):
    shared = ds.SharedFunctionalGroupsSequence[0]
    per = ds.PerFrameFunctionalGroupsSequence[frame]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    position = np.array([float(v) for v in per.PlanePositionSequence[0].ImagePositionPatient])
    source = str(per.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
    return position, orientation[:3], orientation[3:], spacing, source


def seg_mismatches(seg_path: Path, source_files, classes_nifti: nib.Nifti1Image) -> int:
    """Pixels of a DICOM SEG that differ from ``classes_nifti`` (internal classes) at the same place; also asserts
    each frame's position is its referenced source instance's position."""
    ds = pydicom.dcmread(seg_path)
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    sources = source_positions(source_files)
    wrong = 0
    for f in range(int(ds.NumberOfFrames)):
        position, row_cos, col_cos, spacing, source = frame_geometry(ds, f)
        assert np.allclose(sources[source], position, atol=1e-3), "frame position is not its source slice's"
        segment = int(ds.PerFrameFunctionalGroupsSequence[f].SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        expected = _sample(classes_nifti, position, row_cos, col_cos, spacing, ds.Rows, ds.Columns) == segment
        wrong += int(np.count_nonzero(expected != pixels[f].astype(bool)))
    return wrong


def pmap_max_error(pm_path: Path, nifti: nib.Nifti1Image) -> float:
    """Largest difference between a Parametric Map's (real-world) values and ``nifti`` at the same place."""
    ds = pydicom.dcmread(pm_path)
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns).astype(np.float64)
    worst = 0.0
    for f in range(int(ds.NumberOfFrames)):
        position, row_cos, col_cos, spacing, _ = frame_geometry(ds, f)
        expected = _sample(nifti, position, row_cos, col_cos, spacing, ds.Rows, ds.Columns)
        worst = max(worst, float(np.max(np.abs(expected - pixels[f]))))
    return worst
