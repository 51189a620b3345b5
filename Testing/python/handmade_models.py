"""Hand-built networks whose outputs are a known function of the input, for tests that need exact answers.

``linear_unet`` is a real ``unet`` of depth 1 (batch norm, in eval mode, so each norm is a fixed scale
``1/sqrt(1 + eps)``) with weights set by hand so that the decoder features at every voxel are

    f = (L(z), L(-z), L(d), L(-d))        L = four times (scale by k, LeakyReLU 0.01)

where ``z`` is input channel ``channel`` and ``d = (z[v + 1] - z[v - 1]) / 2`` is its central difference
along network axis ``gradient_axis`` (zero padding; ``d = 0`` without a gradient axis), or, with
``second_channel``, that input channel's value itself (a network reading two sequences).  The bottleneck
and the up-convolution are zero, the skip passes through identity convolutions, and the logits are
``head_weight @ f + head_bias``.  The decoder's MC dropout (4 channels) drops entries of ``f``.

``features`` / ``logits`` / ``mc_samples`` compute the same thing in float64 numpy, independently of
the inference code, so a test knows the expected value of every output at every voxel.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from BrainTumorXAILib.models.dropout import draw_masks, mc_dropout_modules, set_masks
from BrainTumorXAILib.models.factory import build_model

NEGATIVE_SLOPE = 0.01


def linear_unet(head_weight, head_bias, *, channel: int = 3, gradient_axis: int | None = None,
                dropout: float = 0.3, in_channels: int = 4, second_channel: int | None = None) -> nn.Module:
    model = build_model("unet", in_channels=in_channels, num_classes=4, base_channels=4, depth=1, norm="batch",
                        dropout=dropout)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
        enc = model.encoder[0].block
        w1 = enc[0][0].weight  # (4, in, 3, 3, 3)
        w1[0, channel, 1, 1, 1] = 1.0
        w1[1, channel, 1, 1, 1] = -1.0
        if gradient_axis is not None:
            lo, hi = [1, 1, 1], [1, 1, 1]
            lo[gradient_axis], hi[gradient_axis] = 0, 2
            w1[2, channel][tuple(lo)] = -0.5
            w1[2, channel][tuple(hi)] = 0.5
            w1[3] = -w1[2]
        if second_channel is not None:
            w1[2, second_channel, 1, 1, 1] = 1.0
            w1[3, second_channel, 1, 1, 1] = -1.0
        for k in range(4):
            enc[1][0].weight[k, k, 1, 1, 1] = 1.0
            model.decoder[0].block[0][0].weight[k, 4 + k, 1, 1, 1] = 1.0  # cat([up, skip]): skip is 4..7
            model.decoder[0].block[1][0].weight[k, k, 1, 1, 1] = 1.0
        model.head.weight[:, :, 0, 0, 0] = torch.as_tensor(np.asarray(head_weight, np.float32))
        model.head.bias[:] = torch.as_tensor(np.asarray(head_bias, np.float32))
    return model.eval()


def norm_scale(model: nn.Module) -> float:
    eps = next(m.eps for m in model.modules() if isinstance(m, nn.BatchNorm3d))
    return 1.0 / np.sqrt(1.0 + eps)


def features(z, d, k: float) -> np.ndarray:
    """The decoder features (4, ...) for input value ``z`` and central difference ``d`` (float64)."""
    v = np.stack([z, -z, d, -d]).astype(np.float64)
    for _ in range(4):  # two convs in the encoder stage, two in the decoder stage
        v = k * v
        v = np.where(v >= 0, v, NEGATIVE_SLOPE * v)
    return v


def logits(f: np.ndarray, head_weight, head_bias, keep=None, p: float = 0.0) -> np.ndarray:
    """Class logits (4, ...) of features ``f``; ``keep`` (4,) is a dropout keep mask (scaled by 1/(1-p))."""
    if keep is not None:
        f = f * (np.asarray(keep, np.float64) / (1.0 - p)).reshape((4,) + (1,) * (f.ndim - 1))
    w = np.asarray(head_weight, np.float64)
    return np.tensordot(w, f, axes=1) + np.asarray(head_bias, np.float64).reshape((4,) + (1,) * (f.ndim - 1))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-8, None))).sum(axis=0)


def decoder_keep_masks(model: nn.Module, masks) -> np.ndarray:
    """From ``draw_masks`` output: the (n, 4) keep masks of the decoder's dropout (the one acting on f)."""
    modules = mc_dropout_modules(model)
    index = next(i for i, m in enumerate(modules) if m is model.decoder[0].dropout)
    return masks[index].numpy().astype(np.float64)


def mc_statistics(f: np.ndarray, head_weight, head_bias, keep: np.ndarray, p: float) -> dict[str, np.ndarray]:
    """Mean, population variance, predictive entropy and mutual information over explicit samples."""
    samples = np.stack([softmax(logits(f, head_weight, head_bias, m, p)) for m in keep])
    mean = samples.mean(axis=0)
    variance = samples.var(axis=0)
    mean_sample_entropy = np.mean([entropy(s) for s in samples], axis=0)
    return {"mean": mean, "variance": variance, "entropy": entropy(mean),
            "mutual_information": np.maximum(entropy(mean) - mean_sample_entropy, 0.0)}


def explicit_mc_samples(model, x, n, seed):
    """N full forward passes (encoder and decoder), sample s with mask s in every dropout module."""
    masks = draw_masks(model, n, torch.Generator().manual_seed(seed))
    samples = []
    with torch.no_grad():
        for s in range(n):
            model.eval()
            for m in mc_dropout_modules(model):
                m.train()
            set_masks(model, [m[s:s + 1] for m in masks])
            samples.append(torch.softmax(model(torch.from_numpy(x)[None]), dim=1)[0])
    set_masks(model, None)
    model.eval()
    return torch.stack(samples)
