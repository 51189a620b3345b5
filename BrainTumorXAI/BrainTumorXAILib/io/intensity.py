"""The brain mask and the per-channel intensity normalisation of the network input."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

from .mask_ops import fill_holes, largest_component

NORMALISATIONS = ("zscore", "minmax")

# With fewer exactly-zero voxels than this the background is not clean (not skull-stripped, or noisy).
_MIN_ZERO_FRACTION = 0.005


def _as_channels(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        return images[None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (C, X, Y, Z) or (X, Y, Z), got {images.shape}")
    return images


def _thresholded_brain(images: np.ndarray) -> np.ndarray:
    """Fallback for a noisy background: Otsu on the mean robust-scaled intensity, largest blob, holes filled."""
    # The mean of |channel| / its 99th percentile, accumulated in place: the same float32 sums in the same
    # order as np.mean over the stacked channels, without the stack or a second |channel| per channel.
    signal = None
    for channel in images:
        scaled = np.abs(channel)
        scale = max(float(np.percentile(scaled, 99, overwrite_input=True)), 1e-12)  # reorders ``scaled``
        np.divide(np.abs(channel, out=scaled), scale, out=scaled)
        if signal is None:
            signal = scaled
        else:
            signal += scaled
    signal /= len(images)
    mask = signal > threshold_otsu(signal)
    return fill_holes(largest_component(mask))


def brain_mask(images) -> np.ndarray:
    """Boolean brain mask (X, Y, Z) of images (C, X, Y, Z) or (X, Y, Z).

    BraTS images are skull-stripped with a background of exactly 0, so the brain
    is every voxel where any channel is non-zero.  When almost nothing is exactly
    zero the background is noise, and a threshold plus the largest connected
    component is used instead.
    """
    images = _as_channels(images)
    mask = np.any(images != 0, axis=0)
    if mask.size and (mask.size - np.count_nonzero(mask)) / mask.size < _MIN_ZERO_FRACTION:
        return _thresholded_brain(images.astype(np.float32, copy=False))
    return mask


def normalise(images, mask, method: str = "zscore") -> np.ndarray:
    """Per-channel intensity normalisation inside ``mask``; 0 outside (float32).

    'zscore': zero mean, unit standard deviation inside the mask (default);
    'minmax': [0, 1] inside the mask (the original paper's choice).
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; expected one of {', '.join(NORMALISATIONS)}")
    images = _as_channels(images)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != images.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} does not match images {images.shape[1:]}")
    if not mask.any():
        raise ValueError("the brain mask is empty: nothing to normalise")
    out = np.zeros(images.shape, dtype=np.float32)
    for c, channel in enumerate(images):
        values = channel[mask].astype(np.float64)
        if method == "zscore":
            shift, scale = values.mean(), values.std()
        else:
            shift, scale = values.min(), values.max() - values.min()
        if not scale > 1e-12 * max(1.0, abs(shift)):
            raise ValueError(f"channel {c} is constant inside the brain mask ({values[0]:g}); cannot normalise")
        out[c][mask] = ((values - shift) / scale).astype(np.float32)
    return out
