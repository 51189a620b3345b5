"""One generic 3D encoder-decoder; the three variants only pick its parts.

    UNet3D     plain stages (2 x conv-norm-LeakyReLU)
    ResUNet3D  residual stages
    AttUNet3D  plain stages + additive attention gates on the skips

Layout for depth N (channels c_l = base_channels * channel_multiplier**l):
    encoder.0            block(in -> c_0)                       full resolution
    encoder.l, l<N       maxpool -> block(c_{l-1} -> c_l)
    bottleneck           maxpool -> block(c_{N-1} -> c_N)
    bottleneck_dropout   MC dropout on the bottleneck output (first thing decode does)
    decoder.i, i<N       up(2x) -> [gate(skip)] -> concat -> block(2 c_l -> c_l) -> MC dropout,
                         l = N-1-i (decoder.0 coarsest, decoder.{N-1} finest);
                         decoder='light': up(2x) -> [gate(skip)] -> add -> one conv -> MC dropout
    head                 1x1x1 conv -> class logits

``encode`` is deterministic (unless ``dropout_in_encoder``), so MC Dropout runs the
encoder once per window and samples only ``decode``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .blocks import NORMS, AttentionGate, ConvBlock, ConvNormAct, ResidualBlock
from .dropout import MCDropout3d

#: 'full': concatenated skip + a two-conv block per stage (classic U-Net);
#: 'light': additive skip + one conv per stage.  The light decoder puts most of
#: the computation in the encoder, which runs once under MC Dropout, so each MC
#: sample (a decoder pass) costs much less.
DECODERS = ("full", "light")

BlockFactory = Callable[[int, int, str], nn.Module]


def _dropout(p: float, channels: int) -> nn.Module:
    # Identity when p == 0: no dropout module, so MC sampling has nothing to draw.
    return MCDropout3d(p, channels) if p > 0 else nn.Identity()


class EncoderStage(nn.Module):
    def __init__(self, block: BlockFactory, in_channels: int, out_channels: int, norm: str,
                 downsample: bool, dropout: float = 0.0):
        super().__init__()
        self.pool = nn.MaxPool3d(2) if downsample else nn.Identity()
        self.block = block(in_channels, out_channels, norm)
        self.dropout = _dropout(dropout, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.block(self.pool(x)))


class DecoderStage(nn.Module):
    """Upsample, (gate and) concatenate the skip, convolve, drop channels.

    Returns one tensor so that a Grad-CAM forward hook can replace the output;
    the attention map of the last call is kept in ``self.attention``.
    """

    def __init__(self, block: BlockFactory, in_channels: int, out_channels: int, norm: str,
                 attention: bool, dropout: float, light: bool = False):
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, kernel_size=2, stride=2)
        self.gate = AttentionGate(out_channels, in_channels) if attention else None
        # Light stage: additive skip and a single conv (SegResNet-style asymmetric decoder).
        self.light = light
        self.block = ConvNormAct(out_channels, out_channels, norm) if light else block(2 * out_channels, out_channels, norm)
        self.dropout = _dropout(dropout, out_channels)
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            skip, alpha = self.gate(skip, x)  # gating signal: the coarser decoder features
            self.attention = alpha.detach()
        up = self.up(x)
        merged = up + skip if self.light else torch.cat([up, skip], dim=1)
        return self.dropout(self.block(merged))


class EncoderDecoder3D(nn.Module):
    """Generic 3D U-Net; subclasses set ``architecture``, ``block_type`` and ``use_attention``."""

    architecture: str = ""
    block_type: BlockFactory = ConvBlock
    use_attention: bool = False

    def __init__(self, in_channels: int = 4, num_classes: int = 4, base_channels: int = 16, depth: int = 4,
                 channel_multiplier: int = 2, norm: str = "instance", dropout: float = 0.1,
                 dropout_in_encoder: bool = False, decoder: str = "full"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        if depth < 1 or base_channels < 1 or channel_multiplier < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError("depth, base_channels, channel_multiplier, in_channels and num_classes must be >= 1")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {', '.join(DECODERS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._config = {
            "name": self.architecture, "in_channels": int(in_channels), "num_classes": int(num_classes),
            "base_channels": int(base_channels), "depth": int(depth), "channel_multiplier": channel_multiplier,
            "norm": norm, "dropout": float(dropout), "dropout_in_encoder": bool(dropout_in_encoder),
            "decoder": decoder,
        }
        self.in_channels, self.num_classes, self.depth = int(in_channels), int(num_classes), int(depth)
        ch = [int(base_channels * channel_multiplier**level) for level in range(depth + 1)]
        self.channels = tuple(ch)
        enc_p = dropout if dropout_in_encoder else 0.0
        block = type(self).block_type

        self.encoder = nn.ModuleList(
            EncoderStage(block, in_channels if lvl == 0 else ch[lvl - 1], ch[lvl], norm, lvl > 0, enc_p)
            for lvl in range(depth)
        )
        self.bottleneck = EncoderStage(block, ch[depth - 1], ch[depth], norm, downsample=True)
        self.bottleneck_dropout = _dropout(dropout, ch[depth])
        self.decoder = nn.ModuleList(
            DecoderStage(block, ch[lvl + 1], ch[lvl], norm, self.use_attention, dropout, light=decoder == "light")
            for lvl in reversed(range(depth))
        )
        self.head = nn.Conv3d(ch[0], num_classes, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, a=0.01, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- description ------------------------------------------------------------
    @property
    def config(self) -> dict:
        """Architecture name and constructor arguments (JSON-serialisable)."""
        return dict(self._config)

    @property
    def multiple_of(self) -> int:
        return 2**self.depth

    @property
    def default_gradcam_layer(self) -> str:
        # Second-finest decoder stage: the finest one feeds the 1x1x1 head, where
        # Grad-CAM collapses into a rescaled copy of the logits.
        return f"decoder.{self.depth - 2}" if self.depth >= 2 else "bottleneck"

    def gradcam_layers(self) -> dict[str, nn.Module]:
        """Layers usable for Grad-CAM, all run inside ``decode`` (coarse to fine)."""
        layers: dict[str, nn.Module] = {"bottleneck": self.bottleneck_dropout}
        layers.update({f"decoder.{i}": stage for i, stage in enumerate(self.decoder)})
        return layers

    @property
    def attention_maps(self) -> dict[str, torch.Tensor]:
        """Attention maps of the last decode, (B, 1, d, h, w) at each skip's resolution; {} without gates."""
        return {f"decoder.{i}": s.attention for i, s in enumerate(self.decoder) if s.attention is not None}

    # -- computation --------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Skip features (fine to coarse) followed by the bottleneck features."""
        self._check_input(x)
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        features.append(self.bottleneck(x))
        return features

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits from ``encode``'s features; every batch entry of ``features`` must agree in size."""
        if len(features) != self.depth + 1:
            raise ValueError(f"decode expects {self.depth + 1} feature maps, got {len(features)}")
        x = self.bottleneck_dropout(features[-1])
        for stage, skip in zip(self.decoder, reversed(features[:-1])):
            x = stage(x, skip)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, D, H, W), got {tuple(x.shape)}")
        m = self.multiple_of
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by 2**depth = {m} "
                f"(pad or crop the volume to a multiple of {m})"
            )


class UNet3D(EncoderDecoder3D):
    architecture = "unet"
    block_type = ConvBlock


class ResUNet3D(EncoderDecoder3D):
    architecture = "resunet"
    block_type = ResidualBlock


class AttUNet3D(EncoderDecoder3D):
    architecture = "attunet"
    block_type = ConvBlock
    use_attention = True
