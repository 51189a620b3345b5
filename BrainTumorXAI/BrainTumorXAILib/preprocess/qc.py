"""The registration QC figure: each sequence's edges on the T1ce, by the headers alone and after co-registration;
the brain mask on the T1ce; the template's edges on the atlas-space T1ce."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.feature import canny

from ..io.labels import SEQUENCES
from ..reporting.figures import _slice as view_slice
from ..reporting.figures import new_figure, to_ras
from .pipeline import ClinicalCase
from .sitk_images import to_array


def _axial(ras: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a RAS-reoriented volume as every figure shows it (anterior up, the patient's right on the
    image's left), whatever the header's axis order and signs: native scans and the atlas differ."""
    return view_slice(ras, "axial", k)


def _edges(image: np.ndarray) -> np.ndarray:
    scale = np.percentile(image, 99) or 1.0
    return canny(np.clip(image / scale, 0, 1), sigma=2.0)


def _panel(ax, background: np.ndarray, overlay: np.ndarray, title: str, colour=(1.0, 0.2, 0.2)) -> None:
    # Windowed on the non-zero voxels, zero drawn black: the atlas-space T1ce is z-scored (negative inside the
    # brain, zero outside), the native one is not.
    values = background[background != 0]
    low, high = np.percentile(values, (1, 99.5)) if values.size else (0.0, 1.0)
    grey = matplotlib.colormaps["gray"].with_extremes(bad="black")
    ax.imshow(np.ma.masked_equal(background, 0), cmap=grey, vmin=low, vmax=high if high > low else low + 1)
    rgba = np.zeros((*overlay.shape, 4))
    rgba[overlay] = (*colour, 1.0)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def write_qc_figure(clinical: ClinicalCase, path: Path) -> Path:
    native = clinical.native_case.affine
    t1ce = to_ras(clinical.native_case.images[SEQUENCES.index("t1ce")], native)[0]
    brain = to_ras(clinical.brain, native)[0]
    brain_slices = np.flatnonzero(brain.any(axis=(0, 1)))
    k = int(brain_slices[len(brain_slices) // 2]) if brain_slices.size else t1ce.shape[2] // 2
    rows = list(clinical.coregistration) + ["brain"]
    fig = new_figure((6, 3 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), 2, squeeze=False)
    background = _axial(t1ce, k)
    for r, seq in enumerate(rows[:-1]):
        result = clinical.coregistration[seq]
        by_header = to_array(sitk.Resample(clinical.series[seq], clinical.t1ce, sitk.Transform(), sitk.sitkLinear,
                                           0.0, sitk.sitkFloat32))
        by_header = to_ras(by_header, native)[0]
        registered = to_ras(clinical.native_case.images[SEQUENCES.index(seq)], native)[0]
        _panel(axes[r, 0], background, _edges(_axial(by_header, k)),
               f"{seq} edges on T1ce, headers only (MI {result.mi_before:.3f})")
        _panel(axes[r, 1], background, _edges(_axial(registered, k)),
               f"{seq} edges on T1ce, co-registered (MI {result.mi_after:.3f})")
    mask = _axial(brain, k)
    _panel(axes[-1, 0], background, mask ^ _eroded(mask), f"brain mask ({clinical.brain_info['method']})",
           colour=(0.2, 1.0, 0.2))
    atlas = clinical.atlas_case.affine  # the template's grid
    atlas_t1ce = to_ras(clinical.atlas_case.images[SEQUENCES.index("t1ce")], atlas)[0]
    template = to_ras(to_array(clinical.atlas.template), atlas)[0]
    ka = atlas_t1ce.shape[2] // 2 + 10
    _panel(axes[-1, 1], _axial(atlas_t1ce, ka), _edges(_axial(template, ka)),
           f"{clinical.atlas.name} template edges on T1ce (atlas space)", colour=(0.2, 0.6, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _eroded(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_erosion(mask, iterations=2)
