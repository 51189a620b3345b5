"""numpy arrays on a nibabel (RAS) affine <-> SimpleITK images (LPS), exactly.

The rest of the project holds volumes as nibabel does: array[i, j, k] with a 4x4 voxel-to-RAS affine.  ITK keeps
physical points in LPS and arrays in (k, j, i) order.  Going through these two functions keeps every voxel where
it was; the NIfTI files are not re-read by ITK, whose qform/sform choice can differ from nibabel's.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: RAS <-> LPS: negate x and y.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])

#: Largest departure from orthonormal that ITK's direction cosines still take (nibabel affines of real
#: scanners carry float32 rounding).
_ORTHONORMAL_TOL = 1e-3


def spacing_and_direction(affine) -> tuple[np.ndarray, np.ndarray]:
    """(voxel sizes, 3x3 LPS direction cosines) of a RAS affine."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = RAS_TO_LPS @ (affine[:3, :3] / spacing)
    return spacing, direction


def is_orthonormal(affine) -> bool:
    """Whether the affine is a rotation times voxel sizes (no shear): what ITK can represent."""
    _, direction = spacing_and_direction(affine)
    return bool(np.allclose(direction.T @ direction, np.eye(3), atol=_ORTHONORMAL_TOL))


def to_sitk(array, affine, pixel=sitk.sitkFloat32) -> sitk.Image:
    """An ITK image of ``array`` (i, j, k) on the RAS ``affine``.

    A sheared affine is replaced by its nearest rotation (the polar factor) so ITK accepts it; callers that must
    be exact check :func:`is_orthonormal` first.
    """
    spacing, direction = spacing_and_direction(affine)
    u, _, vt = np.linalg.svd(direction)
    direction = u @ vt  # exact for an orthonormal direction, the nearest rotation otherwise
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image = sitk.Cast(image, pixel) if pixel is not None else image
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in direction.ravel()])
    image.SetOrigin([float(o) for o in RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, 3]])
    return image


def to_array(image: sitk.Image) -> np.ndarray:
    """The (i, j, k) array of an ITK image."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def affine_of(image: sitk.Image) -> np.ndarray:
    """The RAS voxel-to-world affine of an ITK image."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = RAS_TO_LPS @ direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    affine[:3, 3] = RAS_TO_LPS @ np.asarray(image.GetOrigin(), dtype=np.float64)
    return affine


def resample(image: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None,
             interpolator=sitk.sitkLinear, default: float = 0.0) -> sitk.Image:
    """``image`` on ``reference``'s grid through ``transform`` (reference point -> image point; None: identity)."""
    return sitk.Resample(image, reference, transform or sitk.Transform(), interpolator, float(default),
                         image.GetPixelID())
