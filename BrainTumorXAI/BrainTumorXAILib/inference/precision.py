"""Which floating-point precision the network computes in, and the autocast context that applies it.

``fp32`` is the exact path.  ``bf16`` runs convolutions under ``torch.autocast`` in bfloat16 (weights,
softmax, statistics and blending stay float32): on a CPU with native bf16 (Intel AMX or AVX512-BF16)
it is about twice as fast as fp32 (docs/performance.md); without native support bf16 is emulated and
slower.  ``fp16`` is CUDA-only (the classic AMP).  ``auto`` takes bf16 where the hardware computes it natively and fp32
elsewhere.  The default everywhere is ``fp32``: a segmentation must not change with the machine it
runs on unless the user asks for speed.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a dtype is resolved: the CLI reads PRECISIONS without it
    import torch

from ..errors import BrainTumorXAIError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions in hardware (not emulated)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = torch.cpu
        checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_precision(name: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``; None means plain float32 (no autocast)."""
    import torch

    name = (name or "fp32").lower()
    if name not in PRECISIONS:
        raise BrainTumorXAIError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    if name == "fp16":
        if device.type != "cuda":
            raise BrainTumorXAIError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
        return torch.float16
    return torch.bfloat16 if name == "bf16" else None


def precision_name(dtype: torch.dtype | None) -> str:
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` in ``dtype`` on ``device``; a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=dtype)
