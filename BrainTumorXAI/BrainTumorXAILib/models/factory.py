"""Build a network by name or from the ``config`` recorded in a checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .unet import AttUNet3D, EncoderDecoder3D, ResUNet3D, UNet3D

MODELS: dict[str, type[EncoderDecoder3D]] = {cls.architecture: cls for cls in (UNet3D, ResUNet3D, AttUNet3D)}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def build_model(name: str, **params: Any) -> EncoderDecoder3D:
    """``build_model('attunet', base_channels=16, depth=4, ...)``; unknown names or parameters raise ValueError."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}") from None
    try:
        return cls(**params)
    except TypeError as exc:  # unexpected keyword argument
        raise ValueError(f"bad parameters for model {name!r}: {exc}") from None


def build_model_from_config(config: Mapping[str, Any]) -> EncoderDecoder3D:
    """Inverse of ``model.config``."""
    params = dict(config)
    if "name" not in params:
        raise ValueError("model config has no 'name'")
    return build_model(params.pop("name"), **params)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
