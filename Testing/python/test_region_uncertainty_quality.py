"""Uncertainty quality per region: AUPRC, reliability bins, QU-BraTS score, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from BrainTumorXAILib.reporting.region_uncertainty_quality import (average_precision, qubrats_curves, qubrats_score,
                                                             region_measures, region_uncertainty_quality,
                                                             reliability_bins, table_columns)

STEP = 0.025  # spacing of the default thresholds on the tau / 100 axis (the challenge's 40 steps)


def test_average_precision_by_hand_and_against_sklearn():
    # Ranked: pos, neg, pos, neg -> precision 1 at recall 1/2, 2/3 at recall 1.
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # All scores tied: one threshold, precision = prevalence.
    assert average_precision(np.zeros(10), [1, 1, 1] + [0] * 7) == pytest.approx(0.3)
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 500) / 20.0  # many ties
    labels = rng.random(500) < 0.2
    assert average_precision(scores, labels) == pytest.approx(sklearn.average_precision_score(labels, scores))


def test_reliability_bins_by_hand():
    conf = [0.05, 0.15, 0.95, 0.95, 1.0]
    hit = [False, True, True, False, True]
    b = reliability_bins(conf, hit, n_bins=10)
    assert b["count"] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert b["accuracy"][0] == 0.0 and b["accuracy"][1] == 1.0 and b["accuracy"][2] is None
    assert b["confidence"][9] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert b["accuracy"][9] == pytest.approx(2 / 3)


def _case():
    """10 voxels: 4 TP, 2 FP, 1 FN, 3 TN -> Dice 8 / 11; the 3 errors are voxels 4, 5, 6."""
    pred = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], bool)
    true = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0], bool)
    return pred, true, 8 / 11


def test_qubrats_curve_by_hand():
    pred, true, _ = _case()
    u = np.array([0, 0, 60, 60, 100, 30, 100, 0, 0, 60], float)
    c = qubrats_curves(u, pred, true, thresholds=(0, 50, 100))
    # tau 0: kept TP 2, FP 0, FN 0, TN 2 -> Dice 1, FTP 2/4, FTN 1/3
    # tau 50: kept TP 2, FP 1 (u 30), FN 0, TN 2 -> Dice 4/5
    # tau 100: everything -> Dice 8/11, no filtering
    assert c["dice"] == pytest.approx([1.0, 0.8, 8 / 11])
    assert c["ftp"] == pytest.approx([0.5, 0.5, 0.0])
    assert c["ftn"] == pytest.approx([1 / 3, 1 / 3, 0.0])
    q = qubrats_score(u, pred, true, thresholds=(0, 50, 100))
    assert q["auc_dice"] == pytest.approx(0.5 * (1.0 + 0.8) / 2 + 0.5 * (0.8 + 8 / 11) / 2)
    assert q["auc_ftp"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)
    assert q["score"] == pytest.approx((q["auc_dice"] + 1 - q["auc_ftp"] + 1 - q["auc_ftn"]) / 3)


def test_qubrats_perfect_zero_and_maximal_uncertainty():
    pred, true, dice = _case()
    errors = pred != true
    perfect = qubrats_score(np.where(errors, 100.0, 0.0), pred, true)
    zero = qubrats_score(np.zeros(10), pred, true)
    everything = qubrats_score(np.full(10, 100.0), pred, true)
    # Perfect: every tau < 100 keeps only correct voxels (Dice 1) and filters no TP or TN.
    assert perfect["score"] == pytest.approx((1 - (1 - dice) * STEP / 2 + 2) / 3)
    assert perfect["auc_ftp"] == 0.0 and perfect["auc_ftn"] == 0.0
    # All-zero: nothing is ever filtered.
    assert zero["score"] == pytest.approx((dice + 2) / 3)
    assert zero["auc_dice"] == pytest.approx(dice)
    # Everything uncertain: all TPs and TNs filtered below tau = 100.
    assert everything["auc_ftp"] == pytest.approx(1 - STEP / 2)
    assert everything["score"] == pytest.approx((1 - (1 - dice) * STEP / 2 + STEP) / 3)
    assert perfect["score"] > zero["score"] > everything["score"]


def _volume():
    """A 4x4x4 case: truth ED in the first two x-slabs; the prediction misses one voxel and adds one."""
    shape = (4, 4, 4)
    ref = np.zeros(shape, np.uint8)
    ref[:2] = 2
    probs = np.zeros((4, *shape), np.float32)
    probs[0] = 0.9
    probs[2] = 0.1
    probs[0, :2], probs[2, :2] = 0.1, 0.9
    probs[:, 0, 0, 0] = [0.6, 0.0, 0.4, 0.0]  # missed ED voxel
    probs[:, 3, 3, 3] = [0.45, 0.0, 0.55, 0.0]  # false ED voxel
    errors = np.zeros(shape, bool)
    errors[0, 0, 0] = errors[3, 3, 3] = True
    return probs, ref, errors


def test_region_report_perfect_measure_and_baselines():
    probs, ref, errors = _volume()
    brain = np.ones(ref.shape, bool)
    entropy = np.where(errors, np.log(4.0), 0.0)  # marks exactly the errors, at the maximum
    rep = region_uncertainty_quality(probs, ref, brain, entropy=entropy, deterministic_entropy=entropy * 0.5)
    wt = rep["regions"]["WT"]
    assert wt["error_rate"] == pytest.approx(2 / 64)
    ent, zero = wt["measures"]["entropy"], wt["measures"]["zero"]
    assert ent["auroc"] == 1.0 and ent["auprc"] == pytest.approx(1.0)
    assert zero["auroc"] == 0.5 and zero["auprc"] == pytest.approx(2 / 64)
    dice = 2 * 31 / (2 * 31 + 1 + 1)
    assert zero["qubrats"]["score"] == pytest.approx((dice + 2) / 3)
    assert ent["qubrats"]["score"] == pytest.approx((1 - (1 - dice) * STEP / 2 + 2) / 3)
    # Half the maximum: filtered from tau = 50 down; still ranks the errors perfectly.
    assert wt["measures"]["deterministic_entropy"]["auroc"] == 1.0
    # No ET, TC anywhere: no errors, AUROC undefined (None), Dice 1 everywhere.
    assert rep["regions"]["ET"]["measures"]["entropy"]["auroc"] is None
    assert rep["regions"]["ET"]["measures"]["zero"]["qubrats"]["score"] == pytest.approx(1.0)
    # ECE of the WT forecast by hand: confidence 0.9 (62 voxels, all right), 0.6 and 0.55 (both wrong), own bins.
    assert wt["ece"] == pytest.approx((abs(62 - 62 * 0.9) + abs(0 - 0.6) + abs(0 - 0.55)) / 64, abs=1e-6)
    assert sum(wt["reliability"]["count"]) == 64
    assert set(rep["method"]["measures"]) == {"entropy", "region_entropy", "zero", "deterministic_entropy"}


def test_region_report_respects_the_brain_mask():
    probs, ref, errors = _volume()
    brain = np.ones(ref.shape, bool)
    brain[3, 3, 3] = False  # the false-positive voxel is outside: one error left
    rep = region_uncertainty_quality(probs, ref, brain, entropy=np.where(errors, 1.0, 0.0))
    assert rep["method"]["voxels"] == 63
    assert rep["regions"]["WT"]["error_rate"] == pytest.approx(1 / 63)


def test_variance_measure_per_region():
    probs, _, _ = _volume()
    var = np.zeros_like(probs)
    var[0], var[1], var[3] = 0.2, 0.01, 0.03
    wt = region_measures(probs, "WT", variance=var)["variance"]
    tc = region_measures(probs, "TC", variance=var)["variance"]
    et = region_measures(probs, "ET", variance=var)["variance"]
    assert wt.max() == pytest.approx(0.2 / 0.25)  # Var(p_WT) = Var(1 - p_background)
    assert tc.max() == pytest.approx(0.04 / 0.25)  # NCR + ET
    assert et.max() == pytest.approx(0.03 / 0.25)


def test_table_columns_flatten_the_report():
    probs, ref, errors = _volume()
    rep = region_uncertainty_quality(probs, ref, np.ones(ref.shape, bool), entropy=np.where(errors, 1.0, 0.0))
    cols = table_columns(rep)
    assert cols["auroc_entropy_WT"] == 1.0
    assert cols["qubrats_zero_WT"] == rep["regions"]["WT"]["measures"]["zero"]["qubrats"]["score"]
    assert cols["auroc_mutual_information_WT"] is None  # not given
    assert table_columns(None)["ece_ET"] is None


def test_training_evaluate_tabulates_the_trust_report(small_case, tiny_checkpoint, tmp_path):
    import csv

    from training.evaluate import main as eval_main

    out = tmp_path / "eval"
    assert eval_main(["--data", str(small_case.parent), "--split", "all", "--checkpoint", str(tiny_checkpoint),
                      "--out", str(out), "--mc-samples", "2", "--device", "cpu", "--quiet",
                      "--explanation-checks", "--no-enhancement-check"]) == 0
    rows = list(csv.DictReader((out / "cases.csv").open()))
    assert len(rows) == 1
    row = rows[0]
    for region in ("WT", "TC", "ET"):
        # All-zero uncertainty keeps every voxel: (Dice + 2) / 3, the case's own Dice (the maps' argmax: the
        # post-processing, switched off here, changes the segmentation, not the maps whose quality is scored).
        assert float(row[f"qubrats_zero_{region}"]) == pytest.approx((float(row[f"dice_{region}"]) + 2) / 3, abs=1e-6)
    assert row["qubrats_deterministic_entropy_WT"] != ""  # the dropout-free pass ran for the baseline
    assert 0.0 <= float(row["ece_WT"]) <= 1.0
    for name in ("NCR", "ED", "ET"):  # the checks ran: Grad-CAM was computed for them
        assert row[f"cam_energy_{name}"] != "" and 0.0 <= float(row[f"cam_energy_{name}"]) <= 1.0
        assert float(row[f"cam_energy_{name}"]) <= float(row[f"cam_energy_margin_{name}"]) <= 1.0
        assert row[f"cam_random_spearman_{name}"] != "" and row[f"deletion_area_{name}"] != ""
    summary = (out / "summary.md").read_text()
    assert "qubrats_entropy_WT" in summary and "auroc_mutual_information_ET" in summary


def test_grouped_ranking_gives_the_exact_auroc_and_auprc():
    """The report groups each measure once and counts labels per group: same AUROC and AUPRC as the sorts."""
    from BrainTumorXAILib.reporting.calibration_metrics import auroc
    from BrainTumorXAILib.reporting.region_uncertainty_quality import _Ranked

    rng = np.random.default_rng(3)
    for scores in (rng.random(2000), rng.integers(0, 7, 2000) / 7.0, np.zeros(2000)):  # distinct, ties, all tied
        ranked = _Ranked(scores)
        for prevalence in (0.02, 0.3, 0.9):
            labels = rng.random(2000) < prevalence
            roc, ap = ranked.auroc_ap(labels)
            assert roc == pytest.approx(auroc(scores, labels), abs=1e-12)
            assert ap == pytest.approx(average_precision(scores, labels), abs=1e-12)
    roc, ap = _Ranked(rng.random(50)).auroc_ap(np.zeros(50, bool))
    assert np.isnan(roc) and np.isnan(ap)
    roc, ap = _Ranked(rng.random(50)).auroc_ap(np.ones(50, bool))
    assert np.isnan(roc) and ap == pytest.approx(1.0)


def test_region_report_equals_the_plain_definitions():
    """Sorted-once AUROC/AUPRC, region-free measures scaled once and the one-bincount QU-BraTS curves give
    the values of the plain per-(measure, region) definitions, on a random case with ties."""
    from BrainTumorXAILib.io.labels import REGIONS
    from BrainTumorXAILib.reporting.calibration_metrics import auroc

    rng = np.random.default_rng(7)
    shape = (14, 13, 12)
    logits = rng.normal(0, 2, (4, *shape))
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    probs = (np.round(probs * 50) / 50).astype(np.float32)  # ties in every measure
    probs /= probs.sum(axis=0)
    ref = rng.integers(0, 4, shape)
    brain = rng.random(shape) < 0.8
    entropy = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(axis=0).astype(np.float32)
    maps = dict(entropy=entropy, mutual_information=(entropy * rng.random(shape)).astype(np.float32),
                variance=(rng.integers(0, 5, (4, *shape)) / 40).astype(np.float32),
                deterministic_entropy=np.round(entropy, 1))
    rep = region_uncertainty_quality(probs, ref, brain, **maps)
    flat = {k: (v.reshape(v.shape[0], -1)[:, brain.ravel()] if v.ndim == 4 else v[brain]) for k, v in maps.items()}
    p, r = probs.reshape(4, -1)[:, brain.ravel()], ref[brain]
    for region, classes in REGIONS.items():
        pred, true = np.isin(p.argmax(axis=0), classes), np.isin(r, classes)
        got = rep["regions"][region]["measures"]
        expected = region_measures(p, region, **flat)
        assert list(got) == list(expected)
        for name, u in expected.items():
            assert got[name]["auroc"] == pytest.approx(auroc(u, pred != true), rel=0, abs=1e-15)
            assert got[name]["auprc"] == pytest.approx(average_precision(u, pred != true), rel=1e-12)
            assert got[name]["qubrats"] == pytest.approx(qubrats_score(u * 100.0, pred, true), rel=1e-12)


def test_region_report_ece_is_the_region_forecasts_ece_for_every_region():
    """The report's ECE is ``calibration_metrics.region_ece`` of the same forecast inside the brain (random
    probabilities and labels: every region has errors on both sides of 0.5)."""
    from BrainTumorXAILib.reporting.calibration_metrics import region_ece

    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=(6, 7, 5)).transpose(3, 0, 1, 2)
    ref = rng.integers(0, 4, (6, 7, 5))
    brain = rng.random((6, 7, 5)) < 0.8
    rep = region_uncertainty_quality(probs, ref, brain)
    for region in ("WT", "TC", "ET"):
        assert rep["regions"][region]["ece"] == pytest.approx(region_ece(probs, ref, region, brain), abs=1e-12)
        assert rep["regions"][region]["ece"] > 0.01
