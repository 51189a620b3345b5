"""Figures as a reader sees them: near-zero map values leave the anatomy untouched, a missing sequence draws no
row, a bright lesion is not windowed to white, slice positions come from the header, tiny review regions get no
panel of their own."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from BrainTumorXAILib.reporting import figures
from BrainTumorXAILib.reporting.figure_style import underlay_window, slice_label
from BrainTumorXAILib.reporting.trust_figures import panel_regions
from test_figures import LPS, toy_case


def _panels(path, n_cols: int, top_in: float = 0.55, bottom_in: float = 0.1) -> list[np.ndarray]:
    """The columns of panels of a one-row map figure (colour bars and titles cut away)."""
    rgb = mpimg.imread(path)[..., :3]
    dpi = figures.DPI
    left = int(0.3 * dpi)
    width = figures.CELL_IN * dpi
    rows = rgb[int(top_in * dpi) + 2:rgb.shape[0] - int(bottom_in * dpi) - 2]
    return [rows[:, left + int(c * width) + 3:left + int((c + 1) * width) - 3] for c in range(n_cols)]


def test_near_zero_map_values_draw_nothing(tmp_path):
    images, _ = toy_case()
    brain = images["flair"] > 0
    volume = np.where(brain, 0.05, 0.0)  # a faint wash over the whole brain: 5 % of the scale
    volume[15:25, 18:28, 14:18] = 1.0  # and one hot spot, on axial slices 14-17
    path = figures.map_figure(images["flair"], {"ED": volume}, LPS, tmp_path / "m.png", title="t",
                              style=figures.PROBABILITY, slices=[6, 15])
    quiet, hot = _panels(path, 2)
    spread = lambda p: np.abs(p - p.mean(axis=-1, keepdims=True)).max(axis=-1)  # 0 on a grey pixel
    assert spread(quiet).max() < 0.02  # anatomy only: the wash is not drawn
    assert (spread(hot) > 0.2).sum() > 50  # the hot spot is


def test_missing_sequence_gets_no_row(tmp_path, monkeypatch):
    images, classes = toy_case()
    rows = []
    draw = figures._figure

    def spy(*args, **kwargs):
        rows.append(kwargs["row_titles"])
        return draw(*args, **kwargs)

    monkeypatch.setattr(figures, "_figure", spy)
    full = figures.overview_figure(images, classes, LPS, tmp_path / "full.png")
    without_t2 = figures.overview_figure({**images, "t2": np.zeros_like(images["t2"])}, classes, LPS,
                                         tmp_path / "no_t2.png")
    assert rows == [["T1ce", "FLAIR", "T2", "Prediction"], ["T1ce", "FLAIR", "Prediction"]]
    assert mpimg.imread(without_t2).shape[0] < mpimg.imread(full).shape[0]


def test_bright_lesion_is_not_windowed_to_white():
    rng = np.random.default_rng(0)
    volume = np.full((60, 60, 40), 7.0)  # a constant, non-zero background (as some archives store it)
    volume[5:55, 5:55, 5:35] = rng.uniform(100, 200, (50, 50, 30))
    volume[20:26, 20:26, 15:19] = 400.0  # a FLAIR lesion, 0.2 % of the head
    lo, hi = underlay_window(volume)
    assert 100 <= lo < 110 and hi >= 400  # the background sets neither end; the lesion is inside the window


def test_slice_label_gives_the_world_position_and_the_file_slice():
    affine = LPS.copy()
    affine[:3, 3] = (30.0, 40.0, -20.0)
    shape = (40, 44, 30)
    ras, _ = figures.to_ras(np.zeros(shape), affine)
    # axial slice 10 of the RAS array is file slice 10 (S is not flipped): S = -20 + 2 * 10
    assert slice_label(affine, ras.shape, "axial", 10) == "S 0 mm (slice 10)"
    # sagittal slice 0 of the RAS array is the file's last x slice (the file runs right to left)
    assert slice_label(affine, ras.shape, "sagittal", 0) == f"R {30 - 1.2 * 39:.0f} mm (slice 39)"


def test_tiny_review_regions_get_no_panel():
    regions = [{"rank": i + 1, "volume_ml": v} for i, v in enumerate((2.5, 0.4, 0.2, 0.13, 0.07))]
    assert [r["rank"] for r in panel_regions(regions)] == [1, 2]
    assert [r["rank"] for r in panel_regions(regions[2:])] == [3]  # the first-ranked region is always drawn
    assert panel_regions([]) == []
