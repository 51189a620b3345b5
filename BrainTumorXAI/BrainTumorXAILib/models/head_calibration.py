"""A checkpoint's stored calibration (fitted by ``training.calibrate``: a temperature, per-class logit offsets),
read and validated, and applied to the network's final 1x1x1 head when the model is loaded."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError


def checkpoint_temperature(ckpt: Mapping[str, Any], path=None) -> float | None:
    """``normalisation["temperature"]`` (fitted by ``training.calibrate``), None when absent or 1."""
    t = (ckpt.get("normalisation") or {}).get("temperature")
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise CheckpointError(path, f"normalisation['temperature'] must be a positive number, got {t!r}")
    return None if float(t) == 1.0 else float(t)


#: Offsets beyond this are not a prior correction but a broken file (a logit offset of 30 is a factor e^30).
MAX_CLASS_BIAS = 30.0


def checkpoint_class_bias(ckpt: Mapping[str, Any], path=None) -> tuple[float, ...] | None:
    """``normalisation["class_bias"]`` (one logit offset per output class, fitted by ``training.calibrate
    --fit class-bias``), None when absent or all zero."""
    bias = (ckpt.get("normalisation") or {}).get("class_bias")
    if bias is None:
        return None
    n_classes = len(ckpt.get("class_names") or ())
    if (not isinstance(bias, (list, tuple)) or len(bias) != n_classes
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                       and abs(b) <= MAX_CLASS_BIAS for b in bias)):
        raise CheckpointError(path, f"normalisation['class_bias'] must be {n_classes} finite logit offsets "
                                    f"within +-{MAX_CLASS_BIAS:g}, one per class, got {bias!r}")
    return None if not any(bias) else tuple(float(b) for b in bias)


def apply_class_bias(model: nn.Module, bias, path=None) -> nn.Module:
    """Add one offset per class to the final 1x1x1 head's bias: the network then outputs logits (after any
    temperature) + bias exactly, a shift of the class priors that moves every softmax and argmax the predictor
    takes; Grad-CAM, a gradient of the class score, does not change."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Conv3d) or head.kernel_size != (1, 1, 1) or head.bias is None:
        raise CheckpointError(path, f"{type(model).__name__}: no final 1x1x1 Conv3d 'head' with a bias to shift")
    with torch.no_grad():
        head.bias.add_(torch.as_tensor(bias, dtype=head.bias.dtype, device=head.bias.device))
    return model


def apply_temperature(model: nn.Module, temperature: float) -> nn.Module:
    """Divide the final 1x1x1 head's weight and bias by T: the network then outputs logits / T exactly
    (a linear layer), so every softmax the predictor takes is the temperature-scaled one."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Conv3d) or head.kernel_size != (1, 1, 1):
        raise TypeError(f"{type(model).__name__}: no final 1x1x1 Conv3d 'head' to scale by a temperature")
    with torch.no_grad():
        head.weight.div_(float(temperature))
        if head.bias is not None:
            head.bias.div_(float(temperature))
    return model
