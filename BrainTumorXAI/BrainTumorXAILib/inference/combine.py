"""Pooling the softmax samples of several predictions of one case (TTA flips, checkpoint ensembles).

Every member is a set of n softmax samples summarised by its moments: the mean p, the per-class
variance v and the mutual information MI (n = 1, v = 0, MI = 0 for a dropout-free pass).  Pooled
over members with weights n_m / sum(n), exactly as if all samples had been one MC run:

    mean                 E[p]   = sum_m w_m p_m
    second moment        E[p^2] = sum_m w_m (v_m + p_m^2)          -> variance E[p^2] - E[p]^2
    mean sample entropy  E[H]   = sum_m w_m (H(p_m) - MI_m)        -> MI = H(E[p]) - E[H]

so the variance then also holds the spread *between* members (flips, checkpoints), and the mutual
information their disagreement: the epistemic part of every estimator lives in the same maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-8


def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, EPS, None))).sum(axis=0)


@dataclass
class Member:
    """One member's moments (arrays of the same grid; ``variance``/``mutual_information`` None: one sample)."""

    probabilities: np.ndarray  # (C, ...)
    variance: np.ndarray | None = None  # (C, ...)
    mutual_information: np.ndarray | None = None  # (...)
    samples: int = 1
    entropy: np.ndarray | None = None  # (...) H(probabilities) when already known (e.g. interpolated with them)


@dataclass
class Pooled:
    probabilities: np.ndarray
    variance: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    samples: int


def pool(members: list[Member]) -> Pooled:
    """The pooled moments of ``members`` (see the module doc), in float32 (a 1 mm case grid holds
    hundreds of MB per map; the variance E[p^2] - E[p]^2 of values in [0, 1] loses ~1e-7 to it)."""
    if not members:
        raise ValueError("nothing to pool")
    total = float(sum(max(int(m.samples), 1) for m in members))
    mean = second = mean_sample_entropy = None
    for m in members:
        w = max(int(m.samples), 1) / total
        p = np.asarray(m.probabilities, np.float32)
        var = 0.0 if m.variance is None else np.asarray(m.variance, np.float32)
        h = _entropy(p) if m.entropy is None else np.asarray(m.entropy, np.float32)
        mi = 0.0 if m.mutual_information is None else np.asarray(m.mutual_information, np.float32)
        mean = w * p if mean is None else mean + w * p
        second = w * (var + p * p) if second is None else second + w * (var + p * p)
        mean_sample_entropy = w * (h - mi) if mean_sample_entropy is None else mean_sample_entropy + w * (h - mi)
    mean /= np.maximum(mean.sum(axis=0, keepdims=True), 1e-12)
    entropy = _entropy(mean)
    return Pooled(probabilities=mean.astype(np.float32, copy=False),
                  variance=np.clip(second - mean * mean, 0.0, None).astype(np.float32, copy=False),
                  entropy=entropy.astype(np.float32, copy=False),
                  mutual_information=np.clip(entropy - mean_sample_entropy, 0.0, None).astype(np.float32, copy=False),
                  samples=int(total))
