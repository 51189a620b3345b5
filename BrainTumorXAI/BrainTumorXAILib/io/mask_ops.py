"""Small operations on binary masks shared by preprocessing and the synthetic-case generator."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (face connectivity) of a boolean mask; the mask itself if it has <= 1."""
    labelled, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == sizes.argmax()
