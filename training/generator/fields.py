"""Random smooth fields: the raw material of deformations, tumour outlines, textures and bias fields."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def smooth_noise(rng: np.random.Generator, shape, cells: float, channels: int = 1) -> np.ndarray:
    """Unit-std random field(s) with about ``cells`` independent blobs along each axis.

    White noise on a coarse lattice, upsampled with cubic-like smoothness (trilinear
    of a blurred lattice): cheap enough to draw several per sample on a CPU.
    """
    coarse = [max(2, int(round(cells))) + 2] * 3
    lattice = torch.from_numpy(rng.standard_normal((1, channels, *coarse)).astype(np.float32))
    lattice = F.avg_pool3d(lattice, 3, stride=1, padding=1, count_include_pad=False)
    # Standardise the small lattice, not the large field: trilinear upsampling keeps the mean and
    # nearly the spread, at a fraction of the cost.
    lattice = lattice - lattice.mean(dim=(2, 3, 4), keepdim=True)
    lattice = lattice / lattice.std(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
    out = F.interpolate(lattice, size=tuple(int(s) for s in shape), mode="trilinear", align_corners=True)[0].numpy()
    return out[0] if channels == 1 else out


def coordinates(shape, centre, spacing: float) -> np.ndarray:
    """(3, X, Y, Z) offsets in mm of every voxel from ``centre`` (voxel indices)."""
    axes = [(np.arange(n, dtype=np.float32) - float(c)) * spacing for n, c in zip(shape, centre)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx
