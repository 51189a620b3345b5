"""Trust-report figures: reliability diagrams per region and the "where to look" panel.

Drawn with matplotlib's object API (``figures.new_figure``, no pyplot), so ``analyze`` can draw them in a thread
beside the figures of ``figures.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from .figure_style import ENTROPY, overlay_cmap, slice_label, underlay_window
from .figures import DPI, _aspect, _grey, _orientation_letters, _slice, new_figure, to_ras
from .review_regions import boundary_words


def reliability_figure(report: dict, path) -> Path:
    """One reliability diagram per region (accuracy against mean confidence per bin, bin counts shaded)."""
    regions = report["regions"]
    fig = new_figure((3.2 * len(regions), 3.3))
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


#: A region gets a panel of its own from this volume and this fraction of the largest one on; the rest are
#: counted under the panels (they stay in summary.json and review_regions.nii.gz).
PANEL_MIN_ML = 0.25
PANEL_MIN_FRACTION = 0.1


def panel_regions(regions: list[dict], max_panels: int = 4) -> list[dict]:
    """The first-ranked region, then those large enough for a panel (``PANEL_MIN_ML``, ``PANEL_MIN_FRACTION``
    of the largest), by rank."""
    if not regions:
        return []
    floor = max(PANEL_MIN_ML, PANEL_MIN_FRACTION * max(r["volume_ml"] for r in regions))
    return [regions[0]] + [r for r in regions[1:] if r["volume_ml"] >= floor][:max_panels - 1]


def where_to_look_figure(background: np.ndarray, entropy: np.ndarray, ranked_labels: np.ndarray, regions: list[dict],
                         affine: np.ndarray, path, max_panels: int = 4) -> Path:
    """Axial slices through the largest review regions: background (T1ce), entropy above the overlay floor, the
    region outlined in cyan and any other review region on that slice in white."""
    bg, spacing = to_ras(background, affine)
    ent, _ = to_ras(entropy, affine)
    lab, _ = to_ras(ranked_labels, affine)
    shown = panel_regions(regions, max_panels)
    n = max(len(shown), 1)
    panel, gap, left = 2.6, 0.25, 0.25  # inches
    width, height = max(left + n * (panel + gap) + 1.0, 7.5), 4.6
    fig = new_figure((width, height))
    axes = [[fig.add_axes(((left + i * (panel + gap)) / width, 1.05 / height, panel / width, panel / height))
             for i in range(n)]]
    win = underlay_window(bg)
    cmap, norm = overlay_cmap(ENTROPY), Normalize(0.0, ENTROPY.vmax)
    aspect = _aspect(spacing, "axial")
    for ax, region in zip(axes[0], shown):
        z = int(np.round(np.nonzero(lab == region["rank"])[2].mean()))
        ax.imshow(_grey(_slice(bg, "axial", z), win), aspect=aspect)
        ax.imshow(cmap(norm(_slice(ent, "axial", z))), aspect=aspect)
        labels = _slice(lab, "axial", z)
        others = (labels > 0) & (labels != region["rank"])
        if others.any():
            ax.contour(others, levels=[0.5], colors="white", linewidths=0.5)
        ax.contour(labels == region["rank"], levels=[0.5], colors="cyan", linewidths=1.0)
        x, y, s = region["centroid_ras"]
        ax.set_title(f"#{region['rank']}: {boundary_words(region['boundary'])}\n"
                     f"{region['volume_ml']:.2f} mL, mean entropy {region['mean_entropy']:.2f} nats\n"
                     f"{slice_label(affine, bg.shape, 'axial', z)}; RAS ({x:.0f}, {y:.0f}, {s:.0f}) mm", fontsize=7)
        _orientation_letters(ax, 1, 1, labels.shape, "axial")
        ax.axis("off")
    if not shown:
        axes[0][0].text(0.5, 0.5, "no region above the threshold", ha="center", va="center", fontsize=8)
        axes[0][0].axis("off")
    rest = [r for r in regions if r not in shown]
    note = (f"\n{len(rest)} smaller region{'s' if len(rest) > 1 else ''} ({sum(r['volume_ml'] for r in rest):.2f} mL "
            "in all) not drawn; summary.json and review_regions.nii.gz list every region." if rest else "")
    fig.legend(handles=[Line2D([], [], color="cyan", lw=1.2, label="the region: entropy above half its maximum"),
                        Line2D([], [], color="white", lw=0.8, label="another review region on this slice")],
               loc="lower center", ncol=2, fontsize=7, frameon=True, facecolor="0.3", edgecolor="0.3",
               labelcolor="white", bbox_to_anchor=(0.5, 0.5 / height))
    fig.text(0.5, 0.08 / height, "Heat: predictive entropy (not drawn below a tenth of its maximum)." + note,
             ha="center", va="bottom", fontsize=6.5)
    cax = fig.add_axes(((left + n * (panel + gap)) / width, 1.2 / height, 0.12 / width, (panel - 0.3) / height))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    bar.set_label(ENTROPY.unit, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle("Where to look: the largest regions where the model is unsure\n(ranked by volume x mean entropy; "
                 "axial slices, patient's right on the left)", fontsize=9, y=1 - 0.08 / height, va="top")
    return _save(fig, path, tight=False)


def _save(fig, path, tight: bool = True) -> Path:
    if tight:  # else the figure placed its axes itself
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 1})  # lossless either way; level 6 is much slower
    return path
