"""The synthetic glioma: necrosis inside an irregular enhancing rim, edema spreading along white matter."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..io.mask_ops import largest_component
from .anatomy import _Anatomy, _rotation
from .params import CaseParams, _equivalent_radius

# --------------------------------------------------------------------------- tumour


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], spacing: float,
                  corr_mm: float) -> np.ndarray:  # fmt: skip
    """Unit-std smooth random field: white noise on a coarse lattice, blurred, upsampled."""
    step = corr_mm / 2.0  # coarse lattice step in mm
    coarse_shape = [int(math.ceil(n * spacing / step)) + 3 for n in shape]
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 1.0, mode="wrap")
    coarse /= coarse.std() + 1e-12
    zoom = spacing / step
    fine = ndimage.affine_transform(coarse, np.full(3, zoom), offset=1.0, output_shape=shape,
                                    order=1, mode="nearest")  # fmt: skip
    return fine.astype(np.float32)


def _lobed_distance(rng: np.random.Generator, rel_mm: np.ndarray, radius: float, n_lobes: int) -> np.ndarray:
    """Normalised distance (about 1 at ``radius``) to a union of random ellipsoids."""
    d = None
    for k in range(n_lobes):
        offset = np.zeros(3) if k == 0 else rng.normal(0.0, 0.35 * radius, 3)
        axes = radius * rng.uniform(0.7, 1.3, 3) * (1.0 if k == 0 else 0.7)
        rot = _rotation(tuple(rng.uniform(-180, 180, 3)))
        local = np.tensordot(rot.T, rel_mm - offset[:, None, None, None], axes=1)
        dk = np.sqrt(((local / axes[:, None, None, None]) ** 2).sum(0))
        d = dk if d is None else np.minimum(d, dk)
    return d.astype(np.float32)


def _select_smallest(field: np.ndarray, allowed: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` allowed voxels with the lowest field values."""
    values = field[allowed]
    count = int(np.clip(count, 1, values.size))
    threshold = np.partition(values, count - 1)[count - 1]
    return allowed & (field <= threshold)


def _eroded(mask: np.ndarray, mm: float, spacing: float) -> np.ndarray:
    """``mask`` shrunk by ``mm`` (at least one voxel; Euclidean, so no blocky facets),
    or ``mask`` itself if nothing would remain."""
    inner = ndimage.distance_transform_edt(mask, sampling=spacing) > max(mm, spacing)
    return inner if inner.any() else mask


def _dilated(mask: np.ndarray, mm: float, spacing: float) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= max(mm, spacing)


def _tumour(rng: np.random.Generator, params: CaseParams, anatomy: _Anatomy, box: tuple[slice, ...],
            centre: np.ndarray, spacing: float) -> np.ndarray:  # fmt: skip
    """Internal classes (0 healthy, 1 NCR, 2 ED, 3 ET) on ``box`` of the crop."""
    shape = tuple(s.stop - s.start for s in box)
    axes = [(np.arange(s.start, s.stop) - c) * spacing for s, c in zip(box, centre)]
    rel = np.stack(np.meshgrid(*axes, indexing="ij"))
    radius = _equivalent_radius(params.wt_volume_cm3 * 1000.0)
    base = _lobed_distance(rng, rel, radius, params.n_lobes)
    wm = anatomy.wm[box]
    tissue = anatomy.brain[box] & (anatomy.gm[box] + wm > 0.35)
    wt_voxels = round(params.wt_volume_cm3 * 1000.0 / spacing**3)

    # Built inside out.  The core stays >= 3 mm inside brain tissue.
    core_noise = _smooth_noise(rng, shape, spacing, 10.0)
    core_field = base + 0.12 * core_noise
    core = _select_smallest(core_field, _eroded(tissue, 3.0, spacing), round(wt_voxels * params.core_fraction))
    core = largest_component(core)
    # Necrosis follows the core's outline, leaving an irregular enhancing rim >= ~1.5 mm.
    ncr_field = base + 0.1 * core_noise + 0.08 * _smooth_noise(rng, shape, spacing, 8.0)
    ncr = _select_smallest(ncr_field, _eroded(core, 1.5, spacing), round(core.sum() * params.ncr_fraction))
    # Edema: a >= 3 mm collar around the core, then reaching further along white matter.
    edema_field = base * np.exp(-params.edema_wm_bias * (wm - 0.5)) + 0.2 * _smooth_noise(rng, shape, spacing, 14.0)
    edema_field[_dilated(core, 3.0, spacing)] = -np.inf
    whole = largest_component(_select_smallest(edema_field, tissue, wt_voxels)) | core
    et = core & ~ncr
    # Parts of the rim that do not enhance count as non-enhancing core.
    gap_noise = _smooth_noise(rng, shape, spacing, 12.0)
    if params.et_gap_fraction > 0 and et.sum() > 10:
        gaps = _select_smallest(-gap_noise, et, round(et.sum() * params.et_gap_fraction))
        ncr, et = ncr | gaps, et & ~gaps
    classes = np.where(whole, 2, 0).astype(np.uint8)
    classes[ncr] = 1
    classes[et] = 3
    return classes
