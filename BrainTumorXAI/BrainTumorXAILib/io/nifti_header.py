"""A NIfTI file's orientation, read from the raw header without nibabel (the Slicer module checks a file with it
before Slicer reads it, where the analysis packages may not be installed yet)."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

#: Bytes of the NIfTI-1 and NIfTI-2 headers, and where (offset, struct format) their fields are.
_NIFTI1_FIELDS = dict(size=348, dim=(40, "8h"), pixdim=(76, "8f"), qform=(252, "h"), sform=(254, "h"))
_NIFTI2_FIELDS = dict(size=540, dim=(16, "8q"), pixdim=(104, "8d"), qform=(344, "i"), sform=(348, "i"))


def nifti_orientation_problem(path) -> str:
    """Why a NIfTI file's geometry cannot be trusted ('' when it can); read without nibabel.

    Refused: a header that cannot be read, and an image without a valid orientation, i.e. qform
    and sform codes both 0 together with a zero (or non-finite) voxel size; nibabel and ITK would
    silently replace the zero size by 1 and the analysis would run on made-up geometry.
    The raw header is read (gzip + struct, no nibabel): nibabel "fixes" a zero pixdim to 1 while
    loading, so its header object can no longer tell.  Also used by the Slicer module before Slicer
    reads a file.  Files that are not NIfTI are left to the reader.
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return ""
    try:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read(540)
    except (OSError, EOFError) as exc:
        return f"cannot read the NIfTI header ({type(exc).__name__}: {exc})"
    layout = None
    for endian in ("<", ">"):
        if len(raw) >= 4:
            size = struct.unpack(endian + "i", raw[:4])[0]
            for candidate in (_NIFTI1_FIELDS, _NIFTI2_FIELDS):
                if size == candidate["size"] and len(raw) >= size:
                    layout = (endian, candidate)
    if layout is None:
        return "not a NIfTI-1/NIfTI-2 file (bad header size)"
    endian, fields = layout

    def field(key):
        offset, fmt = fields[key]
        return struct.unpack_from(endian + fmt, raw, offset)

    ndim = max(1, min(int(field("dim")[0]), 7))
    pixdim = field("pixdim")[1:4]
    qform, sform = int(field("qform")[0]), int(field("sform")[0])
    bad = [i for i in range(min(ndim, 3)) if not math.isfinite(pixdim[i]) or pixdim[i] == 0]
    if qform == 0 and sform == 0 and bad:
        sizes = " x ".join(f"{v:g}" for v in pixdim[:3])
        return (f"no valid orientation: qform and sform codes are 0 and the voxel size is {sizes}; "
                "set the image geometry (e.g. re-export it from the scanner or converter)")
    return ""
