"""Temperature scaling: the stored T makes the network output exactly logits / T; the fit recovers a known T;
``python -m training.calibrate`` end to end on small generated cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from BrainTumorXAILib.errors import CheckpointError  # noqa: E402
from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: E402
from BrainTumorXAILib.models.factory import build_model  # noqa: E402

NORM = {"method": "zscore", "crop": "brain", "spacing": None, "window": 32, "multiple_of": 16}


def _tiny(path, **norm):
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2)
    save_checkpoint(path, model, normalisation={**NORM, **norm}, provenance={})
    return path


def test_stored_temperature_divides_the_logits_exactly(tmp_path):
    plain, _ = load_model(_tiny(tmp_path / "a.pt"))
    scaled, meta = load_model(_tiny(tmp_path / "b.pt", temperature=2.5))
    assert meta["normalisation"]["temperature"] == 2.5
    x = torch.randn(1, 4, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z, zt = plain(x), scaled(x)
    torch.testing.assert_close(zt, z / 2.5, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(zt, z)
    # The stored weights stay raw: resuming training or re-calibrating starts from the network itself.
    raw = load_checkpoint(tmp_path / "b.pt")["state_dict"]
    torch.testing.assert_close(raw["head.weight"], plain.head.weight)
    for bad in (0.0, -1.0, float("nan"), "2"):
        with pytest.raises(CheckpointError, match="temperature"):
            load_model(_tiny(tmp_path / "c.pt", temperature=bad))


def test_fit_recovers_a_known_temperature_and_lowers_ece():
    from training.calibrate import fit_temperature, nll, region_eces

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(40_000, 4)) * 3.0).astype(np.float32)
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): the raw logits are over-confident
    p = np.exp(logits / true_t - (logits / true_t).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.04)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    before, after = region_eces(logits, labels, 1.0), region_eces(logits, labels, t)
    assert all(after[r] < before[r] for r in ("WT", "TC", "ET")), (before, after)
    assert max(after.values()) < 0.02


def test_calibrate_cli_end_to_end(tmp_path, capsys):
    from BrainTumorXAILib.synth import generate_case
    from training.calibrate import main

    data = tmp_path / "val"
    for i in range(2):
        generate_case(data, f"BraTS2021_0009{i}", seed=i, shape=(48, 48, 40), spacing=4.0)
    ckpt = _tiny(tmp_path / "tiny.pt")
    out = tmp_path / "tiny_T.pt"
    assert main(["--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--voxels-per-case", "4000"]) == 0
    printed = capsys.readouterr().out
    assert "temperature T =" in printed and "WT:" in printed and "ET:" in printed
    new = load_checkpoint(out)
    t = new["normalisation"]["temperature"]
    report = new["provenance"]["calibration"]
    assert t > 0 and report["temperature"] == t and len(report["cases"]) == 2
    assert report["nll_after"] <= report["nll_before"] + 1e-9
    assert set(report["ece_before"]) == set(report["ece_after"]) == {"WT", "TC", "ET"}
    plain, _ = load_model(ckpt)
    scaled, _ = load_model(out)
    torch.testing.assert_close(scaled.head.bias, plain.head.bias / t)
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--data", str(data), "--out", str(ckpt)])


def test_calibrate_reads_cases_without_the_optional_sequences_and_fails_in_one_line(tmp_path, capsys):
    """BRATS 2013-like validation cases (FLAIR + T1c only) for a checkpoint that can do without T1/T2."""
    from BrainTumorXAILib.synth import generate_case
    from training.calibrate import main

    data = tmp_path / "val"
    case = generate_case(data, "BraTS2021_00093", seed=3, shape=(48, 48, 40), spacing=4.0)
    for f in list(case.glob("*_t1.nii.gz")) + list(case.glob("*_t2.nii.gz")):
        f.unlink()
    ckpt = _tiny(tmp_path / "tiny.pt", optional_sequences=["t1", "t2"])
    out = tmp_path / "tiny_T.pt"
    assert main(["--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--voxels-per-case", "4000"]) == 0
    assert load_checkpoint(out)["provenance"]["calibration"]["cases"] == ["BraTS2021_00093"]
    # A checkpoint that needs T1: the loader's one line, no traceback.
    capsys.readouterr()
    assert main(["--checkpoint", str(_tiny(tmp_path / "needs_t1.pt")), "--data", str(data), "--out",
                 str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "training.calibrate: error:" in err and "missing t1 image" in err and "Traceback" not in err
