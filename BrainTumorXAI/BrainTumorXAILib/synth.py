"""Realistic synthetic BraTS-like cases: MNI152 anatomy, a layered glioma, four MR contrasts.

Real BraTS data cannot be reached or redistributed, so the tests, the demo
network and the shipped sample case all use these.  A case is built in four
steps, every random choice drawn from one seeded generator:

1. anatomy: the MNI152 grey/white-matter and brain templates that the nilearn
   wheel ships, resampled into the target grid through a small random head pose;
2. tumour: nested deformed blobs - necrosis (NCR) inside an irregular enhancing
   rim (ET), edema (ED) around them spreading preferentially along white matter -
   with optional mass effect pushing the anatomy outward;
3. contrasts: per-tissue intensities for T1, T1ce, T2 and FLAIR following BraTS
   appearance, tumour texture, blur, a multiplicative bias field, Rician noise;
4. files: the real BraTS layout (2021 or 2023 naming), int16 images, uint8 labels.

The content depends only on the seed, shape, spacing and ``rng_params``; the
``affine`` argument changes the header geometry alone.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from .labels import NAMINGS, SEQUENCES, from_internal
from .mask_ops import largest_component

#: Grid presets for the command line: (shape, isotropic spacing in mm).
SIZE_PRESETS: dict[str, tuple[tuple[int, int, int], float]] = {
    "brats": ((240, 240, 155), 1.0),
    "small": ((120, 120, 78), 2.0),  # same field of view at 2 mm
}


SAMPLE_CASE_ID = "BraTS2021_Sample"
SAMPLE_CASE_SEED = 2026

# Brain centre in MNI mm; the default header puts the grid centre there.
_BRAIN_CENTRE_MNI = np.array([0.0, -17.0, 5.0])
# The MNI152 average brain is larger than a typical patient's (and than SRI24).
_BASE_SCALE = 0.92

# Relative intensity of each tissue per sequence (times a per-case gain).
# Chosen so that each tumour class differs from its look-alikes in some other
# channel: NCR ~ CSF except on FLAIR, ED ~ GM on T1/T1ce, ET unique on T1ce.
_CONTRASTS: dict[str, dict[str, float]] = {
    "t1": {"gm": 0.72, "wm": 1.00, "csf": 0.28, "ncr": 0.40, "ed": 0.68, "et": 0.76},
    "t1ce": {"gm": 0.74, "wm": 1.00, "csf": 0.30, "ncr": 0.36, "ed": 0.70, "et": 1.65},
    "t2": {"gm": 0.75, "wm": 0.55, "csf": 1.60, "ncr": 1.35, "ed": 1.15, "et": 0.95},
    "flair": {"gm": 0.75, "wm": 0.60, "csf": 0.18, "ncr": 0.85, "ed": 1.45, "et": 1.15},
}
# Texture strength (relative std) of each tumour class: necrosis is the most heterogeneous.
_TEXTURE = {"ncr": 0.10, "et": 0.12, "ed": 0.05}


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CaseParams:
    """Every per-case random choice that shapes the geometry; ``rng_params`` may override any."""

    flip: bool
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    wt_volume_cm3: float
    core_fraction: float  # (NCR + ET) / WT
    ncr_fraction: float  # NCR / core before rim gaps
    et_gap_fraction: float  # share of the rim that does not enhance
    n_lobes: int
    edema_wm_bias: float  # how strongly edema follows white matter
    mass_effect_mm: float
    centre_mni: tuple[float, float, float] | None = None  # None: drawn from white matter


def _draw_params(rng: np.random.Generator) -> CaseParams:
    global_scale = _BASE_SCALE * rng.uniform(0.95, 1.05)
    return CaseParams(
        flip=bool(rng.random() < 0.5),
        rotation_deg=tuple(np.clip(rng.normal(0.0, 3.0, 3), -6.0, 6.0).tolist()),
        scale=tuple((global_scale * rng.uniform(0.98, 1.02, 3)).tolist()),
        translation_mm=tuple(rng.uniform(-4.0, 4.0, 3).tolist()),
        wt_volume_cm3=float(math.exp(rng.uniform(math.log(20.0), math.log(150.0)))),
        core_fraction=float(rng.uniform(0.2, 0.55)),
        ncr_fraction=float(rng.uniform(0.25, 0.6)),
        et_gap_fraction=float(0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.25)),
        n_lobes=int(rng.integers(1, 4)),
        edema_wm_bias=float(rng.uniform(0.4, 1.0)),
        mass_effect_mm=float(0.0 if rng.random() < 0.3 else rng.uniform(1.0, 5.0)),
    )


def _apply_overrides(params: CaseParams, overrides: Mapping[str, object] | None) -> CaseParams:
    if not overrides:
        return params
    known = {f.name for f in dataclasses.fields(CaseParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown rng_params {unknown}; expected some of {sorted(known)}")
    return dataclasses.replace(params, **overrides)


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


def _load_templates() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t1, gm, wm, affine) exactly as nilearn's load_mni152_* return them (rescaled to 0..1)."""
    import nibabel as nib

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
    t1, gm, wm, affine = _load_templates()
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


# --------------------------------------------------------------------------- tumour


def _equivalent_radius(volume_mm3: float) -> float:
    return (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)


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


# --------------------------------------------------------------------------- contrasts


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    """Smooth multiplicative field: exp of a random quadratic polynomial, about +-strength."""
    x, y, z = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape)
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
    c = rng.normal(0.0, strength / 2.0, 9).astype(np.float32)
    log_bias = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z
    log_bias = log_bias + c[6] * x * y + c[7] * x * z + c[8] * y * z
    return np.exp(np.clip(log_bias, -2 * strength, 2 * strength))


def _render(rng: np.random.Generator, anatomy: _Anatomy, classes: np.ndarray, box: tuple[slice, ...],
            spacing: float) -> dict[str, np.ndarray]:  # fmt: skip
    """The four int16 sequences on the crop."""
    shape = anatomy.gm.shape
    total = np.maximum(anatomy.gm + anatomy.wm + anatomy.csf, 1e-6)
    fractions = {"gm": anatomy.gm / total, "wm": anatomy.wm / total, "csf": anatomy.csf / total}
    box_shape = classes.shape
    texture = {k: _smooth_noise(rng, box_shape, spacing, 6.0) * s for k, s in _TEXTURE.items()}
    # Edema is most intense next to the core and fades toward its border.
    core_dist = ndimage.distance_transform_edt((classes != 1) & (classes != 3), sampling=spacing)
    edema_strength = 0.65 + 0.35 * np.exp(-core_dist / 12.0)
    noise_frac = rng.uniform(0.015, 0.035)
    blur = rng.uniform(0.4, 0.8) / spacing  # point-spread sigma in mm -> voxels
    bias_strength = rng.uniform(0.05, 0.15)

    images = {}
    for seq in SEQUENCES:
        values = {k: v * rng.uniform(0.93, 1.07) for k, v in _CONTRASTS[seq].items()}
        gain = rng.uniform(450.0, 800.0)
        image = sum(fractions[t] * values[t] for t in ("gm", "wm", "csf"))
        image[~anatomy.brain] = 0.0
        sub = image[box]
        tumour_value = {k: values[k] * (1.0 + texture[k]) for k in _TEXTURE}
        ed = classes == 2
        sub[ed] += edema_strength[ed] * (tumour_value["ed"][ed] - sub[ed])
        sub[classes == 1] = tumour_value["ncr"][classes == 1]
        sub[classes == 3] = tumour_value["et"][classes == 3]
        image = ndimage.gaussian_filter(image * gain, blur) * _bias_field(rng, shape, bias_strength)
        sigma = noise_frac * gain * values["wm"]
        real = image + sigma * rng.standard_normal(shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(shape, dtype=np.float32)
        image = np.sqrt(real * real + imag * imag)  # Rician magnitude
        image[~anatomy.brain] = 0.0  # skull-stripped: background exactly 0
        images[seq] = np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)
    return images


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class SynthCase:
    """One synthetic case in memory (full grid)."""

    images: dict[str, np.ndarray]  # sequence -> int16, keys in SEQUENCES order
    classes: np.ndarray  # uint8 internal classes 0..3
    brain: np.ndarray  # bool brain mask (images are 0 outside)
    tissue: dict[str, np.ndarray]  # 'gm', 'wm', 'csf' float32 fractions (after mass effect)
    affine: np.ndarray  # default BraTS-like header
    params: CaseParams


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))


def _check_grid(shape, spacing) -> tuple[tuple[int, int, int], float]:
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes of at least 8 voxels, got {shape}")
    if not (float(spacing) > 0 and math.isfinite(float(spacing))):
        raise ValueError(f"spacing must be a positive number of mm, got {spacing}")
    return shape, float(spacing)


def synthesize(seed: int | np.random.SeedSequence, *, shape=(240, 240, 155), spacing: float = 1.0,
               rng_params: Mapping[str, object] | None = None) -> SynthCase:  # fmt: skip
    """Build one case in memory; deterministic in (seed, shape, spacing, rng_params)."""
    shape, spacing = _check_grid(shape, spacing)
    rng = np.random.default_rng(_seed_sequence(seed))
    atlas = _atlas()
    params = _apply_overrides(_draw_params(rng), rng_params)
    centre_mni = np.asarray(params.centre_mni) if params.centre_mni is not None else _pick_centre(rng, atlas, params)
    params = dataclasses.replace(params, centre_mni=tuple(float(v) for v in centre_mni))

    affine = default_affine(shape, spacing)
    m = _grid_to_template(params, affine, atlas)
    pad = int(math.ceil(params.mass_effect_mm / spacing)) + 2
    crop = _brain_crop(m, atlas, shape, pad)
    anatomy = _resample_anatomy(atlas, m, crop)

    # Tumour centre in crop voxels, and the box that holds the tumour and its mass effect.
    inv = np.linalg.inv(m) @ np.linalg.inv(atlas.affine)
    centre = inv[:3, :3] @ centre_mni + inv[:3, 3] - np.array([s.start for s in crop])
    radius = _equivalent_radius(params.wt_volume_cm3 * 1000.0)
    reach = 0.6 * radius
    half = max(1.9 * radius + 6.0, 3.0 * reach) / spacing
    box = tuple(slice(int(max(0, math.floor(c - half))), int(min(n, math.ceil(c + half) + 1)))
                for c, n in zip(centre, anatomy.gm.shape))  # fmt: skip
    _mass_effect(anatomy, atlas, m, crop, box, centre, params.mass_effect_mm, reach, spacing)
    box_classes = _tumour(rng, params, anatomy, box, centre, spacing)
    crop_images = _render(rng, anatomy, box_classes, box, spacing)

    classes = np.zeros(shape, np.uint8)
    classes[crop][box] = box_classes
    brain = np.zeros(shape, bool)
    brain[crop] = anatomy.brain
    images = {}
    for seq in SEQUENCES:
        images[seq] = np.zeros(shape, np.int16)
        images[seq][crop] = crop_images[seq]
    tissue = {}
    for name in ("gm", "wm", "csf"):
        tissue[name] = np.zeros(shape, np.float32)
        tissue[name][crop] = getattr(anatomy, name)
    return SynthCase(images=images, classes=classes, brain=brain, tissue=tissue, affine=affine, params=params)


def case_file_names(case_id: str, naming: str) -> dict[str, str]:
    """File name of each sequence and of 'seg' for ``case_id`` under ``naming``."""
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; expected one of {', '.join(NAMINGS)}")
    return {key: f"{case_id}{suffix}.nii.gz" for key, suffix in NAMINGS[naming].items()}


def _check_affine(affine) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
        raise ValueError("affine must be a finite, invertible 4x4 matrix")
    return a


def _refuse_overwrite(case_dir: Path) -> None:
    if case_dir.exists() and (not case_dir.is_dir() or any(case_dir.iterdir())):
        raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing case folder", str(case_dir))


def _write_case(case_dir: Path, case_id: str, case: SynthCase, naming: str, affine: np.ndarray) -> None:
    import nibabel as nib

    names = case_file_names(case_id, naming)
    case_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(case.images, seg=from_internal(case.classes, naming))
    for key, array in arrays.items():
        img = nib.Nifti1Image(array, affine)
        img.header.set_data_dtype(array.dtype)
        img.set_sform(affine, code=1)  # scanner coordinates, as BraTS files
        img.set_qform(affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, case_dir / names[key])


def generate_case(out_dir: str | Path, case_id: str, seed: int | np.random.SeedSequence, *,
                  naming: str = "brats2021", shape=(240, 240, 155), spacing: float = 1.0,
                  affine=None, rng_params: Mapping[str, object] | None = None) -> Path:  # fmt: skip
    """Write one synthetic case as ``out_dir/<case_id>/`` in the BraTS layout; return that folder.

    ``affine`` replaces the default BraTS-like header geometry (voxel content is
    unchanged).  Raises FileExistsError if the case folder exists and is not empty.
    """
    case_file_names(case_id, naming)  # validate naming before the slow part
    header = None if affine is None else _check_affine(affine)
    case_dir = Path(out_dir) / case_id
    _refuse_overwrite(case_dir)
    case = synthesize(seed, shape=shape, spacing=spacing, rng_params=rng_params)
    _write_case(case_dir, case_id, case, naming, case.affine if header is None else header)
    return case_dir


def case_id_for(index: int, naming: str = "brats2021", prefix: str | None = None) -> str:
    """BraTS-style id of the ``index``-th case: BraTS2021_00000 or BraTS-GLI-00000-000."""
    if naming == "brats2023":
        return f"{prefix or 'BraTS-GLI'}-{index:05d}-000"
    case_file_names("x", naming)  # validates naming
    return f"{prefix or 'BraTS2021'}_{index:05d}"


def generate_cases(out_dir: str | Path, n: int, seed: int, *, naming: str = "brats2021",
                   shape=(240, 240, 155), spacing: float = 1.0, prefix: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:  # fmt: skip
    """Write ``n`` cases; case k uses the k-th spawned child of SeedSequence(seed), so it
    does not depend on ``n``.  ``progress(i, n)`` is called after each case (i from 1)."""
    if n < 0:
        raise ValueError(f"number of cases must be >= 0, got {n}")
    ids = [case_id_for(k, naming, prefix) for k in range(n)]
    for case_id in ids:  # fail before writing anything
        _refuse_overwrite(Path(out_dir) / case_id)
    children = np.random.SeedSequence(int(seed)).spawn(n)
    paths = []
    for k, (case_id, child) in enumerate(zip(ids, children)):
        paths.append(generate_case(out_dir, case_id, child, naming=naming, shape=shape, spacing=spacing))
        if progress is not None:
            progress(k + 1, n)
    return paths


_SAMPLE_README = """# Sample case (synthetic)

`{case_id}` is **synthetic**, not patient data: MNI152 anatomy (the templates
shipped with nilearn) with a simulated glioma, made by
`BrainTumorXAILib.synth` in the BraTS 2021 layout (labels 0, 1 NCR, 2 ED, 4 ET).

- grid: 'small' preset, {shape} voxels of {spacing:g} mm
- seed: {seed}
- regenerate (after deleting the `.nii.gz` files here):

      python -m BrainTumorXAILib.synth --sample Resources/SampleCase
"""


def write_sample_case(dest: str | Path, seed: int = SAMPLE_CASE_SEED) -> Path:
    """(Re)create the shipped sample case: files ``BraTS2021_Sample_*`` directly in ``dest``."""
    dest = Path(dest)
    existing = sorted(dest.glob("*.nii.gz")) if dest.is_dir() else []
    if existing:
        raise FileExistsError(errno.EEXIST, "refusing to overwrite the sample case", str(existing[0]))
    shape, spacing = SIZE_PRESETS["small"]
    case = synthesize(seed, shape=shape, spacing=spacing)
    _write_case(dest, SAMPLE_CASE_ID, case, "brats2021", case.affine)
    readme = _SAMPLE_README.format(case_id=SAMPLE_CASE_ID, shape="x".join(map(str, shape)), spacing=spacing, seed=seed)
    (dest / "README.md").write_text(readme, encoding="utf-8")
    return dest


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m BrainTumorXAILib.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--sample", metavar="DIR", required=True, help="write the shipped sample case into DIR")
    parser.add_argument("--seed", type=int, default=SAMPLE_CASE_SEED)
    args = parser.parse_args(argv)
    print(write_sample_case(args.sample, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
