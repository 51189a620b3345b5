"""Dice + Focal loss for multi-class segmentation (written on log-probabilities so validation can reuse it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiceFocalLoss(nn.Module):
    """Soft Dice over the tumour classes (batch-pooled) + focal cross-entropy over all classes."""

    def __init__(self, gamma: float = 2.0, dice_weight: float = 1.0, focal_weight: float = 1.0,
                 dice_classes=(1, 2, 3), smooth: float = 1e-5):
        super().__init__()
        self.gamma, self.dice_weight, self.focal_weight = gamma, dice_weight, focal_weight
        self.dice_classes = list(dice_classes)
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.from_log_probs(F.log_softmax(logits.float(), dim=1), target)

    def from_log_probs(self, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """log_probs (B, C, ...) and integer target (B, ...)."""
        probs = log_probs.exp()
        one_hot = F.one_hot(target.long(), probs.shape[1]).movedim(-1, 1).to(probs.dtype)
        dims = (0, *range(2, probs.ndim))
        p, t = probs[:, self.dice_classes], one_hot[:, self.dice_classes]
        inter = (p * t).sum(dims)
        dice = (2 * inter + self.smooth) / (p.sum(dims) + t.sum(dims) + self.smooth)
        log_pt = log_probs.gather(1, target.long().unsqueeze(1)).squeeze(1)
        focal = (-(1 - log_pt.exp()) ** self.gamma * log_pt).mean()
        return self.dice_weight * (1 - dice.mean()) + self.focal_weight * focal
