"""Grad-CAM 3D for segmentation networks (Selvaraju et al., extended to volumes).

For class c and a chosen layer with activations A_k (k = channels):
    alpha_k^c = mean over (D, H, W) of dS_c / dA_k
    CAM^c     = ReLU( sum_k alpha_k^c A_k )
The class score S_c of a segmentation network is the sum of its class-c logits
over the voxels predicted as c; with no such voxel it falls back to all voxels
(the caller records that).  All classes share one forward pass: the layer's
output is turned into a leaf tensor, only the part of the network after it
builds a graph, and one partial backward per class reaches just that leaf.

The default layer is a decoder stage, never the one feeding the final 1x1x1
convolution (there Grad-CAM degenerates into a rescaled copy of the logits).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def resolve_layer(model: nn.Module, layer_name: str | None) -> tuple[str, nn.Module]:
    layers = model.gradcam_layers()
    name = layer_name or model.default_gradcam_layer
    if name not in layers:
        raise ValueError(f"unknown Grad-CAM layer {name!r}; this model has: {', '.join(layers)}")
    return name, layers[name]


@contextlib.contextmanager
def _frozen_parameters(model: nn.Module):
    """No parameter gradients: the backward pass only needs d(score)/d(activations)."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


@dataclass
class GradCAMOutput:
    logits: torch.Tensor  # (B, C, D, H, W) deterministic logits of the window
    cams: dict[int, torch.Tensor]  # class -> (B, D, H, W), un-normalised, >= 0
    used_all_voxels: dict[int, bool]  # class -> score fell back to all voxels


def _score_region(prediction: torch.Tensor, cls: int, overrides: dict | None) -> tuple[torch.Tensor | None, bool]:
    """Voxels that define S_c and whether that is the all-voxel fallback.

    Returns (None, False) when the window predicts no voxel of c: the window
    then holds no evidence for c and contributes a zero CAM.
    """
    if overrides is not None and cls in overrides:
        region = overrides[cls]
        return (torch.ones_like(prediction, dtype=torch.float32), True) if region is None else (region, False)
    region = (prediction == cls).float()
    return (region, False) if bool(region.any()) else (None, False)


def gradcam_from_features(model: nn.Module, features: list[torch.Tensor], layer: nn.Module, classes,
                          score_regions: dict[int, torch.Tensor | None] | None = None) -> GradCAMOutput:
    """Run ``model.decode`` once with a hook on ``layer`` and compute one CAM per class.

    ``score_regions[c]`` overrides the voxels that define S_c (default: where the
    window's own prediction is c; a window without c then contributes no evidence).
    """
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured["a"] = leaf
        return leaf

    handle = layer.register_forward_hook(hook)
    try:
        with _frozen_parameters(model), torch.enable_grad():
            logits = model.decode(features)
            handle.remove()
            if "a" not in captured:
                raise RuntimeError("the Grad-CAM layer was not used by the decoder")
            cams, fallback = _class_cams(logits, captured["a"], list(classes), score_regions)
    finally:
        handle.remove()
    return GradCAMOutput(logits.detach(), cams, fallback)


def _class_cams(logits, acts, classes, score_regions):
    """One partial backward per class, from its score down to the hooked activations only."""
    prediction = logits.detach().argmax(dim=1)
    cams: dict[int, torch.Tensor] = {}
    fallback: dict[int, bool] = {}
    for i, cls in enumerate(classes):
        region, used_all = _score_region(prediction, cls, score_regions)
        fallback[cls] = used_all
        if region is None:
            cams[cls] = torch.zeros((acts.shape[0], *logits.shape[2:]), device=logits.device)
            continue
        score = (logits[:, cls] * region.to(logits.dtype)).sum()
        (grad,) = torch.autograd.grad(score, acts, retain_graph=i < len(classes) - 1)
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = F.relu((weights * acts).sum(dim=1, keepdim=True))
        cams[cls] = F.interpolate(cam, size=logits.shape[2:], mode="trilinear", align_corners=False)[:, 0].detach()
    return cams, fallback


def upsample_attention(model: nn.Module, size) -> dict[str, torch.Tensor]:
    """Attention-gate maps of an AttUNet after a forward, resized to ``size`` (B, D, H, W)."""
    maps = getattr(model, "attention_maps", None) or {}
    return {
        name: F.interpolate(m.detach().float(), size=size, mode="trilinear", align_corners=False)[:, 0]
        for name, m in maps.items()
    }
