"""Monte Carlo Dropout statistics, computed in a streaming way.

For N stochastic softmax samples p_s (per voxel, per class):
- mean        E[p]                      -> the probability maps
- variance    Var_s[p] per class        -> the seed paper's uncertainty maps
                                           (over samples only, never over classes)
- entropy     H[E p] = -sum_c E[p]_c log E[p]_c      predictive (total) uncertainty
- mutual information  H[E p] - E_s[H[p_s]]           epistemic part (BALD)
Samples arrive in chunks; the running moments are merged with Chan et al.'s
parallel update so memory never depends on N.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def entropy(probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Shannon entropy in nats along the class axis."""
    return -(probs * torch.log(probs.clamp_min(EPS))).sum(dim=dim)


class MomentAccumulator:
    """Running mean / variance of softmax samples plus the mean per-sample entropy."""

    def __init__(self):
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.mean_entropy: torch.Tensor | None = None

    def update(self, samples: torch.Tensor) -> None:
        """Add a chunk of samples shaped (n, C, ...)."""
        n = samples.shape[0]
        if n == 0:
            return
        if n == 1:
            self._welford(samples[0])
            return
        chunk_mean = samples.mean(dim=0)
        chunk_m2 = ((samples - chunk_mean) ** 2).sum(dim=0)
        chunk_ent = entropy(samples, dim=1).mean(dim=0)
        if self.count == 0:
            self.mean, self.m2, self.mean_entropy = chunk_mean, chunk_m2, chunk_ent
            self.count = n
            return
        total = self.count + n
        delta = chunk_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + chunk_m2 + delta**2 * (self.count * n / total)
        self.mean_entropy = self.mean_entropy + (chunk_ent - self.mean_entropy) * (n / total)
        self.count = total

    def _welford(self, sample: torch.Tensor) -> None:
        """One sample, in place: the CPU path decodes samples one at a time."""
        ent = entropy(sample, dim=0)
        if self.count == 0:
            self.mean, self.m2, self.mean_entropy = sample.clone(), torch.zeros_like(sample), ent
            self.count = 1
            return
        self.count += 1
        delta = sample - self.mean
        self.mean.add_(delta, alpha=1.0 / self.count)
        self.m2.addcmul_(delta, sample - self.mean)
        self.mean_entropy.add_(ent - self.mean_entropy, alpha=1.0 / self.count)

    @property
    def variance(self) -> torch.Tensor:
        """Population variance over samples (the paper's per-class variance)."""
        if self.count == 0:
            raise ValueError("no samples accumulated")
        return self.m2 / self.count


def mutual_information(mean_probs: torch.Tensor, mean_sample_entropy: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Epistemic uncertainty H[E p] - E[H p], clamped at 0 against rounding."""
    return (entropy(mean_probs, dim=dim) - mean_sample_entropy).clamp_min(0.0)
