"""The per-case random choices of a synthetic case (head pose, tumour size and shape, mass effect)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# Brain centre in MNI mm; the default header puts the grid centre there.
_BRAIN_CENTRE_MNI = np.array([0.0, -17.0, 5.0])
# The MNI152 average brain is larger than a typical patient's (and than SRI24).
_BASE_SCALE = 0.92


@dataclass(frozen=True)
class CaseParams:
    """Every per-case random choice that shapes the geometry; ``rng_params`` may override any."""

    flip: bool
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    wt_volume_cm3: float
    core_fraction: float  # (NCR + ET) / WT
    ncr_fraction: float  # NCR / core before rim gaps
    et_gap_fraction: float  # share of the rim that does not enhance
    n_lobes: int
    edema_wm_bias: float  # how strongly edema follows white matter
    mass_effect_mm: float
    centre_mni: tuple[float, float, float] | None = None  # None: drawn from white matter


def _draw_params(rng: np.random.Generator) -> CaseParams:
    global_scale = _BASE_SCALE * rng.uniform(0.95, 1.05)
    return CaseParams(
        flip=bool(rng.random() < 0.5),
        rotation_deg=tuple(np.clip(rng.normal(0.0, 3.0, 3), -6.0, 6.0).tolist()),
        scale=tuple((global_scale * rng.uniform(0.98, 1.02, 3)).tolist()),
        translation_mm=tuple(rng.uniform(-4.0, 4.0, 3).tolist()),
        wt_volume_cm3=float(math.exp(rng.uniform(math.log(20.0), math.log(150.0)))),
        core_fraction=float(rng.uniform(0.2, 0.55)),
        ncr_fraction=float(rng.uniform(0.25, 0.6)),
        et_gap_fraction=float(0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.25)),
        n_lobes=int(rng.integers(1, 4)),
        edema_wm_bias=float(rng.uniform(0.4, 1.0)),
        mass_effect_mm=float(0.0 if rng.random() < 0.3 else rng.uniform(1.0, 5.0)),
    )


def _apply_overrides(params: CaseParams, overrides: Mapping[str, object] | None) -> CaseParams:
    if not overrides:
        return params
    known = {f.name for f in dataclasses.fields(CaseParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown rng_params {unknown}; expected some of {sorted(known)}")
    return dataclasses.replace(params, **overrides)


def _equivalent_radius(volume_mm3: float) -> float:
    return (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
