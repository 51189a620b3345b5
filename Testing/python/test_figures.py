"""Figures: written, valid, oriented by the header, class colours visible."""

import matplotlib.image as mpimg
import numpy as np

from BrainTumorXAILib.figures import _slice, choose_slices, overview_figure, to_ras, write_all_figures
from BrainTumorXAILib.labels import CLASS_COLORS


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


def test_all_figures_written_as_png_with_class_colours(tmp_path):
    images, classes = toy_case()
    affine = np.diag([-1.2, -1.2, 2.0, 1.0])
    probs = {c: (classes == i + 1).astype(float) for i, c in enumerate(("NCR", "ED", "ET"))}
    paths = write_all_figures(tmp_path, images, classes, probs, {"ET": probs["ET"] * 0.2, "entropy": probs["ED"]},
                              {"ET": probs["ET"]}, affine, gt_classes=classes)
    names = {p.name for p in paths}
    assert names == {"overview_axial.png", "overview_coronal.png", "overview_sagittal.png", "probabilities.png",
                     "uncertainty.png", "gradcam.png"}
    pixels = mpimg.imread(tmp_path / "overview_axial.png")[..., :3]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    # Edema's green is blended at 60 % over grey: look for pixels clearly green-dominated.
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    assert np.count_nonzero((g > r + 0.15) & (g > b + 0.15)) > 50
    assert CLASS_COLORS["ED"][1] > CLASS_COLORS["ED"][0]


def test_flipped_header_shows_the_same_picture():
    images, classes = toy_case()
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    ras = np.diag([1.0, 1.0, 1.0, 1.0])
    flipped = classes[::-1, ::-1, :]  # the same head stored with RAS axes
    a, _ = to_ras(classes, lps)
    b, _ = to_ras(flipped, ras)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_slice(a, "axial", 14), _slice(b, "axial", 14))


def test_radiological_convention_puts_patient_right_on_viewer_left():
    vol = np.zeros((10, 10, 10))
    vol[8, 5, 5] = 1  # high x in RAS = patient's right
    img = _slice(vol, "axial", 5)
    assert np.argwhere(img)[0][1] < 5


def test_choose_slices_spread_over_the_tumour(tmp_path):
    _, classes = toy_case()
    ras, _ = to_ras(classes, np.eye(4))
    slices = choose_slices(ras > 0, "axial", 5)
    assert len(slices) == 5 and min(slices) >= 8 and max(slices) < 20
    path = overview_figure(toy_case()[0], classes, np.eye(4), tmp_path / "o.png", plane="coronal")
    assert path.stat().st_size > 10_000
