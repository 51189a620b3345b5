"""3D U-Net family (plain, residual, attention) with MC-Dropout-ready decoders; self-describing checkpoints
(``checkpoint``) and their stored calibration (``head_calibration``)."""

from .dropout import (
    MCDropout3d,
    draw_masks,
    enable_mc_dropout,
    mc_dropout_mode,
    mc_dropout_modules,
    set_masks,
)
from .factory import MODEL_NAMES, MODELS, build_model, build_model_from_config, count_parameters
from .unet import AttUNet3D, EncoderDecoder3D, ResUNet3D, UNet3D

__all__ = [
    "MODEL_NAMES", "MODELS", "AttUNet3D", "EncoderDecoder3D", "MCDropout3d", "ResUNet3D", "UNet3D",
    "build_model", "build_model_from_config", "count_parameters", "draw_masks", "enable_mc_dropout",
    "mc_dropout_mode", "mc_dropout_modules", "set_masks",
]
