"""Synthetic tumours painted into real, labelled brains, away from their own tumour.

The atlas anatomy of ``synthetic`` is smooth; real scans have vessels, choroid plexus, sulci, flow
voids and scanner texture it lacks, and every real labelled training case is a high-grade glioma.
Painting a generator tumour (any kind, non-enhancing ones included) into a real brain teaches
tumour against real healthy tissue, in the network's own input units.

Intensities are drawn in z-units of the host's input (the network input is z-scored inside the
brain) relative to the healthy tissue around the insertion.  The ranges cover what the expert
labels of the BRATS 2013 training cases ``pat0001``-``pat0004`` show (median, relative to healthy
brain: FLAIR oedema +1.4 to +2.0, necrosis +1.5 to +2.5, enhancing +1.6 to +2.8; T1c oedema -0.35
to +0.05, core -0.9 to +0.9, enhancing +1.0 to +3.6; healthy T1c's 99th percentile reaches +3.9,
its vessels) and keep only the contrasts that carry the signal, as ``appearance`` does.
No mass effect: the host anatomy is not moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from BrainTumorXAILib.io.labels import SEQUENCES

from ..data import cut_patch, patch_start
from .fields import smooth_noise
from .tumour_labels import KINDS, draw_spec, tumour_labels

#: z-unit ranges (low, high) per class, relative to the healthy median around the insertion; on FLAIR
#: and T2, necrosis and enhancing tumour are offsets from the oedema level drawn for that sample.
LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    "flair": {"ed": (0.9, 2.6), "ncr": (-0.6, 0.9), "et": (-0.6, 0.9)},  # ncr/et: offset from oedema
    "t2": {"ed": (1.0, 2.6), "ncr": (-0.3, 1.0), "et": (-0.8, 0.3)},  # ncr/et: offset from oedema
    "t1ce": {"ed": (-0.6, 0.2), "ncr": (-1.6, 0.3), "et": (0.9, 3.8)},
    "t1": {"ed": (-1.0, -0.2), "ncr": (-2.0, -0.6), "et": (-0.6, 0.2)},
}
_RELATIVE_TO_OEDEMA = ("flair", "t2")


@dataclass
class InsertSettings:
    """Knobs of the insertion source (recorded in the training config)."""

    spacing: float = 2.0
    margin_mm: float = 12.0  # the inserted tumour is centred this far from the host's own, never grows within half
    kinds: dict | None = field(default=None)

    def tumour_kinds(self) -> dict:
        return dict(self.kinds or KINDS)


def _levels(rng: np.random.Generator, seq: str) -> dict[str, float]:
    ranges = LEVELS[seq]
    ed = float(rng.uniform(*ranges["ed"]))
    out = {"ed": ed}
    for name in ("ncr", "et"):
        value = float(rng.uniform(*ranges[name]))
        out[name] = ed + value if seq in _RELATIVE_TO_OEDEMA else value
    return out


def insertion_centres(image: np.ndarray, label: np.ndarray, spacing: float, margin_mm: float) -> np.ndarray:
    """Voxels (N, 3) where a tumour may start: inside the brain, at least 6 mm deep, and at least
    ``margin_mm`` from the host's own labelled tumour; empty when the brain offers none."""
    brain = (image != 0).any(0)
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    away = ndimage.distance_transform_edt(label == 0, sampling=spacing) if label.any() else np.full(label.shape, np.inf)
    return np.argwhere((depth >= 6.0) & (away >= margin_mm))


def inserted_patch(rng: np.random.Generator, image: np.ndarray, label: np.ndarray, size: int,
                   settings: InsertSettings, centres: np.ndarray | None = None):
    """(image (C, P, P, P) float32, label (P, P, P) uint8): a patch of the host ``image``/``label`` (network
    grid, z-scored, 0 outside the brain) with a generator tumour painted in, centred near the patch centre.
    The host's own labels are kept; absent sequences (all-zero channels) stay absent."""
    if centres is None:
        centres = insertion_centres(image, label, settings.spacing, settings.margin_mm)
    if len(centres) == 0:  # a brain too small or full of tumour: the host patch as it is
        centre = np.array([int(rng.integers(0, s)) for s in label.shape])
    else:
        centre = centres[int(rng.integers(len(centres)))]
    img, lab = cut_patch(image, label, centre, size)
    brain = (img != 0).any(0)
    local = centre - patch_start(centre, size, label.shape)

    spec = draw_spec(rng, local.astype(np.float64), settings.tumour_kinds())
    away = ndimage.distance_transform_edt(lab == 0, sampling=settings.spacing) if lab.any() else np.inf
    flair = img[SEQUENCES.index("flair")]
    healthy = brain & (lab == 0)
    csf_like = flair < (np.percentile(flair[healthy], 5) if healthy.any() else -np.inf)
    invadable = brain & (lab == 0) & ~csf_like & (away >= settings.margin_mm / 2)
    classes, edema_weight = tumour_labels(rng, spec, invadable, np.full(lab.shape, 0.5, np.float32),
                                          settings.spacing)
    if not classes.any():
        return img, lab

    cells = max(2.0, size * settings.spacing / 12.0)
    textures = smooth_noise(rng, lab.shape, cells, channels=len(SEQUENCES))
    soft = np.clip(ndimage.gaussian_filter((classes > 0).astype(np.float32), rng.uniform(0.3, 0.9)) * 1.5, 0.0, 1.0)
    alpha = np.clip(edema_weight * rng.uniform(0.5, 1.0) + rng.uniform(0.35, 0.6), 0.0, 1.0)
    for c, seq in enumerate(SEQUENCES):
        channel = img[c]
        if not channel.any():
            continue  # the host lacks this sequence
        base = float(np.median(channel[healthy])) if healthy.any() else 0.0
        level = _levels(rng, seq)
        texture = float(rng.uniform(0.15, 0.5)) * textures[c] + float(rng.uniform(0.05, 0.2)) * \
            rng.standard_normal(lab.shape).astype(np.float32)
        painted = channel.copy()
        ed = classes == 2
        painted[ed] = (1 - alpha[ed]) * channel[ed] + alpha[ed] * (base + level["ed"] + texture[ed])
        for value, name in ((1, "ncr"), (3, "et")):
            sel = classes == value
            painted[sel] = base + level[name] + texture[sel]
        mixed = channel + soft * (painted - channel)
        img[c] = np.where(brain, mixed, 0.0)
    new = (classes > 0) & (lab == 0) & brain
    lab[new] = classes[new]
    return img, lab
