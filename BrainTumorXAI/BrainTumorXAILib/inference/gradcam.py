"""Grad-CAM 3D for segmentation networks (Selvaraju et al., extended to volumes).

For class c and a chosen layer with activations A_k (k = channels):
    alpha_k^c = mean over (D, H, W) of dS_c / dA_k
    CAM^c     = ReLU( sum_k alpha_k^c A_k )
The class score S_c of a segmentation network is the sum of its class-c logits
over the voxels the (dropout-free) network predicts as c, restricted to the
brain when a mask is given: zero padding outside the brain is no evidence.  A
window without such a voxel contributes a zero CAM; a class that no window
predicts anywhere in the brain is explained over all (brain) voxels instead,
and the caller records that fallback.  Both use this one prediction, so a
class is "absent" exactly when no window had a score region for it.

All classes share one forward pass: the layer's output is turned into a leaf
tensor, only the part of the network after it builds a graph, and one partial
backward per class reaches just that leaf.

The default layer is a decoder stage, never the one feeding the final 1x1x1
convolution (there Grad-CAM degenerates into a rescaled copy of the logits).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

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
    has_region: dict[int, bool] = field(default_factory=dict)  # class -> its score region held a voxel


def _score_region(prediction: torch.Tensor, cls: int, overrides: dict | None,
                  region_mask: torch.Tensor | None = None) -> tuple[torch.Tensor | None, bool]:
    """Voxels that define S_c and whether that is the all-voxel fallback.

    Returns (None, False) when the window predicts no voxel of c (inside
    ``region_mask``, when given): the window then holds no evidence for c and
    contributes a zero CAM.
    """
    if overrides is not None and cls in overrides:
        region = overrides[cls]
        return (torch.ones_like(prediction, dtype=torch.float32), True) if region is None else (region, False)
    region = prediction == cls
    if region_mask is not None:
        region = region & region_mask.to(device=region.device, dtype=torch.bool)
    return (region.float(), False) if bool(region.any()) else (None, False)


def gradcam_from_features(model: nn.Module, features: list[torch.Tensor], layer: nn.Module, classes,
                          score_regions: dict[int, torch.Tensor | None] | None = None,
                          region_mask: torch.Tensor | None = None) -> GradCAMOutput:
    """Run ``model.decode`` once with a hook on ``layer`` and compute one CAM per class.

    ``score_regions[c]`` overrides the voxels that define S_c (default: where the
    window's own prediction is c; a window without c then contributes no evidence).
    ``region_mask`` (bool, broadcastable to (B, D, H, W); the window's brain mask)
    restricts that default region.
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
            cams, fallback, found = _class_cams(logits, captured["a"], list(classes), score_regions, region_mask)
    finally:
        handle.remove()
    return GradCAMOutput(logits.detach(), cams, fallback, found)


def _class_cams(logits, acts, classes, score_regions, region_mask=None):
    """One partial backward per class, from its score down to the hooked activations only."""
    prediction = logits.detach().argmax(dim=1)
    cams: dict[int, torch.Tensor] = {}
    fallback: dict[int, bool] = {}
    found: dict[int, bool] = {}
    for i, cls in enumerate(classes):
        region, used_all = _score_region(prediction, cls, score_regions, region_mask)
        fallback[cls] = used_all
        found[cls] = region is not None
        if region is None:
            cams[cls] = torch.zeros((acts.shape[0], *logits.shape[2:]), device=logits.device)
            continue
        # float32 score and CAM under bf16/fp16 autocast too (a no-op in float32): a half-precision
        # sum over a window's voxels would round away most of the score.
        score = (logits[:, cls].float() * region.float()).sum()
        (grad,) = torch.autograd.grad(score, acts, retain_graph=i < len(classes) - 1)
        weights = grad.float().mean(dim=(2, 3, 4), keepdim=True)
        cam = F.relu((weights * acts.float()).sum(dim=1, keepdim=True))
        cams[cls] = F.interpolate(cam, size=logits.shape[2:], mode="trilinear", align_corners=False)[:, 0].detach()
    return cams, fallback, found


def upsample_attention(model: nn.Module, size) -> dict[str, torch.Tensor]:
    """Attention-gate maps of an AttUNet after a forward, resized to ``size`` (B, D, H, W)."""
    maps = getattr(model, "attention_maps", None) or {}
    return {
        name: F.interpolate(m.detach().float(), size=size, mode="trilinear", align_corners=False)[:, 0]
        for name, m in maps.items()
    }
