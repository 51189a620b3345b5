"""Segmentation metrics: the one implementation used by analyze, training and evaluation.

Per class (NCR, ED, ET) and per region (WT, TC, ET): Dice, IoU, HD95,
sensitivity, specificity, precision, and volumes in cm3.  Distances are in mm,
from the voxel spacing.

HD95 definition used here ("pooled"): the 95th percentile of the union of both
directed surface-distance sets (every surface voxel of the prediction to the
reference surface, and every surface voxel of the reference to the prediction),
as MedPy's ``hd95`` does.  MONAI and the BraTS challenge's evaluation take the
maximum of the two directed 95th percentiles instead; ``hd95(...,
method='max_directed')`` gives that.  Pooled is never larger.

Empty-mask policy (``EMPTY_POLICY``): both masks empty -> Dice, IoU, precision
and sensitivity 1, HD95 0; exactly one empty -> Dice and IoU 0, HD95 = the image
diagonal in mm (373.13 mm for BraTS 240x240x155 at 1 mm); a ratio whose
denominator is 0 while the other mask is not empty is 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .labels import CLASS_NAMES, REGIONS, TUMOUR_CLASSES, region_mask

EMPTY_POLICY = {
    "both_empty": {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "precision": 1.0, "sensitivity": 1.0},
    "one_empty": {"dice": 0.0, "iou": 0.0, "hd95": "image diagonal (mm)"},
}
_FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


def confusion_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of two boolean masks."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(ref)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def overlap_metrics(pred, ref) -> dict[str, float]:
    """Dice, IoU, sensitivity, specificity and precision with the empty-mask policy."""
    tp, fp, fn, tn = confusion_counts(pred, ref)
    both_empty = tp + fp + fn == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "sensitivity": _ratio(tp, tp + fn, both_empty),
        "specificity": _ratio(tn, tn + fp, True),
        "precision": _ratio(tp, tp + fp, both_empty),
    }


def dice(pred, ref) -> float:
    return overlap_metrics(pred, ref)["dice"]


def iou(pred, ref) -> float:
    return overlap_metrics(pred, ref)["iou"]


def image_diagonal(shape, spacing) -> float:
    """Length of the image's diagonal in mm: the worst possible surface distance."""
    return float(np.linalg.norm(np.asarray(shape, float) * np.asarray(spacing, float)))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels: the mask minus its face-connected erosion (the image border counts as outside)."""
    eroded = ndimage.binary_erosion(mask, structure=_FACE_CONNECTIVITY, border_value=0)
    return mask & ~eroded


def surface_distances(pred, ref, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances (mm): pred surface -> ref surface, and ref surface -> pred surface.

    Both masks must be non-empty.  Work is confined to the masks' joint
    bounding box (plus a margin), which keeps full BraTS volumes fast.
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _joint_box(pred | ref)
    pred, ref = pred[box], ref[box]
    sp, sr = _surface(pred), _surface(ref)
    # Distance from every voxel to the nearest surface voxel of the other mask.
    to_ref = ndimage.distance_transform_edt(~sr, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return to_ref[sp], to_pred[sr]


def _joint_box(mask: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def hd95(pred, ref, spacing, method: str = "pooled") -> float:
    """95th-percentile Hausdorff distance in mm (see the module docstring for the definition)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    empty_p, empty_r = not pred.any(), not ref.any()
    if empty_p and empty_r:
        return 0.0
    if empty_p or empty_r:
        return image_diagonal(pred.shape, spacing)
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    if method == "pooled":
        return float(np.percentile(np.concatenate([d_pr, d_rp]), 95))
    if method == "max_directed":
        return float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))
    raise ValueError(f"unknown HD95 method {method!r}; expected 'pooled' or 'max_directed'")


def voxel_volume_cm3(spacing) -> float:
    return float(np.prod(np.asarray(spacing, float))) / 1000.0


def binary_metrics(pred, ref, spacing, include_hd95: bool = True) -> dict:
    """Every overlap and distance metric of one pair of masks, plus both volumes."""
    vox = voxel_volume_cm3(spacing)
    out = overlap_metrics(pred, ref)
    out["volume_pred_cm3"] = int(np.count_nonzero(pred)) * vox
    out["volume_ref_cm3"] = int(np.count_nonzero(ref)) * vox
    out["hd95"] = hd95(pred, ref, spacing) if include_hd95 else None
    return out


def segmentation_metrics(pred_classes, ref_classes, spacing, *, include_hd95: bool = True) -> dict:
    """{'classes': {NCR, ED, ET: metrics}, 'regions': {WT, TC, ET: metrics}} for internal class maps."""
    pred_classes, ref_classes = np.asarray(pred_classes), np.asarray(ref_classes)
    if pred_classes.shape != ref_classes.shape:
        raise ValueError(f"prediction {pred_classes.shape} and reference {ref_classes.shape} differ in shape")
    classes = {name: binary_metrics(pred_classes == CLASS_NAMES.index(name), ref_classes == CLASS_NAMES.index(name),
                                    spacing, include_hd95) for name in TUMOUR_CLASSES}
    regions = {name: binary_metrics(region_mask(pred_classes, name), region_mask(ref_classes, name), spacing,
                                    include_hd95) for name in REGIONS}
    return {"classes": classes, "regions": regions, "hd95_definition": "pooled 95th percentile of symmetric "
            "surface distances (mm)"}


def volumes_cm3(classes, spacing) -> dict:
    """Volumes of each tumour class and region in cm3."""
    classes = np.asarray(classes)
    vox = voxel_volume_cm3(spacing)
    return {
        "classes": {n: int(np.count_nonzero(classes == CLASS_NAMES.index(n))) * vox for n in TUMOUR_CLASSES},
        "regions": {n: int(np.count_nonzero(region_mask(classes, n))) * vox for n in REGIONS},
    }


def mc_accuracy(mean_probs, ref_classes, mask=None) -> float:
    """"Monte Carlo accuracy": voxel accuracy of the argmax of the MC mean probabilities (inside ``mask``)."""
    pred = np.asarray(mean_probs).argmax(axis=0)
    ref = np.asarray(ref_classes)
    if mask is None:
        return float(np.mean(pred == ref))
    mask = np.asarray(mask, bool)
    return float(np.mean(pred[mask] == ref[mask])) if mask.any() else float("nan")
