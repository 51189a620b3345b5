"""Tiny NIfTI cases for tests: a skull-stripped ellipsoid 'brain' with a tumour blob.

Everything is small (about 20^3 voxels) and deterministic, so tests stay fast.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
from BrainTumorXAILib.io.labels import NAMINGS, SEQUENCES, from_internal

DEFAULT_SHAPE = (20, 22, 18)
# Per-sequence intensity of (brain, NCR, ED, ET): distinct so that channel mix-ups show.
_INTENSITY = {"t1": (100, 60, 90, 110), "t1ce": (120, 50, 110, 250), "t2": (80, 160, 140, 120),
              "flair": (70, 110, 180, 140)}  # fmt: skip


def lps_affine(spacing=(1.0, 1.0, 1.0), origin=(10.0, -20.0, 5.0)) -> np.ndarray:
    """A BraTS-like affine: x and y flipped (LPS-style), given spacing and origin."""
    a = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    a[:3, 3] = origin
    return a


def oblique_affine(spacing=(1.2, 0.9, 2.0), angles_deg=(20.0, -15.0, 30.0), origin=(3.0, -7.0, 11.0)) -> np.ndarray:
    """An affine rotated about all three axes, anisotropic spacing."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rx @ ry @ rz @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def world_coordinates(shape, affine) -> np.ndarray:
    """World (x, y, z) of every voxel centre, shape (3, X, Y, Z)."""
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).reshape((3, *shape))


def world_ramp(shape, affine, coeffs=(0.7, -0.3, 0.45), offset=100.0) -> np.ndarray:
    """A linear function of world position (float32): resampling must preserve it exactly."""
    xyz = world_coordinates(shape, affine)
    return (offset + np.tensordot(np.asarray(coeffs, float), xyz, axes=1)).astype(np.float32)


def phantom(shape=DEFAULT_SHAPE, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(images per sequence as int16, internal classes uint8): ellipsoid brain, nested tumour."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float64)
    centre = (np.asarray(shape) - 1) / 2.0
    rel = (grid - centre[:, None, None, None]) / (0.38 * np.asarray(shape))[:, None, None, None]
    radius = np.sqrt((rel**2).sum(axis=0))
    brain = radius < 1.0
    tumour_centre = centre + np.array([2.0, -1.0, 1.0])
    dist = np.sqrt(((grid - tumour_centre[:, None, None, None]) ** 2).sum(axis=0))
    classes = np.zeros(shape, np.uint8)
    classes[brain & (dist < 4.5)] = 2
    classes[brain & (dist < 3.0)] = 3
    classes[brain & (dist < 1.5)] = 1
    images = {}
    for seq in SEQUENCES:
        value = np.asarray(_INTENSITY[seq], dtype=np.float64)[classes]  # class 0 inside = brain
        noise = rng.normal(0.0, 4.0, shape)
        images[seq] = np.where(brain, np.maximum(value + noise, 1.0), 0).astype(np.int16)
    return images, classes


def write_nifti(path, array, affine=None, dtype=None) -> Path:
    """Write ``array`` at ``path`` with sform and qform = ``affine`` (identity by default)."""
    path = Path(path)
    affine = np.eye(4) if affine is None else np.asarray(affine, float)
    array = np.asarray(array if dtype is None else np.asarray(array).astype(dtype))
    img = nib.Nifti1Image(array, affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def case_files(case_id: str, naming: str, ext: str = ".nii.gz") -> dict[str, str]:
    """File name per sequence and 'seg' for a naming convention."""
    return {key: f"{case_id}{suffix}{ext}" for key, suffix in NAMINGS[naming].items()}


def make_case(root, case_id: str = "BraTS2021_00001", naming: str = "brats2021", *, shape=DEFAULT_SHAPE,
              affine=None, ext: str = ".nii.gz", with_seg: bool = True, seed: int = 0,
              replace: dict | None = None) -> Path:  # fmt: skip
    """Write a phantom case as ``root/case_id`` and return the folder.

    ``replace`` maps a key ('t1'.. or 'seg') to ``(array, affine)`` written instead
    (affine None = the case affine), or to None to leave that file out.
    """
    affine = lps_affine() if affine is None else np.asarray(affine, float)
    images, classes = phantom(shape, seed)
    arrays = dict(images)
    if with_seg:
        arrays["seg"] = from_internal(classes, "brats2023" if naming == "brats2023" else "brats2021")
    folder = Path(root) / case_id
    names = case_files(case_id, naming, ext)
    for key, override in (replace or {}).items():
        if override is None:
            arrays.pop(key, None)
        else:
            arrays[key] = override
    for key, value in arrays.items():
        array, aff = value if isinstance(value, tuple) else (value, affine)
        write_nifti(folder / names[key], array, affine if aff is None else aff)
    return folder


def folder_hashes(folder) -> dict[str, str]:
    """SHA-256 and modification time of every file under ``folder`` (to prove inputs untouched)."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() + f"@{p.stat().st_mtime_ns}"
    return out


def upload_case_files(folder, prefix: str, shape=(8, 8, 6), seed: int = 0) -> dict[str, bytes]:
    """{file name: bytes} of a tiny BraTS 2021-named case (four random float32 sequences) for upload tests."""
    out = {}
    for seq in SEQUENCES:
        path = Path(folder) / f"{prefix}_{seq}.nii.gz"
        nib.save(nib.Nifti1Image(np.random.default_rng(seed).random(shape, dtype=np.float32), np.eye(4)), str(path))
        out[path.name] = path.read_bytes()
    return out
