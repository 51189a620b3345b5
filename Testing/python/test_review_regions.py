"""Uncertainty-guided review: ranked high-uncertainty regions, their RAS positions, and the figures."""

from __future__ import annotations

import numpy as np
import pytest

from BrainTumorXAILib.reporting.review_regions import review_regions

AFFINE = np.array([[-2.0, 0, 0, 90.0], [0, 2.0, 0, -126.0], [0, 0, 2.0, -72.0], [0, 0, 0, 1]])


def _case():
    shape = (20, 20, 20)
    u = np.zeros(shape)
    probs = np.zeros((4, *shape), np.float32)
    probs[0] = 1.0
    u[2:4, 2:4, 2:4] = 1.0  # A: 8 voxels, 0.064 mL, score 0.064
    u[10:13, 10:13, 10:13] = 0.8  # B: 27 voxels, 0.216 mL, score 0.1728
    u[10, 11, 12] = 1.2  # B's peak
    probs[:, 10:13, 10:13, 10:13] = np.array([0.4, 0.05, 0.5, 0.05])[:, None, None, None]
    u[17, 17, 17] = 1.0  # one voxel: 0.008 mL, below the minimum volume
    u[5, 5, 5] = 0.6  # below the threshold
    return u, probs


def test_regions_are_ranked_by_volume_times_mean_uncertainty():
    u, probs = _case()
    regions, labels = review_regions(u, probs, AFFINE, threshold=0.693, return_labels=True)
    assert [r["voxels"] for r in regions] == [27, 8]
    b, a = regions
    assert b["rank"] == 1 and a["rank"] == 2
    assert b["volume_ml"] == pytest.approx(0.216)
    assert b["mean_entropy"] == pytest.approx((26 * 0.8 + 1.2) / 27)
    assert b["score"] == pytest.approx(0.216 * b["mean_entropy"])
    assert b["centroid_ijk"] == pytest.approx([11.0, 11.0, 11.0])
    # RAS = affine @ ijk: x = -2 * 11 + 90, y = 2 * 11 - 126, z = 2 * 11 - 72
    assert b["centroid_ras"] == pytest.approx([68.0, -104.0, -50.0])
    assert b["peak_ijk"] == [10, 11, 12] and b["peak_ras"] == pytest.approx([70.0, -104.0, -48.0])
    assert b["peak_entropy"] == pytest.approx(1.2)
    assert b["boundary"] == "ED|background"
    assert b["mean_probability"]["ED"] == pytest.approx(0.5)
    assert a["centroid_ras"] == pytest.approx([-2 * 2.5 + 90, 2 * 2.5 - 126, 2 * 2.5 - 72])
    assert a["boundary"].startswith("background")
    assert (labels == 1).sum() == 27 and (labels == 2).sum() == 8 and labels[17, 17, 17] == 0


def test_brain_mask_limit_and_default_threshold():
    u, probs = _case()
    brain = np.ones(u.shape, bool)
    brain[10:13] = False
    regions = review_regions(u, probs, AFFINE, brain=brain)  # default threshold 0.5 ln 4 = 0.693
    assert [r["voxels"] for r in regions] == [8]
    assert review_regions(u, probs, AFFINE, threshold=0.693, max_regions=1)[0]["voxels"] == 27
    assert review_regions(u, probs, AFFINE, threshold=2.0) == []
    # A smaller minimum volume keeps the single voxel.
    assert len(review_regions(u, probs, AFFINE, threshold=0.693, min_volume_ml=0.001)) == 3



def test_float32_maps_are_thresholded_in_float64():
    """The threshold is compared in float64 for any map dtype: a float32 value just below it is not high."""
    threshold = 0.5 * float(np.log(4))
    below = np.float32(threshold)
    if float(below) >= threshold:
        below = np.nextafter(below, np.float32(0))
    u, probs = _case()
    u32 = u.astype(np.float32)
    u32[u32 > 0] = below
    assert review_regions(u32, probs, AFFINE, threshold=threshold) == []
    u32[2:4, 2:4, 2:4] = np.nextafter(np.float32(threshold), np.float32(1))
    regions, labels = review_regions(u32, probs, AFFINE, threshold=threshold, return_labels=True)
    assert [r["peak_ijk"] for r in regions] == [[2, 2, 2]] and np.count_nonzero(labels) == 8

def test_trust_figures_are_written(tmp_path):
    from BrainTumorXAILib.reporting.trust_figures import reliability_figure, where_to_look_figure
    from BrainTumorXAILib.reporting.region_uncertainty_quality import region_uncertainty_quality

    u, probs = _case()
    regions, labels = review_regions(u, probs, AFFINE, threshold=0.693, return_labels=True)
    bg = np.random.default_rng(0).random(u.shape)
    p = where_to_look_figure(bg, u, labels, regions, AFFINE, tmp_path / "w.png")
    ref = np.zeros(u.shape, np.uint8)
    ref[10:13, 10:13, 10:13] = 2
    q = region_uncertainty_quality(probs, ref, np.ones(u.shape, bool), entropy=u)
    r = reliability_figure(q, tmp_path / "r.png")
    import matplotlib.image as mpimg

    for path in (p, r):
        img = mpimg.imread(path)
        assert img.shape[0] > 100 and img[..., :3].std() > 0.05  # drawn, not blank
    empty = where_to_look_figure(bg, u * 0, labels * 0, [], AFFINE, tmp_path / "e.png")
    assert empty.is_file()


def test_analyze_writes_the_trust_report(small_case, tiny_checkpoint, tmp_path):
    import json

    from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case

    out = tmp_path / "r"
    analyze_case(small_case, out, AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=2, gradcam="all",
                                                  surfaces=False, explanation_checks=True, seed=1))
    summary = json.loads((out / "summary.json").read_text())
    trust = summary["trust_report"]
    wt = trust["uncertainty_quality"]["regions"]["WT"]
    assert set(wt["measures"]) == {"entropy", "mutual_information", "variance", "region_entropy", "zero",
                                   "deterministic_entropy"}  # Grad-CAM ran, so the dropout-free softmax is there
    # All-zero uncertainty filters nothing: its QU-BraTS score is (Dice + 2) / 3 with the case's own WT Dice.
    dice = summary["metrics"]["regions"]["WT"]["dice"]
    assert wt["measures"]["zero"]["qubrats"]["score"] == pytest.approx((dice + 2) / 3, abs=1e-6)
    if wt["error_rate"]:
        assert wt["measures"]["zero"]["auroc"] == 0.5
        assert wt["measures"]["zero"]["auprc"] == pytest.approx(wt["error_rate"], rel=1e-6)
    assert trust["review"]["label_map"] == "review_regions.nii.gz" and (out / "review_regions.nii.gz").is_file()
    assert set(trust["figures"]) == {"figures/where_to_look.png", "figures/reliability.png"}
    for r in trust["review"]["regions"]:
        assert r["mean_entropy"] >= trust["review"]["threshold_entropy_nats"]
    checks = trust["explanation_checks"]
    assert [s["randomised_up_to"] for s in checks["randomisation"]][-1] == "encoder.0"
    assert set(checks["deletion"]) == {"NCR", "ED", "ET"}
    assert checks["method"] == "log-softmax-finest" and summary["options"]["gradcam_method"] == "log-softmax-finest"
    assert all(e["in_region_margin"] is None or e["in_region"] <= e["in_region_margin"] <= 1.0
               for e in checks["energy"].values())
    assert "trust_report" in summary["timings_s"]
    # Sequence evidence (on by default): the table, and every map on the case's grid, beside the segmentation.
    import nibabel as nib

    evidence = summary["sequence_evidence"]
    assert evidence["method"] == "occlusion" and "not proof of tumour" in evidence["what_it_is"]
    seg = nib.load(str(out / "seg.nii.gz"))
    written = summary["outputs"]["sequence_evidence"]
    assert written["figure"] == "figures/evidence.png" and (out / written["figure"]).is_file()
    for name, files in written["volumes"].items():
        assert set(files) == {s for s, info in evidence["sequences"].items() if info["read"]}
        for sequence, file_name in files.items():
            img = nib.load(str(out / file_name))
            assert file_name == f"evidence_{name}_{sequence}.nii.gz" and img.shape == seg.shape
            np.testing.assert_allclose(img.affine, seg.affine, atol=1e-5)
            data = np.asarray(img.dataobj)
            assert data.min() >= 0.0 and data.max() <= 1.0


def test_trust_figures_drawn_beside_pyplot_figures_are_the_serial_pixels(tmp_path):
    """analyze draws the trust figures in a thread beside figures.py's pyplot figures: the object API gives
    the same pixels there as alone, and leaves pyplot's figure registry alone."""
    from concurrent.futures import ThreadPoolExecutor

    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from BrainTumorXAILib.reporting.figures import map_figure
    from BrainTumorXAILib.reporting.trust_figures import where_to_look_figure

    u, probs = _case()
    regions, labels = review_regions(u, probs, AFFINE, threshold=0.693, return_labels=True)
    bg = np.random.default_rng(0).random(u.shape)
    alone = where_to_look_figure(bg, u, labels, regions, AFFINE, tmp_path / "alone.png")
    open_before = plt.get_fignums()
    with ThreadPoolExecutor(2) as pool:
        trust = [pool.submit(where_to_look_figure, bg, u, labels, regions, AFFINE, tmp_path / f"t{i}.png")
                 for i in range(3)]
        maps = [pool.submit(map_figure, bg, {"u": u}, AFFINE, tmp_path / f"m{i}.png", title="u") for i in range(3)]
        paths = [f.result() for f in trust + maps]
    assert plt.get_fignums() == open_before
    for path in paths[:3]:
        np.testing.assert_array_equal(mpimg.imread(path), mpimg.imread(alone))
