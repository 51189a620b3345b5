"""Per-label intensities of every sequence, drawn afresh for every sample, and the image artefacts.

What stays fixed is only what carries the diagnosis, as radiologists read it:
- FLAIR and T2: oedema brighter than healthy grey and white matter; FLAIR suppresses CSF;
- T1ce: enhancing tumour brighter than healthy tissue and than itself on T1 (enhancement);
- T1ce/T1: necrosis darker than healthy grey and white matter; on FLAIR it is either bright (proteinaceous)
  or, in a share of samples, fluid (cystic): suppressed towards CSF, as in many real glioblastomas.
Everything else (the order and spacing of GM/WM/CSF intensities, tumour texture,
blur, slice thickness, bias field, noise, gamma) is randomised, as in SynthSeg.
The z-units measured on the expert-labelled BRATS 2013 training cases
(FLAIR oedema +1.4 to +1.9 SD above the brain mean, T1c enhancing +1.4 to +3.3 SD)
fall inside the ranges drawn here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .atlas import load_atlas
from .fields import smooth_noise

SEQUENCES = ("t1", "t1ce", "t2", "flair")
LABELS = ("csf", "gm", "wm", "ncr", "ed", "et")

#: Typical relative means (white matter = 1) of BraTS-preprocessed scans.
REFERENCE: dict[str, dict[str, float]] = {
    "t1": {"csf": 0.35, "gm": 0.75, "wm": 1.00, "ncr": 0.45, "ed": 0.72, "et": 0.80},
    "t1ce": {"csf": 0.35, "gm": 0.75, "wm": 1.00, "ncr": 0.45, "ed": 0.72, "et": 1.70},
    "t2": {"csf": 2.20, "gm": 1.35, "wm": 0.80, "ncr": 1.90, "ed": 1.70, "et": 1.40},
    "flair": {"csf": 0.35, "gm": 1.15, "wm": 0.90, "ncr": 1.40, "ed": 1.75, "et": 1.50},
}


def draw_means(rng: np.random.Generator, random_share: float = 0.35,
               cystic_share: float = 0.0) -> dict[str, dict[str, float]]:
    """Mean of each label on each sequence; with ``random_share`` probability a sequence's healthy
    tissues are drawn at random (any order), otherwise near the reference; with ``cystic_share``
    probability the necrosis is fluid (dark on FLAIR between CSF and healthy tissue, bright on T2)."""
    # Drawn only when asked for, so that the draws of a generator without it stay as they were.
    cystic = cystic_share > 0 and rng.random() < cystic_share
    means: dict[str, dict[str, float]] = {}
    for seq in SEQUENCES:
        if rng.random() < random_share:
            m = {k: float(rng.uniform(0.15, 1.6)) for k in ("csf", "gm", "wm")}
        else:
            m = {k: REFERENCE[seq][k] * float(rng.lognormal(0.0, 0.12)) for k in ("csf", "gm", "wm")}
        healthy_hi, healthy_lo = max(m["gm"], m["wm"]), min(m["gm"], m["wm"])
        if seq == "flair":
            m["csf"] = min(m["csf"], healthy_lo * float(rng.uniform(0.2, 0.8)))
        if seq in ("flair", "t2"):
            m["ed"] = healthy_hi * float(rng.uniform(1.25, 1.9))
            if seq == "t2":  # oedema is water: on T2 it approaches CSF, the brightest healthy tissue
                m["ed"] = max(m["ed"], m["csf"] * float(rng.uniform(0.6, 0.9)))
            m["ncr"] = m["ed"] * float(rng.uniform(0.6, 1.3) if seq == "flair" else rng.uniform(0.9, 1.4))
            m["et"] = m["ed"] * float(rng.uniform(0.65, 1.05))
            if cystic and seq == "flair":  # fluid that FLAIR suppresses: a real GBM's necrotic cavity
                m["ncr"] = m["csf"] + float(rng.uniform(0.05, 0.9)) * (healthy_lo - m["csf"])
            elif cystic:  # T2: fluid, as bright as CSF or oedema
                m["ncr"] = max(m["ed"], m["csf"]) * float(rng.uniform(0.9, 1.15))
        else:
            m["ed"] = (m["gm"] + m["wm"]) / 2 * float(rng.uniform(0.75, 1.05))
            m["ncr"] = healthy_lo * float(rng.uniform(0.3, 0.85))
        means[seq] = m
    t1_et = means["t1"]["gm"] * float(rng.uniform(0.8, 1.1))
    means["t1"]["et"] = t1_et
    enhanced = max(means["t1ce"][k] for k in ("csf", "gm", "wm")) * float(rng.uniform(1.3, 2.4))
    means["t1ce"]["et"] = enhanced
    return means


def render(rng: np.random.Generator, tissue: np.ndarray, brain: np.ndarray, classes: np.ndarray,
           edema_weight: np.ndarray, means: dict, spacing: float, tumour_share: float,
           mimics: np.ndarray | None = None, resolution: bool = True) -> np.ndarray:
    """(4, X, Y, Z) float32 z-scored images: 0 outside the brain, as ``preprocess`` leaves them.

    ``tissue`` (3, ...) CSF/GM/WM probabilities outside the tumour core; ``brain`` bool;
    ``tumour_share``: the tumour's share of the whole brain, for the whole-brain statistics;
    ``mimics``: where healthy tissue enhances (drawn at random when None); ``resolution``: random blur and
    thick slices (off: every image at the grid's own resolution, for the ablation).
    """
    shape = brain.shape
    cells = max(2.0, shape[0] * spacing / 12.0)
    total = np.maximum(tissue.sum(0), 1e-6)
    hard = np.argmax(tissue, axis=0)
    core = (classes == 1) | (classes == 3)
    out = np.zeros((len(SEQUENCES), *shape), np.float32)
    noises = smooth_noise(rng, shape, cells, channels=4 * len(SEQUENCES)).reshape(len(SEQUENCES), 4, *shape)
    biases = smooth_noise(rng, shape, 2.5, channels=len(SEQUENCES))
    shares = tissue / total
    fractions = load_atlas(spacing).fractions
    if mimics is None:
        mimics = _enhancing_mimics(rng, shares, brain & (classes == 0), cells)
    for c, seq in enumerate(SEQUENCES):
        m = means[seq]
        image = np.zeros(shape, np.float32)
        for k, name in enumerate(("csf", "gm", "wm")):
            within = float(rng.uniform(0.02, 0.12))
            image += shares[k] * (m[name] * (1.0 + within * noises[c, k]))
        texture = float(rng.uniform(0.04, 0.25))
        tumour_noise = noises[c, 3]
        ed = classes == 2
        alpha = np.clip(edema_weight * rng.uniform(0.5, 1.0) + rng.uniform(0.35, 0.6), 0.0, 1.0)
        image[ed] = (1 - alpha[ed]) * image[ed] + alpha[ed] * m["ed"] * (1.0 + texture * tumour_noise[ed])
        for label, name in ((1, "ncr"), (3, "et")):
            sel = classes == label
            image[sel] = m[name] * (1.0 + texture * tumour_noise[sel])
        image[core & (image <= 0)] = 0.01
        if mimics.any():
            image[mimics] = _MIMIC[seq](m) * float(rng.uniform(0.85, 1.15))
        image = _artefacts(rng, image, biases[c], resolution)
        image[~brain] = 0.0
        out[c] = _zscore(image, brain, hard, classes, tumour_share, fractions)
    return out


#: Healthy structures that enhance (vessels, choroid plexus): bright on T1ce like enhancing tumour,
#: but not oedematous around, dark on T2 (flow voids).  Real T1ce scans are full of them; a network
#: that has never seen them calls every vessel enhancing tumour.
_MIMIC = {
    "t1ce": lambda m: max(m["csf"], m["gm"], m["wm"]) * 1.7,
    "t1": lambda m: m["gm"],
    "t2": lambda m: min(m["gm"], m["wm"]) * 0.6,
    "flair": lambda m: m["gm"] * 0.9,
}


def _enhancing_mimics(rng: np.random.Generator, shares: np.ndarray, allowed: np.ndarray, cells: float) -> np.ndarray:
    """Vessel-like curves (where two random smooth fields both cross zero) and blobs in CSF (choroid plexus)."""
    mask = np.zeros(allowed.shape, bool)
    if rng.random() < 0.7:
        a, b = smooth_noise(rng, allowed.shape, cells * 0.8, channels=2)
        width = rng.uniform(0.04, 0.12)
        mask |= (np.abs(a) < width) & (np.abs(b) < 3 * width)
    if rng.random() < 0.5:
        blobs = smooth_noise(rng, allowed.shape, cells * 1.5)
        mask |= (shares[0] > 0.5) & (blobs > rng.uniform(1.0, 1.8))
    return mask & allowed


def _artefacts(rng: np.random.Generator, image: np.ndarray, bias_field: np.ndarray,
               resolution: bool = True) -> np.ndarray:
    sigma = np.full(3, rng.uniform(0.0, 0.9))
    if rng.random() < 0.25:  # thick slices along one axis
        sigma[int(rng.integers(3))] = rng.uniform(1.0, 2.5)
    if resolution and sigma.max() > 0.05:  # the draws above are made either way: the rest of the stream stays
        image = ndimage.gaussian_filter(image, sigma, mode="nearest")
    bias = np.exp(rng.uniform(0.0, 0.35) * bias_field)
    image = image * bias
    noise = float(rng.uniform(0.0, 0.06)) * float(np.percentile(image, 90) + 1e-6)
    if noise > 0:
        real = image + noise * rng.standard_normal(image.shape, dtype=np.float32)
        imag = noise * rng.standard_normal(image.shape, dtype=np.float32)
        image = np.sqrt(real * real + imag * imag)
    if rng.random() < 0.3:
        top = float(image.max()) + 1e-6
        image = (image / top) ** rng.uniform(0.7, 1.5) * top
    return image.astype(np.float32)


def _zscore(image: np.ndarray, brain: np.ndarray, hard: np.ndarray, classes: np.ndarray,
            tumour_share: float, fractions: np.ndarray) -> np.ndarray:
    """Z-score by whole-brain statistics estimated from the patch: per-tissue moments of the patch,
    weighted by the tissue shares of a whole brain (a patch alone is not the brain inference normalises)."""
    healthy = brain & (classes == 0)
    tumour = brain & (classes > 0)
    mean_all = float(image[brain].mean()) if brain.any() else 0.0
    var_all = float(image[brain].var()) if brain.any() else 1.0
    m1 = m2 = 0.0
    share = float(np.clip(tumour_share, 0.0, 0.3))
    for k in range(3):
        sel = healthy & (hard == k)
        if sel.sum() > 20:
            v = image[sel].astype(np.float64)
            mk, sk = v.mean(), (v**2).mean()
        else:
            mk, sk = mean_all, var_all + mean_all**2
        m1 += (1 - share) * fractions[k] * mk
        m2 += (1 - share) * fractions[k] * sk
    if tumour.any():
        v = image[tumour].astype(np.float64)
        m1 += share * v.mean()
        m2 += share * (v**2).mean()
    std = max(np.sqrt(max(m2 - m1 * m1, 0.0)), 1e-6)
    return np.where(brain, (image - m1) / std, 0.0).astype(np.float32)
