"""Test-time augmentation by flips, pooled with MC Dropout into one set of maps.

The network grid is reoriented to one axis order before inference (BraTS's LPS), so axis 0 is
left-right: the first flip is the anatomically symmetric one.  Each flip is an exact permutation of voxels, so a
flipped prediction flipped back lands on the very voxels it came from (no resampling).
The MC budget is spread over the flips (``--mc-samples 20 --tta 4``: 5 samples per flip), so an
estimator comparison at one budget costs the same decoder passes; a flip whose share is 0
runs one dropout-free pass.  Grad-CAM, attention and the dropout-free softmax (the trust
report's baseline) come from the un-flipped pass alone: they explain the prediction on the
image as acquired.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .combine import Member, pool

#: Flips of a default analysis (the estimator comparison of ``training.evaluate --estimators`` decides it).
DEFAULT_FLIPS = 1
#: Identity first, then single, double and triple flips of the network grid's axes.
FLIPS = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def flip_set(n: int) -> tuple[tuple[int, ...], ...]:
    if not 1 <= int(n) <= len(FLIPS):
        raise ValueError(f"test-time augmentation takes 1 to {len(FLIPS)} flips, not {n}")
    return FLIPS[:int(n)]


def samples_per_flip(mc_samples: int, n_flips: int) -> list[int]:
    """``mc_samples`` spread over the flips as evenly as possible (earlier flips get the remainder)."""
    base, extra = divmod(int(mc_samples), int(n_flips))
    return [base + (k < extra) for k in range(int(n_flips))]


def _flip(a: np.ndarray | None, axes: tuple[int, ...], lead: int) -> np.ndarray | None:
    if a is None or not axes:
        return a
    return np.ascontiguousarray(np.flip(a, axis=tuple(ax + lead for ax in axes)))


def predict_with_flips(make_predictor, volume: np.ndarray, brain_mask: np.ndarray | None, n_flips: int,
                       mc_samples: int):
    """PredictionMaps pooled over ``n_flips`` flips of ``volume`` (C, x, y, z).

    ``make_predictor(mc_samples, seed_offset, primary)`` builds the Predictor of one flip; only the
    primary (un-flipped) one computes Grad-CAM and keeps the dropout-free pass.
    """
    flips, shares = flip_set(n_flips), samples_per_flip(mc_samples, n_flips)
    members, primary, timings, windows = [], None, {}, 0
    for k, (axes, n) in enumerate(zip(flips, shares)):
        predictor = make_predictor(n, k, k == 0)
        maps = predictor.predict(_flip(volume, axes, 1), _flip(brain_mask, axes, 0))
        if k == 0:
            primary = maps
        for key, value in maps.timings_s.items():
            timings[key] = timings.get(key, 0.0) + value
        windows += maps.n_windows
        members.append(Member(probabilities=_flip(maps.probabilities, axes, 1),
                              variance=_flip(maps.variance, axes, 1),
                              mutual_information=_flip(maps.mutual_information, axes, 0),
                              samples=max(n, 1), entropy=_flip(maps.entropy, axes, 0)))
    pooled = pool(members)
    return replace(primary, probabilities=pooled.probabilities, variance=pooled.variance, entropy=pooled.entropy,
                   mutual_information=pooled.mutual_information, mc_samples=int(sum(shares)), n_windows=windows,
                   timings_s={k: round(v, 4) for k, v in timings.items()})
