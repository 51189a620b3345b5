"""Segmentation metrics: the one implementation used by analyze, training and evaluation.

Per class (NCR, ED, ET) and per region (WT, TC, ET): Dice, IoU, HD95,
sensitivity, specificity, precision, and volumes in cm3.  Distances are in mm,
from the voxel spacing; every function takes boolean masks (or internal class
maps for the per-class/per-region helpers) as numpy arrays.

Overlap metrics all come from one confusion count (``confusion_counts``):
Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), sensitivity = TP/(TP+FN),
specificity = TN/(TN+FP), precision = TP/(TP+FP).

Surfaces: a mask's surface is the mask minus its erosion by the 3D
face-connectivity (6-neighbour) structure, with everything outside the image
counted as background, so a mask touching the image border has a surface there.

Surface distances: for every surface voxel of one mask, the Euclidean distance
in mm (voxel centres scaled by the spacing) to the nearest surface voxel of the
other mask, in both directions.  These are exactly the values a Euclidean
distance transform with ``sampling=spacing`` gives at those voxels (the tests
check that); a k-d tree over the surface voxels computes them in time that
depends on the surface size only, not on how far apart stray islands lie
(a distance transform over the joint bounding box of scattered masks costs
seconds per structure on a 240x240x155 image).

HD95 (``hd95(..., method='pooled')``, the default): the 95th percentile
(numpy's linear interpolation) of the union of both directed surface-distance
sets (the symmetric surface distances), in mm, as MedPy's ``hd95`` and the
BraTS-toolkit compute it.  MONAI and the BraTS challenge's official
evaluation take the larger of the two directed 95th percentiles instead;
``method='max_directed'`` gives that.  The two agree for symmetric situations
and pooled is never larger than max_directed.

Empty-mask policy (``EMPTY_POLICY``):
- both masks empty: Dice, IoU, precision, sensitivity 1; HD95 0 mm.
- exactly one empty: Dice, IoU 0; HD95 = the image diagonal in mm
  (``image_diagonal``: 373.13 mm for BraTS 240x240x155 at 1 mm), the largest
  distance two voxels of the image can have; precision and sensitivity are 0
  (a ratio whose denominator is 0 while the other mask is not empty is 0).
- specificity with no reference negatives at all (the reference fills the
  image) is 1: there is nothing to call falsely positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..io.labels import CLASS_NAMES, REGIONS, TUMOUR_CLASSES, region_mask

HD95_METHODS: tuple[str, ...] = ("pooled", "max_directed")
HD95_DEFINITIONS: dict[str, str] = {
    "pooled": "95th percentile of the pooled symmetric surface distances (mm)",
    "max_directed": "max of the two directed 95th-percentile surface distances (mm)",
}
#: Values the metrics take when a mask is empty ("image_diagonal": see ``image_diagonal``).
EMPTY_POLICY: dict[str, dict[str, float | str]] = {
    "both_empty": {"dice": 1.0, "iou": 1.0, "precision": 1.0, "sensitivity": 1.0, "hd95": 0.0},
    "one_empty": {"dice": 0.0, "iou": 0.0, "precision": 0.0, "sensitivity": 0.0, "hd95": "image_diagonal"},
}
OVERLAP_METRICS: tuple[str, ...] = ("dice", "iou", "sensitivity", "specificity", "precision")


# ---------------------------------------------------------------- input checks
def _mask_pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    return pred, ref


def _spacing(spacing, ndim: int) -> np.ndarray:
    sp = np.asarray(spacing, np.float64).ravel()
    if sp.size != ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be {ndim} positive numbers (mm), got {spacing!r}")
    return sp


# ---------------------------------------------------------------- overlap
def confusion_counts(pred, ref) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) voxel counts of two boolean masks of equal shape."""
    pred, ref = _mask_pair(pred, ref)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(ref)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def _ratio(num: int, den: int, if_undefined: float) -> float:
    return float(num / den) if den else if_undefined


def overlap_metrics(pred, ref) -> dict[str, float]:
    """Dice, IoU, sensitivity, specificity and precision, with the empty-mask policy."""
    tp, fp, fn, tn = confusion_counts(pred, ref)
    # A 0/0 ratio is perfect only when both masks are empty (nothing to find, nothing found).
    undefined = 1.0 if tp + fp + fn == 0 else 0.0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, undefined),
        "iou": _ratio(tp, tp + fp + fn, undefined),
        "sensitivity": _ratio(tp, tp + fn, undefined),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "precision": _ratio(tp, tp + fp, undefined),
    }


def dice(pred, ref) -> float:
    """Dice coefficient 2TP/(2TP+FP+FN); 1 when both masks are empty."""
    return overlap_metrics(pred, ref)["dice"]


def iou(pred, ref) -> float:
    """Intersection over union (Jaccard) TP/(TP+FP+FN); 1 when both masks are empty."""
    return overlap_metrics(pred, ref)["iou"]


def sensitivity(pred, ref) -> float:
    """Recall TP/(TP+FN); 1 when both masks are empty, 0 when only the reference is."""
    return overlap_metrics(pred, ref)["sensitivity"]


def specificity(pred, ref) -> float:
    """TN/(TN+FP); 1 when the reference has no negatives."""
    return overlap_metrics(pred, ref)["specificity"]


def precision(pred, ref) -> float:
    """Positive predictive value TP/(TP+FP); 1 when both masks are empty, 0 when only the prediction is."""
    return overlap_metrics(pred, ref)["precision"]


# ---------------------------------------------------------------- distances
def image_diagonal(shape: Sequence[int], spacing) -> float:
    """Length of the image diagonal in mm: the HD95 given when exactly one mask is empty."""
    return float(np.linalg.norm(np.asarray(shape, np.float64) * _spacing(spacing, len(shape))))


def surface_voxels(mask) -> np.ndarray:
    """Boundary voxels: the mask minus its face-connected erosion (outside the image counts as background)."""
    mask = np.asarray(mask, bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(pred, ref, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface -> ref surface, ref surface -> pred surface).

    Both masks must be non-empty.  Work is confined to the joint bounding box
    (the erosion needs only a 1-voxel margin), then a k-d tree answers the
    nearest-surface queries exactly.
    """
    pred, ref = _mask_pair(pred, ref)
    sp = _spacing(spacing, pred.ndim)
    if not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _joint_box(pred | ref)
    pts_pred = np.argwhere(surface_voxels(pred[box])) * sp
    pts_ref = np.argwhere(surface_voxels(ref[box])) * sp
    return _nearest_distances(pts_pred, pts_ref), _nearest_distances(pts_ref, pts_pred)


def _nearest_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    # An unbalanced, non-compact tree builds and queries faster here and is just as exact.
    tree = cKDTree(targets, balanced_tree=False, compact_nodes=False)
    return tree.query(points, workers=-1)[0]  # exact either way; the queries split over the cores


def _joint_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    # The margin keeps the crop edge outside the masks, so cropping cannot create surface voxels.
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def hd95(pred, ref, spacing, method: str = "pooled") -> float:
    """95th-percentile Hausdorff distance in mm ('pooled' or 'max_directed'; see the module docstring)."""
    if method not in HD95_METHODS:
        raise ValueError(f"unknown HD95 method {method!r}; expected one of {', '.join(HD95_METHODS)}")
    pred, ref = _mask_pair(pred, ref)
    _spacing(spacing, pred.ndim)  # refuse a bad spacing even when no distance is needed
    empty_pred, empty_ref = not pred.any(), not ref.any()
    if empty_pred and empty_ref:
        return float(EMPTY_POLICY["both_empty"]["hd95"])
    if empty_pred or empty_ref:
        return image_diagonal(pred.shape, spacing)
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    if method == "pooled":
        return float(np.percentile(np.concatenate([d_pr, d_rp]), 95))
    return float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))


# ---------------------------------------------------------------- per class / region
def voxel_volume_cm3(spacing) -> float:
    """Volume of one voxel in cm3 (spacing in mm)."""
    return float(np.prod(_spacing(spacing, np.size(spacing)))) / 1000.0


def binary_metrics(pred, ref, spacing, include_hd95: bool = True, hd95_method: str = "pooled") -> dict:
    """Every overlap and distance metric of one pair of masks, plus both volumes (hd95 None when skipped)."""
    pred, ref = _mask_pair(pred, ref)
    vox = voxel_volume_cm3(spacing)
    out: dict = overlap_metrics(pred, ref)
    out["hd95"] = hd95(pred, ref, spacing, hd95_method) if include_hd95 else None
    out["volume_pred_cm3"] = int(np.count_nonzero(pred)) * vox
    out["volume_ref_cm3"] = int(np.count_nonzero(ref)) * vox
    return out


def _structure_masks(classes: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Boolean masks of every tumour class and region of an internal class map."""
    return {
        "classes": {name: classes == CLASS_NAMES.index(name) for name in TUMOUR_CLASSES},
        "regions": {name: region_mask(classes, name) for name in REGIONS},
    }


def segmentation_metrics(pred_classes, ref_classes, spacing, *, include_hd95: bool = True,
                         hd95_method: str = "pooled") -> dict:
    """Metrics of two internal class maps (0 bg, 1 NCR, 2 ED, 3 ET).

    Returns ``{'classes': {'NCR'|'ED'|'ET': m}, 'regions': {'WT'|'TC'|'ET': m},
    'hd95_definition': str}`` where each ``m`` holds dice, iou, hd95 (mm, None
    when skipped), sensitivity, specificity, precision, volume_pred_cm3 and
    volume_ref_cm3 as plain floats (JSON-serialisable, no NaN).
    """
    pred_classes, ref_classes = np.asarray(pred_classes), np.asarray(ref_classes)
    if pred_classes.shape != ref_classes.shape:
        raise ValueError(f"prediction {pred_classes.shape} and reference {ref_classes.shape} differ in shape")
    pred_masks, ref_masks = _structure_masks(pred_classes), _structure_masks(ref_classes)
    # A region of one class (ET) is that class's structure: computed once (its HD95 is the costly part).
    done: dict = {}
    out: dict = {}
    for group in ("classes", "regions"):
        out[group] = {}
        for name in pred_masks[group]:
            key = (CLASS_NAMES.index(name),) if group == "classes" else tuple(sorted(REGIONS[name]))
            if key not in done:
                done[key] = binary_metrics(pred_masks[group][name], ref_masks[group][name], spacing, include_hd95,
                                           hd95_method)
            out[group][name] = dict(done[key])
    out["hd95_definition"] = HD95_DEFINITIONS[hd95_method]
    return out


def volumes_cm3(classes, spacing) -> dict:
    """{'classes': {NCR, ED, ET: cm3}, 'regions': {WT, TC, ET: cm3}} of an internal class map."""
    vox = voxel_volume_cm3(spacing)
    masks = _structure_masks(np.asarray(classes))
    return {group: {name: int(np.count_nonzero(m)) * vox for name, m in per.items()} for group, per in masks.items()}


def batch_region_dice(pred_classes, ref_classes, regions: Sequence[str] = tuple(REGIONS)) -> dict[str, list[float]]:
    """Dice per item of a batch of class maps (B, X, Y, Z), numpy arrays: {region: [dice of item 0, ...]}."""
    pred_classes, ref_classes = np.asarray(pred_classes), np.asarray(ref_classes)
    if pred_classes.shape != ref_classes.shape or pred_classes.ndim < 2:
        raise ValueError(f"expected two batches of equal shape (B, ...), got {pred_classes.shape} and "
                         f"{ref_classes.shape}")
    return {r: [dice(region_mask(p, r), region_mask(t, r)) for p, t in zip(pred_classes, ref_classes)]
            for r in regions}


def class_argmax(probs) -> np.ndarray:
    """``probs.argmax(axis=0)`` as uint8 (first maximum on ties, as numpy), by one comparison per class:
    numpy's argmax over the leading axis of a (C, X, Y, Z) volume is a strided scan, much slower."""
    probs = np.asarray(probs)
    if probs.shape[0] > 255:
        return probs.argmax(axis=0)
    out = np.zeros(probs.shape[1:], np.uint8)
    best = probs[0].copy()
    for c in range(1, probs.shape[0]):
        better = probs[c] > best  # strict: a tie keeps the earlier class
        out[better] = c
        np.maximum(best, probs[c], out=best)
    return out


def mc_accuracy(mean_probs, ref_classes, mask=None) -> float:
    """"Monte Carlo accuracy": voxel accuracy of the argmax of the MC mean probabilities (C, ...).

    Counted inside ``mask`` (e.g. the brain) when given; nan for an empty mask.
    """
    pred = class_argmax(mean_probs)
    ref = np.asarray(ref_classes)
    if pred.shape != ref.shape:
        raise ValueError(f"probabilities {pred.shape} and reference {ref.shape} differ in spatial shape")
    if mask is None:
        return float(np.mean(pred == ref))
    mask = np.asarray(mask, bool)
    return float(np.mean(pred[mask] == ref[mask])) if mask.any() else float("nan")
