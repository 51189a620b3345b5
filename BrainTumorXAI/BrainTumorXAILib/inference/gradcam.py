"""Class activation maps for 3D segmentation networks: Grad-CAM and its variants, on one forward pass.

For class c, a hooked layer with activations A_k (k = channels) and the gradient G_k = dS_c / dA_k:
    gradcam    CAM = ReLU( sum_k mean(G_k) A_k )                         (Selvaraju et al. 2017)
    hirescam   CAM = ReLU( sum_k G_k * A_k )  (element-wise: no averaging over the window; Draelos & Carin 2020)
    gradcampp  CAM = ReLU( sum_k w_k A_k ), w_k = sum alpha_k ReLU(G_k),
               alpha_k = G_k^2 / (2 G_k^2 + sum(A_k) G_k^3)             (Chattopadhay et al. 2018)
    layercam   CAM = ReLU( sum_k ReLU(G_k) * A_k )                      (Jiang et al. 2021)
``METHODS`` names the combinations offered (``--gradcam-method``): a weighting, a layer (the model's default
stage unless ``--gradcam-layer`` says otherwise; the fused method sums LayerCAM over every decoder stage, all in
the same units, the score's) and a score.  ``gradcam-finest`` is Grad-CAM at the decoder stage that feeds the
1x1x1 head.  There, with gradient weights W_ck |R| / N, it is exactly ReLU(logit_c - bias_c) scaled by the window's
share of the region.  ``contrastive-finest`` is the ``rival`` score at that stage: ReLU of
[logit_c - bias_c - sum_q pi_q (logit_q - bias_q)] times the same share, pi_q the share of the region whose
runner-up class is q.  ``log-softmax-finest`` (the default) scores log p_c there: ReLU of
[logit_c - bias_c - sum_{q != c} pbar_q (logit_q - bias_q) / (1 - pbar_c)] times (1 - pbar_c) and the share, pbar
the region's mean softmax.  These show where, and how strongly, the network places (or prefers) class c, not which
features drove it (the sequence evidence answers that by sequence).  They were chosen on validation cases by rules
fixed before measuring (round 1; round 2 after round 1's winner missed on real scans; rounds 3-4 kept round 2's
choice; round 5 chose log p_c on ten cases), because the mid-decoder maps put most of their mass on healthy brain
on real scans.
The class score S_c of a segmentation network is the sum of its class-c logits over the voxels the
(dropout-free) network predicts as c, restricted to the brain when a mask is given: zero padding outside the
brain is no evidence.  The ``contrast`` score subtracts the logits on a thin shell around that region (scaled to
the region's size), so the map explains what sets the region apart from its surroundings.  The ``rival`` score
(``contrastive``, ``contrastive-finest``; Prabhushankar et al. 2020) is the sum over the region of logit_c minus the
logit of the runner-up class at each voxel: "why c rather than its competitor" instead of "where is c's logit high",
which on diffuse oedema also lights healthy brain where background still wins.  The ``healthy`` score
(``healthy-contrast-finest``, ``healthy-contrast-hirescam``) is the sum over the region of logit_c minus the
background logit: "why this tumour class rather than healthy tissue"; at the finest stage its map is
ReLU(logit_c - b_c - (logit_bg - b_bg)) times the region's share, zero wherever background beats c.  The ``dual``
score (``dual-contrast-finest``) adds the two margins, over the runner-up and over background, so tissue lights
only where c beats both; the ``logsoftmax`` score (``log-softmax-finest``) is the sum over the region of log p_c,
c against every class weighted by its probability (the score training optimised).
A window without a predicted voxel of c contributes a zero CAM; a class that no window predicts anywhere in the
brain is explained over all (brain) voxels instead, and the caller records that fallback.  Both use this one
prediction, so a class is "absent" exactly when no window had a score region for it.

All classes share one forward pass: the first hooked layer's output is turned into a leaf tensor, only the part
of the network after it builds a graph, and one partial backward per class reaches just the hooked outputs.

The model's default layer (``gradcam`` and the other single-layer methods) is a mid decoder stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .explanation_options import DEFAULT_GRADCAM_METHOD, GRADCAM_METHODS


@dataclass(frozen=True)
class CamMethod:
    weighting: str  # gradcam | hirescam | gradcampp | layercam
    score: str = "region"  # region | contrast | rival | healthy | dual | logsoftmax
    all_decoder_stages: bool = False  # fuse every decoder stage (else one layer)
    finest_stage: bool = False  # the decoder stage feeding the head (else the model's default layer)


METHODS = {
    "gradcam-finest": CamMethod("gradcam", finest_stage=True),
    "gradcam": CamMethod("gradcam"),
    "hirescam": CamMethod("hirescam"),
    "gradcampp": CamMethod("gradcampp"),
    "layercam": CamMethod("layercam"),
    "gradcam-contrast": CamMethod("gradcam", score="contrast"),
    "layercam-fused": CamMethod("layercam", all_decoder_stages=True),
    "contrastive-finest": CamMethod("gradcam", score="rival", finest_stage=True),
    "contrastive": CamMethod("gradcam", score="rival"),
    "contrastive-hirescam": CamMethod("hirescam", score="rival"),
    "contrastive-layercam": CamMethod("layercam", score="rival"),
    "healthy-contrast-finest": CamMethod("gradcam", score="healthy", finest_stage=True),
    "healthy-contrast-hirescam": CamMethod("hirescam", score="healthy"),
    "dual-contrast-finest": CamMethod("gradcam", score="dual", finest_stage=True),
    "log-softmax-finest": CamMethod("gradcam", score="logsoftmax", finest_stage=True),
}
DEFAULT_METHOD = DEFAULT_GRADCAM_METHOD
assert tuple(METHODS) == GRADCAM_METHODS
#: Output index of healthy tissue, the contrast class of the ``healthy`` score.
BACKGROUND = 0
#: Shell (voxels of the network grid) around the predicted region for the ``contrast`` score.
CONTRAST_SHELL = 2


def method_spec(name: str | None) -> CamMethod:
    key = (name or DEFAULT_METHOD).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown Grad-CAM method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[key]


def resolve_layer(model: nn.Module, layer_name: str | None) -> tuple[str, nn.Module]:
    layers = model.gradcam_layers()
    name = layer_name or model.default_gradcam_layer
    if name not in layers:
        raise ValueError(f"unknown Grad-CAM layer {name!r}; this model has: {', '.join(layers)}")
    return name, layers[name]


def resolve_layers(model: nn.Module, method: str | None, layer_name: str | None) -> tuple[str, list[nn.Module]]:
    """The layer(s) ``method`` hooks: ("decoder.0+...+decoder.3", stages) when fused, else one layer."""
    if method_spec(method).all_decoder_stages:
        stages = {n: m for n, m in model.gradcam_layers().items() if n.startswith("decoder.")}
        if not stages:
            raise ValueError("the fused Grad-CAM method needs a model with decoder stages")
        return "+".join(stages), list(stages.values())
    if layer_name is None and method_spec(method).finest_stage:
        stages = [n for n in model.gradcam_layers() if n.startswith("decoder.")]
        layer_name = stages[-1] if stages else None
    name, layer = resolve_layer(model, layer_name)
    return name, [layer]


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


def contrast_weights(region: torch.Tensor, region_mask: torch.Tensor | None = None,
                     shell: int = CONTRAST_SHELL) -> torch.Tensor:
    """+1 on the region, -|region| / |shell| on a ``shell``-voxel band around it (per window, inside the mask)."""
    inside = region > 0
    grown = F.max_pool3d(inside[:, None].float(), 2 * shell + 1, stride=1, padding=shell)[:, 0] > 0
    band = grown & ~inside
    if region_mask is not None:
        band = band & region_mask.to(device=band.device, dtype=torch.bool)
    dims = tuple(range(1, inside.ndim))
    scale = inside.sum(dim=dims, keepdim=True).float() / band.sum(dim=dims, keepdim=True).clamp_min(1).float()
    return inside.float() - scale * band.float()


def gradcam_from_features(model: nn.Module, features: list[torch.Tensor], layer, classes,
                          score_regions: dict[int, torch.Tensor | None] | None = None,
                          region_mask: torch.Tensor | None = None, method: str | None = None) -> GradCAMOutput:
    """Run ``model.decode`` once with hooks on ``layer`` (a module or a list of them) and one CAM per class.

    ``score_regions[c]`` overrides the voxels that define S_c (default: where the
    window's own prediction is c; a window without c then contributes no evidence).
    ``region_mask`` (bool, broadcastable to (B, D, H, W); the window's brain mask)
    restricts that default region.
    """
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        # The first hooked output is the graph's leaf; later ones stay in its graph (their gradients too).
        if captured:
            captured.append(output)
            return output
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with _frozen_parameters(model), torch.enable_grad():
            logits = model.decode(features)
            for h in handles:
                h.remove()
            if len(captured) != len(layers):
                raise RuntimeError("a Grad-CAM layer was not used by the decoder")
            cams, fallback, found = _class_cams(logits, captured, list(classes), score_regions, region_mask,
                                                method_spec(method))
    finally:
        for h in handles:
            h.remove()
    return GradCAMOutput(logits.detach(), cams, fallback, found)


def _class_cams(logits, acts, classes, score_regions, region_mask=None, spec: CamMethod = METHODS["gradcam"]):
    """One partial backward per class, from its score down to the hooked activations only."""
    acts = acts if isinstance(acts, list) else [acts]
    prediction = logits.detach().argmax(dim=1)
    cams: dict[int, torch.Tensor] = {}
    fallback: dict[int, bool] = {}
    found: dict[int, bool] = {}
    size = logits.shape[2:]
    for i, cls in enumerate(classes):
        region, used_all = _score_region(prediction, cls, score_regions, region_mask)
        fallback[cls] = used_all
        found[cls] = region is not None
        if region is None:
            cams[cls] = torch.zeros((acts[0].shape[0], *size), device=logits.device)
            continue
        if spec.score == "contrast" and not used_all:
            region = contrast_weights(region, region_mask)
        # The all-voxel fallback has no region to contrast: it explains the plain logit.
        score = (class_score_map(logits, cls, "region" if used_all else spec.score) * region.float()).sum()
        grads = torch.autograd.grad(score, acts, retain_graph=i < len(classes) - 1)
        cam = sum(F.interpolate(weigh(spec.weighting, a.float(), g.float()), size=size, mode="trilinear",
                                align_corners=False) for a, g in zip(acts, grads))
        cams[cls] = cam[:, 0].detach()
    return cams, fallback, found


def class_score_map(logits: torch.Tensor, cls: int, score: str) -> torch.Tensor:
    """(B, D, H, W) per-voxel class score; S_c is its sum over the score region (weighted, for ``contrast``).

    float32 under bf16/fp16 autocast too (a no-op in float32): a half-precision sum over a window's voxels would
    round away most of the score.
    """
    logit = logits[:, cls].float()
    if score == "rival":
        return _margin_over_rival(logits, cls)
    if score in ("healthy", "dual") and cls != BACKGROUND:
        over_healthy = logit - logits[:, BACKGROUND].float()
        return over_healthy + _margin_over_rival(logits, cls) if score == "dual" else over_healthy
    if score == "logsoftmax":
        return F.log_softmax(logits.float(), dim=1)[:, cls]
    return logit  # region, contrast


def _margin_over_rival(logits: torch.Tensor, cls: int) -> torch.Tensor:
    """(B, D, H, W) logit_c minus the largest other logit; the runner-up is chosen without gradient (a fixed
    contrast class per voxel), so the gradient is w_c - w_q through the head."""
    others = logits.detach().float().clone()
    others[:, cls] = float("-inf")
    rival = others.argmax(dim=1, keepdim=True)
    return logits[:, cls].float() - logits.float().gather(1, rival)[:, 0]


def weigh(weighting: str, acts: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(B, 1, d, h, w) map of one layer's activations and gradients, >= 0 (see the module doc)."""
    spatial = (2, 3, 4)
    if weighting == "gradcam":
        cam = (grad.mean(dim=spatial, keepdim=True) * acts).sum(dim=1, keepdim=True)
    elif weighting == "hirescam":
        cam = (grad * acts).sum(dim=1, keepdim=True)
    elif weighting == "layercam":
        cam = (grad.clamp_min(0) * acts).sum(dim=1, keepdim=True)
    elif weighting == "gradcampp":
        g2 = grad * grad
        denom = 2 * g2 + acts.sum(dim=spatial, keepdim=True) * g2 * grad
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * grad.clamp_min(0)).sum(dim=spatial, keepdim=True)
        cam = (weights * acts).sum(dim=1, keepdim=True)
    else:
        raise ValueError(f"unknown Grad-CAM weighting {weighting!r}")
    return F.relu(cam)


def upsample_attention(model: nn.Module, size) -> dict[str, torch.Tensor]:
    """Attention-gate maps of an AttUNet after a forward, resized to ``size`` (B, D, H, W)."""
    maps = getattr(model, "attention_maps", None) or {}
    return {
        name: F.interpolate(m.detach().float(), size=size, mode="trilinear", align_corners=False)[:, 0]
        for name, m in maps.items()
    }
