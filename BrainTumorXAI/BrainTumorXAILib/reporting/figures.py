"""Paper-style PNG panels: sequences with ground truth and prediction, probability,
uncertainty and Grad-CAM maps over FLAIR, each on axial, coronal and sagittal slices.

Arrays come in the file's own axis order; they are turned to the closest RAS
orientation (exact flips/permutations, no resampling) and drawn as Slicer's
default slice views show them: radiological convention (patient's right on the
viewer's left) for axial and coronal, anterior on the left for sagittal, with
the true voxel aspect ratio.  Each figure is composited in numpy and drawn as
one image -- a matplotlib axes per panel would cost far more.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator
from nibabel import orientations as nio

from ..io.labels import CLASS_COLORS, CLASS_LONG_NAMES, CLASS_NAMES, TUMOUR_CLASSES
from .figure_style import (ENTROPY, GRADCAM, PLANE_LETTERS, PROBABILITY, VARIANCE, MapStyle, overlay_cmap,
                           row_words, slice_label, underlay_window)

PLANES = ("axial", "coronal", "sagittal")
_PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # in RAS array order
_VIEW_NOTE = {"axial": "radiological: patient's right on the left", "coronal": "radiological: patient's right on the left",
              "sagittal": "anterior on the left"}
DPI = 150
CELL_IN = 1.8  # width of one panel, inches
GAP_PX = 2  # white gap between panels, in voxels
LABEL_ALPHA = 0.6
MAP_ALPHA = 0.75
SEQUENCE_ROWS = (("t1ce", "T1ce"), ("flair", "FLAIR"), ("t2", "T2"))

#: RGBA per internal class (background transparent), for label overlays.
_LABEL_RGBA = np.array([(0, 0, 0, 0)] + [(*CLASS_COLORS[c], LABEL_ALPHA) for c in CLASS_NAMES[1:]])


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array and voxel sizes reoriented to the closest RAS axes (nibabel's as_closest_canonical)."""
    ornt = nio.io_orientation(affine)
    ras = nio.apply_orientation(np.asarray(array), ornt)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))[np.argsort(ornt[:, 0])]
    return ras, spacing


def _slice(volume_ras: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2D image (rows top to bottom) matching Slicer's default views: superior (axial:
    anterior) up, patient's right on the viewer's left, sagittal with the face on the left."""
    # Basic indexing is a view; np.take would first copy the whole (reoriented, strided) volume.
    key = [slice(None)] * 3
    key[_PLANE_AXIS[plane]] = int(index)
    img = volume_ras[tuple(key)]
    return np.flipud(img.T)[:, ::-1]


def _aspect(spacing: np.ndarray, plane: str) -> float:
    """imshow aspect (pixel height / width) of a slice of ``plane``."""
    cols, rows = [i for i in range(3) if i != _PLANE_AXIS[plane]]
    return float(spacing[rows] / spacing[cols])


def choose_slices(classes_or_mask: np.ndarray, n: int = 5, *, plane: str = "axial",
                  fallback: np.ndarray | None = None) -> list[int]:
    """Up to ``n`` slice indices of ``plane`` spread evenly inside the extent of the non-zero
    voxels (the ends excluded: they cut only a sliver), else of ``fallback`` (e.g. the brain),
    else of the volume.  Arrays are in RAS order (see ``to_ras``)."""
    axis = _PLANE_AXIS[plane]
    source = classes_or_mask if np.any(classes_or_mask) else fallback
    if source is None or not np.any(source):
        lo, hi = 0, classes_or_mask.shape[axis] - 1
    else:
        present = np.flatnonzero(np.any(source, axis=tuple(i for i in range(3) if i != axis)))
        lo, hi = int(present[0]), int(present[-1])
    return sorted({int(round(v)) for v in np.linspace(lo, hi, n + 2)[1:-1]})


def _window(volume: np.ndarray) -> tuple[float, float]:
    """The underlay's grey window, once per volume so all columns share it (``figure_style.underlay_window``)."""
    return underlay_window(volume)


def _grey(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    g = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    return np.repeat(g[..., None], 3, axis=-1)


def _over(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-blend an RGBA layer over an RGB image."""
    a = rgba[..., 3:4]
    return rgb * (1 - a) + rgba[..., :3] * a


def _labels_rgba(labels: np.ndarray) -> np.ndarray:
    return _LABEL_RGBA[np.clip(labels.astype(np.intp), 0, len(_LABEL_RGBA) - 1)]


def _map_rgba(values: np.ndarray, cmap, norm: Normalize) -> np.ndarray:
    """Colour-mapped values; ``cmap``'s own alpha (``figure_style.overlay_cmap``: transparent at the bottom of
    the scale) times ``MAP_ALPHA``."""
    rgba = np.asarray(cmap(norm(values)), float)
    rgba[..., 3] *= MAP_ALPHA
    return rgba


def _mosaic(cells: list[list[np.ndarray]]) -> np.ndarray:
    """Rows x columns of equal-sized RGB panels, separated by white gaps, as opaque uint8 RGBA
    (the renderer's own pixel format: placing it is then two row/column gathers)."""
    h, w = cells[0][0].shape[:2]
    out = np.full((len(cells) * (h + GAP_PX) - GAP_PX, len(cells[0]) * (w + GAP_PX) - GAP_PX, 4), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            out[r * (h + GAP_PX):r * (h + GAP_PX) + h, c * (w + GAP_PX):c * (w + GAP_PX) + w, :3] = \
                np.round(np.clip(cell, 0.0, 1.0) * 255)
    return out


class _Pixels(Artist):
    """An RGBA image drawn pixel for pixel at a fixed place of the canvas (no resampling, no colour
    mapping: matplotlib's image artists redo both on every draw, half of a figure's drawing time)."""

    def __init__(self, rgba: np.ndarray, x0: int, y0: int):
        super().__init__()
        self._rgba, self._x0, self._y0 = rgba, x0, y0

    def draw(self, renderer) -> None:
        gc = renderer.new_gc()
        renderer.draw_image(gc, self._x0, self._y0, self._rgba)
        gc.restore()


_EDGE = 1e-9  # a pixel centre exactly on a voxel edge samples the voxel before it, as Agg's resampler


def _place_pixels(fig, mosaic: np.ndarray, box_in: tuple[float, float, float, float]) -> None:
    """Draw the uint8 RGBA ``mosaic`` filling ``box_in`` (left, bottom, width, height in inches),
    nearest-neighbour resampled once to device pixels the way imshow(interpolation="nearest") does:
    the box rounded to whole pixels, each pixel centre sampled through the unrounded box, a centre on
    a voxel edge taking the voxel before it (the tests compare it with imshow pixel by pixel)."""
    left, bottom, width, height = (v * DPI for v in box_in)
    x0, x1 = math.floor(left + 0.5), math.floor(left + width + 0.5)
    y0, y1 = math.ceil(bottom - 0.5), math.ceil(bottom + height - 0.5)
    px_x, px_y = x0 + np.arange(max(x1 - x0, 1)) + 0.5, y0 + np.arange(max(y1 - y0, 1)) + 0.5
    cols = np.clip((px_x - left) * (mosaic.shape[1] / width) - _EDGE, 0, mosaic.shape[1] - 1).astype(np.intp)
    # The renderer's rows run bottom to top; the mosaic's first row is the top.
    rows = np.clip((bottom + height - px_y) * (mosaic.shape[0] / height) - _EDGE, 0,
                   mosaic.shape[0] - 1).astype(np.intp)
    fig.add_artist(_Pixels(mosaic.take(rows, axis=0).take(cols, axis=1), x0, y0))


def new_figure(size: tuple[float, float], dpi: float | None = None) -> Figure:
    """A figure on its own Agg canvas (matplotlib's object API, no pyplot): no global figure registry is touched,
    so figures may be drawn in several threads at once, and a host application's matplotlib state is left alone."""
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _fit_title(title: str, width_in: float) -> str:
    """The title on as many lines as the figure's width needs (a 10 pt character is about 0.08 in wide)."""
    return "\n".join(textwrap.wrap(title, width=max(20, int(width_in / 0.08)), break_long_words=False))


def _figure(mosaic: np.ndarray, cell_shape: tuple[int, int], aspect: float, *, title: str, row_titles: list[str],
            col_titles: list[str], colorbars: list[tuple] | None = None, legend: bool = False, plane: str = "axial"):
    """One image axes with row/column titles, orientation letters on each row's first panel (every panel of a
    figure shares its plane and orientation, and letters on every panel were a large share of the drawing time),
    optional per-row colour bars ((cmap, norm, unit) each) and class legend."""
    n_cols = len(col_titles)
    img_w = n_cols * CELL_IN
    img_h = img_w * mosaic.shape[0] * aspect / mosaic.shape[1]
    left, right = 0.3, (1.05 if colorbars else 0.1)
    fig_w = left + img_w + right
    title = _fit_title(title, fig_w)
    top, bottom = 0.55 + 0.17 * title.count("\n"), (0.45 if legend else 0.1)
    fig_h = top + img_h + bottom
    fig = new_figure((fig_w, fig_h), dpi=DPI)
    ax = fig.add_axes((left / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))
    _place_pixels(fig, mosaic, (left, bottom, img_w, img_h))
    # The axes keep imshow's data coordinates (pixel centres at integers) for the titles below.
    ax.set_xlim(-0.5, mosaic.shape[1] - 0.5)
    ax.set_ylim(mosaic.shape[0] - 0.5, -0.5)
    ax.set_aspect(aspect)
    ax.set_axis_off()
    h, w = cell_shape
    for r, text in enumerate(row_titles):
        ax.text(-GAP_PX, r * (h + GAP_PX) + h / 2, text, rotation=90, ha="right", va="center", fontsize=9)
    for c, text in enumerate(col_titles):
        ax.text(c * (w + GAP_PX) + w / 2, -GAP_PX, text, ha="center", va="bottom", fontsize=8)
    _orientation_letters(ax, len(row_titles), 1, cell_shape, plane)
    fig.text(0.5, 1 - 0.12 / fig_h, title, ha="center", va="top", fontsize=10)
    for r, (cmap, norm, unit) in enumerate(colorbars or ()):
        row_top = 1 - r * (h + GAP_PX) / mosaic.shape[0]  # in axes fraction, from the top
        band = h / mosaic.shape[0]
        _colour_bar(fig, cmap, norm, unit, (left + img_w + 0.08, bottom + img_h * (row_top - band * 0.95), 0.1,
                                            img_h * band * 0.9))
    if legend:
        handles = [Patch(color=CLASS_COLORS[c], label=f"{c}: {CLASS_LONG_NAMES[c]}") for c in TUMOUR_CLASSES]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    return fig


BAR_FONT_PT = 7
BAR_TICK_IN = 0.05  # tick mark length, and the gap between a tick mark and its label
_BAR_STEPS = (1, 2, 2.5, 5, 10)  # matplotlib's AutoLocator steps: the same "nice" tick values as a colorbar


def _colour_bar(fig, cmap, norm: Normalize, unit: str, box_in: tuple[float, float, float, float]) -> None:
    """A vertical colour bar in ``box_in`` (left, bottom, width, height, inches): the colour map over white as
    placed pixels, a frame, tick marks with labels and the unit.  A matplotlib colorbar is an axes with its own
    tick machinery: a third of a map figure's drawing time."""
    left, bottom, width, height = box_in
    rgba = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), float)[::-1]  # the first row is the top
    strip = np.full((len(rgba), 1, 4), 255, np.uint8)
    strip[:, 0, :3] = np.round((rgba[:, :3] * rgba[:, 3:] + 1.0 - rgba[:, 3:]) * 255)  # over white, as in an axes
    _place_pixels(fig, strip, box_in)
    inches = fig.dpi_scale_trans
    fig.add_artist(Rectangle((left, bottom), width, height, transform=inches, fill=False, linewidth=0.8,
                             edgecolor="black"))
    lo, hi = float(norm.vmin), float(norm.vmax)
    n_bins = min(max(1, int(height * 72 // (2 * BAR_FONT_PT))), 9)  # matplotlib's 'auto': two font heights a tick
    ticks = MaxNLocator(nbins=n_bins, steps=_BAR_STEPS).tick_values(lo, hi)
    ticks = ticks[(ticks >= lo - 1e-9 * (hi - lo)) & (ticks <= hi + 1e-9 * (hi - lo))]
    labels = _tick_labels(ticks)
    right = left + width
    for value, text in zip(ticks, labels):
        y = bottom + height * (value - lo) / (hi - lo)
        fig.add_artist(Line2D((right, right + BAR_TICK_IN), (y, y), transform=inches, linewidth=0.8, color="black"))
        fig.text(right + 2 * BAR_TICK_IN, y, text, transform=inches, ha="left", va="center", fontsize=BAR_FONT_PT)
    widest = max((len(t) for t in labels), default=1) * BAR_FONT_PT * 0.6 / 72  # a digit is about 0.6 em wide
    fig.text(right + 3 * BAR_TICK_IN + widest, bottom + height / 2, unit, transform=inches, rotation=90,
             ha="left", va="center", fontsize=BAR_FONT_PT)


def _tick_labels(ticks: np.ndarray) -> list[str]:
    """Tick values with the decimals their spacing needs (0, 0.5, 1 / 0.000, 0.025, 0.050), as a colorbar's."""
    if len(ticks) < 2:
        return [f"{v:g}" for v in ticks]
    step = float(np.min(np.diff(ticks)))
    decimals = 0
    while decimals < 8 and not np.allclose(np.round(ticks, decimals), ticks, rtol=0, atol=step * 1e-6):
        decimals += 1
    return [f"{v:.{decimals}f}" for v in ticks]


_LETTER_STYLE = {"fontsize": 6, "color": "0.85", "fontweight": "bold"}  # grey: no class colour in a sequence row


def _orientation_letters(ax, n_rows: int, n_cols: int, cell_shape: tuple[int, int], plane: str) -> None:
    """R/L, A/P or S/I at the middle of each panel's edges, as a radiology viewer shows them."""
    h, w = cell_shape
    left, right, top, bottom = PLANE_LETTERS[plane]
    for r in range(n_rows):
        for c in range(n_cols):
            x0, y0 = c * (w + GAP_PX), r * (h + GAP_PX)
            inset = 0.03 * min(h, w)
            ax.text(x0 + inset, y0 + h / 2, left, ha="left", va="center", **_LETTER_STYLE)
            ax.text(x0 + w - 1 - inset, y0 + h / 2, right, ha="right", va="center", **_LETTER_STYLE)
            ax.text(x0 + w / 2, y0 + inset, top, ha="center", va="top", **_LETTER_STYLE)
            ax.text(x0 + w / 2, y0 + h - 1 - inset, bottom, ha="center", va="bottom", **_LETTER_STYLE)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": 1})  # zlib level 6 would triple the time
    return path


def overview_figures(images: dict[str, np.ndarray], pred_classes: np.ndarray, affine: np.ndarray, paths: dict,
                     gt_classes: np.ndarray | None = None, n_slices: int = 5) -> list[Path]:
    """:func:`overview_figure` for several planes at once, ``paths`` = {plane: path}; the volumes are
    reoriented, windowed and searched for the tumour once for all planes."""
    # A missing sequence arrives as zeros: it gets no row rather than a row of black panels.
    ras = {k: to_ras(v, affine)[0] for k, v in images.items() if np.any(v)} or \
        {k: to_ras(v, affine)[0] for k, v in images.items()}
    pred, spacing = to_ras(pred_classes, affine)
    gt = None if gt_classes is None else to_ras(gt_classes, affine)[0]
    tumour = pred > 0 if gt is None else (gt > 0) | (pred > 0)
    brain = None if tumour.any() else np.any([v != 0 for v in ras.values()], axis=0)  # only a fallback
    background = ras.get("flair", next(iter(ras.values())))
    rows = [(title, ras[key], None) for key, title in SEQUENCE_ROWS if key in ras]
    if gt is not None:
        rows.append(("Ground truth", background, gt))
    rows.append(("Prediction", background, pred))
    windows = {id(vol): _window(vol) for _, vol, _ in rows}
    written = []
    for plane, path in paths.items():
        slices = choose_slices(tumour, n_slices, plane=plane, fallback=brain)
        cells = []
        for _, volume, labels in rows:
            row = []
            for index in slices:
                rgb = _grey(_slice(volume, plane, index), windows[id(volume)])
                if labels is not None:
                    rgb = _over(rgb, _labels_rgba(_slice(labels, plane, index)))
                row.append(rgb)
            cells.append(row)
        fig = _figure(_mosaic(cells), cells[0][0].shape[:2], _aspect(spacing, plane), legend=True, plane=plane,
                      title=f"{plane.capitalize()} slices ({_VIEW_NOTE[plane]})", row_titles=[r[0] for r in rows],
                      col_titles=[slice_label(affine, pred.shape, plane, i) for i in slices])
        written.append(_save(fig, path))
    return written


def overview_figure(images: dict[str, np.ndarray], pred_classes: np.ndarray, affine: np.ndarray, path,
                    gt_classes: np.ndarray | None = None, plane: str = "axial", n_slices: int = 5) -> Path:
    """Columns = slices through the tumour; rows = T1ce, FLAIR, T2, [ground truth], prediction
    (labels over FLAIR, or the first sequence given)."""
    return overview_figures(images, pred_classes, affine, {plane: path}, gt_classes, n_slices)[0]


#: Values below this fraction of a map's maximum do not set its colour scale (see ``_top``).
TOP_FLOOR = 0.05
TOP_PERCENTILE = 99.0


def _top(volume: np.ndarray, vmin: float) -> float:
    """Top of a map's colour scale: the 99th percentile of the voxels above 5 % of the map's
    maximum (above ``vmin``).  Uncertainty maps are near zero over most of the brain; a
    percentile of all non-zero voxels would be set by those and saturate every informative
    voxel, while this ignores them and still lets a few extreme voxels clip."""
    volume = np.asarray(volume)
    peak = float(volume.max()) if volume.size else vmin
    if not np.isfinite(peak) or peak <= vmin:
        return vmin + 1.0
    informative = volume[volume > vmin + TOP_FLOOR * (peak - vmin)]
    return float(max(np.percentile(informative, TOP_PERCENTILE), vmin + 1e-6))


def map_figures(background: np.ndarray, maps: dict[str, np.ndarray], affine: np.ndarray, paths: dict, *,
                title: str, style: MapStyle = PROBABILITY, styles: dict[str, MapStyle] | None = None,
                vmin: float = 0.0, focus: np.ndarray | None = None, slices: list[int] | None = None,
                cmap: str | None = None, vmax: float | None = None, unit: str | None = None,
                note: str | None = None) -> list[Path]:
    """:func:`map_figure` for several planes at once, ``paths`` = {plane: path}; the maps are
    reoriented and their colour scales computed once, so the planes share each map's scale.
    Each row is drawn in ``styles[name]``, else ``style`` (colour map, unit, top of the scale) with
    ``cmap``, ``vmax`` and ``unit`` replacing its own where given; ``note`` ends the title."""
    if cmap is not None or vmax is not None or unit is not None:
        style = MapStyle(cmap or style.cmap, style.unit if unit is None else unit, vmax, style.start, style.stop)
    bg, spacing = to_ras(background, affine)
    ras_maps = {k: to_ras(v, affine)[0] for k, v in maps.items()}
    ras_focus = to_ras(focus, affine)[0] if focus is not None else next(iter(ras_maps.values())) > vmin
    row_styles = [(styles or {}).get(name, style) for name in ras_maps]
    bars = [(overlay_cmap(st), Normalize(vmin, st.vmax if st.vmax is not None else _top(volume, vmin)), st.unit)
            for st, volume in zip(row_styles, ras_maps.values())]
    window = _window(bg)
    fallback = None if slices is not None or ras_focus.any() else bg != 0  # only when the focus is empty
    written = []
    for plane, path in paths.items():
        chosen = slices if slices is not None else choose_slices(ras_focus, 5, plane=plane, fallback=fallback)
        greys = [_grey(_slice(bg, plane, i), window) for i in chosen]
        cells = [[_over(g, _map_rgba(_slice(volume, plane, i), cmap, norm)) for g, i in zip(greys, chosen)]
                 for volume, (cmap, norm, _) in zip(ras_maps.values(), bars)]
        fig = _figure(_mosaic(cells), greys[0].shape[:2], _aspect(spacing, plane), plane=plane,
                      title=f"{title}: {plane} slices ({_VIEW_NOTE[plane]})" + (f". {note}" if note else ""),
                      row_titles=[row_words(name) for name in ras_maps],
                      col_titles=[slice_label(affine, bg.shape, plane, i) for i in chosen], colorbars=bars)
        written.append(_save(fig, path))
    return written


def map_figure(background: np.ndarray, maps: dict[str, np.ndarray], affine: np.ndarray, path, *, title: str,
               style: MapStyle = PROBABILITY, styles: dict[str, MapStyle] | None = None, vmin: float = 0.0,
               plane: str = "axial", slices: list[int] | None = None, focus: np.ndarray | None = None) -> Path:
    """One row per map (e.g. per class) overlaid on ``background`` (FLAIR), each with its own
    colour bar (``vmin`` to the style's top, else to :func:`_top`); slices through ``focus`` (e.g. the
    predicted tumour) unless given."""
    return map_figures(background, maps, affine, {plane: path}, title=title, style=style, styles=styles, vmin=vmin,
                       focus=focus, slices=slices)[0]


def plane_file_name(name: str, plane: str) -> str:
    """``name`` for the axial plane (the historical file names), ``<stem>_<plane>.png`` otherwise."""
    return name if plane == "axial" else f"{Path(name).stem}_{plane}{Path(name).suffix}"


#: The kinds of figure ``write_all_figures`` draws, in its order.
FIGURE_KINDS = ("overview", "probabilities", "uncertainty", "gradcam")


def write_all_figures(out_dir, case_images: dict[str, np.ndarray], pred_classes: np.ndarray,
                      prob_maps: dict[str, np.ndarray], variance_maps: dict[str, np.ndarray],
                      gradcam_maps: dict[str, np.ndarray], affine: np.ndarray,
                      gt_classes: np.ndarray | None = None, gradcam_note: str | None = None,
                      kinds=FIGURE_KINDS) -> list[Path]:
    """overview_{axial,coronal,sagittal}.png, then probabilities, uncertainty (variance per class,
    plus entropy when ``variance_maps`` has it) and gradcam, each when it has data and each on
    the three planes: ``probabilities.png`` (axial), ``probabilities_coronal.png``,
    ``probabilities_sagittal.png``, and likewise for the others.  ``gradcam_note`` ends the Grad-CAM title (how
    near each map lies to its class's call).  ``kinds``: only these of ``FIGURE_KINDS`` (the figures of one
    lane when they are drawn in several processes)."""
    out_dir = Path(out_dir)
    present = {k: v for k, v in case_images.items() if np.any(v)} or case_images  # a missing sequence is zeros
    flair = present.get("flair", next(iter(present.values())))
    tumour = np.asarray(pred_classes) > 0
    paths = []
    if "overview" in kinds:
        paths += overview_figures(case_images, pred_classes, affine,
                                  {p: out_dir / f"overview_{p}.png" for p in PLANES}, gt_classes)
    panels = (("probabilities.png", prob_maps, "Probability of each class (mean of the MC Dropout samples)",
               PROBABILITY),
              ("uncertainty.png", variance_maps, "Uncertainty: MC Dropout variance per class, and predictive entropy",
               VARIANCE),
              ("gradcam.png", gradcam_maps, "Grad-CAM 3D: where this network's output favours each class "
                                            "(an attribution, not proof of tumour)", GRADCAM))
    for name, maps, title, style in panels:
        if maps and Path(name).stem in kinds:
            paths += map_figures(flair, maps, affine, {p: out_dir / plane_file_name(name, p) for p in PLANES},
                                 title=title, style=style, styles={"entropy": ENTROPY}, focus=tumour,
                                 note=gradcam_note if name == "gradcam.png" else None)
    return paths
