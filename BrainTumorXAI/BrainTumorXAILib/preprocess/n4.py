"""Optional N4 bias-field correction (SimpleITK) inside the brain."""

from __future__ import annotations

import SimpleITK as sitk

#: N4 runs on a grid this many times coarser; the field is smooth, and full resolution costs minutes.
SHRINK = 4


def n4_correct(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    """``image`` divided by its estimated bias field (same grid, float32)."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    small = sitk.Shrink(image, [SHRINK] * 3)
    small_mask = sitk.Shrink(sitk.Cast(mask, sitk.sitkUInt8), [SHRINK] * 3)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([20, 20, 10])
    corrector.Execute(small, small_mask)
    log_field = corrector.GetLogBiasFieldAsImage(image)
    return image / sitk.Exp(log_field)
