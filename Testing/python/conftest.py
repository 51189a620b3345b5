"""Shared fixtures: small synthetic BraTS cases and a tiny untrained checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

#: Oblique, left-right flipped, anisotropic: the hardest geometry a header can have.
OBLIQUE_AFFINE = np.array([
    [-2.9, 0.35, 0.0, 95.0],
    [0.3, 2.95, 0.4, -120.0],
    [0.0, -0.35, 3.4, -60.0],
    [0.0, 0.0, 0.0, 1.0],
])

SMALL_SHAPE = (64, 64, 48)
SMALL_SPACING = 3.0


@pytest.fixture(scope="session")
def small_case(tmp_path_factory):
    """A synthetic brats2021 case at 3 mm on the default BraTS-like header."""
    from BrainTumorXAILib.synth import generate_case

    return generate_case(tmp_path_factory.mktemp("cases"), "BraTS2021_00042", seed=42,
                         shape=SMALL_SHAPE, spacing=SMALL_SPACING)


@pytest.fixture(scope="session")
def oblique_case(tmp_path_factory):
    """The same kind of case in brats2023 naming with an oblique, flipped header."""
    from BrainTumorXAILib.synth import generate_case

    return generate_case(tmp_path_factory.mktemp("cases"), "BraTS-GLI-00007-000", seed=7, naming="brats2023",
                         shape=SMALL_SHAPE, spacing=SMALL_SPACING, affine=OBLIQUE_AFFINE)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained 2-level U-Net in the real checkpoint format (window 32, native spacing)."""
    from BrainTumorXAILib.models.checkpoint import save_checkpoint
    from BrainTumorXAILib.models.factory import build_model

    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.2)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, model, normalisation={"method": "zscore", "crop": "brain", "spacing": None,
                                                "window": 32, "multiple_of": 16},
                    provenance={"note": "untrained test network"})
    return path
