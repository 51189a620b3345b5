"""Uncertainty quality per region (WT, TC, ET), on cases with a ground truth: the trust report's first part.

For every region R (a set of classes, ``io.labels.REGIONS``) inside the brain:

- **ECE** of the binary region forecast (``calibration_metrics.region_ece``) and the bins of its reliability diagram.
- **Voxel errors** of R: the prediction says "in R" (argmax class in R) where the ground truth does not, or
  the other way round.
- **Uncertainty measures**, each scaled to [0, 1] by its largest possible value (fixed, not per case, so
  cases compare):
  ``entropy`` predictive entropy of the MC mean / ln C; ``mutual_information`` / ln C; ``variance`` the
  variance of the region's probability over the MC samples / 0.25 (exact for WT = 1 - p_background and ET;
  for TC the sum of the NCR and ET variances, the covariance term is not stored); ``region_entropy`` binary
  entropy of the region probability / ln 2.  Baselines: ``zero`` (all-zero uncertainty) and
  ``deterministic_entropy`` (entropy of the dropout-free softmax / ln C; only when that softmax was kept).
- For each measure: **AUROC** (Mann-Whitney) and **AUPRC** (average precision, step-wise: sum over distinct
  thresholds of (recall_k - recall_{k-1}) * precision_k) of the measure for finding the region's errors.
  All-zero uncertainty gives AUROC 0.5 and AUPRC = the error rate.
- The **QU-BraTS score** (Mehta et al., MELBA 2022).  The uncertainty u in [0, 100] (measure x 100); for
  thresholds tau (default 0, 2.5, ..., 100) only the voxels with u <= tau are kept, and on them
  Dice_tau (1 when prediction and truth are both empty there), the filtered-true-positive ratio
  FTP_tau = (TP_100 - TP_tau) / TP_100 and the filtered-true-negative ratio FTN_tau = (TN_100 - TN_tau) / TN_100
  (0 when TP_100 resp. TN_100 is 0).  Each is integrated over tau / 100 in [0, 1] (trapezoids) and
  score = (AUC_Dice + (1 - AUC_FTP) + (1 - AUC_FTN)) / 3, in [0, 1], higher is better.  All-zero
  uncertainty filters nothing: score = (Dice + 2) / 3 — a strong baseline when the Dice is high, which
  is why it is reported next to every measure.  Here the voxels are those of the brain mask (the challenge
  used the whole image; the background outside the brain only inflates TN).

Above ``calibration_metrics.MAX_VOXELS`` brain voxels the same fixed random subset as ``calibration_metrics`` is used.

Cost: every distinct measure map is sorted once (a plain, vectorised ``np.sort``; entropy, mutual
information and the baselines are the same map for every region and are scaled once); each region then
locates only its error voxels in the sorted scores (``_Ranked``): exactly the tie-aware Mann-Whitney U and
step-wise average precision above, no quantisation.  The QU-BraTS curves of a (measure, region) are one
``bincount`` over (confusion cell, first surviving threshold).
"""

from __future__ import annotations

import numpy as np

from ..io.labels import REGIONS
from .calibration_metrics import _json_float, _subsample, confidence_bins, ece_of_bins

#: QU-BraTS uncertainty thresholds (uncertainty scaled to 0..100): 0, 2.5, ..., 100, the 40 steps of the
#: challenge's own evaluation script (RagMeh11/QU-BraTS, checked: same filtering u > tau, FTP/FTN inside the brain).
QUBRATS_THRESHOLDS = tuple(float(t) for t in np.linspace(0.0, 100.0, 41))
#: Measure name -> what it is (for summary.json's "method" block).
MEASURES = {
    "entropy": "predictive entropy of the MC mean softmax / ln C",
    "mutual_information": "mutual information (epistemic part) / ln C",
    "variance": "MC variance of the region probability / 0.25 (TC: NCR + ET variances)",
    "region_entropy": "binary entropy of the region probability / ln 2",
    "zero": "baseline: all-zero uncertainty",
    "deterministic_entropy": "baseline: entropy of the dropout-free softmax / ln C",
}


def average_precision(scores, labels) -> float:
    """Area under the precision-recall curve as average precision (step-wise, ties form one threshold).

    nan when there is no positive.
    """
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels, bool).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0 or scores.size == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # Last index of each run of equal scores: one threshold per distinct value.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


class _Ranked:
    """A score map sorted once, for many label sets: exact AUROC and AUPRC.

    Only the positives of a label set are located in the sorted scores (binary search): their mid-ranks give
    the Mann-Whitney U, and how many voxels score at least as high as each distinct positive score gives the
    precision at that threshold.  A plain sort (vectorised in numpy) instead of grouping every voxel
    (``np.unique(return_inverse=True)``, an indirect sort): 20x cheaper on a real-size brain.
    """

    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float64).ravel()
        self.sorted = np.sort(self.scores)

    def auroc_ap(self, labels) -> tuple[float, float]:
        """(AUROC, AUPRC) of the scores for boolean ``labels`` (same definitions as ``auroc`` / ``average_precision``)."""
        labels = np.asarray(labels, bool).ravel()
        positive = np.sort(self.scores[labels])
        n = self.sorted.size
        n_pos = float(positive.size)
        n_neg = n - n_pos
        nan = float("nan")
        if n_pos == 0:
            return nan, nan
        # Distinct positive scores, descending, with how many positives hold each.
        value, pos = np.unique(positive, return_counts=True)
        value, pos = value[::-1], pos[::-1].astype(np.float64)
        below = np.searchsorted(self.sorted, value, side="left").astype(np.float64)
        tied = np.searchsorted(self.sorted, value, side="right") - below
        # Mann-Whitney U from the positives' mid-ranks (integers and halves: exact in float64).
        u = float(np.sum(pos * (below + (tied + 1.0) / 2.0))) - n_pos * (n_pos + 1.0) / 2.0
        roc = u / (n_pos * n_neg) if n_neg > 0 else nan
        # Thresholds from the highest distinct score down: precision there times the recall step; only the
        # thresholds holding positives add a step.
        tp = np.cumsum(pos)
        ap = float(np.sum(pos / n_pos * (tp / (n - below))))
        return roc, ap


def reliability_bins(confidence, correct, n_bins: int = 15) -> dict:
    """Equal-width confidence bins of a reliability diagram: edges, counts, mean confidence and accuracy per bin.

    Empty bins hold None for confidence and accuracy.
    """
    return reliability_of_bins(*confidence_bins(confidence, correct, n_bins))


def reliability_of_bins(count: np.ndarray, conf_sum: np.ndarray, hit_sum: np.ndarray) -> dict:
    """:func:`reliability_bins` from ``calibration_metrics.confidence_bins``."""
    n_bins = count.size
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, acc = conf_sum / count, hit_sum / count
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(), "count": count.tolist(),
            "confidence": [_json_float(v) for v in mean_conf], "accuracy": [_json_float(v) for v in acc]}


def qubrats_curves(uncertainty, prediction, truth, thresholds=QUBRATS_THRESHOLDS) -> dict:
    """Dice, FTP and FTN ratio after keeping the voxels with ``uncertainty`` (0..100) <= each threshold."""
    tau = np.asarray(sorted(float(t) for t in thresholds))
    u = np.asarray(uncertainty, np.float64).ravel()
    # First threshold a voxel survives (u <= tau); beyond the last one it never survives.
    return _qubrats_curves_from_first(np.searchsorted(tau, u, side="left"), tau, prediction, truth)


def _qubrats_curves_from_first(first, tau, prediction, truth) -> dict:
    """``qubrats_curves`` given each voxel's first surviving threshold (shared by the regions of one measure)."""
    pred, true = np.asarray(prediction, bool).ravel(), np.asarray(truth, bool).ravel()
    return _qubrats_curves_from_cells(first, tau, _confusion_cell(pred, true))


def _confusion_cell(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per voxel 0 TP, 1 FP, 2 FN, 3 TN (uint8)."""
    return (2 * ~pred + ~true).astype(np.uint8)


def _qubrats_curves_from_cells(first, tau, cell) -> dict:
    """The curves from each voxel's first surviving threshold and confusion cell: one bincount for all four
    cells (kept voxels per threshold = cumulative counts over the first surviving threshold)."""
    slots = tau.size + 1
    counts = np.bincount(cell * slots + first, minlength=4 * slots).reshape(4, slots)
    kept = np.cumsum(counts[:, :tau.size], axis=1).astype(np.float64)
    tp, fp, fn, tn = kept
    tp_all, tn_all = float(counts[0].sum()), float(counts[3].sum())
    denom = 2 * tp + fp + fn
    dice = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
    ftp = (tp_all - tp) / tp_all if tp_all > 0 else np.zeros_like(tp)
    ftn = (tn_all - tn) / tn_all if tn_all > 0 else np.zeros_like(tn)
    return {"thresholds": tau.tolist(), "dice": dice.tolist(), "ftp": np.asarray(ftp).tolist(),
            "ftn": np.asarray(ftn).tolist()}


def _auc(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2:
        return float(y[0]) if y.size else float("nan")
    span = x[-1] - x[0]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / span) if span > 0 else float(y.mean())


def qubrats_score(uncertainty, prediction, truth, thresholds=QUBRATS_THRESHOLDS) -> dict:
    """QU-BraTS score and its three AUCs (see the module docstring); ``uncertainty`` in 0..100."""
    return _qubrats_score_of(qubrats_curves(uncertainty, prediction, truth, thresholds))


def _qubrats_score_of(c: dict) -> dict:
    x = np.asarray(c["thresholds"]) / 100.0
    a_dice, a_ftp, a_ftn = _auc(x, c["dice"]), _auc(x, c["ftp"]), _auc(x, c["ftn"])
    return {"score": (a_dice + (1.0 - a_ftp) + (1.0 - a_ftn)) / 3.0, "auc_dice": a_dice, "auc_ftp": a_ftp,
            "auc_ftn": a_ftn}


def _binary_entropy(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


#: Measures whose map is the same for every region.
REGION_FREE = ("entropy", "mutual_information", "zero", "deterministic_entropy")


def region_measures(probs, region: str, entropy=None, mutual_information=None, variance=None,
                    deterministic_entropy=None) -> dict[str, np.ndarray]:
    """Every available uncertainty measure of ``region`` scaled to [0, 1] (flat arrays over the same voxels)."""
    p = probs[list(REGIONS[region])].sum(axis=0, dtype=np.float64)
    return _in_measure_order({**_region_free_measures(probs, entropy, mutual_information, deterministic_entropy),
                              **_region_own_measures(probs, region, p, variance)})


def _region_free_measures(probs, entropy=None, mutual_information=None, deterministic_entropy=None) -> dict:
    """The measures whose map is the same for every region (``REGION_FREE``), scaled to [0, 1]."""
    log_c = np.log(probs.shape[0])
    out = {}
    if entropy is not None:
        out["entropy"] = np.asarray(entropy, np.float64) / log_c
    if mutual_information is not None:
        out["mutual_information"] = np.asarray(mutual_information, np.float64) / log_c
    out["zero"] = np.zeros(probs.shape[1:], np.float64)
    if deterministic_entropy is not None:
        out["deterministic_entropy"] = np.asarray(deterministic_entropy, np.float64) / log_c
    return {k: np.clip(v, 0.0, 1.0) for k, v in out.items()}


def _region_own_measures(probs, region: str, p, variance=None) -> dict:
    """The measures of one region's probability ``p`` (variance, binary entropy), scaled to [0, 1]."""
    n_cls = probs.shape[0]
    classes = list(REGIONS[region])
    out = {}
    if variance is not None:
        # WT = 1 - p_background: same variance as the background; otherwise the sum over the region's classes.
        rest = [c for c in range(n_cls) if c not in classes]
        parts = rest if len(rest) == 1 else classes
        out["variance"] = np.asarray(variance, np.float64)[parts].sum(axis=0) / 0.25
    out["region_entropy"] = _binary_entropy(p) / np.log(2.0)
    return {k: np.clip(v, 0.0, 1.0) for k, v in out.items()}


def _in_measure_order(measures: dict) -> dict:
    return {k: measures[k] for k in MEASURES if k in measures}


def region_uncertainty_quality(mean_probs, ref_classes, brain_mask, entropy=None, mutual_information=None,
                               variance=None, deterministic_entropy=None, n_bins: int = 15,
                               thresholds=QUBRATS_THRESHOLDS) -> dict:
    """The per-region uncertainty-quality report (JSON-serialisable; nan -> None).

    ``mean_probs`` (C, ...) MC mean softmax, ``ref_classes`` ground-truth classes, ``variance`` (C, ...) per-class
    MC variance; the other maps have the volume's shape.  Missing maps leave their measure out.
    """
    mean_probs = np.asarray(mean_probs)
    ref_classes = np.asarray(ref_classes)
    if mean_probs.shape[1:] != ref_classes.shape:
        raise ValueError(f"probabilities {mean_probs.shape} and reference {ref_classes.shape} do not match")
    idx = _subsample(np.flatnonzero(np.asarray(brain_mask, bool)))

    def flat(a, per_class=False):
        if a is None:
            return None
        a = np.asarray(a)
        if a.shape[per_class:] != ref_classes.shape:
            raise ValueError(f"map of shape {a.shape} does not match the reference {ref_classes.shape}")
        return a.reshape(a.shape[0], -1)[:, idx] if per_class else a.ravel()[idx]

    probs, ref = flat(mean_probs, True), ref_classes.ravel()[idx]
    maps = dict(entropy=flat(entropy), mutual_information=flat(mutual_information), variance=flat(variance, True),
                deterministic_entropy=flat(deterministic_entropy))
    argmax = probs.argmax(axis=0)
    tau = np.asarray(sorted(float(t) for t in thresholds))
    cache: dict = {}  # measures that do not depend on the region are grouped and thresholded once

    def prepared(name, region, u):
        key = name if name in REGION_FREE else (name, region)
        if key not in cache:
            cache[key] = (_Ranked(u), np.searchsorted(tau, u * 100.0, side="left"))
        return cache[key]

    free = _region_free_measures(probs, maps["entropy"], maps["mutual_information"], maps["deterministic_entropy"])

    regions = {}
    for region, classes in REGIONS.items():
        pred, true = np.isin(argmax, classes), np.isin(ref, classes)
        errors = pred != true
        cell = _confusion_cell(pred, true)  # shared by every measure of the region
        p = probs[list(classes)].sum(axis=0, dtype=np.float64)
        confidence = np.where(p >= 0.5, p, 1.0 - p)
        bins = confidence_bins(confidence, (p >= 0.5) == true, n_bins)
        measures = {}
        for name, u in _in_measure_order({**free, **_region_own_measures(probs, region, p, maps["variance"])}).items():
            ranked, first = prepared(name, region, u)
            q = _qubrats_score_of(_qubrats_curves_from_cells(first, tau, cell))
            roc, ap = ranked.auroc_ap(errors)
            measures[name] = {"auroc": _json_float(roc), "auprc": _json_float(ap),
                              "qubrats": {k: _json_float(v) for k, v in q.items()}}
        regions[region] = {
            # calibration_metrics.region_ece of the same forecast, from the bins of its reliability diagram
            "ece": _json_float(ece_of_bins(*bins)),
            "reliability": reliability_of_bins(*bins),
            "error_rate": _json_float(errors.mean()) if errors.size else None,
            "measures": measures,
        }
    return {"method": {"voxels": int(idx.size), "thresholds": [float(t) for t in sorted(thresholds)],
                       "measures": {k: MEASURES[k] for k in next(iter(regions.values()))["measures"]}},
            "regions": regions}


def table_columns(report: dict | None, measures=("entropy", "mutual_information", "variance", "region_entropy",
                                                 "zero", "deterministic_entropy")) -> dict:
    """Flat per-case columns for ``training.evaluate``: ece_R, auroc_M_R, auprc_M_R, qubrats_M_R (None if absent)."""
    cols = {}
    for region in REGIONS:
        r = (report or {}).get("regions", {}).get(region, {})
        cols[f"ece_{region}"] = r.get("ece")
        for m in measures:
            got = r.get("measures", {}).get(m, {})
            cols[f"auroc_{m}_{region}"] = got.get("auroc")
            cols[f"auprc_{m}_{region}"] = got.get("auprc")
            cols[f"qubrats_{m}_{region}"] = got.get("qubrats", {}).get("score")
    return cols
