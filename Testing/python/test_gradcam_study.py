"""The Grad-CAM selection study (training/gradcam_study.py) on a small synthetic case with the default weights."""

from __future__ import annotations

import csv

import pytest

from training.gradcam_study import CANDIDATES, main


def test_candidate_numbers_are_unique_and_name_offered_methods():
    from BrainTumorXAILib.inference.explanation_options import GRADCAM_METHODS

    numbers = [n for n, _, _ in CANDIDATES]
    assert len(numbers) == len(set(numbers))
    assert {m for _, m, _ in CANDIDATES} <= set(GRADCAM_METHODS)


def test_study_writes_one_row_per_candidate_and_class(small_case, tmp_path, capsys):
    out = tmp_path / "study.csv"
    assert main([str(small_case), "--candidates", "10,14", "--no-deletion", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [(r["candidate"], r["class"]) for r in rows] == [(c, k) for c in ("10", "14") for k in ("NCR", "ED", "ET")]
    assert {r["layer"] for r in rows} == {"decoder.3"}
    for r in rows:
        if int(r["predicted_voxels"]) == 0:
            continue
        e_region, e_margin = float(r["E_region"]), float(r["E_margin"])
        assert 0.0 <= e_region <= e_margin <= 1.0 + 1e-9  # the region lies inside its 5 mm margin
        assert -1.0 <= float(r["R_full_random"]) <= 1.0 and float(r["T_gradcam_s"]) > 0
        assert r["D_deletion_area"] == ""  # --no-deletion
    assert any(int(r["predicted_voxels"]) > 0 for r in rows)
    assert "candidate 14" in capsys.readouterr().err


def test_monai_gradcam_gives_our_maps_given_the_same_score(small_case, tmp_path):
    """MONAI's GradCAM, told our class score (plain, and the default's runner-up margin), must give our maps."""
    pytest.importorskip("monai", reason="MONAI is the optional `bench` extra")
    out = tmp_path / "study.csv"
    assert main([str(small_case), "--candidates", "99", "--monai", "--out", str(out)]) == 0
    lines = out.with_suffix(".monai.txt").read_text().splitlines()
    gaps = [float(line.split("largest difference ")[1].split()[0]) for line in lines if "largest difference" in line]
    assert len(gaps) >= 2 and any("the default" in line for line in lines)
    assert max(gaps) < 1e-5
