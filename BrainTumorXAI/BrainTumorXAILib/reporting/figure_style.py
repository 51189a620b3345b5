"""How the figures read: underlay window, overlay colour maps that start transparent, units, row names in words,
slice positions in millimetres and anatomical orientation letters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from nibabel import orientations as nio

from ..io.labels import CLASS_NAMES

#: Underlay window: percentiles of the voxels inside the head.  The top one is high enough that a bright
#: lesion (FLAIR oedema, enhancing rim) keeps its texture instead of saturating to white.
WINDOW_PERCENTILES = (0.5, 99.9)
#: Overlays are not drawn below this fraction of their colour scale and reach full opacity at
#: ``FLOOR + RAMP``: near-zero values (a faint entropy over all of the brain) leave the anatomy visible.
OVERLAY_FLOOR = 0.1
OVERLAY_RAMP = 0.15
MAX_ENTROPY = math.log(len(CLASS_NAMES))  # nats, all classes equally likely

#: Panel edges' orientation letters (left, right, top, bottom) of the views drawn by ``figures._slice``.
PLANE_LETTERS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
_PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # in RAS array order

ROW_WORDS = {"background": "Background", "NCR": "Necrotic\ncore (NCR)", "ED": "Edema (ED)",
             "ET": "Enhancing\ntumour (ET)", "entropy": "Predictive\nentropy"}


@dataclass(frozen=True)
class MapStyle:
    cmap: str
    unit: str  # the colour bar's label
    vmax: float | None = None  # None: the map's informative top (``figures._top``)
    start: float = 0.0  # where in the colour map the scale begins (skips a black bottom) ...
    stop: float = 1.0  # ... and ends (skips a near-white top, which would read as bright signal)


PROBABILITY = MapStyle("inferno", "probability (0-1)", 1.0, start=0.25, stop=0.9)
VARIANCE = MapStyle("viridis", "variance of the probability\n(MC Dropout samples)")
ENTROPY = MapStyle("plasma", f"entropy (nats)\n{MAX_ENTROPY:.2f}: all classes equal", MAX_ENTROPY, start=0.1,
                   stop=0.95)
GRADCAM = MapStyle("jet", "Grad-CAM (a.u., 0-1)", 1.0)


def row_words(name: str) -> str:
    return ROW_WORDS.get(name, name)


def overlay_cmap(style: MapStyle) -> ListedColormap:
    """``style``'s colour map from ``start`` on, transparent below ``OVERLAY_FLOOR`` and ramping to opaque."""
    x = np.linspace(0.0, 1.0, 256)
    rgba = colormaps[style.cmap](style.start + (style.stop - style.start) * x)
    rgba[:, 3] = np.clip((x - OVERLAY_FLOOR) / OVERLAY_RAMP, 0.0, 1.0)
    return ListedColormap(rgba, name=f"{style.cmap}_overlay")


def underlay_window(volume: np.ndarray) -> tuple[float, float]:
    """Grey window of an MRI volume, the same for all its panels: ``WINDOW_PERCENTILES`` of the head's voxels.
    The background is what fills the corners (0 after skull stripping, a constant in some archives)."""
    values = np.asarray(volume)[::2, ::2, ::2]
    corners = np.asarray(volume)[np.ix_(*[(0, s - 1) for s in volume.shape])]
    values = values[(values != np.median(corners)) & (values != 0)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    return float(lo), float(max(hi, lo + 1e-6))


def slice_label(affine: np.ndarray, shape_ras, plane: str, index: int) -> str:
    """World position of the centre of RAS-array slice ``index`` along the plane's normal, signed as 3D Slicer's
    slice offset shows it, and the slice's index in the file's own voxel order, e.g. ``S -24 mm (slice 101)``."""
    axis = _PLANE_AXIS[plane]
    ornt = nio.io_orientation(affine)
    affine_ras = np.asarray(affine, float) @ nio.inv_ornt_aff(ornt, shape_ras)
    centre = (np.asarray(shape_ras[:3], float) - 1) / 2
    centre[axis] = index
    position = float((affine_ras @ np.r_[centre, 1.0])[axis])
    file_axis = int(np.flatnonzero(ornt[:, 0] == axis)[0])
    file_index = index if ornt[file_axis, 1] > 0 else shape_ras[axis] - 1 - index
    return f"{'RAS'[axis]} {position:.0f} mm (slice {file_index})"
