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


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (face connectivity), by labelling the background once: a
    background voxel stays background iff its component touches the array border.  Same result, faster
    than scipy's propagation."""
    mask = np.asarray(mask, bool)
    background, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    open_to_border = np.zeros(n + 1, bool)
    for axis in range(mask.ndim):
        for end in (0, -1):
            open_to_border[np.take(background, end, axis=axis)] = True
    open_to_border[0] = True  # label 0: the mask itself
    return ~open_to_border[background] | mask
