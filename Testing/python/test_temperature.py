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
    assert "training.calibrate: error:" in err and "missing t1 and t2 images" in err and "Traceback" not in err


# -- class bias (prior correction): training.calibrate --fit class-bias -------------------------------------


def test_stored_class_bias_shifts_the_logits_exactly_after_the_temperature(tmp_path):
    plain, _ = load_model(_tiny(tmp_path / "a.pt"))
    bias = [0.0, 1.5, -0.5, 2.0]
    shifted, meta = load_model(_tiny(tmp_path / "b.pt", temperature=2.0, class_bias=bias))
    assert meta["normalisation"]["class_bias"] == bias
    x = torch.randn(1, 4, 32, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z, zb = plain(x), shifted(x)
    expected = z / 2.0 + torch.tensor(bias).view(1, 4, 1, 1, 1)
    torch.testing.assert_close(zb, expected, rtol=1e-5, atol=1e-5)
    # The segmentation moves: more voxels go to the favoured classes.
    assert (zb.argmax(1) == 3).sum() > (z.argmax(1) == 3).sum()
    raw = load_checkpoint(tmp_path / "b.pt")["state_dict"]
    torch.testing.assert_close(raw["head.bias"], plain.head.bias)
    for bad in ([0.0, 1.0], [0.0, 1.0, float("nan"), 0.0], [0, 0, 0, 99.0], "1,2,3,4", [0, True, 0, 0]):
        with pytest.raises(CheckpointError, match="class_bias"):
            load_model(_tiny(tmp_path / "c.pt", class_bias=bad))


def test_fit_recovers_a_known_prior_shift_and_keeps_a_stored_temperature():
    from training.calibrate import class_shares, fit_class_bias, nll

    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(60_000, 4)) * 2.0).astype(np.float32)
    logits[:, 0] += 2.0  # mostly background, as in a brain
    true_b = np.array([0.0, 1.2, 0.6, 1.8])  # labels drawn from softmax(logits / 1.5 + b): the raw net under-calls
    z = logits / 1.5 + true_b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((len(p), 1))).argmax(1)
    b = fit_class_bias(logits, labels, temperature=1.5)
    assert b[0] == 0.0
    np.testing.assert_allclose(b, true_b, atol=0.08)
    assert nll(logits, labels, 1.5, b) < nll(logits, labels, 1.5) - 0.01
    before, after = class_shares(logits, labels, 1.5), class_shares(logits, labels, 1.5, b)
    gap = lambda s: np.abs(np.subtract(s["predicted"], s["labels"])).sum()  # noqa: E731
    assert gap(after) < gap(before) / 2


def test_calibrate_cli_class_bias_with_leave_one_out(tmp_path, capsys):
    from BrainTumorXAILib.synth import generate_case
    from training.calibrate import main

    data = tmp_path / "val"
    for i in range(3):
        generate_case(data, f"BraTS2021_0019{i}", seed=10 + i, shape=(48, 48, 40), spacing=4.0)
    ckpt = _tiny(tmp_path / "tiny.pt", temperature=1.7)
    out = tmp_path / "tiny_b.pt"
    assert main(["--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--voxels-per-case", "3000",
                 "--fit", "class-bias", "--leave-one-out"]) == 0
    printed = capsys.readouterr().out
    assert "class bias b = [0.000," in printed and printed.count("held out BraTS2021_0019") == 3
    new = load_checkpoint(out)
    b = new["normalisation"]["class_bias"]
    report = new["provenance"]["calibration"]
    assert new["normalisation"]["temperature"] == 1.7  # the stored temperature is kept, the bias fitted on top
    assert report["fit"] == "class-bias" and report["class_bias"] == b and len(b) == 4 and b[0] == 0.0
    assert report["nll_after"] <= report["nll_before"] + 1e-9
    assert [r["case"] for r in report["leave_one_out"]] == ["BraTS2021_00190", "BraTS2021_00191", "BraTS2021_00192"]
    assert all(len(r["fitted"]) == 4 and r["fitted"] != b for r in report["leave_one_out"])
    plain, _ = load_model(ckpt)
    shifted, _ = load_model(out)
    torch.testing.assert_close(shifted.head.bias, plain.head.bias + torch.tensor(b, dtype=torch.float32))
    # Re-fitting the temperature of the new checkpoint keeps its class bias.
    out_t = tmp_path / "tiny_bt.pt"
    assert main(["--checkpoint", str(out), "--data", str(data), "--out", str(out_t), "--voxels-per-case", "3000"]) == 0
    assert load_checkpoint(out_t)["normalisation"]["class_bias"] == b
    capsys.readouterr()
    one = tmp_path / "one"
    one.mkdir()
    (one / "BraTS2021_00190").symlink_to(data / "BraTS2021_00190")
    assert main(["--checkpoint", str(ckpt), "--data", str(one), "--out", str(tmp_path / "x.pt"),
                 "--fit", "class-bias", "--leave-one-out"]) != 0
    err = capsys.readouterr().err
    assert "needs at least two cases" in err and "Traceback" not in err and not (tmp_path / "x.pt").exists()
