"""training.export: an inference checkpoint with the same outputs, no optimiser state, and a provenance note."""

import torch

from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from BrainTumorXAILib.models.factory import build_model
from training.export import main as export_main


def test_export_strips_training_state_and_keeps_the_network(tmp_path):
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2)
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", model, normalisation={"method": "zscore", "crop": "brain", "spacing": None,
                                                           "window": 32, "multiple_of": 4},
                    provenance={"seed": 1}, training_state={"epoch": 3, "optimizer": {"state": {}}})
    out = tmp_path / "demo.pt"
    assert export_main(["--run", str(run), "--out", str(out), "--note", "trained on synthetic cases"]) == 0
    ckpt = load_checkpoint(out)
    assert "training_state" not in ckpt or ckpt["training_state"] is None
    assert ckpt["provenance"]["note"] == "trained on synthetic cases" and ckpt["provenance"]["seed"] == 1
    exported, _ = load_model(out)
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(exported(x), model.eval()(x))
    assert export_main(["--run", str(run), "--out", str(out)]) == 2  # never overwrites silently


def test_export_keeping_two_sequences_equals_the_network_fed_zeros_and_sets_the_window(tmp_path):
    torch.manual_seed(1)
    model = build_model("unet", base_channels=4, depth=2, decoder="light")
    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", model, normalisation={"method": "zscore", "crop": "brain", "spacing": [2.0] * 3,
                                                           "window": 32, "multiple_of": 4,
                                                           "optional_sequences": ["t1"]},
                    provenance={"seed": 1})
    out = tmp_path / "two.pt"
    assert export_main(["--run", str(run), "--out", str(out), "--sequences", "t1ce,flair", "--window", "48"]) == 0
    exported, meta = load_model(out)
    assert meta["sequences"] == ["t1ce", "flair"] and exported.in_channels == 2
    assert meta["normalisation"]["window"] == 48
    assert meta["normalisation"]["optional_sequences"] == ["t1", "t2"]
    x = torch.randn(1, 4, 16, 16, 16)
    x[:, [0, 2]] = 0.0  # t1 and t2 absent
    with torch.no_grad():
        torch.testing.assert_close(exported(x[:, [1, 3]]), model.eval()(x), rtol=1e-5, atol=1e-5)
    assert export_main(["--run", str(run), "--out", str(tmp_path / "w.pt"), "--window", "30"]) == 2  # not a multiple
    assert export_main(["--run", str(run), "--out", str(tmp_path / "s.pt"), "--sequences", "t1ce,dwi"]) == 2
