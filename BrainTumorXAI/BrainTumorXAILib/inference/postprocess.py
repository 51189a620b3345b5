"""Post-processing of the segmentation: predicted enhancing tumour that is not enhancement becomes core.

Two steps, in this order, each recorded in the summary; only the segmentation changes: the probability
and uncertainty maps stay the network's own, so a reader still sees where it saw enhancement.

**Enhancement check.**  The BraTS annotation protocol defines enhancing tumour as hyperintense on T1Gd
*compared with T1*.  The default network reads T1ce without T1, so white matter that is bright on a
strongly T1-weighted post-contrast scan can look enhancing to it.  When the case has a T1 image, every
connected predicted-ET component whose mean T1ce z-score is not above its mean T1 z-score (each sequence
z-scored inside the brain) becomes NCR.  The threshold is the definition's (0), not a tuned number.

**Small ET.**  A low-grade glioma often has no enhancing tumour at all; a network that calls a few bright
voxels (a vessel, the choroid plexus) "enhancing" then turns a perfect "no ET" into ET Dice 0,
and tells the reader the tumour enhances.  nnU-Net's BraTS pipeline (Isensee et al., BrainLes
2020) relabels the whole predicted ET as necrotic / non-enhancing core when its volume is below
a threshold chosen by cross-validation among 0-750 voxels (1 mm).  We use a fixed 0.5 mL, set
from that range before any measurement on our test cases, in mL so that it means the same on
every grid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.labels import class_index

#: Predicted enhancing tumour smaller than this (mL) is relabelled NCR (0: never).
MIN_ET_ML = 0.5
#: Whether predicted ET must be brighter on T1ce than on T1 (where the case has T1) by default.
ENHANCEMENT_CHECK = True


def _component_zscores(image: np.ndarray, brain: np.ndarray, components: np.ndarray, n: int) -> np.ndarray:
    """Mean z-score (image z-scored inside the brain) of each labelled component: the image's own statistics
    applied to the component means, so no z-scored copy of the volume is made."""
    values = image[brain].astype(np.float64)
    means = np.asarray(ndimage.mean(image, components, index=np.arange(1, n + 1)), np.float64)
    return (means - values.mean()) / (values.std() or 1.0)


def unenhanced_et_to_core(classes: np.ndarray, t1ce: np.ndarray, t1: np.ndarray | None, brain: np.ndarray,
                          spacing) -> dict:
    """Relabel as NCR, in place, each 26-connected ET component not brighter on T1ce than on T1; what was done.

    ``t1`` None (the case has no T1): nothing is done, and the record says why.
    """
    et, ncr = class_index("ET"), class_index("NCR")
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    record = {"rule": "a predicted ET component not brighter on T1ce than on T1 (mean z-scores in the brain) "
                      "becomes NCR (the BraTS definition of enhancement)",
              "applied": False, "components": 0, "relabelled_components": 0, "et_ml_relabelled": 0.0}
    if t1 is None:
        return dict(record, skipped="no T1 image")
    components, n = ndimage.label(classes == et, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return record
    means = _component_zscores(t1ce, brain, components, n) - _component_zscores(t1, brain, components, n)
    unenhanced = np.flatnonzero(means <= 0.0) + 1
    relabel = np.isin(components, unenhanced)
    classes[relabel] = ncr
    return dict(record, applied=bool(unenhanced.size), components=int(n), relabelled_components=int(unenhanced.size),
                et_ml_relabelled=round(float(relabel.sum()) * voxel_ml, 4),
                component_contrast=[round(float(m), 3) for m in means])


def small_et_to_core(classes: np.ndarray, spacing, min_ml: float = MIN_ET_ML) -> dict:
    """Relabel all ET as NCR, in place, when the predicted ET volume is below ``min_ml``; what was done."""
    et, ncr = class_index("ET"), class_index("NCR")
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    mask = classes == et
    volume = float(mask.sum()) * voxel_ml
    applied = bool(min_ml > 0 and 0 < volume < min_ml)
    if applied:
        classes[mask] = ncr
    return {"rule": "predicted ET below min_et_ml becomes NCR (nnU-Net BraTS post-processing)",
            "min_et_ml": float(min_ml), "et_ml_predicted": round(volume, 4), "applied": applied}
