"""One domain-randomised synthetic training patch: deformed atlas anatomy + tumour + random appearance."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .appearance import draw_means, render
from .atlas import Atlas, load_atlas
from .fields import random_rotation, smooth_noise
from .tumour_labels import KINDS, draw_spec, tumour_labels


@dataclass
class SynthSettings:
    """The generator's knobs (recorded in the training config; ablations switch parts off)."""

    spacing: float = 2.0
    rotate_deg: float = 15.0
    scale: tuple = (0.85, 1.15)
    elastic_vox: float = 2.5
    mass_effect: bool = True
    healthy_prob: float = 0.08
    random_contrast_share: float = 0.35
    mimics: bool = True  # vessels / choroid plexus enhancing on T1ce
    resolution: bool = True  # random blur and thick slices
    cystic_necrosis: float = 0.0  # share of samples whose necrosis is fluid (FLAIR-dark, T2-bright)
    kinds: dict | None = None

    def tumour_kinds(self) -> dict:
        return dict(self.kinds or KINDS)


@lru_cache(maxsize=4)
def _atlas_volume(spacing: float) -> torch.Tensor:
    atlas = load_atlas(spacing)
    return torch.from_numpy(np.concatenate([atlas.tissue, atlas.brain[None]]))[None]


def _sample_atlas(atlas: Atlas, coords: np.ndarray) -> np.ndarray:
    """Tissue (3) and brain (1) maps at atlas voxel coordinates ``coords`` (3, X, Y, Z), linear, 0 outside."""
    volume = _atlas_volume(atlas.spacing)
    size = np.asarray(atlas.shape, dtype=np.float32)
    norm = coords / (size[:, None, None, None] - 1) * 2 - 1
    grid = torch.from_numpy(np.ascontiguousarray(norm[::-1].transpose(1, 2, 3, 0)))[None].float()
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0].numpy()


def synthetic_patch(rng: np.random.Generator, size: int, settings: SynthSettings | None = None):
    """(image (4, P, P, P) float32 z-scored, label (P, P, P) uint8 internal classes)."""
    s = settings or SynthSettings()
    atlas = load_atlas(s.spacing)
    shape = (size,) * 3
    spec = draw_spec(rng, np.zeros(3), s.tumour_kinds())
    need = spec.core_mm[0] + 4.0
    ok = np.flatnonzero(atlas.deep_depth_mm >= need)
    if ok.size == 0:
        ok = np.argsort(atlas.deep_depth_mm)[-max(1, atlas.deep_depth_mm.size // 10):]
    centre_atlas = atlas.deep[ok[int(rng.integers(ok.size))]].astype(np.float32)
    centre_out = np.asarray(shape, np.float32) / 2 + rng.uniform(-size / 5, size / 5, 3).astype(np.float32)
    spec.centres = [centre_out + (c - spec.centres[0]) / s.spacing for c in spec.centres]

    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    rel = grid - centre_out[:, None, None, None]
    if s.mass_effect and spec.mass_effect_mm > 0:  # tissue at x came from nearer the tumour centre
        rho = max(spec.core_mm[0] / s.spacing, 1.0)
        r2 = (rel**2).sum(0) / rho**2
        rel = rel * (1.0 - spec.mass_effect_mm / s.spacing / rho * np.exp(0.5 * (1.0 - r2)))[None]
    linear = random_rotation(rng, s.rotate_deg) @ np.diag(1.0 / rng.uniform(*s.scale, 3))
    coords = np.tensordot(linear.astype(np.float32), rel, axes=1) + centre_atlas[:, None, None, None]
    if s.elastic_vox > 0:
        coords = coords + rng.uniform(0, s.elastic_vox) * smooth_noise(rng, shape, 4, channels=3)
    maps = _sample_atlas(atlas, coords)
    tissue, brain_p = maps[:3], maps[3]
    brain = brain_p > 0.5
    wm = tissue[2] / np.maximum(brain_p, 1e-6)
    invadable = brain & ((tissue[1] + tissue[2]) / np.maximum(brain_p, 1e-6) > 0.3)
    if rng.random() < s.healthy_prob:
        classes, weight = np.zeros(shape, np.uint8), np.zeros(shape, np.float32)
    else:
        classes, weight = tumour_labels(rng, spec, invadable, wm, s.spacing)
    core = (classes == 1) | (classes == 3)
    tissue = tissue * ~core[None]
    brain_voxels = float((atlas.brain > 0.5).sum())
    means = draw_means(rng, s.random_contrast_share, s.cystic_necrosis)
    image = render(rng, tissue, brain, classes, weight, means, s.spacing,
                   tumour_share=float((classes > 0).sum()) / brain_voxels,
                   mimics=None if s.mimics else np.zeros(shape, bool), resolution=s.resolution)
    classes[~brain] = 0
    return image, classes
