"""Rigid, multi-resolution, mutual-information registration (SimpleITK): sequences onto the T1ce, the T1ce onto
the atlas."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .repeatable import one_itk_thread
from .transforms_io import rigid_parameters

#: Mattes mutual information histogram bins and the fraction of voxels sampled per iteration.
MI_BINS = 32
SAMPLING = 0.05
#: Pyramid: shrink factors (voxels) and smoothing (mm) per level, coarse to fine.
SHRINK = (4, 2, 1)
SMOOTH_MM = (4.0, 2.0, 1.0)
ITERATIONS = 200
#: A rigid head motion beyond these between two series of one examination is not plausible.
MAX_ROTATION_DEG = 30.0
MAX_TRANSLATION_MM = 60.0


@dataclass
class RigidResult:
    transform: sitk.Euler3DTransform  # fixed point -> moving point (LPS mm)
    mi_before: float  # mutual information (nats) at the starting position
    mi_after: float
    seconds: float
    iterations: int
    stop: str

    def implausible(self) -> str:
        """Why this result cannot be trusted ('' when it can)."""
        moved = rigid_parameters(self.transform)
        if not self.mi_after > self.mi_before:
            return f"mutual information did not rise ({self.mi_before:.3f} -> {self.mi_after:.3f})"
        if moved["rotation_deg"] > MAX_ROTATION_DEG or moved["translation_mm"] > MAX_TRANSLATION_MM:
            return (f"the registration moved it {moved['rotation_deg']:.0f} deg and {moved['translation_mm']:.0f} mm "
                    "(more than a patient moves between series)")
        return ""


def _method(fixed_mask: sitk.Image | None, seed: int, shrink, smooth_mm,
            iterations: int) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=MI_BINS)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING, seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel(list(smooth_mm))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def mutual_information(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                       fixed_mask: sitk.Image | None = None) -> float:
    """Mattes mutual information (nats, every voxel of the fixed image or its mask) of ``moving`` seen through
    ``transform``: the registration-quality figure of the summary."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=MI_BINS)
    reg.SetMetricSamplingStrategy(reg.NONE)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetInitialTransform(transform, inPlace=False)
    return -float(reg.MetricEvaluate(fixed, moving))  # ITK minimises the negative


def register_rigid(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform | None = None,
                   fixed_mask: sitk.Image | None = None, seed: int = 1, shrink=SHRINK, smooth_mm=SMOOTH_MM,
                   iterations: int = ITERATIONS) -> RigidResult:
    """The rigid transform (fixed point -> moving point) that best aligns ``moving`` with ``fixed``.

    ``initial`` None starts from the headers (identity in physical space, rotation about the fixed image's centre).
    The metric is sampled at random with a fixed ``seed`` and summed on one ITK thread, so a run repeats exactly.
    """
    with one_itk_thread():
        return _register_rigid(fixed, moving, initial, fixed_mask, seed, shrink, smooth_mm, iterations)


def _register_rigid(fixed, moving, initial, fixed_mask, seed, shrink, smooth_mm, iterations) -> RigidResult:
    t0 = time.perf_counter()
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    start = _recentred(initial or sitk.Euler3DTransform(), _centre(fixed))
    mi_before = mutual_information(fixed, moving, start, fixed_mask)
    # A pyramid level may not shrink the thinnest side of a short series below a few voxels (ITK refuses a 0 size).
    limit = max(1, min(min(fixed.GetSize()), min(moving.GetSize())) // 4)
    reg = _method(fixed_mask, seed, [min(s, limit) for s in shrink], smooth_mm, iterations)
    result = sitk.Euler3DTransform(start)
    reg.SetInitialTransform(result, inPlace=True)
    reg.Execute(fixed, moving)
    mi_after = mutual_information(fixed, moving, result, fixed_mask)
    return RigidResult(result, mi_before, mi_after, time.perf_counter() - t0, reg.GetOptimizerIteration(),
                       reg.GetOptimizerStopConditionDescription())


def _centre(image: sitk.Image) -> tuple[float, float, float]:
    size = np.asarray(image.GetSize(), dtype=np.float64)
    return image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist())


def _recentred(transform: sitk.Transform, centre) -> sitk.Euler3DTransform:
    """The same rigid map as ``transform``, expressed about ``centre``."""
    out = sitk.Euler3DTransform()
    out.SetCenter(centre)
    out.SetMatrix(transform.GetMatrix())
    out.SetTranslation((np.asarray(transform.TransformPoint(centre)) - np.asarray(centre)).tolist())
    return out
