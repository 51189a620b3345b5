"""Figures: written, valid, oriented by the header like Slicer's views, class colours visible."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from BrainTumorXAILib.reporting import figures
from BrainTumorXAILib.reporting.figures import _aspect, _slice, choose_slices, map_figure, overview_figure, to_ras, write_all_figures
from BrainTumorXAILib.io.labels import CLASS_COLORS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LPS = np.diag([-1.2, -1.2, 2.0, 1.0])


def toy_case(shape=(40, 44, 30)):
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, bool)
    brain[5:35, 5:39, 4:26] = True
    images = {k: np.where(brain, rng.uniform(100, 200, shape), 0.0) for k in ("t1ce", "flair", "t2")}
    classes = np.zeros(shape, np.uint8)
    classes[12:26, 14:30, 8:20] = 2
    classes[15:23, 18:26, 11:17] = 3
    classes[17:21, 20:24, 12:16] = 1
    return images, classes


def class_pixels(rgb, name):
    """Pixels of ``name``'s colour blended at 60 % over any grey (its dominant channels
    stand out by >= 0.6 x their gap in CLASS_COLORS)."""
    c = np.array(CLASS_COLORS[name])
    order = np.argsort(c)[::-1]
    top, mid, low = (rgb[..., i] for i in order)
    need_mid = 0.6 * (c[order[1]] - c[order[2]]) * 0.8 if c[order[1]] - c[order[2]] > 0.3 else -1
    need_top = 0.6 * (c[order[0]] - c[order[1]]) * 0.8
    mask = (top - mid > need_top) & (top - low > 0.25)
    return mask & (mid - low > need_mid) if need_mid > 0 else mask


def row_bands(path, n_rows):
    """The image's rows of panels, cut from the PNG using the figure's fixed margins."""
    rgb = mpimg.imread(path)[..., :3]
    top = int(0.55 * figures.DPI)
    bottom = rgb.shape[0] - int(0.45 * figures.DPI)
    edges = np.linspace(top, bottom, n_rows + 1).astype(int)
    return [rgb[a + 3:b - 3] for a, b in zip(edges[:-1], edges[1:])]


def test_all_figures_written_as_valid_png(tmp_path):
    images, classes = toy_case()
    probs = {c: (classes == i + 1).astype(float) for i, c in enumerate(("NCR", "ED", "ET"))}
    variance = {"ET": probs["ET"] * 0.2, "entropy": probs["ED"]}
    paths = write_all_figures(tmp_path, images, classes, probs, variance, {"ET": probs["ET"]}, LPS, gt_classes=classes)
    maps = [f"{name}{suffix}.png" for name in ("probabilities", "uncertainty", "gradcam")
            for suffix in ("", "_coronal", "_sagittal")]  # axial keeps the plain name
    assert [p.name for p in paths] == ["overview_axial.png", "overview_coronal.png", "overview_sagittal.png", *maps]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width = mpimg.imread(path).shape[:2]
        assert 300 < height < 3000 and 600 < width < 3000
    for name in ("probabilities", "uncertainty", "gradcam"):  # each plane draws its own slices
        axial, coronal, sagittal = (mpimg.imread(tmp_path / f"{name}{s}.png") for s in ("", "_coronal", "_sagittal"))
        assert axial.shape != coronal.shape or not np.array_equal(axial, coronal)
        assert coronal.shape != sagittal.shape or not np.array_equal(coronal, sagittal)
    assert [p.name for p in write_all_figures(tmp_path / "bare", images, classes, {}, {}, {}, LPS)] == \
        ["overview_axial.png", "overview_coronal.png", "overview_sagittal.png"]


@pytest.mark.parametrize("plane", figures.PLANES)
def test_class_colours_only_in_the_label_rows(tmp_path, plane):
    images, classes = toy_case()
    path = overview_figure(images, classes, LPS, tmp_path / "o.png", gt_classes=classes, plane=plane)
    bands = row_bands(path, 5)  # T1ce, FLAIR, T2, ground truth, prediction
    for name in ("NCR", "ED", "ET"):
        counts = [np.count_nonzero(class_pixels(b, name)) for b in bands]
        assert counts[3] > 30 and counts[4] > 30, (name, counts)
        assert max(counts[:3]) == 0, (name, counts)


def test_flipped_or_permuted_header_draws_the_same_picture(tmp_path):
    """The same head stored as LPS, as RAS (axes flipped) and with permuted axes."""
    images, classes = toy_case()
    ras_affine = np.diag([1.2, 1.2, 2.0, 1.0])
    permuted_affine = np.array([[0, 0, 1.2, 0], [0, 1.2, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1.0]])
    variants = {
        "lps": (lambda a: a, LPS),
        "ras": (lambda a: a[::-1, ::-1, :], ras_affine),
        "permuted": (lambda a: a[::-1, ::-1, :].transpose(2, 1, 0), permuted_affine),
    }
    drawn = {}
    for name, (store, affine) in variants.items():
        for plane in figures.PLANES:
            p = overview_figure({k: store(v) for k, v in images.items()}, store(classes), affine,
                                tmp_path / f"{name}_{plane}.png", plane=plane)
            drawn[name, plane] = mpimg.imread(p)
        m = map_figure(store(images["flair"]), {"ED": store((classes == 2).astype(float))}, affine,
                       tmp_path / f"{name}_map.png", title="t")
        drawn[name, "map"] = mpimg.imread(m)
    below_titles = int(0.55 * figures.DPI)  # the column titles name each file's own slice index and position
    for key in ("axial", "coronal", "sagittal", "map"):
        np.testing.assert_array_equal(drawn["lps", key][below_titles:], drawn["ras", key][below_titles:])
        np.testing.assert_array_equal(drawn["lps", key][below_titles:], drawn["permuted", key][below_titles:])


# Slicer's default views (vtkMRMLSliceNode::Get{Axial,Coronal,Sagittal}SliceToRASMatrix):
# screen-right is -R (axial, coronal) or -A (sagittal); screen-up is +A (axial) or +S.
@pytest.mark.parametrize("plane, right_axis, up_axis", [("axial", 0, 1), ("coronal", 0, 2), ("sagittal", 1, 2)])
def test_views_match_slicer(plane, right_axis, up_axis):
    index = {"axial": 2, "coronal": 1, "sagittal": 0}[plane]
    vol = np.zeros((10, 10, 10))
    pos = [5, 5, 5]
    pos[right_axis], pos[up_axis] = 8, 8  # towards the patient's right/anterior and up
    vol[tuple(pos)] = 1
    row, col = np.argwhere(_slice(vol, plane, pos[index]))[0]
    assert col < 5 and row < 5  # viewer's left, top


def test_aspect_follows_the_spacing():
    _, spacing = to_ras(np.zeros((4, 4, 4)), LPS)
    np.testing.assert_allclose(spacing, [1.2, 1.2, 2.0])
    assert _aspect(spacing, "axial") == pytest.approx(1.0)
    assert _aspect(spacing, "coronal") == pytest.approx(2.0 / 1.2)


def test_choose_slices_spread_over_the_tumour_else_the_brain():
    images, classes = toy_case()
    ras, _ = to_ras(classes, np.eye(4))
    slices = choose_slices(ras > 0, 5)
    assert len(slices) == 5 and min(slices) > 8 and max(slices) < 19
    assert all(b > a for a, b in zip(slices, slices[1:]))
    brain = images["flair"] > 0
    fallback = choose_slices(np.zeros_like(brain), 3, plane="coronal", fallback=brain)
    assert min(fallback) > 5 and max(fallback) < 38
    tiny = choose_slices(np.zeros((4, 4, 4)), 5)  # nothing anywhere: the whole volume, deduplicated
    assert 0 < len(tiny) <= 4 and set(tiny) <= {0, 1, 2, 3}


def small_hot_spot_map(shape=(40, 44, 30)):
    """Uncertainty-like map: tiny values over the whole brain, 48 voxels (0.2 % of it) up to 0.2."""
    images, classes = toy_case(shape)
    rng = np.random.default_rng(1)
    brain = images["flair"] > 0
    volume = np.where(brain, rng.uniform(1e-6, 1e-3, shape), 0.0)
    volume[18:22, 20:24, 13:16] = rng.uniform(0.1, 0.2, (4, 4, 3))
    return images, classes, volume


def test_colour_scale_top_shows_the_informative_voxels():
    _, _, volume = small_hot_spot_map()
    top = figures._top(volume, 0.0)
    assert 0.5 * volume.max() <= top <= volume.max()
    assert figures._top(np.zeros((4, 4, 4)), 0.0) == 1.0  # an empty map still gets a scale
    one = np.zeros((4, 4, 4))
    one[1, 1, 1] = 0.3
    assert figures._top(one, 0.0) == pytest.approx(0.3)


def test_uncertainty_colour_bars_reach_the_hot_spot(tmp_path, monkeypatch):
    images, classes, volume = small_hot_spot_map()
    bars = []
    draw = figures._figure

    def spy(*args, **kwargs):
        bars.append(kwargs.get("colorbars"))
        return draw(*args, **kwargs)

    monkeypatch.setattr(figures, "_figure", spy)
    write_all_figures(tmp_path, images, classes, {}, {"NCR": volume, "entropy": volume * 5}, {}, LPS)
    map_bars = [b for b in bars if b]
    assert len(map_bars) == len(figures.PLANES)  # one uncertainty figure per plane, sharing the scales
    for row in map_bars:
        (_, ncr, ncr_unit), (_, entropy, entropy_unit) = row
        assert ncr.vmin == 0.0 and ncr.vmax >= 0.5 * volume.max()
        assert entropy.vmax >= 0.5 * 5 * volume.max()
        assert "variance" in ncr_unit and "nats" in entropy_unit


@pytest.mark.parametrize("shape, box", [((50, 70), (0.3, 0.1, 5.4, 3.857)), ((242 * 3, 242 * 5), (0.3, 0.45, 9.0, 5.4)),
                                        ((61, 33), (0.37, 0.21, 3.3, 6.1))])
def test_placed_pixels_match_imshow_nearest(shape, box):
    """The mosaic is resampled once to device pixels as imshow's nearest interpolation would on every draw
    (random pixels: a row or column sampled differently would show; (726, 1210) has centres on voxel edges)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    mosaic = np.full((*shape, 4), 255, np.uint8)
    mosaic[..., :3] = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    size = (box[0] + box[2] + 0.2, box[1] + box[3] + 0.3)
    drawn = []
    for place in (True, False):
        fig = plt.figure(figsize=size, dpi=figures.DPI)
        ax = fig.add_axes((box[0] / size[0], box[1] / size[1], box[2] / size[0], box[3] / size[1]))
        if place:
            figures._place_pixels(fig, mosaic, box)
        else:
            ax.imshow(mosaic[..., :3], aspect=box[3] * shape[1] / (box[2] * shape[0]), interpolation="nearest")
        ax.set_axis_off()
        fig.canvas.draw()
        drawn.append(np.asarray(fig.canvas.buffer_rgba()).copy())
        plt.close(fig)
    assert np.mean(np.any(drawn[0] != drawn[1], axis=-1)) < 1e-4  # (61, 33): one pixel at the box corner


def test_a_long_title_wraps_inside_the_figure(tmp_path):
    """The Grad-CAM title is longer than a figure is wide: it must wrap, not run off both edges."""
    images, classes = toy_case()
    title = ("Grad-CAM 3D: where this network's output favours each class (an attribution, not proof of tumour): "
             "axial slices (radiological: patient's right on the left)")
    path = map_figure(images["flair"], {"ED": (classes == 2).astype(float)}, LPS, tmp_path / "long.png", title=title)
    rgb = mpimg.imread(path)[..., :3]
    band = rgb[: int(0.3 * figures.DPI)]  # the title's first line
    ink = band.min(axis=2) < 0.5
    assert ink.any()
    margin = int(0.05 * figures.DPI)
    assert not ink[:, :margin].any() and not ink[:, -margin:].any()


def test_colour_bar_labels_use_the_decimals_their_spacing_needs():
    assert figures._tick_labels(np.array([0.0, 0.02, 0.04, 0.06, 0.08])) == ["0.00", "0.02", "0.04", "0.06", "0.08"]
    assert figures._tick_labels(np.array([0.0, 0.5, 1.0])) == ["0.0", "0.5", "1.0"]
    assert figures._tick_labels(np.array([0.0, 0.025, 0.05])) == ["0.000", "0.025", "0.050"]
    assert figures._tick_labels(np.array([0.0, 2.0, 4.0])) == ["0", "2", "4"]


def test_colour_bar_draws_the_colour_map_over_white_with_ticks_inside_its_range():
    """The bar's pixels are the overlay colour map composited over white, bottom (transparent: white) to top (the
    map's top colour), and its tick labels are the nice values inside the scale."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    from BrainTumorXAILib.reporting.figure_style import VARIANCE, overlay_cmap

    cmap, box = overlay_cmap(VARIANCE), (0.5, 0.5, 0.3, 1.0)
    fig = plt.figure(figsize=(2.0, 2.0), dpi=figures.DPI)
    figures._colour_bar(fig, cmap, Normalize(0.0, 0.083), "variance", box)
    labels = [t.get_text() for t in fig.texts]
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    plt.close(fig)
    assert labels == ["0.00", "0.02", "0.04", "0.06", "0.08", "variance"]
    x = int((box[0] + box[2] / 2) * figures.DPI)
    top_row = int((2.0 - box[1] - box[3]) * figures.DPI) + 3  # image rows run top to bottom
    bottom_row = int((2.0 - box[1]) * figures.DPI) - 3
    top = np.asarray(cmap(1.0 - 3.5 / (box[3] * figures.DPI)))  # the colour 3 pixels below the top edge
    assert rgb[top_row, x] == pytest.approx(top[:3] * top[3] + 1 - top[3], abs=0.02)
    assert rgb[bottom_row, x] == pytest.approx([1.0, 1.0, 1.0], abs=0.02)
