"""Calibration error and entropy-error AUROC on data with known behaviour."""

import json

import numpy as np
import pytest

import BrainTumorXAILib.reporting.calibration_metrics as calibration
from BrainTumorXAILib.reporting.calibration_metrics import auroc, expected_calibration_error, region_ece, uncertainty_quality


# ---------------------------------------------------------------- ECE
def test_ece_by_hand():
    # Bin 0.9: accuracy 1/2 vs confidence 0.9; bin 0.6: accuracy 1 vs 0.6; each bin half the voxels.
    conf, hit = np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 0, 1, 1], bool)
    assert expected_calibration_error(conf, hit, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert expected_calibration_error(conf, hit, n_bins=10, mask=[False, False, True, True]) == pytest.approx(0.4)
    assert expected_calibration_error([1.0], [True]) == 0.0  # confidence 1 falls in the last bin
    assert np.isnan(expected_calibration_error(conf, hit, mask=np.zeros(4, bool)))


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    calibrated = rng.uniform(size=conf.size) < conf
    assert expected_calibration_error(conf, calibrated) < 0.01
    overconfident = rng.uniform(size=conf.size) < (conf - 0.3)
    assert expected_calibration_error(conf, overconfident) > 0.1


def region_case(rng, shape, overconfident: bool):
    """Class probabilities where the TC probability p_NCR + p_ET is (or is not) the true TC frequency."""
    p_tc = rng.uniform(size=shape)
    in_tc = rng.uniform(size=shape) < p_tc
    ref = np.where(in_tc, rng.choice([1, 3], size=shape), 0)
    if overconfident:  # push every probability towards 0 or 1
        p_tc = np.clip(np.where(p_tc >= 0.5, p_tc + 0.4, p_tc - 0.4), 0, 1)
    probs = np.stack([1 - p_tc, p_tc / 2, np.zeros(shape), p_tc / 2])
    return probs, ref


def test_region_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(3)
    shape, brain = (40, 40, 40), np.ones((40, 40, 40), bool)
    probs, ref = region_case(rng, shape, overconfident=False)
    assert region_ece(probs, ref, "TC", brain) < 0.01
    probs, ref = region_case(rng, shape, overconfident=True)
    assert region_ece(probs, ref, "TC", brain) > 0.1
    # Outside the brain mask nothing counts.
    assert np.isnan(region_ece(probs, ref, "TC", np.zeros(shape, bool)))


# ---------------------------------------------------------------- AUROC
def brute_force_auroc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_extremes_random_and_ties():
    labels = np.array([0, 0, 1, 1], bool)
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert auroc(np.ones(4), labels) == 0.5  # all tied
    assert np.isnan(auroc(np.ones(3), np.zeros(3, bool)))
    assert np.isnan(auroc(np.ones(3), np.ones(3, bool)))
    rng = np.random.default_rng(1)
    for dtype in (float, np.float32, int):
        s, lab = rng.integers(0, 5, 300).astype(dtype), rng.uniform(size=300) < 0.3
        assert auroc(s, lab) == pytest.approx(brute_force_auroc(s, lab), rel=1e-12)
    s, lab = rng.normal(size=500), rng.uniform(size=500) < 0.5
    assert auroc(s, lab) == pytest.approx(brute_force_auroc(s, lab), rel=1e-12)
    assert auroc(rng.uniform(size=20000), rng.uniform(size=20000) < 0.5) == pytest.approx(0.5, abs=0.02)


# ---------------------------------------------------------------- uncertainty quality
def error_case(shape, seed=2):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, shape)
    probs = np.full((4, *shape), 0.02)
    wrong = rng.uniform(size=shape) < 0.1
    pred = np.where(wrong, (ref + 1) % 4, ref)
    np.put_along_axis(probs, pred[None], 0.94, axis=0)
    entropy = np.where(wrong, 1.2, 0.2)  # uncertainty exactly where the errors are
    return probs, entropy, ref, wrong


def test_uncertainty_quality_rewards_entropy_that_finds_errors():
    shape = (30, 30, 30)
    probs, entropy, ref, wrong = error_case(shape)
    brain = np.ones(shape, bool)
    q = uncertainty_quality(probs, entropy, ref, brain)
    assert q["entropy_error_auroc"] == pytest.approx(1.0)
    assert q["voxel_error_rate"] == pytest.approx(wrong.mean())
    assert set(q["ece"]) == {"WT", "TC", "ET"}
    assert q["ece"]["WT"] == pytest.approx(region_ece(probs, ref, "WT", brain))
    assert uncertainty_quality(probs, -entropy, ref, brain)["entropy_error_auroc"] == pytest.approx(0.0)
    json.dumps(q, allow_nan=False)


def test_uncertainty_quality_without_errors_or_brain_gives_none():
    shape = (10, 10, 10)
    probs, entropy, ref, wrong = error_case(shape)
    q = uncertainty_quality(probs, entropy, np.where(wrong, (ref + 1) % 4, ref), np.ones(shape, bool))
    assert q["entropy_error_auroc"] is None and q["voxel_error_rate"] == 0.0
    q = uncertainty_quality(probs, entropy, ref, np.zeros(shape, bool))
    assert q == {"ece": {"WT": None, "TC": None, "ET": None}, "entropy_error_auroc": None, "voxel_error_rate": None}
    json.dumps(q, allow_nan=False)
    with pytest.raises(ValueError, match="do not match"):
        uncertainty_quality(probs, entropy[:5], ref, np.ones(shape, bool))


def test_subsampling_is_deterministic_and_close(monkeypatch):
    shape = (30, 30, 30)
    probs, entropy, ref, _ = error_case(shape, seed=4)
    entropy = entropy + np.random.default_rng(5).uniform(0, 1.5, shape)  # imperfect, so the AUROC can move
    brain = np.ones(shape, bool)
    full = uncertainty_quality(probs, entropy, ref, brain)
    monkeypatch.setattr(calibration, "MAX_VOXELS", 10_000)
    one, two = (uncertainty_quality(probs, entropy, ref, brain) for _ in range(2))
    assert one == two
    assert one["entropy_error_auroc"] == pytest.approx(full["entropy_error_auroc"], abs=0.03)
    assert one["voxel_error_rate"] == pytest.approx(full["voxel_error_rate"], abs=0.02)
