"""Cases without T1 or T2: a checkpoint trained with sequence dropout runs and says what was missing;
one that was not keeps the loader's one-line error; a two-sequence checkpoint ignores T1/T2."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.models.checkpoint import save_checkpoint
from BrainTumorXAILib.models.factory import build_model

NORM = {"method": "zscore", "crop": "brain", "spacing": None, "window": 32, "multiple_of": 4}


def _checkpoint(path, in_channels=4, sequences=("t1", "t1ce", "t2", "flair"), optional=()):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=in_channels, base_channels=4, depth=2, dropout=0.2)
    save_checkpoint(path, model, sequences=list(sequences), normalisation={**NORM, "optional_sequences": list(optional)},
                    provenance={"note": "untrained test network"})
    return path, model


def _without(case_dir, tmp_path, drop=("t1", "t2")):
    folder = tmp_path / case_dir.name
    folder.mkdir()
    for f in case_dir.iterdir():
        if not any(f.name.endswith(f"_{s}.nii.gz") for s in drop):
            shutil.copy(f, folder)
    return folder


def _options(weights, **kw):
    return AnalysisOptions(weights=weights, device="cpu", mc_samples=0, gradcam="none", surfaces=False, figures=False,
                           **kw)


def test_dropout_checkpoint_runs_without_t1_t2_and_reports_it(small_case, tmp_path):
    weights, _ = _checkpoint(tmp_path / "opt.pt", optional=("t1", "t2"))
    case = _without(small_case, tmp_path)
    summary = analyze_case(case, tmp_path / "out", _options(weights))
    assert summary["missing_sequences"] == ["t1", "t2"]
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["missing_sequences"] == ["t1", "t2"] and written["case"]["missing_sequences"] == ["t1", "t2"]
    seg = nib.load(tmp_path / "out" / "seg.nii.gz")
    ref = nib.load(next(case.glob("*_t1ce.nii.gz")))
    assert seg.shape == ref.shape and np.allclose(seg.affine, ref.affine)


def test_missing_sequence_equals_a_zero_channel_after_normalisation(small_case, tmp_path):
    """What the network sees for an absent T2 is exactly a zero channel, whatever the T2 file held."""
    from BrainTumorXAILib.inference.case_prediction import network_input
    from BrainTumorXAILib.io.case_io import load_case

    meta = {"sequences": ["t1", "t1ce", "t2", "flair"], "normalisation": {**NORM, "optional_sequences": ["t2"]}}
    full = load_case(small_case)
    partial = load_case(_without(small_case, tmp_path, drop=("t2",)), optional=("t2",))
    x_full, mask_full, _, _ = network_input(full, meta)
    x_part, mask_part, _, _ = network_input(partial, meta)
    assert not x_part[2].any() and x_full[2].any()
    np.testing.assert_array_equal(mask_full, mask_part)
    np.testing.assert_allclose(x_part[[0, 1, 3]], x_full[[0, 1, 3]], atol=1e-6)


def test_checkpoint_without_dropout_keeps_the_one_line_error(small_case, tmp_path):
    weights, _ = _checkpoint(tmp_path / "plain.pt")
    case = _without(small_case, tmp_path)
    with pytest.raises(BrainTumorXAIError, match=r"missing t1 and t2 images; expected .*_t1\.nii.*_t2\.nii"):
        analyze_case(case, tmp_path / "out", _options(weights))
    assert not (tmp_path / "out").exists()


def test_two_sequence_checkpoint_reads_t1ce_and_flair_only(small_case, tmp_path):
    weights, _ = _checkpoint(tmp_path / "two.pt", in_channels=2, sequences=("t1ce", "flair"), optional=("t1", "t2"))
    a = analyze_case(small_case, tmp_path / "all", _options(weights))
    b = analyze_case(_without(small_case, tmp_path), tmp_path / "two", _options(weights))
    assert a["missing_sequences"] == [] and b["missing_sequences"] == ["t1", "t2"]
    pa = nib.load(tmp_path / "all" / "prob_ED.nii.gz").get_fdata()
    pb = nib.load(tmp_path / "two" / "prob_ED.nii.gz").get_fdata()
    # the brain mask is the same (T1/T2 are zero exactly where FLAIR/T1ce are), so is the result
    np.testing.assert_allclose(pa, pb, atol=1e-5)
