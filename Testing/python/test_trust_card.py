"""The checkpoint's uncertainty-quality card: format, safe reading, where it comes from, how it is shown."""

from __future__ import annotations

import json

import pytest

from BrainTumorXAILib.reporting.checkpoint_trust import (NOT_MEASURED, TRUST_FORMAT, checkpoint_trust, region_text, side_file,
                                         summary_trust, validate_trust)

CARD = {"format": TRUST_FORMAT, "source": "evaluate, 8 validation cases", "cases": 8, "estimator": "mc_dropout",
        "temperature": 1.25, "extra": "dropped",
        "regions": {"WT": {"ece": 0.04, "auroc_entropy": 0.9, "qubrats": 0.85, "qubrats_zero": 0.8, "bogus": 0.5},
                    "TC": {"ece": -0.1, "auroc_entropy": "0.9", "qubrats": True},  # nothing valid
                    "ET": {"auprc_entropy": 0.25}}}


def test_validation_keeps_only_finite_unit_figures():
    card = validate_trust(CARD)
    assert card["regions"] == {"WT": {"ece": 0.04, "auroc_entropy": 0.9, "qubrats": 0.85, "qubrats_zero": 0.8},
                               "ET": {"auprc_entropy": 0.25}}
    assert card["temperature"] == 1.25 and card["cases"] == 8 and "extra" not in card
    assert validate_trust({**CARD, "format": "other/1"}) is None
    assert validate_trust({"format": TRUST_FORMAT, "regions": {"WT": {"ece": float("nan")}}}) is None
    assert validate_trust("not a dict") is None
    assert validate_trust({**CARD, "temperature": -1.0}).get("temperature") is None


def test_provenance_wins_over_the_side_file_and_malformed_side_files_read_as_absent(tmp_path):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"")
    assert side_file(weights).name == "model.trust.json"
    assert checkpoint_trust({"provenance": {}}, weights) is None
    side_file(weights).write_text(json.dumps({**CARD, "cases": 3}))
    assert checkpoint_trust({"provenance": {}}, weights)["cases"] == 3
    assert checkpoint_trust({"provenance": {"trust": CARD}}, weights)["cases"] == 8
    side_file(weights).write_text("{not json")
    assert checkpoint_trust({"provenance": {}}, weights) is None
    side_file(weights).write_text(json.dumps({**CARD, "source": "x" * 70_000}))  # over 64 kB: not read
    assert checkpoint_trust({}, weights) is None


def test_texts():
    card = validate_trust(CARD)
    assert region_text(card, "WT") == "ECE 0.040 · AUROC 0.900 · QU-BraTS 0.850 (zero 0.800)"
    assert region_text(card, "ET") == "AUPRC 0.250"
    assert region_text(card, "TC") == NOT_MEASURED and region_text(None, "WT") == NOT_MEASURED
    assert summary_trust({"model": {"trust": None, "provenance": {"trust": CARD}}})["cases"] == 8
    assert summary_trust({"model": None}) is None


def test_training_trust_card_attaches_the_validation_means(small_case, tiny_checkpoint, tmp_path, capsys):
    import csv

    from BrainTumorXAILib.models.checkpoint import load_model
    from BrainTumorXAILib.reporting.checkpoint_trust import checkpoint_trust
    from training.evaluate import main as eval_main
    from training.trust_card import main as card_main

    ev = tmp_path / "eval"
    assert eval_main(["--data", str(small_case.parent), "--split", "all", "--checkpoint", str(tiny_checkpoint),
                      "--out", str(ev), "--mc-samples", "2", "--device", "cpu", "--quiet"]) == 0
    row = next(csv.DictReader((ev / "cases.csv").open()))
    out = tmp_path / "carded.pt"
    assert card_main(["--checkpoint", str(tiny_checkpoint), "--eval", str(ev), "--out", str(out),
                      "--source", "one synthetic case, MC 2"]) == 0
    _, meta = load_model(out)
    card = checkpoint_trust(meta, out)
    assert card["source"] == "one synthetic case, MC 2" and card["cases"] == 1 and card["estimator"] == "mc_dropout"
    assert card["regions"]["WT"]["ece"] == pytest.approx(float(row["ece_WT"]))
    assert card["regions"]["ET"]["qubrats_zero"] == pytest.approx(float(row["qubrats_zero_ET"]))
    assert card["regions"]["TC"]["qubrats_deterministic"] == pytest.approx(float(row["qubrats_deterministic_entropy_TC"]))
    # The original is left as it was; a folder without an evaluation is one line, not a traceback.
    assert checkpoint_trust(load_model(tiny_checkpoint)[1], tiny_checkpoint) is None
    capsys.readouterr()
    assert card_main(["--checkpoint", str(tiny_checkpoint), "--eval", str(tmp_path), "--out", str(tmp_path / "x.pt"),
                      "--source", "x"]) != 0
    err = capsys.readouterr().err
    assert "cases.csv: no cases.csv" in err and "Traceback" not in err
