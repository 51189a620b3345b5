"""Sliding-window tiling with Gaussian blending (the nnU-Net / MONAI scheme).

Windows overlap; each window's output is weighted by a Gaussian that favours
its centre, where the network sees the most context, and the weighted sums are
divided by the summed weights once at the end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch


def _axis_starts(size: int, window: int, step: int) -> list[int]:
    if size <= window:
        return [0]
    n = int(np.ceil((size - window) / step)) + 1
    # Spread the windows evenly so the last one ends exactly at the border.
    return sorted({int(round(i * (size - window) / (n - 1))) for i in range(n)})


@dataclass(frozen=True)
class Tiling:
    """Window boxes covering a volume of ``shape`` with windows of ``window``."""

    shape: tuple[int, int, int]
    window: tuple[int, int, int]
    boxes: tuple[tuple[slice, slice, slice], ...]

    def __len__(self) -> int:
        return len(self.boxes)


def make_tiling(shape, window, overlap: float = 0.5) -> Tiling:
    """Tile ``shape`` with windows (clipped to the volume) overlapping by ``overlap``."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError("overlap must be in [0, 1)")
    shape = tuple(int(s) for s in shape)
    win = tuple(min(int(w), s) for w, s in zip(window, shape))
    steps = [max(1, int(w * (1.0 - overlap))) for w in win]
    starts = [_axis_starts(s, w, st) for s, w, st in zip(shape, win, steps)]
    boxes = tuple(
        tuple(slice(a, a + w) for a, w in zip(corner, win)) for corner in itertools.product(*starts)
    )
    return Tiling(shape, win, boxes)


def gaussian_weight(window, sigma_scale: float = 0.125, device=None) -> torch.Tensor:
    """Separable Gaussian importance map, max 1, never exactly 0 (so borders still count)."""
    axes = []
    for w in window:
        x = torch.arange(w, dtype=torch.float32, device=device) - (w - 1) / 2.0
        sigma = max(w * sigma_scale, 1e-3)
        axes.append(torch.exp(-0.5 * (x / sigma) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g = g / g.max()
    return g.clamp_min(1e-3)


class BlendAccumulator:
    """Weighted sums of per-window maps, normalised once by the summed weights."""

    def __init__(self, shape, channels: dict[str, int], device="cpu", dtype=torch.float32):
        self.shape = tuple(shape)
        self.sums = {name: torch.zeros((c, *self.shape), device=device, dtype=dtype) for name, c in channels.items()}
        self.weights = torch.zeros(self.shape, device=device, dtype=dtype)

    def add(self, box, weight: torch.Tensor, maps: dict[str, torch.Tensor]) -> None:
        w = weight.to(self.weights.dtype)
        self.weights[box] += w
        for name, value in maps.items():
            self.sums[name][(slice(None), *box)] += value.to(self.weights.dtype) * w

    def result(self, name: str) -> torch.Tensor:
        return self.sums[name] / self.weights.clamp_min(1e-12)
