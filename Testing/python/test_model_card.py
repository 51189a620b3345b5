"""The model card and the README quote the shipped weights' committed evaluation tables, not older ones.

Each ``training/records/default/eval_*/summary.md`` is what ``training.evaluate`` wrote for the shipped default;
the card (``docs/model_card.md``) must give its mean Dice per region (as rounded there) and name the folder, so a
card left over from a previous model, or a figure copied from the wrong table, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARD = ROOT / "docs" / "model_card.md"
RECORDS = ROOT / "training" / "records" / "default"
EVAL_DIRS = sorted(p for p in RECORDS.glob("eval_*") if (p / "summary.md").is_file())


def mean_dice(summary: Path) -> dict[str, str]:
    """Mean Dice per region of one ``summary.md`` table, rounded to the card's three decimals."""
    found = dict(re.findall(r"^\| dice_(WT|TC|ET) \| ([0-9.]+) ±", summary.read_text(), flags=re.MULTILINE))
    assert set(found) == {"WT", "TC", "ET"}, f"{summary}: no mean Dice for every region"
    return {region: f"{float(value):.3f}" for region, value in found.items()}


def test_every_evaluation_of_the_default_is_there():
    names = {p.name for p in EVAL_DIRS}
    assert {"eval_tcga", "eval_brats2013", "eval_synthetic", "eval_synthetic_lowgrade"} <= names


def not_quoted(figures: dict[str, str], text: str) -> dict[str, str]:
    return {region: value for region, value in figures.items() if value not in text}


@pytest.mark.parametrize("eval_dir", EVAL_DIRS, ids=lambda p: p.name)
def test_model_card_quotes_the_committed_table(eval_dir):
    card = CARD.read_text()
    missing = not_quoted(mean_dice(eval_dir / "summary.md"), card)
    assert not missing, f"model card lacks {eval_dir.name}'s mean Dice {missing}"
    assert f"records/default/{eval_dir.name}/" in card, f"model card does not link {eval_dir.name}/"


def test_readme_quotes_the_held_out_real_figures():
    readme = (ROOT / "README.md").read_text()
    figures = mean_dice(RECORDS / "eval_tcga" / "summary.md")
    assert not not_quoted(figures, readme), f"README lacks the TCGA means {figures}"


def test_a_stale_figure_is_caught(tmp_path):
    """The check itself: a card that quotes another table's figures is reported, region by region."""
    table = tmp_path / "summary.md"
    table.write_text("| metric | mean ± SE | n |\n|---|---|---|\n| dice_WT | 0.1234 ± 0.01 | 2 |\n"
                     "| dice_TC | 0.5 ± 0.1 | 2 |\n| dice_ET | 0.98765 ± 0.0 | 2 |\n")
    assert mean_dice(table) == {"WT": "0.123", "TC": "0.500", "ET": "0.988"}
    stale_card = "held out: WT 0.123 ± 0.01, TC 0.766, ET 0.988"
    assert not_quoted(mean_dice(table), stale_card) == {"TC": "0.500"}
