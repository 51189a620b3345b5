"""Uncertainty estimators beyond MC Dropout: flips (TTA), checkpoint ensembles, and their comparison."""

from __future__ import annotations

import csv
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from BrainTumorXAILib.inference.combine import Member, pool
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.inference.tta import FLIPS, predict_with_flips, samples_per_flip


def _softmax_samples(rng, n, shape=(4, 5, 6, 7)):
    logits = rng.normal(size=(n, *shape)) * 3
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _entropy(p, axis=0):
    return -(p * np.log(np.clip(p, 1e-8, None))).sum(axis=axis)


def _member(samples):
    mean = samples.mean(axis=0)
    if len(samples) == 1:
        return Member(probabilities=mean, samples=1)
    return Member(probabilities=mean, variance=samples.var(axis=0),
                  mutual_information=_entropy(mean) - _entropy(samples, axis=1).mean(axis=0), samples=len(samples))


def test_pooled_members_equal_the_moments_of_all_their_samples():
    rng = np.random.default_rng(0)
    groups = [_softmax_samples(rng, n) for n in (5, 3, 1)]  # two MC members and one dropout-free pass
    pooled = pool([_member(g) for g in groups])
    every = np.concatenate(groups)
    mean = every.mean(axis=0)
    np.testing.assert_allclose(pooled.probabilities, mean, atol=1e-6)
    np.testing.assert_allclose(pooled.variance, every.var(axis=0), atol=1e-6)
    np.testing.assert_allclose(pooled.entropy, _entropy(mean), atol=1e-5)
    np.testing.assert_allclose(pooled.mutual_information, _entropy(mean) - _entropy(every, axis=1).mean(axis=0),
                               atol=1e-5)
    assert pooled.samples == 9
    # Identical members add no spread: a checkpoint pooled with itself is itself.
    same = pool([Member(probabilities=mean), Member(probabilities=mean)])
    np.testing.assert_allclose(same.probabilities, mean, atol=1e-6)
    assert float(same.variance.max()) < 1e-6 and float(same.mutual_information.max()) < 1e-5
    with pytest.raises(ValueError):
        pool([])


def test_mc_budget_is_spread_over_the_flips():
    assert samples_per_flip(20, 4) == [5, 5, 5, 5]
    assert samples_per_flip(6, 4) == [2, 2, 1, 1]
    assert samples_per_flip(0, 3) == [0, 0, 0]
    assert FLIPS[1] == (0,)  # left-right first: the network grid is LPS-ordered


@pytest.fixture(scope="module")
def tiny_model():
    from BrainTumorXAILib.models.factory import build_model

    torch.manual_seed(1)
    return build_model("unet", base_channels=4, depth=2, dropout=0.2).eval()


def _inputs(seed=0, shape=(24, 20, 16)):
    rng = np.random.default_rng(seed)
    volume = rng.normal(size=(4, *shape)).astype(np.float32)
    mask = np.zeros(shape, bool)
    mask[3:20, 2:17, 1:14] = True  # off-centre: a flip that does not come back would move it
    volume[:, ~mask] = 0.0
    return volume, mask


def test_flipped_predictions_come_back_onto_their_own_voxels(tiny_model):
    volume, mask = _inputs()

    def make(mc, seed_offset=0, primary=True):
        return Predictor(tiny_model, torch.device("cpu"), window=(16, 16, 16), mc_samples=mc, seed=seed_offset,
                         gradcam_classes=(1, 3) if primary else ())

    n = 4
    pooled = predict_with_flips(make, volume, mask, n, 0)
    # By hand: predict each flipped image, flip the softmax back, average.
    by_hand = []
    for axes in FLIPS[:n]:
        ax = tuple(a + 1 for a in axes)
        maps = make(0, primary=False).predict(np.flip(volume, ax).copy(), np.flip(mask, axes).copy() if axes else mask)
        by_hand.append(np.flip(maps.probabilities, ax) if axes else maps.probabilities)
    np.testing.assert_allclose(pooled.probabilities, np.mean(by_hand, axis=0), atol=1e-5)
    assert pooled.probabilities[0][~mask].min() == pytest.approx(1.0)  # outside the brain stays background
    assert float(pooled.variance[:, mask].max()) > 0  # the flips disagree somewhere: spread between them
    # Grad-CAM and the dropout-free softmax are the un-flipped pass's own.
    plain = make(0).predict(volume, mask)
    np.testing.assert_allclose(pooled.gradcam[1], plain.gradcam[1], atol=1e-6)
    np.testing.assert_allclose(pooled.deterministic, plain.deterministic, atol=1e-6)
    # One flip is no augmentation at all.
    np.testing.assert_allclose(predict_with_flips(make, volume, mask, 1, 0).probabilities, plain.probabilities,
                               atol=1e-7)
    mc = predict_with_flips(make, volume, mask, 4, 6)
    assert mc.mc_samples == 6 and mc.mutual_information is not None
    with pytest.raises(ValueError, match="1 to 8 flips"):
        predict_with_flips(make, volume, mask, 9, 0)


def test_a_checkpoint_pooled_with_itself_gives_its_own_maps(small_case, tiny_checkpoint, tmp_path):
    from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case

    common = dict(weights=tiny_checkpoint, device="cpu", mc_samples=0, gradcam="none", surfaces=False, figures=False)
    single = analyze_case(small_case, tmp_path / "one", AnalysisOptions(**common))
    both = analyze_case(small_case, tmp_path / "two", AnalysisOptions(**common, ensemble=(tiny_checkpoint,)))
    assert both["options"]["ensemble_members"] == 2 and len(both["ensemble"]) == 1
    for name in ("prob_ET.nii.gz", "prob_background.nii.gz", "entropy.nii.gz"):
        a = nib.load(tmp_path / "one" / name).get_fdata()
        b = nib.load(tmp_path / "two" / name).get_fdata()
        np.testing.assert_allclose(b, a, atol=1e-5)
    # The pooled samples agree everywhere: no spread, no disagreement.
    assert nib.load(tmp_path / "two" / "mc_variance_ED.nii.gz").get_fdata().max() < 1e-5
    assert nib.load(tmp_path / "two" / "mutual_information.nii.gz").get_fdata().max() < 1e-4
    assert np.array_equal(nib.load(tmp_path / "one" / "seg.nii.gz").get_fdata(),
                          nib.load(tmp_path / "two" / "seg.nii.gz").get_fdata())
    # the pooled segmentation went through the same post-processing steps, with the same outcome
    assert set(both["postprocessing"]) == {"enhancement_check", "small_et"}
    assert both["postprocessing"] == single["postprocessing"]


def test_tta_through_analyze_and_the_cli(small_case, tiny_checkpoint, tmp_path, capsys):
    from BrainTumorXAILib.cli import main

    out = tmp_path / "tta"
    assert main(["analyze", str(small_case), "--out", str(out), "--weights", str(tiny_checkpoint), "--device", "cpu",
                 "--mc-samples", "4", "--tta", "2", "--gradcam", "ET", "--no-surfaces", "--no-figures",
                 "--quiet"]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["tta_flips"] == 2 and summary["options"]["mc_samples"] == 4
    assert (out / "gradcam_ET.nii.gz").exists()
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(small_case), "--out", str(tmp_path / "x"), "--tta", "9"])
    assert exc.value.code == 2
    assert "from 1 to 8" in capsys.readouterr().err


def test_an_ensemble_member_that_needs_a_missing_sequence_is_refused(small_case, tiny_checkpoint, tmp_path):
    from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
    from BrainTumorXAILib.errors import BrainTumorXAIError
    from BrainTumorXAILib.resources import demo_weights_path

    case = tmp_path / small_case.name
    shutil.copytree(small_case, case)
    for f in case.glob("*_t1.nii*"):
        f.unlink()
    # The demo weights can do without T1; the tiny checkpoint cannot: the pair cannot either.
    with pytest.raises(BrainTumorXAIError, match="t1"):
        analyze_case(case, tmp_path / "out", AnalysisOptions(weights=demo_weights_path(), ensemble=(tiny_checkpoint,),
                                                             device="cpu", surfaces=False, figures=False))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_evaluate_compares_the_estimators_on_the_same_cases(small_case, tiny_checkpoint, tmp_path, capsys):
    from training.evaluate import main as eval_main

    out = tmp_path / "eval"
    # QU-BraTS scores the network's maps against the network's own argmax; the post-processing changes only the
    # segmentation, so without it the zero baseline is exactly (Dice + 2) / 3.
    args = ["--data", str(small_case.parent), "--split", "all", "--checkpoint", str(tiny_checkpoint), "--out",
            str(out), "--mc-samples", "2", "--device", "cpu", "--quiet", "--no-enhancement-check"]
    assert eval_main(args + ["--estimators", "deterministic,mc,tta,mc+tta,ensemble", "--ensemble",
                             str(tiny_checkpoint), "--tta", "2"]) == 0
    rows = list(csv.DictReader((out / "estimators.csv").open()))
    assert [r["estimator"] for r in rows] == ["deterministic", "mc", "tta", "mc+tta", "ensemble"]
    main_row = next(csv.DictReader((out / "cases.csv").open()))
    mc = rows[1]
    assert float(mc["dice_WT"]) == pytest.approx(float(main_row["dice_WT"]))  # the same prediction, reused
    # the per-case table says what the post-processing did: the check was off, the small-ET rule ran
    assert main_row["et_ml_unenhanced_to_ncr"] == "" and float(main_row["et_ml_small_to_ncr"]) >= 0.0
    assert float(mc["auroc_entropy_ET"]) == pytest.approx(float(main_row["auroc_entropy_ET"]))
    # A checkpoint pooled with itself, dropout-free: the deterministic segmentation again.
    assert float(rows[4]["dice_WT"]) == pytest.approx(float(rows[0]["dice_WT"]), abs=1e-6)
    for r in rows:
        for region in ("WT", "TC", "ET"):
            assert float(r[f"qubrats_zero_{region}"]) == pytest.approx((float(r[f"dice_{region}"]) + 2) / 3, abs=1e-6)
    md = (out / "estimators.md").read_text()
    assert "| | deterministic | mc | tta | mc+tta | ensemble |" in md.splitlines()  # one column per estimator
    assert "Ranks voxel errors best" in md
    assert eval_main(args + ["--estimators", "mc,bogus"]) != 0
    assert "unknown estimator(s) bogus" in capsys.readouterr().err
    assert eval_main(args + ["--estimators", "ensemble"]) != 0
    assert "--ensemble checkpoint" in capsys.readouterr().err


def test_a_tiny_enhancing_tumour_becomes_core_in_millilitres():
    from BrainTumorXAILib.inference.postprocess import small_et_to_core

    classes = np.zeros((20, 20, 20), np.int16)
    classes[2:8, 2:8, 2:8] = 2  # oedema
    classes[3:5, 3:5, 3:5] = 3  # 8 voxels of ET
    at_1mm = classes.copy()
    done = small_et_to_core(at_1mm, (1.0, 1.0, 1.0), 0.5)
    assert done["applied"] and done["et_ml_predicted"] == pytest.approx(0.008)
    assert not (at_1mm == 3).any() and (at_1mm == 1).sum() == 8 and (at_1mm == 2).sum() == (classes == 2).sum()
    at_5mm = classes.copy()  # the same 8 voxels are 1 mL at 5 mm: kept
    assert not small_et_to_core(at_5mm, (5.0, 5.0, 5.0), 0.5)["applied"] and (at_5mm == 3).sum() == 8
    off = classes.copy()
    assert not small_et_to_core(off, (1.0, 1.0, 1.0), 0.0)["applied"] and np.array_equal(off, classes)
    none = np.where(classes == 3, 2, classes)
    assert not small_et_to_core(none, (1.0, 1.0, 1.0), 0.5)["applied"]  # no ET: nothing to do


def test_analyze_records_the_postprocessing(small_case, tiny_checkpoint, tmp_path):
    import json

    from BrainTumorXAILib.cli import main

    def run(name, *extra):
        out = tmp_path / name
        assert main(["analyze", str(small_case), "--out", str(out), "--weights", str(tiny_checkpoint), "--device",
                     "cpu", "--mc-samples", "0", "--gradcam", "none", "--no-surfaces", "--no-figures", "--quiet",
                     *extra]) == 0
        return json.loads((out / "summary.json").read_text()), nib.load(out / "seg.nii.gz").get_fdata()

    # A threshold above any possible ET volume: every ET voxel of the plain run is core now, nothing else moved.
    plain, seg_plain = run("plain", "--min-et-ml", "0", "--no-enhancement-check")
    huge, seg_huge = run("huge", "--min-et-ml", "1e9", "--no-enhancement-check")
    et_value = 4  # brats2021 naming writes ET as 4, NCR as 1
    assert set(plain["postprocessing"]) == {"small_et"}  # the check switched off is not listed as a step
    assert plain["postprocessing"]["small_et"]["applied"] is False
    assert plain["postprocessing"]["small_et"]["min_et_ml"] == 0.0
    assert (seg_plain == et_value).any()  # the untrained network calls some voxels ET
    assert huge["postprocessing"]["small_et"]["applied"] is True
    assert not (seg_huge == et_value).any()
    assert np.array_equal(seg_huge == 1, (seg_plain == 1) | (seg_plain == et_value))
    np.testing.assert_array_equal(seg_huge == 2, seg_plain == 2)

    # The enhancement check (on by default) before the small-ET rule: the components it relabels are exactly the
    # plain run's ET components not brighter on T1ce than on T1, recomputed here from the case's own images.
    checked, seg_checked = run("checked", "--min-et-ml", "0")
    step = checked["postprocessing"]["enhancement_check"]
    case = load_case(small_case)
    brain = np.any(case.images != 0, axis=0)
    z = {s: (case.images[i] - case.images[i][brain].mean()) / case.images[i][brain].std() for i, s in ((0, "t1"), (1, "t1ce"))}
    components, n = ndimage.label(seg_plain == et_value, structure=np.ones((3, 3, 3)))
    contrast = ndimage.mean(z["t1ce"] - z["t1"], components, index=np.arange(1, n + 1))
    assert step["components"] == n and step["relabelled_components"] == int((contrast <= 0).sum()) > 0
    unenhanced = np.isin(components, np.flatnonzero(contrast <= 0) + 1)
    np.testing.assert_array_equal(seg_checked == et_value, (seg_plain == et_value) & ~unenhanced)
    np.testing.assert_array_equal(seg_checked == 1, (seg_plain == 1) | unenhanced)
    assert step["et_ml_relabelled"] == pytest.approx(unenhanced.sum() * np.prod(case.spacing) / 1000, abs=1e-3)


def test_the_enhancement_check_keeps_enhancement_and_needs_t1():
    from BrainTumorXAILib.inference.postprocess import unenhanced_et_to_core

    rng = np.random.default_rng(0)
    brain = np.zeros((30, 30, 30), bool)
    brain[2:28, 2:28, 2:28] = True
    t1 = np.where(brain, rng.normal(100, 10, brain.shape), 0).astype(np.float32)
    t1ce = t1.copy()
    classes = np.zeros(brain.shape, np.int16)
    classes[4:14, 4:14, 4:14] = 2
    classes[6:10, 6:10, 6:10] = 3  # enhancing: bright on T1ce only
    t1ce[6:10, 6:10, 6:10] += 80
    classes[18:24, 18:24, 18:24] = 3  # as bright on T1 as on T1ce (white matter on a T1-weighted T1ce): not enhancing
    t1[18:24, 18:24, 18:24] += 60
    t1ce[18:24, 18:24, 18:24] += 60
    before = classes.copy()
    done = unenhanced_et_to_core(classes, t1ce, t1, brain, (2.0, 2.0, 2.0))
    assert done["applied"] and done["components"] == 2 and done["relabelled_components"] == 1
    assert done["et_ml_relabelled"] == pytest.approx(216 * 8 / 1000)
    assert (classes[6:10, 6:10, 6:10] == 3).all() and (classes[18:24, 18:24, 18:24] == 1).all()
    assert np.array_equal(classes == 2, before == 2)
    no_t1 = before.copy()
    skipped = unenhanced_et_to_core(no_t1, t1ce, None, brain, (2.0, 2.0, 2.0))
    assert skipped["skipped"] == "no T1 image" and not skipped["applied"] and np.array_equal(no_t1, before)
    nothing = np.where(before == 3, 2, before)
    assert unenhanced_et_to_core(nothing, t1ce, t1, brain, (2.0, 2.0, 2.0))["components"] == 0
