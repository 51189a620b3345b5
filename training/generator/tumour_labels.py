"""Random glioma label maps: many kinds, sizes and shapes, drawn in a patch's own voxel grid.

Kinds (drawn by weight), each with an oedema collar reaching further along white matter:
- ``ring``: necrotic centre in an irregular enhancing rim, sometimes with non-enhancing gaps (GBM);
- ``solid``: enhancing core without necrosis;
- ``patchy``: enhancing islands in a non-enhancing core;
- ``nonenhancing``: a core that does not enhance (low-grade glioma, as in TCGA-DU-7294);
- ``infiltrative``: mostly oedema / FLAIR signal around a small non-enhancing core.
Any kind may be multifocal.  Internal classes: 0 none, 1 NCR, 2 ED, 3 ET.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .fields import coordinates, random_rotation, smooth_noise

KINDS: dict[str, float] = {"ring": 0.42, "solid": 0.10, "patchy": 0.13, "nonenhancing": 0.25, "infiltrative": 0.10}


@dataclass
class TumourSpec:
    kind: str
    centres: list  # voxel coordinates of each focus
    core_mm: list  # equivalent core radius of each focus
    edema_mm: float  # typical reach of the oedema beyond the core
    rim_mm: float  # enhancing rim thickness (ring)
    gaps: float  # share of the rim that does not enhance (ring)
    mass_effect_mm: float
    roughness: float
    lobes: list = field(default_factory=list)


def draw_spec(rng: np.random.Generator, centre, kinds: dict[str, float] | None = None) -> TumourSpec:
    kinds = kinds or KINDS
    names = list(kinds)
    p = np.array([kinds[k] for k in names], dtype=np.float64)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    n_foci = 1 if rng.random() < 0.85 else int(rng.integers(2, 4))
    centres = [np.asarray(centre, dtype=np.float64)]
    for _ in range(n_foci - 1):
        centres.append(centres[0] + rng.normal(0.0, 9.0, 3))
    core = float(np.exp(rng.uniform(np.log(4.0), np.log(26.0))))
    if kind == "infiltrative":
        core = float(rng.uniform(2.0, 7.0))
    cores = [core] + [core * float(rng.uniform(0.3, 0.8)) for _ in range(n_foci - 1)]
    edema = float(np.exp(rng.uniform(np.log(2.0), np.log(28.0))))
    if kind == "infiltrative":
        edema = float(rng.uniform(10.0, 30.0))
    return TumourSpec(
        kind=kind, centres=centres, core_mm=cores, edema_mm=edema,
        rim_mm=float(rng.uniform(1.5, 5.0)), gaps=float(0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.4)),
        mass_effect_mm=float(0.0 if rng.random() < 0.3 else rng.uniform(1.0, 0.35 * core + 1.0)),
        roughness=float(rng.uniform(0.05, 0.35)),
        lobes=[int(rng.integers(1, 4)) for _ in range(n_foci)])


def _lobed_distance(rng: np.random.Generator, rel_mm: np.ndarray, radius: float, n_lobes: int) -> np.ndarray:
    """Normalised distance (about 1 at ``radius``) to a union of random ellipsoids."""
    d = None
    for k in range(n_lobes):
        offset = np.zeros(3) if k == 0 else rng.normal(0.0, 0.4 * radius, 3)
        axes = radius * rng.uniform(0.65, 1.35, 3) * (1.0 if k == 0 else 0.7)
        rot = random_rotation(rng, 180.0)
        local = np.tensordot(rot.T.astype(np.float32), rel_mm - offset[:, None, None, None].astype(np.float32), axes=1)
        dk = np.sqrt(((local / axes[:, None, None, None].astype(np.float32)) ** 2).sum(0))
        d = dk if d is None else np.minimum(d, dk)
    return d


def tumour_labels(rng: np.random.Generator, spec: TumourSpec, tissue: np.ndarray, wm: np.ndarray,
                  spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(classes uint8, oedema weight in [0, 1]) on the grid of ``tissue`` (bool: brain tissue it may invade)."""
    shape = tissue.shape
    cells = max(2.0, shape[0] * spacing / 16.0)  # blobs of about 16 mm
    core = np.zeros(shape, bool)
    for centre, radius, lobes in zip(spec.centres, spec.core_mm, spec.lobes):
        rel = coordinates(shape, centre, spacing)
        dist = _lobed_distance(rng, rel, radius, lobes) + spec.roughness * smooth_noise(rng, shape, cells)
        core |= dist < 1.0
    core &= tissue
    if not core.any():
        return np.zeros(shape, np.uint8), np.zeros(shape, np.float32)
    classes = np.zeros(shape, np.uint8)
    noise = smooth_noise(rng, shape, cells * 1.5)
    if spec.kind == "ring":
        depth = ndimage.distance_transform_edt(core, sampling=spacing)
        ncr = depth > spec.rim_mm * (1.0 + 0.35 * noise)
        et = core & ~ncr
        if spec.gaps > 0:
            gap_field = smooth_noise(rng, shape, cells)
            et &= gap_field < np.quantile(gap_field[et], 1.0 - spec.gaps) if et.any() else True
        classes[core] = 1
        classes[et] = 3
    elif spec.kind == "solid":
        classes[core] = 3
    elif spec.kind == "patchy":
        classes[core] = 1
        classes[core & (noise > rng.uniform(-0.2, 0.8))] = 3
    else:  # nonenhancing, infiltrative
        classes[core] = 1
    outside = ndimage.distance_transform_edt(~core, sampling=spacing)
    reach = spec.edema_mm * np.clip(1.0 + 0.4 * smooth_noise(rng, shape, cells), 0.2, None) * (0.55 + 0.9 * wm)
    edema = (outside < reach) & tissue & ~core
    classes[edema] = 2
    weight = np.where(edema, np.exp(-outside / np.maximum(reach, 1e-3)), 0.0).astype(np.float32)
    return classes, weight
