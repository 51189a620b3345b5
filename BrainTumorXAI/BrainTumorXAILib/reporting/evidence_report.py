"""Sequence evidence where the reader looks: ``evidence_{class}_{sequence}.nii.gz`` on the case grid,
``figures/evidence.png`` (the per-class table as bars, and each map on the slice where the class is largest),
its table as text: ``evidence_table``.

The figure uses matplotlib's object API (``figures.new_figure``), so it may be drawn beside the other figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from ..io.labels import CLASS_NAMES, SEQUENCES
from ..io.nifti_writer import save_volume
from .figures import _aspect, _grey, _slice, _window, new_figure, to_ras
from .evidence_table import SEQUENCE_LABELS, evidence_file_name
from .trust_figures import _save

SEQUENCE_COLOURS = {"t1": "#8c8c8c", "t1ce": "#d62728", "t2": "#1f77b4", "flair": "#2ca02c"}
#: What a map's value is, per method (the colour bar's label).
MAP_UNITS = {"occlusion": "fall of the class's probability\nwithout this sequence",
             "ig": "attribution, share of the\nclass's largest value"}


def evidence_figure(table: dict, maps: dict, background: np.ndarray, classes: np.ndarray, affine: np.ndarray,
                    path) -> Path:
    """Bars of each class's shares per sequence; beside them each read sequence's map through the class, and the
    maps' colour bar with their unit."""
    return _save(draw_evidence(table, maps, background, classes, affine), path)


def draw_evidence(table: dict, maps: dict, background: np.ndarray, classes: np.ndarray, affine: np.ndarray):
    """The figure of ``evidence_figure`` (not saved)."""
    read = [s for s in SEQUENCES if table["sequences"].get(s, {}).get("read")]
    names = list(table["classes"])
    fig = new_figure((2.6 * (1 + len(read)) + 0.9, 2.4 * len(names) + 0.6))
    # A narrow last column holds each row's colour bar (the maps share one scale, 0-1).
    axes = fig.subplots(len(names), 2 + len(read), squeeze=False,
                        gridspec_kw={"width_ratios": [1.0] * (1 + len(read)) + [0.06]})
    bg, spacing = to_ras(background, affine)
    cls, _ = to_ras(classes, affine)
    win = _window(bg)
    scale = ScalarMappable(norm=Normalize(0.0, 1.0), cmap="hot")
    for row, name in zip(axes, names):
        entry = table["classes"][name]
        _bars(row[0], name, entry, table["sequences"])
        c = CLASS_NAMES.index(name)
        z = int(np.argmax((cls == c).sum(axis=(0, 1)))) if (cls == c).any() else bg.shape[2] // 2
        for ax, s in zip(row[1:-1], read):
            ax.imshow(_grey(_slice(bg, "axial", z), win), aspect=_aspect(spacing, "axial"))
            if (name, s) in maps:
                m, _ = to_ras(maps[(name, s)], affine)
                ax.imshow(np.ma.masked_less_equal(_slice(m, "axial", z), 0.02), cmap="hot", vmin=0, vmax=1,
                          alpha=0.7, aspect=_aspect(spacing, "axial"))
            ax.contour(_slice(cls, "axial", z) == c, levels=[0.5], colors="cyan", linewidths=0.6)
            ax.set_title(f"{name} from {SEQUENCE_LABELS[s]}", fontsize=8)
            ax.axis("off")
        if read:
            bar = fig.colorbar(scale, cax=row[-1])
            bar.set_label(MAP_UNITS.get(table["method"], "evidence"), fontsize=6)
            bar.ax.tick_params(labelsize=6)
        else:
            row[-1].axis("off")
    fig.suptitle(f"Sequence evidence ({table['method']}): {table['what_it_is']}", fontsize=7, wrap=True)
    return fig


def _bars(ax, name: str, entry: dict, sequences: dict) -> None:
    share = entry.get("share")
    labels = [SEQUENCE_LABELS[s] + ("" if sequences.get(s, {}).get("read") else "\n(not read)") for s in SEQUENCES]
    values = [0.0 if share is None or share.get(s) is None else 100 * share[s] for s in SEQUENCES]
    ax.barh(labels, values, color=[SEQUENCE_COLOURS[s] for s in SEQUENCES])
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.tick_params(labelsize=7)
    ax.set_xlabel("% of the class's evidence", fontsize=7)
    ax.set_title(f"{name}" + ("" if share is not None else ": not predicted"), fontsize=8)


def write_evidence(folder: Path, case, maps: dict) -> dict:
    """The volumes (float32, the case's grid and header); the written names (the figure is drawn with the other
    figures, ``write_evidence_figure``)."""
    folder = Path(folder)
    written = {}
    for (name, s), m in maps.items():
        file_name = evidence_file_name(name, s)
        save_volume(m.astype(np.float32, copy=False), case.affine, folder / file_name, header=case.header,
                    dtype=np.float32)
        written.setdefault(name, {})[s] = file_name
    return {"volumes": written, "figure": None}


def write_evidence_figure(folder: Path, case, table: dict, maps: dict, classes: np.ndarray) -> str:
    """``figures/evidence.png`` over the T1ce; its name relative to ``folder``."""
    background = case.images[SEQUENCES.index("t1ce")]
    path = evidence_figure(table, maps, background, classes, case.affine, Path(folder) / "figures" / "evidence.png")
    return str(path.relative_to(folder))
