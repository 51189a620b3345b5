"""Explanation checks: CAM energy, cascading randomisation, deletion curves (hand-made and a tiny network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from BrainTumorXAILib.reporting.explanation_checks import (cam_energy, cascade_blocks, cascade_depths,
                                                             deletion_check, explanation_checks,
                                                             randomisation_check, randomised_copy, spearman,
                                                             table_columns)


def test_cam_energy_by_hand():
    classes = np.zeros((4, 1, 1), np.uint8)
    classes[0] = 3  # ET predicted at voxel 0 only
    brain = np.array([True, True, True, False])[:, None, None]
    cam = np.array([3.0, 1.0, 0.0, 0.0])[:, None, None]
    e = cam_energy({3: cam}, classes, brain)["ET"]
    assert e["in_region"] == pytest.approx(0.75)
    assert e["in_brain"] == pytest.approx(1.0)
    assert e["region_share_of_brain"] == pytest.approx(1 / 3)
    assert e["ratio_to_chance"] == pytest.approx(2.25)
    assert cam_energy({3: np.zeros_like(cam)}, classes, brain)["ET"]["in_region"] is None


def test_cam_energy_within_the_margin_counts_millimetres_not_voxels():
    classes = np.zeros((10, 1, 1), np.uint8)
    classes[0] = 1
    brain = np.ones((10, 1, 1), bool)
    cam = np.ones((10, 1, 1))
    # 2 mm voxels along the first axis: voxels 0, 1, 2 lie within 5 mm of voxel 0 (0, 2, 4 mm), voxel 3 does not.
    e = cam_energy({1: cam}, classes, brain, spacing=(2.0, 1.0, 1.0))["NCR"]
    assert e["in_region"] == pytest.approx(0.1) and e["in_region_margin"] == pytest.approx(0.3)
    assert cam_energy({1: cam}, classes, brain, spacing=(1.0, 1.0, 1.0))["NCR"]["in_region_margin"] == pytest.approx(0.6)


def test_spearman_is_rank_based():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8, 8))
    assert spearman(a, a**3 + 5) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    mask = np.zeros(a.shape, bool)
    mask[:4] = True
    b = a.copy()
    b[~mask] = rng.random(int((~mask).sum()))  # differs only outside the mask
    assert spearman(a, b, mask) == pytest.approx(1.0)
    assert spearman(a, b) < 0.9
    assert np.isnan(spearman(a, np.zeros_like(a)))


def test_cascade_goes_from_the_output_to_the_input_and_reinitialises_only_those_blocks():
    from BrainTumorXAILib.models.factory import build_model

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.2)
    names = [n for n, _ in cascade_blocks(model)]
    assert names == ["head", "decoder.1", "decoder.0", "bottleneck", "encoder.1", "encoder.0"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rand = randomised_copy(model, 2, seed=0)
    after = rand.state_dict()
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v)  # the trained model is untouched
        changed = not torch.equal(after[k], v)
        if k.endswith("weight") and after[k].dim() == 5:  # every convolution
            assert changed == (k.startswith("head") or k.startswith("decoder.1")), k
        if k.startswith(("encoder", "bottleneck", "decoder.0")):
            assert not changed, k
    assert torch.equal(randomised_copy(model, 2, seed=0).head.weight, rand.head.weight)  # seeded
    assert cascade_depths(6, 4) == [1, 3, 4, 6] and cascade_depths(6, 1) == [1] and cascade_depths(3, 10) == [1, 2, 3]


def test_randomisation_check_reports_each_step():
    from BrainTumorXAILib.models.factory import build_model

    model = build_model("unet", base_channels=4, depth=2)
    rng = np.random.default_rng(1)
    ref = {3: rng.random((6, 6, 6))}
    calls = []

    def same(net):  # a CAM that ignores the model entirely: the check must see no collapse
        calls.append(net)
        return {3: ref[3] * 2}

    steps = randomisation_check(model, same, ref, np.ones((6, 6, 6), bool), steps=3)
    assert [s["blocks"] for s in steps] == [1, 4, 6]  # cascade_depths(6, 3): 1, 3.5 -> 4, 6
    assert [s["randomised_up_to"] for s in steps] == ["head", "bottleneck", "encoder.0"]
    assert all(s["spearman"]["ET"] == pytest.approx(1.0) for s in steps)
    assert len(calls) == 3 and all(net is not model for net in calls)


def _toy():
    """10 voxels, one channel; the 'network' says p(class 1) = the input value (clipped), the rest background."""
    volume = np.zeros((1, 10, 1, 1), np.float32)
    volume[0, :2] = 1.0
    brain = np.ones((10, 1, 1), bool)

    def run_probs(v):
        p1 = np.clip(v[0], 0, 1)
        return np.stack([1 - p1, p1, np.zeros_like(p1), np.zeros_like(p1)])

    classes = (volume[0] > 0.5).astype(np.uint8)
    return volume, brain, run_probs, classes


def test_deletion_curve_by_hand():
    volume, brain, run_probs, classes = _toy()
    cam = volume[0] * np.array([2.0, 1.0] + [0.0] * 8)[:, None, None]  # voxel 0 first, then voxel 1
    d = deletion_check(volume, brain, {1: cam}, classes, run_probs, fractions=(0.1, 0.2))["NCR"]
    # The brain mean is 0.2: deleting voxel 0 leaves scores (0.2 + 1) / 2, then (0.2 + 0.2) / 2.
    assert d["initial_score"] == pytest.approx(1.0)
    assert d["relative_score_cam"] == pytest.approx([0.6, 0.2])
    # Random deletion never drops the score by more than the CAM's, which removes the evidence first.
    assert all(r >= c - 1e-9 for r, c in zip(d["relative_score_random"], d["relative_score_cam"]))
    drop_cam_area = (0.1 * (0 + 0.4) / 2 + 0.1 * (0.4 + 0.8) / 2) / 0.2
    drops = [1 - v for v in d["relative_score_random"]]
    drop_rand_area = (0.1 * drops[0] / 2 + 0.1 * (drops[0] + drops[1]) / 2) / 0.2
    assert d["area_between"] == pytest.approx(drop_cam_area - drop_rand_area)


def test_deletion_area_sign_follows_the_attribution():
    rng = np.random.default_rng(0)
    volume = np.zeros((1, 40, 10, 1), np.float32)
    volume[0, :8] = 1.0  # 80 of 400 voxels carry the class
    brain = np.ones((40, 10, 1), bool)
    classes = (volume[0] > 0.5).astype(np.uint8)

    def run_probs(v):
        p1 = np.clip(v[0], 0, 1)
        return np.stack([1 - p1, p1, np.zeros_like(p1), np.zeros_like(p1)])

    good = volume[0] + 0.01 * rng.random(volume[0].shape)
    bad = 1.0 - good  # points at everything but the evidence
    d = deletion_check(volume, brain, {1: good, 2: bad}, classes, run_probs, fractions=(0.05, 0.1, 0.2))
    assert d["NCR"]["area_between"] > 0.3
    # Class 2 is never predicted: no score, no area.
    assert d["ED"]["initial_score"] is None and d["ED"]["area_between"] is None
    d2 = deletion_check(volume, brain, {1: bad}, classes, run_probs, fractions=(0.05, 0.1, 0.2))
    assert d2["NCR"]["area_between"] < 0


def test_explanation_checks_on_a_tiny_network():
    from BrainTumorXAILib.inference.predictor import Predictor
    from BrainTumorXAILib.models.factory import build_model

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.2)
    rng = np.random.default_rng(0)
    volume = rng.standard_normal((4, 32, 32, 32)).astype(np.float32)
    brain = np.zeros((32, 32, 32), bool)
    brain[4:28, 4:28, 4:28] = True
    maps = Predictor(model, torch.device("cpu"), window=(32, 32, 32), mc_samples=2, gradcam_classes=(1, 2, 3),
                     gradcam_method="gradcam").predict(volume, brain)
    out = explanation_checks(model, torch.device("cpu"), volume, brain, maps, (32, 32, 32), steps=2,
                             fractions=(0.1, 0.3))
    assert out["layer"] == "decoder.0" and out["method"] == "gradcam"
    assert all(0.0 <= e["in_region"] <= e["in_region_margin"] <= 1.0 for e in out["energy"].values()
               if e["in_region"] is not None)
    assert set(out["energy"]) == {"NCR", "ED", "ET"}
    assert all(e["in_brain"] in (None, pytest.approx(1.0)) for e in out["energy"].values())
    # The energy every analysis reports already (map_locality) is the checks' own: analyze hands it in.
    from BrainTumorXAILib.reporting.explanation_checks import map_locality
    assert out["energy"] == map_locality(maps, brain)
    assert [s["blocks"] for s in out["randomisation"]] == [1, 6]
    assert set(out["deletion"]) == {"NCR", "ED", "ET"}
    assert len(out["deletion"]["ED"]["relative_score_cam"]) == 2
    cols = table_columns(out)
    assert cols["cam_random_spearman_ET"] == out["randomisation"][-1]["spearman"]["ET"]
    assert cols["deletion_area_NCR"] == out["deletion"]["NCR"]["area_between"]
    # Re-running the unchanged model reproduces the trained CAM exactly: the check's own floor.
    same = Predictor(model, torch.device("cpu"), window=(32, 32, 32), mc_samples=0, gradcam_classes=(1, 2, 3),
                     gradcam_layer="decoder.0", gradcam_method="gradcam").predict(volume, brain).gradcam
    for c in (1, 2, 3):
        if maps.gradcam[c].any():
            assert spearman(maps.gradcam[c], same[c], brain) == pytest.approx(1.0)
