"""The shipped default weights on the shipped (synthetic) sample case: quality, Grad-CAM focus, uncertainty
that finds errors.  Thresholds sit a few points below what was measured (docs/model_card.md)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_checkpoint
from BrainTumorXAILib.resources import demo_weights_path, sample_case_path
from BrainTumorXAILib.synth import SIZE_PRESETS, generate_cases


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "result"
    summary = analyze_case(sample_case_path(), out, AnalysisOptions(device="cpu", mc_samples=8, gradcam="all",
                                                                    figures=False))
    return out, summary


def test_default_weights_are_small_self_describing_and_say_what_they_learned_from():
    path = demo_weights_path()
    assert path.stat().st_size <= 25 * 1024 * 1024
    ckpt = load_checkpoint(path)
    assert ckpt["sequences"] == ["t1ce", "flair"]
    assert ckpt["normalisation"]["optional_sequences"] == ["t1", "t2"]
    provenance = json.dumps(ckpt["provenance"]).lower()
    assert "synthetic" in provenance and "brats2013" in provenance and "research use only" in provenance


def test_demo_model_segments_the_sample_case(demo_result):
    _, summary = demo_result
    regions = summary["metrics"]["regions"]
    # measured with the shipped default (MC 20): WT 0.913, TC 0.821, ET 0.807, entropy-error AUROC 0.970
    assert regions["WT"]["dice"] > 0.87 and regions["TC"]["dice"] > 0.75 and regions["ET"]["dice"] > 0.75
    assert summary["uncertainty_quality"]["entropy_error_auroc"] > 0.95  # uncertainty sits on the errors
    # the weights carry their validation trust card (model card): the reader sees how far to trust the maps
    trust = summary["model"]["trust"]
    assert trust["cases"] == 2 and "BRATS 2013" in trust["source"]
    assert set(trust["regions"]) == {"WT", "TC", "ET"} and trust["regions"]["WT"]["ece"] < 0.05


@pytest.fixture(scope="module")
def unseen_cases(tmp_path_factory):
    """Cases the demo model never saw (training used seed 1000; the shipped held-out report seed 9000)."""
    shape, spacing = SIZE_PRESETS["small"]
    return generate_cases(tmp_path_factory.mktemp("unseen"), 5, seed=9000, shape=shape, spacing=spacing)


def test_gradcam_concentrates_where_the_class_is_predicted(unseen_cases, tmp_path):
    """Mean CAM within 2 voxels of a predicted class vs. brain more than 10 voxels away.

    Grad-CAM at one layer is not equally sharp on every case, so the claim is about the
    typical case: the median ratio over unseen cases (measured with the shipped weights: ED 9.8, ET
    above 600; the previous default's ED was 30: the low-grade fine-tuning spread the ED map).  The NCR map
    of the default model does not concentrate (median 1.05: it spreads over the whole
    tumour core), a measured limitation stated in the model card, so it is not claimed here.
    """
    on_disk = {"ED": 2, "ET": 4}  # BraTS 2021 convention
    ratios = {name: [] for name in on_disk}
    for case_dir in unseen_cases:
        out = tmp_path / case_dir.name
        summary = analyze_case(case_dir, out, AnalysisOptions(device="cpu", mc_samples=0, gradcam="all",
                                                              surfaces=False, figures=False))
        brain = np.any(load_case(case_dir).images != 0, axis=0)
        seg = np.asarray(nib.load(out / "seg.nii.gz").dataobj)
        for name, value in on_disk.items():
            cam = nib.load(out / f"gradcam_{name}.nii.gz").get_fdata()
            assert cam[~brain].max() == 0.0 and cam.max() == pytest.approx(1.0, abs=1e-4)
            region = seg == value
            assert region.any() and not summary["gradcam_fallback_all_voxels"][name]
            near = ndimage.binary_dilation(region, iterations=2)
            far = brain & ~ndimage.binary_dilation(region, iterations=10)
            ratios[name].append(cam[near].mean() / max(cam[far].mean(), 1e-9))
    for name, values in ratios.items():
        assert np.median(values) > 5, (name, np.round(values, 2))
