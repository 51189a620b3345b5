"""TCGA-FG-6692 before and after BraTS preprocessing: the silver labels and the BraTS brain mask carried onto the
native T1ce grid with the rigid transform that ../shared/realdata/README.md gives (the yardstick of issue 26)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from BrainTumorXAILib.preprocess.sitk_images import to_array, to_sitk
from realdata import REALDATA

BRATS = REALDATA / "TCGA-FG-6692"
NATIVE = REALDATA / "TCGA-FG-6692_native"

#: BraTS point -> native T1ce point, LPS mm: q = M (p - c) + c + t (the README's figures).
M = ((0.99744, 0.04554, 0.05522), (-0.05798, 0.96645, 0.25022), (-0.04197, -0.25278, 0.96661))
T = (-115.638, 101.947, -51.066)
C = (117.269, -103.140, 74.998)


def brats_to_native() -> sitk.AffineTransform:
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([v for row in M for v in row])
    transform.SetCenter(C)
    transform.SetTranslation(T)
    return transform


def native_grid() -> tuple[tuple[int, ...], np.ndarray]:
    image = nib.load(NATIVE / "TCGA-FG-6692_t1ce.nii.gz")
    return image.shape, image.affine


def carried_to_native(classes: np.ndarray, n_classes: int, brats_affine: np.ndarray) -> np.ndarray:
    """A BraTS-grid label map (values 0..n_classes-1) on the native T1ce grid: one-hot, linear, argmax."""
    shape, affine = native_grid()
    reference = to_sitk(np.zeros(shape, np.float32), affine)
    native_to_brats = brats_to_native().GetInverse()  # resampling asks, for each native point, where it was
    channels = [to_array(sitk.Resample(to_sitk((classes == k).astype(np.float32), brats_affine), reference,
                                       native_to_brats, sitk.sitkLinear, 0.0)) for k in range(n_classes)]
    return np.argmax(np.stack(channels), axis=0).astype(np.uint8)


def silver_regions_native() -> dict[str, np.ndarray]:
    """WT, TC, ET masks of the silver labels on the native grid (BraTS labels 1 NCR, 2 ED, 4 ET)."""
    image = nib.load(BRATS / "TCGA-FG-6692_seg.nii.gz")
    seg = np.asarray(image.dataobj).astype(np.int16)
    internal = np.select([seg == 1, seg == 2, seg == 4], [1, 2, 3], 0)
    native = carried_to_native(internal, 4, image.affine)
    return regions(native)


def brats_brain_native() -> np.ndarray:
    """The BraTS brain mask (non-zero BraTS T1ce) on the native grid."""
    image = nib.load(BRATS / "TCGA-FG-6692_t1ce.nii.gz")
    mask = (np.asarray(image.dataobj) != 0).astype(np.int16)
    return carried_to_native(mask, 2, image.affine).astype(bool)


def regions(classes: np.ndarray) -> dict[str, np.ndarray]:
    """Internal classes (1 NCR, 2 ED, 3 ET) -> BraTS regions."""
    return {"WT": classes > 0, "TC": (classes == 1) | (classes == 3), "ET": classes == 3}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0
