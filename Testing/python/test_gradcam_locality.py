"""How near each Grad-CAM map lies to its class's call: measured in every analysis (no network pass), said in
summary.json, the console, the Grad-CAM figure's title, Slicer's results table and the web page."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from BrainTumorXAILib.reporting.explanation_checks import map_locality
from BrainTumorXAILib.reporting.locality_text import away_from_call, locality_note


def _maps(far_mass: float, near_offset: int):
    """Class 1 predicted in a 4-voxel cube; its CAM: 1 - far_mass inside the cube, far_mass split between a voxel
    ``near_offset`` voxels from the cube and a voxel far away (2 mm voxels)."""
    shape = (24, 24, 24)
    probabilities = np.zeros((4, *shape), np.float32)
    probabilities[0] = 1.0
    probabilities[0, 4:8, 4:8, 4:8], probabilities[1, 4:8, 4:8, 4:8] = 0.0, 1.0
    cam = np.zeros(shape, np.float32)
    cam[4:8, 4:8, 4:8] = (1.0 - far_mass) / 64
    cam[7 + near_offset, 5, 5] += far_mass / 2
    cam[20, 20, 20] += far_mass / 2
    return SimpleNamespace(gradcam={1: cam}, deterministic=None, probabilities=probabilities)


def test_the_share_within_5_mm_counts_the_rim_and_not_far_tissue():
    brain = np.ones((24, 24, 24), bool)
    near = map_locality(_maps(0.4, near_offset=2), brain, spacing=(2.0, 2.0, 2.0))["NCR"]  # 4 mm from the cube
    assert near["in_region"] == pytest.approx(0.6) and near["in_region_margin"] == pytest.approx(0.8)
    beyond = map_locality(_maps(0.4, near_offset=3), brain, spacing=(2.0, 2.0, 2.0))["NCR"]  # 6 mm: outside
    assert beyond["in_region_margin"] == pytest.approx(0.6)
    coarse = map_locality(_maps(0.4, near_offset=2), brain, spacing=(3.0, 3.0, 3.0))["NCR"]  # 6 mm on this grid
    assert coarse["in_region_margin"] == pytest.approx(0.6)


def test_the_note_flags_maps_below_the_floor_in_plain_words():
    one = {"NCR": {"in_region_margin": 0.06}, "ED": {"in_region_margin": 0.6}, "ET": {"in_region_margin": None}}
    assert away_from_call(one) == ["NCR"]  # 0.6 itself is not below the floor; an unmeasured class is not flagged
    assert locality_note(one) == ("Share of each map within 5 mm of its call: NCR 6 %, ED 60 %; the NCR map lies "
                                  "mostly away from its call and does not show what that call rests on")
    two = {"NCR": {"in_region_margin": 0.2}, "ED": {"in_region_margin": 0.59}}
    assert locality_note(two).endswith("the NCR and ED maps lie mostly away from their calls and do not show what "
                                       "those calls rest on")
    assert locality_note({"ET": {"in_region_margin": 0.99}}) == "Share of each map within 5 mm of its call: ET 99 %"
    assert locality_note({}) is None and locality_note(None) is None


def test_every_analysis_reports_it_and_it_equals_the_explanation_checks_energy(small_case, tiny_checkpoint, tmp_path,
                                                                               capsys):
    from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
    from BrainTumorXAILib.console import print_analysis

    summary = analyze_case(small_case, tmp_path / "out", AnalysisOptions(
        weights=tiny_checkpoint, device="cpu", mc_samples=2, surfaces=False, figures=False,
        explanation_checks=True))
    locality = summary["gradcam_locality"]
    assert set(locality) == set(summary["options"]["gradcam_classes"])
    energy = summary["trust_report"]["explanation_checks"]["energy"]  # the same maps and predicted regions
    for name, entry in locality.items():
        assert entry == energy[name]
        if entry["in_region_margin"] is not None:
            assert entry["in_region"] <= entry["in_region_margin"] <= 1.0 + 1e-9
    print_analysis(summary, tmp_path / "out")
    assert "grad-cam: share of each map within 5 mm of its call:" in capsys.readouterr().out
