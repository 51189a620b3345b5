"""Anatomy of a synthetic case: the MNI152 templates nilearn ships, the random head pose, the mass effect."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from .params import _BRAIN_CENTRE_MNI, CaseParams, _equivalent_radius

# --------------------------------------------------------------------------- atlas


@dataclass(frozen=True)
class _Atlas:
    gm: np.ndarray  # float32 probabilities on the template grid
    wm: np.ndarray
    mask: np.ndarray  # float32 0/1 brain mask
    affine: np.ndarray  # template voxel -> MNI mm
    seeds_mm: np.ndarray  # (K, 3) candidate tumour centres in deep cerebral white matter
    seeds_depth_mm: np.ndarray  # (K,) their distance to the brain surface


def _nilearn_template_files() -> dict[str, Path] | None:
    """The MNI152 files inside the installed nilearn wheel, found without importing
    ``nilearn.datasets`` (whose import pulls scikit-learn and takes seconds)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    files = {
        k: data / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")
    }
    return files if all(f.is_file() for f in files.values()) else None


def load_templates() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t1, gm, wm, affine) exactly as nilearn's load_mni152_* return them (rescaled to 0..1)."""
    files = _nilearn_template_files()
    if files is None:  # unusual layout: go through the public (slow-import) API
        from nilearn import datasets

        imgs = [datasets.load_mni152_template(1), datasets.load_mni152_gm_template(1),
                datasets.load_mni152_wm_template(1)]  # fmt: skip
    else:
        imgs = [nib.load(files[k]) for k in ("t1", "gm", "wm")]
    arrays = [np.asarray(img.dataobj, dtype=np.float32) for img in imgs]
    arrays = [a / a.max() for a in arrays]
    return arrays[0], arrays[1], arrays[2], np.asarray(imgs[0].affine, dtype=np.float64)


@lru_cache(maxsize=1)
def _atlas() -> _Atlas:
    t1, gm, wm, affine = load_templates()
    mask = (t1 > 0.2).astype(np.float32)  # nilearn's load_mni152_brain_mask rule
    # Candidate centres on a 2 mm lattice: deep white matter of the cerebrum,
    # off the midline (one hemisphere), above the cerebellum.
    step = 2
    depth = ndimage.distance_transform_edt(mask[::step, ::step, ::step]) * step
    idx = np.argwhere(wm[::step, ::step, ::step] > 0.75) * step
    mm = idx @ affine[:3, :3].T + affine[:3, 3]
    keep = (np.abs(mm[:, 0]) > 12) & (mm[:, 2] > -5) & ~((mm[:, 1] < -45) & (mm[:, 2] < 10))
    depth_at = depth[tuple((idx[keep] // step).T)]
    return _Atlas(gm=gm, wm=wm, mask=mask, affine=affine, seeds_mm=mm[keep], seeds_depth_mm=depth_at)


def _pick_centre(rng: np.random.Generator, atlas: _Atlas, params: CaseParams) -> np.ndarray:
    """A white-matter seed deep enough that the tumour core stays inside the brain."""
    core_radius = _equivalent_radius(params.wt_volume_cm3 * 1000.0 * params.core_fraction)
    need = core_radius / min(params.scale) + 6.0
    ok = np.flatnonzero(atlas.seeds_depth_mm >= need)
    if ok.size == 0:  # huge core: take the deepest tenth
        ok = np.argsort(atlas.seeds_depth_mm)[-max(1, atlas.seeds_depth_mm.size // 10) :]
    return atlas.seeds_mm[ok[rng.integers(ok.size)]]


# --------------------------------------------------------------------------- geometry


def default_affine(shape: tuple[int, int, int], spacing: float) -> np.ndarray:
    """BraTS-like header: LPS-ish axes diag(-s, -s, s), grid centre on the brain centre (RAS mm)."""
    affine = np.diag([-spacing, -spacing, spacing, 1.0])
    centre_vox = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    affine[:3, 3] = _BRAIN_CENTRE_MNI - affine[:3, :3] @ centre_vox
    return affine


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _grid_to_template(params: CaseParams, grid_affine: np.ndarray, atlas: _Atlas) -> np.ndarray:
    """4x4 map from grid voxel indices to template voxel indices (the random head pose)."""
    flip = np.diag([-1.0 if params.flip else 1.0, 1.0, 1.0])
    linear = _rotation(params.rotation_deg) @ np.diag(1.0 / np.asarray(params.scale)) @ flip
    head = np.eye(4)  # patient mm -> MNI mm
    head[:3, :3] = linear
    head[:3, 3] = _BRAIN_CENTRE_MNI + np.asarray(params.translation_mm) - linear @ _BRAIN_CENTRE_MNI
    return np.linalg.inv(atlas.affine) @ head @ grid_affine


def _brain_crop(m: np.ndarray, atlas: _Atlas, shape: tuple[int, ...], pad: int) -> tuple[slice, ...]:
    """Grid bounding box of the brain: the template mask's box corners mapped back (affine hull)."""
    nz = np.argwhere(atlas.mask > 0)
    lo, hi = nz.min(0), nz.max(0)
    corners = np.array([np.where(np.array(bits, bool), hi, lo) for bits in np.ndindex(2, 2, 2)], dtype=np.float64)
    inv = np.linalg.inv(m)
    grid = corners @ inv[:3, :3].T + inv[:3, 3]
    start = np.clip(np.floor(grid.min(0)).astype(int) - pad, 0, shape)
    stop = np.clip(np.ceil(grid.max(0)).astype(int) + pad + 1, 0, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


# --------------------------------------------------------------------------- anatomy


@dataclass
class _Anatomy:
    gm: np.ndarray  # float32 fractions on the crop
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # bool


def _sample(atlas: _Atlas, coords_or_matrix, output_shape=None, offset=None) -> list[np.ndarray]:
    """gm, wm, mask sampled trilinearly, from coordinates or through an affine map."""
    out = []
    for vol in (atlas.gm, atlas.wm, atlas.mask):
        if output_shape is None:
            out.append(ndimage.map_coordinates(vol, coords_or_matrix, order=1, mode="constant"))
        else:
            out.append(ndimage.affine_transform(vol, coords_or_matrix, offset=offset,
                                                output_shape=output_shape, order=1, mode="constant"))  # fmt: skip
    return out


def _anatomy_from(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> _Anatomy:
    # The templates' tissue maps do not sum to one; what the brain mask holds beyond
    # GM + WM is CSF (ventricles, sulci).
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    return _Anatomy(gm=gm, wm=wm, csf=csf, brain=mask >= 0.5)


def _resample_anatomy(atlas: _Atlas, m: np.ndarray, crop: tuple[slice, ...]) -> _Anatomy:
    start = np.array([s.start for s in crop], dtype=np.float64)
    shape = tuple(s.stop - s.start for s in crop)
    gm, wm, mask = _sample(atlas, m[:3, :3], shape, m[:3, :3] @ start + m[:3, 3])
    return _anatomy_from(gm, wm, mask)


def _mass_effect(anatomy: _Anatomy, atlas: _Atlas, m: np.ndarray, crop: tuple[slice, ...],
                 box: tuple[slice, ...], centre: np.ndarray, amplitude_mm: float,
                 reach_mm: float, spacing: float) -> None:  # fmt: skip
    """Push the anatomy in ``box`` radially away from ``centre`` (crop voxels), in place.

    Displacement u(r) = A (r/rho) exp((1 - r^2/rho^2)/2) peaks at A for r = rho and
    stays gentle enough (A / rho << 1) that the warp does not fold.
    """
    if amplitude_mm <= 0:
        return
    grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float64) for s in box],
                                indexing="ij"))  # fmt: skip
    rel = (grid - centre[:, None, None, None]) * spacing
    r2 = (rel**2).sum(0) / reach_mm**2
    u = amplitude_mm / reach_mm * np.exp(0.5 * (1.0 - r2))  # u(r)/r
    source = grid - rel * u / spacing  # tissue now at x came from nearer the centre
    start = np.array([s.start for s in crop], dtype=np.float64)
    source += start[:, None, None, None]
    coords = np.tensordot(m[:3, :3], source, axes=1) + m[:3, 3][:, None, None, None]
    warped = _anatomy_from(*_sample(atlas, coords))
    for name in ("gm", "wm", "csf", "brain"):
        getattr(anatomy, name)[box] = getattr(warped, name)
