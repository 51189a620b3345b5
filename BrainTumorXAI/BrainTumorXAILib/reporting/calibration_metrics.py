"""How trustworthy the uncertainty is, on cases with a ground truth.

- Expected calibration error (ECE), equal-width bins:
  ECE = sum_b (n_b / n) * |accuracy_b - mean confidence_b| over the non-empty bins
  [0, 1/B), [1/B, 2/B), ... [(B-1)/B, 1]; 0 is perfectly calibrated.
- Region ECE, inside the brain: the region's probability p (sum of its
  classes' mean probabilities) as a binary forecast.  The forecast is
  "in the region" when p >= 0.5, its confidence is p then and 1 - p otherwise,
  and it is correct when it matches the region's ground truth.
- AUROC of the voxel entropy for predicting voxel errors (argmax of the mean
  probability != ground-truth class) inside the brain: the Mann-Whitney U
  statistic, ties counting half; 1.0 means every error is more uncertain than
  every correct voxel, 0.5 is chance.

Above ``MAX_VOXELS`` brain voxels, ``uncertainty_quality`` evaluates a fixed
random subset (seed 0, each voxel kept with probability MAX_VOXELS / n, so about
MAX_VOXELS of them): results are deterministic and the AUROC sort stays cheap.
"""

from __future__ import annotations

import numpy as np

from ..io.labels import REGIONS

MAX_VOXELS = 5_000_000
SUBSAMPLE_SEED = 0


def expected_calibration_error(confidence, correct, n_bins: int = 15, mask=None) -> float:
    """Equal-width-bin ECE of confidences in [0, 1] against boolean outcomes; nan when no voxel is counted."""
    conf = np.asarray(confidence, np.float64)
    hit = np.asarray(correct, bool)
    if mask is not None:
        m = np.asarray(mask, bool)
        conf, hit = conf[m], hit[m]
    return ece_of_bins(*confidence_bins(conf, hit, n_bins))


def confidence_bins(confidence, correct, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: the voxel count, the summed confidence and the summed hits (what the ECE and
    a reliability diagram are made of)."""
    conf = np.clip(np.asarray(confidence, np.float64).ravel(), 0.0, 1.0)
    hit = np.asarray(correct, bool).ravel()
    # Confidence 1.0 belongs to the last bin, which is closed on the right.
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    return (np.bincount(bins, minlength=n_bins), np.bincount(bins, weights=conf, minlength=n_bins),
            np.bincount(bins, weights=hit, minlength=n_bins))


def ece_of_bins(count: np.ndarray, conf_sum: np.ndarray, hit_sum: np.ndarray) -> float:
    """The ECE from :func:`confidence_bins`; nan when no voxel is counted."""
    n = int(count.sum())
    # sum_b n_b/n * |acc_b - conf_b| = sum_b |hits_b - conf_sum_b| / n
    return float(np.sum(np.abs(hit_sum - conf_sum)) / n) if n else float("nan")


def region_ece(mean_probs, ref_classes, region: str, brain_mask=None, n_bins: int = 15) -> float:
    """ECE of the binary region forecast (see the module docstring) inside ``brain_mask`` (all voxels if None)."""
    classes = list(REGIONS[region])
    p = np.asarray(mean_probs)[classes].sum(axis=0, dtype=np.float64)
    truth = np.isin(np.asarray(ref_classes), classes)
    predicted = p >= 0.5
    confidence = np.where(predicted, p, 1.0 - p)
    return expected_calibration_error(confidence, predicted == truth, n_bins, brain_mask)


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney U, ties count half).

    nan when either class is absent.
    """
    scores = np.asarray(scores).ravel()
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    labels = np.asarray(labels, bool).ravel()
    pos, neg = np.sort(scores[labels]), np.sort(scores[~labels])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    # U = sum over positives of (#negatives below + half the #negatives equal); two sorted
    # searches do this exactly without a stable rank sort of everything.
    below = np.searchsorted(neg, pos, side="left").sum(dtype=np.int64)
    not_above = np.searchsorted(neg, pos, side="right").sum(dtype=np.int64)
    return float((below + not_above) / (2.0 * pos.size * neg.size))


def _subsample(indices: np.ndarray) -> np.ndarray:
    """About MAX_VOXELS of ``indices`` when there are more: a fixed-seed random draw, kept in raster order."""
    limit = MAX_VOXELS  # read at call time, so it can be tuned
    if indices.size <= limit:
        return indices
    keep = np.random.default_rng(SUBSAMPLE_SEED).random(indices.size) < limit / indices.size
    return indices[keep]


def _json_float(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def uncertainty_quality(mean_probs, entropy, ref_classes, brain_mask, n_bins: int = 15) -> dict:
    """Uncertainty quality inside the brain.

    Returns ``{'ece': {'WT', 'TC', 'ET'}, 'entropy_error_auroc': float,
    'voxel_error_rate': float}`` as JSON-serialisable floats (nan -> None, e.g.
    the AUROC of a case without any error).
    """
    mean_probs = np.asarray(mean_probs)
    ref_classes = np.asarray(ref_classes)
    if mean_probs.shape[1:] != ref_classes.shape or np.shape(entropy) != ref_classes.shape:
        raise ValueError(f"probabilities {mean_probs.shape}, entropy {np.shape(entropy)} and reference "
                         f"{ref_classes.shape} do not match")
    # Gather the (subsampled) brain voxels once; every measure then works on flat arrays.
    idx = _subsample(np.flatnonzero(np.asarray(brain_mask, bool)))
    probs = mean_probs.reshape(mean_probs.shape[0], -1)[:, idx]
    ref = ref_classes.ravel()[idx]
    ent = np.asarray(entropy).ravel()[idx]
    errors = probs.argmax(axis=0) != ref
    return {
        "ece": {r: _json_float(region_ece(probs, ref, r, None, n_bins)) for r in REGIONS},
        "entropy_error_auroc": _json_float(auroc(ent, errors)),
        "voxel_error_rate": _json_float(errors.mean()) if errors.size else None,
    }
