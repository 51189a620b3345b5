"""Building blocks of the 3D U-Net family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "group", "batch")
NEGATIVE_SLOPE = 0.01


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``channels`` not above ``max_groups`` (GroupNorm needs an exact split)."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


class ChannelsLastInstanceNorm3d(nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` that keeps a channels-last (NDHWC) input channels-last.

    torch's instance norm copies such an input to the contiguous layout and returns it so: in the CPU's
    channels-last MC decode every following convolution then reorders it back.  Here the per-(sample, channel)
    statistics come from the NDHWC memory viewed as (N, voxels, C), two passes (mean, then the mean squared
    deviation) as accurate as torch's own, and the affine step keeps the layout.  Only for float32 on the CPU
    where no graph is recorded (inference; measured there): training, Grad-CAM's backward, bf16/fp16 and CUDA
    keep torch's kernels.  Parameters and state dict are ``nn.InstanceNorm3d``'s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A graph is recorded only where something here needs a gradient: Grad-CAM runs the decoder before its
        # hooked layer with grad enabled but nothing requiring it (its parameters frozen, gradcam._frozen_parameters).
        records_graph = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if (records_graph or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 5
                or self.track_running_stats or x.is_contiguous()
                or not x.is_contiguous(memory_format=torch.channels_last_3d)):
            return super().forward(x)
        n, c = x.shape[:2]
        voxels = x.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # a view of the NDHWC memory
        mean = voxels.mean(dim=1, keepdim=True)
        var = (voxels - mean).square_().mean(dim=1)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -mean[:, 0] * scale + (self.bias if self.affine else 0.0)
        return torch.addcmul(shift.view(n, c, 1, 1, 1), x, scale.view(n, c, 1, 1, 1))


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        # Per-sample statistics, no running buffers: identical in train, eval and MC mode.
        return ChannelsLastInstanceNorm3d(channels, affine=True, track_running_stats=False)
    if kind == "group":
        return nn.GroupNorm(_groups(channels), channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


class ConvNormAct(nn.Sequential):
    """conv 3x3x3 -> norm -> LeakyReLU (the conv has no bias: the norm's shift replaces it)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, act: bool = True):
        layers = [nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False), norm_layer(norm, out_channels)]
        if act:
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))
        super().__init__(*layers)


class ConvBlock(nn.Sequential):
    """Plain U-Net stage: 2 x (conv -> norm -> LeakyReLU)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__(ConvNormAct(in_channels, out_channels, norm), ConvNormAct(out_channels, out_channels, norm))


class ResidualBlock(nn.Module):
    """Residual stage: the same two convs plus an identity (or 1x1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, norm)
        self.conv2 = ConvNormAct(out_channels, out_channels, norm, act=False)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, bias=False), norm_layer(norm, out_channels))
        )
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Oktay et al., 2018).

    The coefficients are computed at the coarse resolution of the gating signal
    (the skip is brought there by a stride-2 conv) and upsampled trilinearly,
    which keeps the gate cheap at the finest level.
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter = inter_channels or max(skip_channels // 2, 1)
        self.theta_x = nn.Conv3d(skip_channels, inter, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv3d(gate_channels, inter, kernel_size=1)
        self.psi = nn.Conv3d(inter, 1, kernel_size=1)

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gated skip and the attention map (B, 1, *skip spatial) with values in [0, 1]."""
        coarse = torch.sigmoid(self.psi(F.relu(self.theta_x(skip) + self.phi_g(gate))))
        # A trilinear upsample is a convex combination: the map stays within [0, 1].
        alpha = F.interpolate(coarse, size=skip.shape[2:], mode="trilinear", align_corners=False)
        return skip * alpha, alpha
