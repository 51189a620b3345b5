"""Uncertainty-guided review: where to look first.

High-uncertainty voxels (predictive entropy >= ``threshold`` nats; default half the maximum, 0.5 ln C, inside
the brain) are grouped into 26-connected regions.  Regions smaller than ``min_volume_ml`` are dropped, the rest
ranked by volume (mL) x mean entropy, and the first ``max_regions`` reported with:
centroid and peak (most uncertain voxel; the first in raster order when several tie) in RAS millimetres through the case affine (NIfTI world = RAS),
their voxel indices, volume in mL, mean and peak entropy, the mean probability of each class in the region and
the class boundary it sits on: the two classes of highest mean probability there, e.g. ``"ED|background"``.
The component label map (1 = first-ranked region) can be written for viewers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.grid import mask_box
from ..io.labels import CLASS_NAMES

MAX_REGIONS = 10
MIN_VOLUME_ML = 0.05


def review_regions(uncertainty, probabilities, affine, brain=None, threshold: float | None = None,
                   min_volume_ml: float = MIN_VOLUME_ML, max_regions: int = MAX_REGIONS,
                   return_labels: bool = False):
    """Ranked high-uncertainty regions (list of dicts; with ``return_labels`` also the ranked label map)."""
    full = np.asarray(uncertainty)
    probs = np.asarray(probabilities)
    affine = np.asarray(affine, np.float64)
    if threshold is None:
        threshold = 0.5 * np.log(probs.shape[0])
    high = full >= np.float64(threshold)  # compared in float64 whatever the map's dtype
    if brain is not None:
        high &= np.asarray(brain, bool)
    ranked = np.zeros(full.shape, np.int32)
    crop = mask_box(high)
    if crop is None:
        return ([], ranked) if return_labels else []
    # Everything below runs inside the box of the high voxels (a fraction of a 240x240x155 volume):
    # labels, sums and raster order are those of the whole volume, indices are shifted back by ``origin``.
    origin = np.array([s.start for s in crop])
    u = np.asarray(full[crop], np.float64)
    labels, n = ndimage.label(high[crop], structure=np.ones((3, 3, 3), bool))
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    index = np.arange(1, n + 1)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    sums = np.bincount(labels.ravel(), weights=u.ravel(), minlength=n + 1)[1:]
    volume = counts * voxel_ml
    mean = sums / np.maximum(counts, 1)
    keep = volume >= min_volume_ml
    score = volume * mean
    order = [i for i in np.argsort(-score, kind="stable") if keep[i]][:max_regions]
    # Each reported region is handled inside its bounding box (find_objects: one pass), not the whole volume.
    boxes = ndimage.find_objects(labels, max_label=n) if order else []
    regions = []
    for rank, i in enumerate(order, start=1):
        box = boxes[i]
        mask = labels[box] == index[i]
        corner = np.array([s.start for s in box])
        coords = np.argwhere(mask)  # raster order, as the whole volume's
        centroid = coords.mean(axis=0) + corner + origin
        local_u = u[box][mask]
        peak = tuple(int(v) for v in coords[int(np.argmax(local_u))] + corner + origin)  # first maximum in raster order
        ranked[crop][box][mask] = rank
        mean_p = probs[(slice(None), *(slice(s.start + o, s.stop + o) for s, o in zip(box, origin)))][:, mask].mean(axis=1)
        top = np.argsort(-mean_p, kind="stable")[:2]
        regions.append({
            "rank": rank,
            "voxels": int(counts[i]),
            "volume_ml": float(volume[i]),
            "mean_entropy": float(mean[i]),
            "peak_entropy": float(np.float64(full[peak])),
            "score": float(score[i]),
            "centroid_ijk": [float(c) for c in centroid],
            "centroid_ras": _ras(affine, centroid),
            "peak_ijk": [int(p) for p in peak],
            "peak_ras": _ras(affine, peak),
            "mean_probability": {CLASS_NAMES[c]: float(mean_p[c]) for c in range(len(mean_p))},
            "boundary": "|".join(CLASS_NAMES[c] for c in top),
        })
    return (regions, ranked) if return_labels else regions


_PLAIN = {"background": "normal tissue", "NCR": "necrotic core", "ED": "edema", "ET": "enhancing tumour"}


def boundary_words(boundary: str) -> str:
    """``"ED|background"`` -> ``"edema or normal tissue?"``: the two classes the model hesitates between."""
    return " or ".join(_PLAIN.get(c, c) for c in boundary.split("|") if c) + "?"


def _ras(affine: np.ndarray, ijk) -> list[float]:
    return [float(v) for v in (affine @ np.r_[np.asarray(ijk, np.float64), 1.0])[:3]]


def review_summary(regions: list[dict], threshold: float) -> dict:
    """The ``review`` block of summary.json."""
    return {"threshold_entropy_nats": float(threshold), "min_volume_ml": MIN_VOLUME_ML,
            "ranking": "volume_ml x mean_entropy", "regions": regions}
