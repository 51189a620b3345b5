"""Tissue probability maps (CSF, GM, WM) and the brain mask on the network's grid.

The anatomy comes from the MNI152 2009 templates that the nilearn wheel ships
(the same ones ``braintumorxai synth`` uses), resampled once to the training
spacing and turned to the network's axis order (LPS, as ``preprocess`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from BrainTumorXAILib.synth.anatomy import load_templates

TISSUES: tuple[str, ...] = ("csf", "gm", "wm")


@dataclass(frozen=True)
class Atlas:
    tissue: np.ndarray  # (3, X, Y, Z) float32 probabilities of CSF, GM, WM (sum = brain mask)
    brain: np.ndarray  # (X, Y, Z) float32 in [0, 1]
    spacing: float  # mm
    deep: np.ndarray  # (K, 3) voxel indices deep inside the cerebrum: candidate tumour centres
    deep_depth_mm: np.ndarray  # (K,) their distance to the brain's surface
    fractions: np.ndarray  # (3,) share of each tissue in the whole brain

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.brain.shape)


@lru_cache(maxsize=4)
def load_atlas(spacing: float = 2.0) -> Atlas:
    t1, gm, wm, affine = load_templates()
    zooms = np.abs(np.diag(affine)[:3])
    brain = (t1 > 0.2).astype(np.float32)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    factor = zooms / float(spacing)
    maps = [ndimage.zoom(v, factor, order=1) for v in (csf, gm, wm, brain)]
    # MNI templates are RAS with a diagonal affine: flipping the first two axes gives LPS.
    maps = [np.ascontiguousarray(m[::-1, ::-1, :]) for m in maps]
    brain = np.clip(maps[3], 0.0, 1.0)
    inside = brain > 0.5
    box = tuple(slice(max(int(i.min()) - 2, 0), int(i.max()) + 3) for i in np.nonzero(inside))
    tissue = np.stack(maps[:3])[(slice(None), *box)].astype(np.float32)
    brain = brain[box].astype(np.float32)
    tissue *= (brain / np.maximum(tissue.sum(0), 1e-6))[None]  # tissues fill the brain, nothing outside
    depth = ndimage.distance_transform_edt(brain > 0.5) * spacing
    wm_map = tissue[2] / np.maximum(brain, 1e-6)
    # Cerebral white matter and deep grey matter, above the cerebellum (the lowest third of the brain).
    zs = np.nonzero(brain > 0.5)[2]
    z_floor = zs.min() + 0.33 * (zs.max() - zs.min())
    candidates = (depth >= 8.0) & ((wm_map > 0.4) | (tissue[1] > 0.5))
    candidates[:, :, : int(z_floor)] = False
    deep = np.argwhere(candidates)
    fractions = tissue.reshape(3, -1).sum(1) / brain.sum()
    return Atlas(tissue=tissue, brain=brain, spacing=float(spacing), deep=deep,
                 deep_depth_mm=depth[tuple(deep.T)].astype(np.float32), fractions=fractions.astype(np.float32))
