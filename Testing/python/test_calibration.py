"""Calibration error and entropy-error AUROC on data with known behaviour."""

import numpy as np
import pytest

from BrainTumorXAILib.calibration import auroc, expected_calibration_error, region_ece, uncertainty_quality


def test_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200_000)
    calibrated = rng.uniform(size=conf.size) < conf
    assert expected_calibration_error(conf, calibrated) < 0.01
    overconfident = rng.uniform(size=conf.size) < (conf - 0.3)
    assert expected_calibration_error(conf, overconfident) > 0.2


def brute_force_auroc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_extremes_random_and_ties():
    labels = np.array([0, 0, 1, 1], bool)
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert np.isnan(auroc(np.ones(3), np.zeros(3, bool)))
    rng = np.random.default_rng(1)
    s, l = rng.integers(0, 5, 300).astype(float), rng.uniform(size=300) < 0.3
    assert auroc(s, l) == pytest.approx(brute_force_auroc(s, l))
    assert auroc(rng.uniform(size=20000), rng.uniform(size=20000) < 0.5) == pytest.approx(0.5, abs=0.02)


def test_uncertainty_quality_rewards_entropy_that_finds_errors():
    rng = np.random.default_rng(2)
    shape = (30, 30, 30)
    ref = rng.integers(0, 4, shape)
    probs = np.full((4, *shape), 0.02)
    wrong = rng.uniform(size=shape) < 0.1
    pred = np.where(wrong, (ref + 1) % 4, ref)
    np.put_along_axis(probs, pred[None], 0.94, axis=0)
    entropy = np.where(wrong, 1.2, 0.2)  # uncertainty exactly where the errors are
    q = uncertainty_quality(probs, entropy, ref, np.ones(shape, bool))
    assert q["entropy_error_auroc"] == pytest.approx(1.0)
    assert q["voxel_error_rate"] == pytest.approx(wrong.mean())
    assert set(q["ece"]) == {"WT", "TC", "ET"}
    assert 0 <= region_ece(probs, ref, "WT", np.ones(shape, bool)) <= 1
