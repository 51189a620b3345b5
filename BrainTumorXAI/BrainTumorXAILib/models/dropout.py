"""Channel dropout built for Monte Carlo Dropout inference.

``MCDropout3d`` behaves like ``nn.Dropout3d`` (whole channels dropped, survivors
scaled by 1/(1-p)) and is active exactly when ``self.training`` is True.  MC
inference keeps the network in eval() (norm layers frozen) and switches only
these modules to train().

While a mask is set with ``set_mask`` it replaces the random draw.  The
inference engine draws one mask per MC sample for the whole volume, so sample s
drops the same channels in every sliding window and the blend has no seams.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MCDropout3d(nn.Module):
    """Dropout3d with optional externally fixed per-(sample, channel) keep masks."""

    def __init__(self, p: float = 0.1, num_channels: int | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.num_channels = num_channels  # needed by draw_masks to size the masks
        self._mask: torch.Tensor | None = None  # plain attribute: never part of the state_dict

    @property
    def mask(self) -> torch.Tensor | None:
        return self._mask

    def set_mask(self, mask: torch.Tensor | None) -> None:
        """Fix the keep mask (B, C) of 0/1 values; None returns to random draws."""
        if mask is not None:
            if mask.ndim != 2 or (self.num_channels is not None and mask.shape[1] != self.num_channels):
                raise ValueError(f"dropout mask must have shape (B, {self.num_channels}), got {tuple(mask.shape)}")
        self._mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self._mask is None:
            return F.dropout3d(x, self.p, training=True)
        mask = self._mask
        if mask.shape != x.shape[:2]:
            raise ValueError(f"dropout mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:2])}")
        # Scale the small mask, not the big activation, then one broadcast multiply.
        scale = mask.to(device=x.device, dtype=x.dtype) * (1.0 / (1.0 - self.p))
        return x * scale.view(*scale.shape, *([1] * (x.ndim - 2)))

    def extra_repr(self) -> str:
        return f"p={self.p}, num_channels={self.num_channels}"


def mc_dropout_modules(model: nn.Module) -> list[MCDropout3d]:
    """Every MCDropout3d of ``model`` in a fixed (registration) order."""
    return [m for m in model.modules() if isinstance(m, MCDropout3d)]


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """eval() everywhere (norm statistics frozen), then only the dropout modules to train()."""
    model.eval()
    for m in mc_dropout_modules(model):
        m.train()
    return model


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """MC Dropout inside the block; every module's mode and every fixed mask restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    masks = [(m, m.mask) for m in mc_dropout_modules(model)]
    enable_mc_dropout(model)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for m, mask in masks:
            m.set_mask(mask)


def draw_masks(model: nn.Module, n_samples: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """One (n_samples, C) Bernoulli(1-p) keep mask per dropout module (CPU, float32).

    Uses only ``generator`` (a CPU generator), so the same seed gives the same masks
    on every machine and device.
    """
    masks = []
    for m in mc_dropout_modules(model):
        if m.num_channels is None:
            raise ValueError("draw_masks needs MCDropout3d modules built with num_channels")
        keep = torch.full((n_samples, m.num_channels), 1.0 - m.p)
        masks.append(torch.bernoulli(keep, generator=generator))
    return masks


def set_masks(model: nn.Module, masks: Sequence[torch.Tensor] | None) -> None:
    """Fix the masks of all dropout modules (in ``mc_dropout_modules`` order), or clear them with None."""
    modules = mc_dropout_modules(model)
    if masks is None:
        for m in modules:
            m.set_mask(None)
        return
    if len(masks) != len(modules):
        raise ValueError(f"got {len(masks)} dropout masks for {len(modules)} dropout modules")
    for m, mask in zip(modules, masks):
        m.set_mask(mask)
