"""The four MR contrasts of a synthetic case: tissue intensities, tumour texture, blur, bias field, Rician noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.labels import SEQUENCES
from .anatomy import _Anatomy
from .phantom_tumour import _smooth_noise

# Relative intensity of each tissue per sequence (times a per-case gain).
# Chosen so that each tumour class differs from its look-alikes in some other
# channel: NCR ~ CSF except on FLAIR, ED ~ GM on T1/T1ce, ET unique on T1ce.
_CONTRASTS: dict[str, dict[str, float]] = {
    "t1": {"gm": 0.72, "wm": 1.00, "csf": 0.28, "ncr": 0.40, "ed": 0.68, "et": 0.76},
    "t1ce": {"gm": 0.74, "wm": 1.00, "csf": 0.30, "ncr": 0.36, "ed": 0.70, "et": 1.65},
    "t2": {"gm": 0.75, "wm": 0.55, "csf": 1.60, "ncr": 1.35, "ed": 1.15, "et": 0.95},
    "flair": {"gm": 0.75, "wm": 0.60, "csf": 0.18, "ncr": 0.85, "ed": 1.45, "et": 1.15},
}
# Texture strength (relative std) of each tumour class: necrosis is the most heterogeneous.
_TEXTURE = {"ncr": 0.10, "et": 0.12, "ed": 0.05}


# --------------------------------------------------------------------------- contrasts


def _bias_field(rng: np.random.Generator, shape: tuple[int, ...], strength: float) -> np.ndarray:
    """Smooth multiplicative field: exp of a random quadratic polynomial, about +-strength."""
    x, y, z = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape)
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]
    c = rng.normal(0.0, strength / 2.0, 9).astype(np.float32)
    log_bias = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z
    log_bias = log_bias + c[6] * x * y + c[7] * x * z + c[8] * y * z
    return np.exp(np.clip(log_bias, -2 * strength, 2 * strength))


def _render(rng: np.random.Generator, anatomy: _Anatomy, classes: np.ndarray, box: tuple[slice, ...],
            spacing: float) -> dict[str, np.ndarray]:  # fmt: skip
    """The four int16 sequences on the crop."""
    shape = anatomy.gm.shape
    total = np.maximum(anatomy.gm + anatomy.wm + anatomy.csf, 1e-6)
    fractions = {"gm": anatomy.gm / total, "wm": anatomy.wm / total, "csf": anatomy.csf / total}
    box_shape = classes.shape
    texture = {k: _smooth_noise(rng, box_shape, spacing, 6.0) * s for k, s in _TEXTURE.items()}
    # Edema is most intense next to the core and fades toward its border.
    core_dist = ndimage.distance_transform_edt((classes != 1) & (classes != 3), sampling=spacing)
    edema_strength = 0.65 + 0.35 * np.exp(-core_dist / 12.0)
    noise_frac = rng.uniform(0.015, 0.035)
    blur = rng.uniform(0.4, 0.8) / spacing  # point-spread sigma in mm -> voxels
    bias_strength = rng.uniform(0.05, 0.15)

    images = {}
    for seq in SEQUENCES:
        values = {k: v * rng.uniform(0.93, 1.07) for k, v in _CONTRASTS[seq].items()}
        gain = rng.uniform(450.0, 800.0)
        image = sum(fractions[t] * values[t] for t in ("gm", "wm", "csf"))
        image[~anatomy.brain] = 0.0
        sub = image[box]
        tumour_value = {k: values[k] * (1.0 + texture[k]) for k in _TEXTURE}
        ed = classes == 2
        sub[ed] += edema_strength[ed] * (tumour_value["ed"][ed] - sub[ed])
        sub[classes == 1] = tumour_value["ncr"][classes == 1]
        sub[classes == 3] = tumour_value["et"][classes == 3]
        image = ndimage.gaussian_filter(image * gain, blur) * _bias_field(rng, shape, bias_strength)
        sigma = noise_frac * gain * values["wm"]
        real = image + sigma * rng.standard_normal(shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(shape, dtype=np.float32)
        image = np.sqrt(real * real + imag * imag)  # Rician magnitude
        image[~anatomy.brain] = 0.0  # skull-stripped: background exactly 0
        images[seq] = np.clip(np.rint(image), 0, np.iinfo(np.int16).max).astype(np.int16)
    return images
