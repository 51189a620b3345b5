"""Paper-style PNG panels: sequences with ground truth and prediction, probability,
uncertainty and Grad-CAM maps over FLAIR, on axial, coronal and sagittal slices.

Arrays come in the file's own axis order; they are turned to the closest RAS
orientation (exact flips/permutations) and drawn in radiological convention
(patient's left on the image's right) with the true voxel aspect ratio.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from nibabel import orientations as nio  # noqa: E402

from .labels import CLASS_COLORS, CLASS_LONG_NAMES, TUMOUR_CLASSES  # noqa: E402

PLANES = ("axial", "coronal", "sagittal")
_PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # in RAS array order
DPI = 150


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array and voxel sizes reoriented to the closest RAS axes."""
    ornt = nio.io_orientation(affine)
    ras = nio.apply_orientation(np.asarray(array), ornt)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))[np.argsort(ornt[:, 0])]
    return ras, spacing


def _slice(volume_ras: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2D image for imshow: superior (or anterior) up; patient's right on the viewer's left
    (radiological), and for sagittal the face on the viewer's left."""
    img = np.take(volume_ras, index, axis=_PLANE_AXIS[plane])
    return np.flipud(img.T)[:, ::-1]


def _aspect(spacing: np.ndarray, plane: str) -> float:
    a, b = [i for i in range(3) if i != _PLANE_AXIS[plane]]
    return float(spacing[b] / spacing[a])


def choose_slices(mask_ras: np.ndarray, plane: str = "axial", n: int = 5, fallback: np.ndarray | None = None) -> list[int]:
    """n slice indices spread over the extent of ``mask`` (else ``fallback``, else the volume)."""
    axis = _PLANE_AXIS[plane]
    source = mask_ras if np.any(mask_ras) else fallback
    if source is None or not np.any(source):
        lo, hi = 0, mask_ras.shape[axis] - 1
    else:
        present = np.flatnonzero(np.any(source, axis=tuple(i for i in range(3) if i != axis)))
        lo, hi = int(present[0]), int(present[-1])
    return sorted({int(round(v)) for v in np.linspace(lo, hi, n + 2)[1:-1]})


def _label_cmap() -> ListedColormap:
    colors = [(0, 0, 0, 0)] + [(*CLASS_COLORS[c], 0.6) for c in TUMOUR_CLASSES]
    return ListedColormap(colors)


def _grey(ax, image, aspect):
    lo, hi = np.percentile(image[image != 0], (1, 99)) if np.any(image != 0) else (0, 1)
    ax.imshow(image, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), aspect=aspect, interpolation="nearest")


def _legend(fig) -> None:
    handles = [Patch(color=CLASS_COLORS[c], label=f"{c}: {CLASS_LONG_NAMES[c]}") for c in TUMOUR_CLASSES]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)


def overview_figure(images: dict[str, np.ndarray], pred_classes: np.ndarray, affine: np.ndarray, path, *,
                    gt_classes: np.ndarray | None = None, plane: str = "axial", n_slices: int = 5) -> Path:
    """Columns = slices through the tumour; rows = T1ce, FLAIR, T2, [ground truth], prediction."""
    ras = {k: to_ras(v, affine)[0] for k, v in images.items()}
    pred, spacing = to_ras(pred_classes, affine)
    gt = None if gt_classes is None else to_ras(gt_classes, affine)[0]
    brain = np.any([v != 0 for v in ras.values()], axis=0)
    slices = choose_slices(pred > 0 if gt is None else (gt > 0) | (pred > 0), plane, n_slices, brain)
    rows = [(name.upper() if name != "t1ce" else "T1ce", ras[name], None) for name in ("t1ce", "flair", "t2") if name in ras]
    if gt is not None:
        rows.append(("Ground truth", ras["flair"], gt))
    rows.append(("Prediction", ras["flair"], pred))
    aspect = _aspect(spacing, plane)
    fig, axes = plt.subplots(len(rows), len(slices), figsize=(2.0 * len(slices), 2.0 * len(rows) + 0.4), squeeze=False)
    for r, (title, background, labels) in enumerate(rows):
        for c, index in enumerate(slices):
            ax = axes[r][c]
            _grey(ax, _slice(background, plane, index), aspect)
            if labels is not None:
                ax.imshow(_slice(labels, plane, index), cmap=_label_cmap(), vmin=-0.5, vmax=3.5, aspect=aspect,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
            if r == 0:
                ax.set_title(f"{plane} {index}", fontsize=8)
    _legend(fig)
    fig.suptitle(f"{plane.capitalize()} slices (radiological view: patient left on the right)", fontsize=10)
    return _save(fig, path)


def map_figure(background: np.ndarray, maps: dict[str, np.ndarray], affine: np.ndarray, path, *, title: str,
               cmap: str = "inferno", vmin: float = 0.0, vmax: float | None = None, plane: str = "axial",
               slices: list[int] | None = None, focus: np.ndarray | None = None) -> Path:
    """One row per map, overlaid on ``background`` (FLAIR) with one colour bar per row."""
    bg, spacing = to_ras(background, affine)
    ras_maps = {k: to_ras(v, affine)[0] for k, v in maps.items()}
    if slices is None:
        target = to_ras(focus, affine)[0] if focus is not None else next(iter(ras_maps.values())) > 0
        slices = choose_slices(target, plane, 5, bg != 0)
    aspect = _aspect(spacing, plane)
    fig, axes = plt.subplots(len(ras_maps), len(slices), figsize=(2.0 * len(slices) + 0.8, 2.0 * len(ras_maps) + 0.4),
                             squeeze=False)
    for r, (name, volume) in enumerate(ras_maps.items()):
        top = vmax if vmax is not None else max(float(np.percentile(volume[bg != 0], 99.9)) if np.any(bg) else 1.0, 1e-6)
        for c, index in enumerate(slices):
            ax = axes[r][c]
            _grey(ax, _slice(bg, plane, index), aspect)
            overlay = np.ma.masked_less_equal(_slice(volume, plane, index), vmin + 1e-3 * (top - vmin))
            im = ax.imshow(overlay, cmap=cmap, vmin=vmin, vmax=top, alpha=0.75, aspect=aspect, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
        fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def write_all_figures(out_dir, case_images: dict[str, np.ndarray], pred_classes: np.ndarray,
                      prob_maps: dict[str, np.ndarray], variance_maps: dict[str, np.ndarray],
                      gradcam_maps: dict[str, np.ndarray], affine: np.ndarray,
                      gt_classes: np.ndarray | None = None) -> list[Path]:
    """Every panel of the analysis; returns the written paths."""
    out_dir = Path(out_dir)
    flair = case_images["flair"]
    tumour = np.asarray(pred_classes) > 0
    paths = [overview_figure(case_images, pred_classes, affine, out_dir / f"overview_{p}.png", gt_classes=gt_classes,
                             plane=p) for p in PLANES]
    if prob_maps:
        paths.append(map_figure(flair, prob_maps, affine, out_dir / "probabilities.png", focus=tumour,
                                title="Softmax probability per class (MC mean)", vmax=1.0))
    if variance_maps:
        paths.append(map_figure(flair, variance_maps, affine, out_dir / "uncertainty.png", focus=tumour,
                                title="MC Dropout variance per class, and predictive entropy", cmap="viridis"))
    if gradcam_maps:
        paths.append(map_figure(flair, gradcam_maps, affine, out_dir / "gradcam.png", focus=tumour,
                                title="Grad-CAM 3D per class", cmap="jet", vmax=1.0))
    return paths

