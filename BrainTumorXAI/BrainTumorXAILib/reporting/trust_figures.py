"""Trust-report figures: reliability diagrams per region and the "where to look" panel.

Drawn with matplotlib's object API (a ``Figure`` on its own Agg canvas, no pyplot): no global figure
registry is touched, so ``analyze`` can draw them in a thread beside the pyplot figures of ``figures.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .figures import DPI, _aspect, _grey, _slice, _window, to_ras


def reliability_figure(report: dict, path) -> Path:
    """One reliability diagram per region (accuracy against mean confidence per bin, bin counts shaded)."""
    regions = report["regions"]
    fig = _new_figure((3.2 * len(regions), 3.3))
    axes = fig.subplots(1, len(regions), squeeze=False)
    for ax, (name, r) in zip(axes[0], regions.items()):
        rel = r["reliability"]
        edges = np.asarray(rel["edges"])
        centres, width = (edges[1:] + edges[:-1]) / 2, np.diff(edges)
        acc = np.array([np.nan if v is None else v for v in rel["accuracy"]])
        conf = np.array([np.nan if v is None else v for v in rel["confidence"]])
        ax.bar(centres, np.nan_to_num(acc), width=width, edgecolor="k", linewidth=0.5, color="#4c72b0",
               label="accuracy")
        ax.bar(centres, np.nan_to_num(conf - acc), bottom=np.nan_to_num(acc), width=width, color="#dd8452",
               alpha=0.5, label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ece = r["ece"]
        ax.set_title(f"{name}: ECE {ece:.3f}" if ece is not None else f"{name}: ECE n/a", fontsize=9)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("accuracy", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Reliability of the region forecasts (inside the brain)", fontsize=10)
    return _save(fig, path)


def where_to_look_figure(background: np.ndarray, entropy: np.ndarray, ranked_labels: np.ndarray, regions: list[dict],
                         affine: np.ndarray, path, max_panels: int = 4) -> Path:
    """Axial slices through the first ``max_panels`` review regions: background, entropy, the region outlined."""
    bg, spacing = to_ras(background, affine)
    ent, _ = to_ras(entropy, affine)
    lab, _ = to_ras(ranked_labels, affine)
    shown = regions[:max_panels]
    n = max(len(shown), 1)
    fig = _new_figure((2.6 * n, 3.0))
    axes = fig.subplots(1, n, squeeze=False)
    win = _window(bg)
    vmax = float(np.log(4.0))
    for ax, region in zip(axes[0], shown):
        z = int(np.round(np.nonzero(lab == region["rank"])[2].mean()))
        ax.imshow(_grey(_slice(bg, "axial", z), win), aspect=_aspect(spacing, "axial"))
        e = np.ma.masked_less_equal(_slice(ent, "axial", z), 0)
        ax.imshow(e, cmap="inferno", vmin=0, vmax=vmax, alpha=0.6, aspect=_aspect(spacing, "axial"))
        ax.contour(_slice(lab, "axial", z) == region["rank"], levels=[0.5], colors="cyan", linewidths=0.8)
        x, y, s = region["centroid_ras"]
        ax.set_title(f"#{region['rank']} {region['boundary']}\n{region['volume_ml']:.2f} mL, "
                     f"H {region['mean_entropy']:.2f}\nRAS ({x:.0f}, {y:.0f}, {s:.0f})", fontsize=7)
        ax.axis("off")
    if not shown:
        axes[0][0].text(0.5, 0.5, "no region above the threshold", ha="center", va="center", fontsize=8)
        axes[0][0].axis("off")
    fig.suptitle("Where to look: most uncertain regions (entropy, ranked by volume x mean entropy)", fontsize=9)
    return _save(fig, path)


def _new_figure(size) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 1})  # lossless either way; level 6 is much slower
    return path
