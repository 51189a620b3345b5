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
