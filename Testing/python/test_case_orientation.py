"""load_case refuses an image without a valid orientation (qform and sform codes 0 and a zero voxel size)."""

from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest

from BrainTumorXAILib.errors import CaseError
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.io.labels import SEQUENCES


def _write(path, affine=None, codes=(1, 1), zooms=None, data=None):
    """A NIfTI-1 file; ``zooms`` are patched into the header bytes (nibabel would not save a zero size)."""
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32) if data is None else data
    if zooms is None:
        img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
        img.set_qform(img.affine, code=codes[0])
        img.set_sform(img.affine, code=codes[1])
        nib.save(img, str(path))
        return path
    assert codes == (0, 0)
    raw_path = path.with_name(path.name.removesuffix(".gz"))
    nib.save(nib.Nifti1Image(data, None), str(raw_path))  # no affine: qform and sform codes 0
    raw = bytearray(raw_path.read_bytes())
    raw[80:92] = struct.pack("<3f", *zooms)  # pixdim[1:4] of the NIfTI-1 header
    raw_path.unlink()
    (gzip.open if path.name.endswith(".gz") else open)(path, "wb").write(bytes(raw))
    return path


def _case(tmp_path, **t1ce):
    folder = tmp_path / "Case_0001"
    folder.mkdir()
    for seq in SEQUENCES:
        _write(folder / f"Case_0001_{seq}.nii.gz", affine=np.diag([1.2, 1.0, 2.0, 1.0]))
    if t1ce:
        _write(folder / "Case_0001_t1ce.nii.gz", **t1ce)
    return folder


def test_zero_voxel_size_without_orientation_is_refused_in_one_line(tmp_path):
    folder = _case(tmp_path, codes=(0, 0), zooms=(0.0, 0.0, 0.0))
    # nibabel alone would make up a 1 mm grid for this file:
    header = nib.load(str(folder / "Case_0001_t1ce.nii.gz")).header  # (nibabel "fixes" the zero size on load)
    assert header["qform_code"] == 0 and header["sform_code"] == 0
    assert np.allclose(np.abs(np.diag(nib.load(str(folder / "Case_0001_t1ce.nii.gz")).affine))[:3], 1.0)
    with pytest.raises(CaseError) as err:
        load_case(folder)
    message = str(err.value)
    assert message.startswith(str(folder / "Case_0001_t1ce.nii.gz") + ": no valid orientation")
    assert "qform and sform codes are 0" in message and "\n" not in message


def test_one_zero_voxel_size_is_enough_and_other_sequences_are_checked_too(tmp_path):
    folder = _case(tmp_path)
    _write(folder / "Case_0001_flair.nii.gz", codes=(0, 0), zooms=(1.0, 0.0, 1.0))
    with pytest.raises(CaseError, match="Case_0001_flair.nii.gz: no valid orientation"):
        load_case(folder)


@pytest.mark.parametrize("codes", [(1, 0), (0, 1), (0, 0)])
def test_valid_geometry_is_accepted(tmp_path, codes):
    """A set qform or sform gives the orientation; codes 0 with a real voxel size is the NIfTI
    fall-back (voxel size only), which keeps its voxel size."""
    affine = np.diag([1.2, 1.0, 2.0, 1.0])
    folder = _case(tmp_path, codes=codes, affine=affine)
    case = load_case(folder)
    assert np.allclose(np.abs(np.diag(case.affine))[:3], (1.2, 1.0, 2.0))
