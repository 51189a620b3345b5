"""``analyze_case`` end to end on flipped and oblique headers: the *content* of every written file, voxel by
voxel, against values known in advance.

The case is an intensity ramp in world coordinates inside an ellipsoid brain; the network is hand-built
(``handmade_models.linear_unet``): its logits are a known function of the FLAIR value and of its central
difference along the network's first axis (which points Left).  That difference depends on orientation,
so a network that saw the case un-reoriented would produce other values, and a map written flipped, or
under another class's name, lands on voxels where another value is expected.  The metrics in
summary.json are recomputed from the written files.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel import orientations as nio

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.io.labels import CLASS_NAMES, SEQUENCES, to_internal
from BrainTumorXAILib.models.checkpoint import save_checkpoint
from BrainTumorXAILib.models.dropout import draw_masks
from BrainTumorXAILib.reporting.metrics import dice, voxel_volume_cm3

import handmade_models as hm
from nifti_factory import make_case, oblique_affine, phantom, world_ramp

SHAPE = (20, 22, 18)
FLAIR = SEQUENCES.index("flair")
# rows: background, NCR, ED, ET over features (L(z), L(-z), L(d), L(-d)); d weighs strongly (orientation).
HEAD_W = [[0, 0, 0, 0], [-3.0, 3.0, -6.0, 6.0], [0.5, -0.5, 0, 0], [3.0, -3.0, 6.0, -6.0]]
HEAD_B = [0.0, -1.5, 0.8, -2.0]
P, N_SAMPLES, SEED = 0.3, 6, 3
COEFFS = {"t1": (0.3, 0.5, -0.2), "t1ce": (-0.4, 0.2, 0.6), "t2": (0.1, -0.6, 0.3), "flair": (1.1, -0.35, 0.25)}

#: Axes permuted and flipped (S, R, P), anisotropic: reorientation to L, P, S is a real permutation.
PERMUTED_AFFINE = np.array([[0.0, 1.5, 0.0, -14.0], [0.0, 0.0, -1.2, 12.0], [2.0, 0.0, 0.0, -17.0], [0, 0, 0, 1]])
GEOMETRIES = {"permuted_flipped": PERMUTED_AFFINE, "oblique": oblique_affine()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = hm.linear_unet(HEAD_W, HEAD_B, channel=FLAIR, gradient_axis=0, dropout=P)
    path = tmp_path_factory.mktemp("handmade") / "linear.pt"
    save_checkpoint(path, model, normalisation={"method": "zscore", "crop": "brain", "spacing": None,
                                                "window": 64, "multiple_of": 16},
                    provenance={"note": "hand-built: logits are a known function of FLAIR"})
    return path, model


def ramp_case(root, affine):
    _, classes = phantom(SHAPE)
    images, _ = phantom(SHAPE)
    brain = images["t1"] != 0
    arrays = {s: (np.where(brain, world_ramp(SHAPE, affine, COEFFS[s], offset=500.0), 0).astype(np.float32), None)
              for s in SEQUENCES}
    return make_case(root, shape=SHAPE, affine=affine, replace=arrays), brain, arrays, classes


def expected_maps(flair: np.ndarray, brain: np.ndarray, affine: np.ndarray, model) -> dict:
    """Every output on the case grid, from the formula alone."""
    values = flair[brain].astype(np.float64)
    z = np.where(brain, (flair - values.mean()) / values.std(), 0.0)
    # Network axis 0 points Left: the case axis that runs along x, walked towards L.
    codes = nio.ornt2axcodes(nio.io_orientation(affine))
    axis = next(j for j, c in enumerate(codes) if c in ("L", "R"))
    step = 1 if codes[axis] == "L" else -1
    padded = np.pad(z, 1)
    inner = tuple(slice(1, -1) for _ in range(3))
    fwd, bwd = list(inner), list(inner)
    fwd[axis], bwd[axis] = slice(1 + step, padded.shape[axis] - 1 + step), slice(1 - step, padded.shape[axis] - 1 - step)
    d = 0.5 * (padded[tuple(fwd)] - padded[tuple(bwd)])
    f = hm.features(z, d, hm.norm_scale(model))
    keep = hm.decoder_keep_masks(model, draw_masks(model, N_SAMPLES, torch.Generator().manual_seed(SEED)))
    stats = hm.mc_statistics(f, HEAD_W, HEAD_B, keep, P)
    out = {"prob": stats["mean"], "variance": stats["variance"], "entropy": stats["entropy"],
           "mutual_information": stats["mutual_information"]}
    full = hm.logits(f, HEAD_W, HEAD_B)
    det_prediction = full.argmax(0)
    linear = hm.logits(f, HEAD_W, np.zeros(4))  # W_k . f: the head's part that depends on the hooked features
    cams = {}
    for c in (1, 2, 3):
        # The default score is log p_c summed over c's region R; d log p_c / d logit_q = [q == c] - p_q, so the
        # CAM is ReLU(W_c . f - sum_q pbar_q W_q . f), pbar the mean softmax over R (up to a positive scale).
        region = (det_prediction == c) & brain
        assert region.any(), "every class must have a score region in this design"
        softmax = np.exp(full - full.max(0))
        softmax /= softmax.sum(0)
        pbar = softmax[:, region].mean(axis=1)
        cam = np.maximum(linear[c] - np.tensordot(pbar, linear, axes=1), 0.0)
        cam = np.where(brain, cam, 0.0)
        cams[c] = cam / cam.max()
    out["gradcam"] = cams
    # outside the brain: certain background, no uncertainty
    out["prob"] = np.where(brain, out["prob"], np.array([1.0, 0, 0, 0])[:, None, None, None])
    for key in ("variance",):
        out[key] = np.where(brain, out[key], 0.0)
    for key in ("entropy", "mutual_information"):
        out[key] = np.where(brain, out[key], 0.0)
    out["seg"] = np.where(brain, out["prob"].argmax(0), 0)
    return out


@pytest.fixture(scope="module", params=sorted(GEOMETRIES))
def analysed(request, tmp_path_factory, weights):
    path, model = weights
    affine = GEOMETRIES[request.param]
    root = tmp_path_factory.mktemp(f"ramp_{request.param}")
    folder, brain, arrays, classes = ramp_case(root / "in", affine)
    out = root / "out"
    summary = analyze_case(folder, out, AnalysisOptions(weights=path, device="cpu", mc_samples=N_SAMPLES,
                                                        seed=SEED, gradcam="all", gradcam_layer="decoder.0",
                                                        surfaces=False, figures=False,
                                                        min_et_ml=0, enhancement_check=False))  # the raw argmax
    expected = expected_maps(arrays["flair"][0], brain, affine, model)
    return out, summary, expected, affine, brain, classes


def load(out, name, affine):
    img = nib.load(str(out / name))
    np.testing.assert_allclose(img.affine, affine, atol=1e-4)
    return np.asarray(img.dataobj, dtype=np.float64)


def test_orientation_really_matters_for_this_network(analysed, weights):
    """Guard on the design: the network would answer differently if it saw the case's own axis order."""
    out, summary, expected, affine, brain, _ = analysed
    assert summary["preprocessing"]["reorient"] is True
    assert summary["options"]["windows"] == 1
    assert expected["variance"].max() > 1e-3 and expected["mutual_information"].max() > 1e-3
    assert len(np.unique(expected["seg"][brain])) == 3


def test_probability_files_hold_the_expected_values(analysed):
    out, _, expected, affine, _, _ = analysed
    for c, name in enumerate(CLASS_NAMES):
        np.testing.assert_allclose(load(out, f"prob_{name}.nii.gz", affine), expected["prob"][c], atol=2e-4,
                                   err_msg=name)


def test_uncertainty_files_hold_the_expected_values(analysed):
    out, _, expected, affine, _, _ = analysed
    for c, name in enumerate(CLASS_NAMES):
        np.testing.assert_allclose(load(out, f"mc_variance_{name}.nii.gz", affine), expected["variance"][c],
                                   atol=5e-5, err_msg=name)
    np.testing.assert_allclose(load(out, "mutual_information.nii.gz", affine), expected["mutual_information"],
                               atol=2e-4)
    np.testing.assert_allclose(load(out, "entropy.nii.gz", affine), expected["entropy"], atol=2e-4)


def test_gradcam_file_of_each_class_holds_that_class_map(analysed):
    out, summary, expected, affine, _, _ = analysed
    assert summary["gradcam_fallback_all_voxels"] == {"NCR": False, "ED": False, "ET": False}
    for c in (1, 2, 3):
        np.testing.assert_allclose(load(out, f"gradcam_{CLASS_NAMES[c]}.nii.gz", affine), expected["gradcam"][c],
                                   atol=5e-4, err_msg=CLASS_NAMES[c])
    # the three maps differ from each other, so a swap of two files cannot pass
    assert np.abs(expected["gradcam"][1] - expected["gradcam"][3]).max() > 0.5


def test_segmentation_file_and_summary_metrics_recomputed_from_the_files(analysed):
    out, summary, expected, affine, brain, classes = analysed
    seg = to_internal(load(out, "seg.nii.gz", affine).astype(np.int64), "brats2021")
    probs = np.stack([load(out, f"prob_{n}.nii.gz", affine) for n in CLASS_NAMES])
    top2 = np.sort(expected["prob"], axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-3  # away from ties between two classes
    np.testing.assert_array_equal(seg[clear], expected["seg"][clear])
    np.testing.assert_array_equal(seg, np.where(brain, probs.argmax(0), 0))
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    vox = voxel_volume_cm3(spacing)
    for c, name in ((1, "NCR"), (2, "ED"), (3, "ET")):
        assert summary["volumes_cm3"]["classes"][name] == pytest.approx(np.count_nonzero(seg == c) * vox, rel=1e-6)
    regions = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
    for region, members in regions.items():
        assert summary["volumes_cm3"]["regions"][region] == pytest.approx(np.isin(seg, members).sum() * vox, rel=1e-6)
        got = summary["metrics"]["regions"][region]["dice"]
        assert got == pytest.approx(dice(np.isin(seg, members), np.isin(classes, members)), abs=1e-9)
        inter = np.logical_and(np.isin(seg, members), np.isin(classes, members)).sum()
        assert got == pytest.approx(2 * inter / (np.isin(seg, members).sum() + np.isin(classes, members).sum()))
    acc = np.mean(probs.argmax(0)[brain] == classes[brain])
    assert summary["metrics"]["mc_accuracy"] == pytest.approx(acc, abs=1e-9)
    written = json.loads((out / "summary.json").read_text())
    assert written["volumes_cm3"]["regions"]["WT"] == pytest.approx(np.isin(seg, (1, 2, 3)).sum() * vox, rel=1e-6)
    assert written["metrics"]["mc_accuracy"] == pytest.approx(acc, abs=1e-9)


def test_resampled_case_segmentation_is_background_outside_the_brain(tmp_path, weights):
    """With a target spacing the maps are interpolated back; next to the brain the interpolated
    probabilities can favour a tumour class, yet the label map must say background outside the brain and
    agree with the written probabilities inside it."""
    _, model = weights
    path = tmp_path / "resampled.pt"
    save_checkpoint(path, model, normalisation={"method": "zscore", "crop": "brain", "spacing": [1.7, 1.7, 1.7],
                                                "window": 64, "multiple_of": 16}, provenance={})
    affine = GEOMETRIES["oblique"]
    folder, brain, _, _ = ramp_case(tmp_path / "in", affine)
    out = tmp_path / "out"
    analyze_case(folder, out, AnalysisOptions(weights=path, device="cpu", mc_samples=2, gradcam="none",
                                              surfaces=False, figures=False, min_et_ml=0, enhancement_check=False))
    seg = to_internal(load(out, "seg.nii.gz", affine).astype(np.int64), "brats2021")
    probs = np.stack([load(out, f"prob_{n}.nii.gz", affine) for n in CLASS_NAMES])
    assert (probs.argmax(0)[~brain] != 0).sum() >= 3  # the situation under test really occurs
    np.testing.assert_array_equal(seg[~brain], 0)
    np.testing.assert_array_equal(seg[brain], probs.argmax(0)[brain])
