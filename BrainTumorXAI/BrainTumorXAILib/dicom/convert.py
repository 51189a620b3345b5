"""A series -> NIfTI on its exact scanner geometry (the affine from ``geometry``, voxels from GDCM or pydicom).

The voxels of a whole series come from SimpleITK's GDCM series reader, given the files in our stack order (it
parses in C++ what pydicom parses in Python, several times faster); the geometry is always ours.  Where GDCM
cannot be used (SimpleITK missing, a syntax only pydicom decodes, rescale values that differ between slices) or
fails (a damaged file), each slice goes through pydicom, which also names the bad file.  A syntax neither can
decode is refused by name.
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


def _uniform_rescale(series: Series) -> bool:
    """Whether every slice has the first one's rescale (GDCM's series output takes its pixel type from it)."""
    def rescale(ds):
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    first = rescale(series.headers[0])
    return all(rescale(ds) == first for ds in series.headers[1:])


def _gdcm_volume(series: Series) -> np.ndarray | None:
    """(column, row, slice) float32 through GDCM's series reader, or None where it cannot or did not work."""
    syntax = UID(series.first.file_meta.get("TransferSyntaxUID"))
    if sitk is None or (syntax.is_compressed and syntax not in _GDCM_DECODES) or not _uniform_rescale(series):
        return None
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in series.files])  # our stack order; GDCM's own sorting is not used
    warnings_shown = reader.GetGlobalWarningDisplay()
    reader.SetGlobalWarningDisplay(False)  # spacing is judged by ``geometry``, not by ITK's console warnings
    try:
        array = sitk.GetArrayFromImage(reader.Execute())  # (slice, row, column)
    except RuntimeError:
        return None  # a damaged file: the per-slice path names it
    finally:
        reader.SetGlobalWarningDisplay(warnings_shown)
    if array.shape != (len(series.files), *series.stack.shape[1::-1]):
        return None
    return np.ascontiguousarray(array.astype(np.float32, copy=False).transpose(2, 1, 0))


def series_volume(series: Series) -> np.ndarray:
    """The series' voxels as float32 (column, row, slice): index order of ``series.stack.affine_ras``."""
    if series.problem or series.stack is None:
        raise DicomError(series.files[0].parent, f"{series.label()}: {series.problem}")
    check_decodable(series)
    volume = _gdcm_volume(series)
    if volume is not None:
        return volume
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
