"""Writing NIfTI results: volumes on a case's grid with its geometry, label maps in the case's own BraTS
convention; written through a temporary file, gzip-compressed in threads."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import CaseError
from ..runtime import usable_cpus
from .case_files import NIFTI_EXTENSIONS
from .labels import CLASS_NAMES, from_internal


def _nifti_suffix(path: Path) -> str:
    for ext in NIFTI_EXTENSIONS:
        if path.name.lower().endswith(ext):
            return path.name[-len(ext):]
    raise CaseError(path, "output file name must end in .nii or .nii.gz")


def _output_header(header, affine: np.ndarray, dtype):
    """A NIfTI-1 header with the reference's metadata, this affine and no intensity scaling."""
    out = nib.Nifti1Header() if header is None else nib.Nifti1Header.from_header(header)
    sform_code = int(out["sform_code"]) or 1
    qform_code = int(out["qform_code"]) or 1
    out.set_data_dtype(dtype)
    out.set_sform(affine, code=sform_code)
    out.set_qform(affine, code=qform_code)
    out.set_slope_inter(1.0, 0.0)  # the reference's scaling would corrupt our values
    out["cal_min"], out["cal_max"] = 0.0, 0.0
    out["intent_code"] = 0
    return out


def save_volume(array, affine, path, header=None, dtype=None, overwrite: bool = False) -> Path:
    """Write ``array`` as NIfTI at ``path`` on the grid ``affine`` (geometry from ``header``).

    Both sform and qform are set to ``affine`` (codes from the reference header, or 1).
    Refuses to replace an existing file unless ``overwrite``.  Written through a
    temporary file, so a failure never leaves a half-written volume behind.
    """
    path = Path(path)
    suffix = _nifti_suffix(path)
    if path.exists() and not overwrite:
        raise CaseError(path, "file exists (pass overwrite=True to replace it)")
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    dtype = np.dtype(dtype or array.dtype)
    affine = np.asarray(affine, dtype=np.float64)
    hdr = _output_header(header, affine, dtype)
    img = nib.Nifti1Image(np.asarray(array, dtype=dtype), affine, header=hdr)
    img.set_sform(affine, code=int(hdr["sform_code"]))
    img.set_qform(affine, code=int(hdr["qform_code"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        if suffix.lower() == ".nii.gz":
            payload = io.BytesIO()
            img.to_stream(payload)  # header and data, uncompressed, as nibabel lays them out
            with open(tmp, "wb") as raw:
                _write_gzip(raw, payload.getbuffer())
        else:
            nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- gzip output
#: Uncompressed bytes per independently compressed chunk (a 240x240x155 float32 map is 9 chunks).
GZIP_CHUNK = 1 << 22
#: Chunks whose bytes are at least this fraction zero use zlib's run-length strategy.
RLE_ZERO_FRACTION = 0.5


def _deflate_chunk(data: bytes, last: bool) -> bytes:
    """Raw deflate of one chunk, level 1, ending on a byte boundary (sync flush) unless it is the last.

    Our maps are zero outside the brain: there Z_RLE is faster than the default strategy and no bigger
    (docs/performance.md); a chunk that is mostly non-zero bytes (the background probability is 1.0 outside
    the brain) keeps the default.
    """
    zeros = 1.0 - np.count_nonzero(np.frombuffer(data, np.uint8)) / max(len(data), 1)
    strategy = zlib.Z_RLE if zeros >= RLE_ZERO_FRACTION else zlib.Z_DEFAULT_STRATEGY
    deflate = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS, 8, strategy)
    return deflate.compress(data) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _compress_workers() -> int:
    return max(1, min(4, usable_cpus()))


_GZIP_HEADER = b"\x1f\x8b\x08\x00" + b"\x00" * 4 + b"\x04\xff"  # deflate, no name, mtime 0, fastest


def _write_gzip(raw, payload) -> None:
    """``payload`` as one standard gzip member whose deflate stream is made of independently
    compressed chunks (pigz's layout), compressed in threads (zlib releases the GIL).  Any gzip
    reader reads it, and the bytes do not depend on the number of threads."""
    view = memoryview(payload).cast("B")
    size = len(view)
    starts = range(0, max(size, 1), GZIP_CHUNK)
    raw.write(_GZIP_HEADER)
    with ThreadPoolExecutor(max_workers=_compress_workers(), thread_name_prefix="gzip-chunk") as pool:
        blocks = pool.map(lambda s: _deflate_chunk(view[s:s + GZIP_CHUNK], s + GZIP_CHUNK >= size), starts)
        crc = zlib.crc32(view)  # while the chunks compress
        for block in blocks:
            raw.write(block)
    raw.write(struct.pack("<II", crc, size & 0xFFFFFFFF))


def save_label_map(classes, case, path, overwrite: bool = False) -> Path:
    """Write internal classes (0..3) in the case's own BraTS label convention (uint8)."""
    classes = np.asarray(classes)
    if classes.shape != case.shape:
        raise ValueError(f"label map shape {classes.shape} does not match the case grid {case.shape}")
    if classes.size and (classes.min() < 0 or classes.max() >= len(CLASS_NAMES)):
        raise ValueError(f"internal classes must lie in 0..{len(CLASS_NAMES) - 1}")
    values = from_internal(classes, case.label_convention)
    return save_volume(values, case.affine, path, header=case.header, dtype=np.uint8, overwrite=overwrite)
