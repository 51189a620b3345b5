"""How trustworthy the uncertainty is, on cases with a ground truth.

- Expected calibration error (ECE) per region, inside the brain: the region's
  probability (sum of its classes' probabilities) as a binary forecast.
- AUROC of the voxel entropy for predicting voxel errors (argmax != truth):
  1.0 means every error is more uncertain than every correct voxel.
"""

from __future__ import annotations

import numpy as np

from .labels import REGIONS

MAX_VOXELS = 5_000_000  # deterministic subsampling above this keeps the AUROC sort cheap


def expected_calibration_error(confidence, correct, n_bins: int = 15, mask=None) -> float:
    """Equal-width-bin ECE: sum_b |acc_b - conf_b| * n_b / n."""
    conf = np.asarray(confidence, np.float64)
    hit = np.asarray(correct, bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        conf, hit = conf[m], hit[m]
    conf, hit = conf.ravel(), hit.ravel()
    if conf.size == 0:
        return float("nan")
    bins = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=hit.astype(np.float64), minlength=n_bins)
    used = counts > 0
    return float(np.sum(np.abs(hit_sum[used] - conf_sum[used])) / conf.size)


def region_ece(mean_probs, ref_classes, region: str, brain_mask, n_bins: int = 15) -> float:
    """ECE of the binary region forecast: confidence = max(p, 1-p), correct = (p >= 0.5) == truth."""
    p = np.asarray(mean_probs)[list(REGIONS[region])].sum(axis=0)
    truth = np.isin(ref_classes, REGIONS[region])
    predicted = p >= 0.5
    confidence = np.where(predicted, p, 1.0 - p)
    return expected_calibration_error(confidence, predicted == truth, n_bins, brain_mask)


def auroc(scores, labels) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic (ties count half); nan if one class is absent."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels, bool).ravel()
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _subsample(n: int, limit: int = MAX_VOXELS) -> slice | np.ndarray:
    if n <= limit:
        return slice(None)
    return np.random.default_rng(0).choice(n, size=limit, replace=False)


def uncertainty_quality(mean_probs, entropy, ref_classes, brain_mask, n_bins: int = 15) -> dict:
    """{'ece': {WT, TC, ET}, 'entropy_error_auroc': float} inside the brain (nan -> None)."""
    mask = np.asarray(brain_mask, bool)
    ece = {r: region_ece(mean_probs, ref_classes, r, mask, n_bins) for r in REGIONS}
    errors = (np.asarray(mean_probs).argmax(axis=0) != np.asarray(ref_classes))[mask]
    ent = np.asarray(entropy)[mask]
    pick = _subsample(ent.size)
    score = auroc(ent[pick], errors[pick])
    return {
        "ece": {k: (None if np.isnan(v) else v) for k, v in ece.items()},
        "entropy_error_auroc": None if np.isnan(score) else score,
        "voxel_error_rate": float(errors.mean()) if errors.size else None,
    }
