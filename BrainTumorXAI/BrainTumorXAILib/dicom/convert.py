"""A series -> NIfTI on its exact scanner geometry (the affine from ``geometry``, voxels from pydicom).

Compressed transfer syntaxes decode through pydicom's pixel handlers; JPEG Lossless, which pydicom decodes only
with extra packages, falls back to SimpleITK's GDCM reader.  A syntax neither can decode is refused by name.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import (JPEG2000, UID, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless,
                         JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)

from . import DicomError
from .scan import Series

try:  # GDCM decodes JPEG Lossless (the usual PACS MR export), which pydicom needs extra packages for
    import SimpleITK as sitk
except ImportError:  # pragma: no cover - optional
    sitk = None


#: Compressed syntaxes GDCM decodes (the JPEG family and RLE).
_GDCM_DECODES = {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
                 JPEG2000Lossless, JPEG2000, RLELossless}


def _decodable(syntax: UID) -> str:
    """'pydicom', 'gdcm', or raise naming the syntax."""
    if not syntax.is_compressed:
        return "pydicom"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is not None and decoder.is_available:
        return "pydicom"
    if sitk is not None and syntax in _GDCM_DECODES:
        return "gdcm"
    raise ValueError(f"transfer syntax {syntax.name} ({syntax}) cannot be decoded here "
                     "(install SimpleITK, or pylibjpeg with pylibjpeg-libjpeg)")


def _slice_pixels(path: Path) -> np.ndarray:
    """One slice as float32 (row, column), rescaled to the stored real-world values."""
    try:
        ds = pydicom.dcmread(path)
        syntax = ds.file_meta.TransferSyntaxUID
        if _decodable(syntax) == "gdcm":
            array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0].astype(np.float32)
            return array  # GDCM has applied the rescale already
        array = ds.pixel_array.astype(np.float32)
    except ValueError as exc:
        raise DicomError(path, str(exc).splitlines()[0]) from None
    except (EOFError, KeyError, AttributeError, OSError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DicomError(path, f"pixel data unreadable or truncated ({type(exc).__name__}: {first_line})") from None
    if array.ndim != 2:
        raise DicomError(path, f"expected one greyscale frame, got pixel data of shape {array.shape}")
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return array * np.float32(slope) + np.float32(intercept) if (slope, intercept) != (1.0, 0.0) else array


def check_decodable(series: Series) -> None:
    """Fail before any work when a series' transfer syntax cannot be decoded."""
    syntax = series.first.file_meta.get("TransferSyntaxUID")
    try:
        _decodable(UID(syntax))
    except ValueError as exc:
        raise DicomError(series.files[0], f"{series.label()}: {exc}") from None


def series_volume(series: Series) -> np.ndarray:
    """The series' voxels as float32 (column, row, slice): index order of ``series.stack.affine_ras``."""
    if series.problem or series.stack is None:
        raise DicomError(series.files[0].parent, f"{series.label()}: {series.problem}")
    check_decodable(series)
    slices = [_slice_pixels(path) for path in series.files]  # files are in stack order
    expected = series.stack.shape[1::-1]
    for path, pixels in zip(series.files, slices):
        if pixels.shape != expected:
            raise DicomError(path, f"pixel data of shape {pixels.shape}, the header says {expected}")
    return np.ascontiguousarray(np.stack(slices, axis=-1).transpose(1, 0, 2))


def series_to_nifti(series: Series, path: Path) -> Path:
    """Write the series as NIfTI (scanner coordinates, sform and qform) at ``path``."""
    volume = series_volume(series)
    if np.array_equal(volume, np.rint(volume)) and volume.min() >= -32768 and volume.max() <= 32767:
        volume = volume.astype(np.int16)  # stored integers (the usual MR case): half the size, the same values
    image = nib.Nifti1Image(volume, series.stack.affine_ras)
    image.set_sform(series.stack.affine_ras, code=1)
    image.set_qform(series.stack.affine_ras, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return Path(path)
