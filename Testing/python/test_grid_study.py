"""The network-grid study: the label ceiling is exact on the native grid, costs Dice on a coarser one,
and the timed analysis runs on the grid it names."""

from __future__ import annotations

import csv

import pytest

from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_model
from training import grid_study


def test_ceiling_is_exact_on_the_native_grid_and_lower_on_a_coarser_one(small_case, tiny_checkpoint):
    _, meta = load_model(tiny_checkpoint)
    rows = grid_study.ceiling_rows([small_case], meta, [3.0, 6.0])
    native, coarse = rows
    assert native["spacing_mm"] == 3.0 and coarse["spacing_mm"] == 6.0
    for region in ("WT", "TC", "ET"):
        assert native[f"ceiling_dice_{region}"] == pytest.approx(1.0)
        assert 0.3 < coarse[f"ceiling_dice_{region}"] < 0.999
    # The 6 mm network grid holds an eighth of the voxels (up to the crop's rounding to 16).
    n3 = [int(v) for v in native["network_grid"].split("x")]
    n6 = [int(v) for v in coarse["network_grid"].split("x")]
    assert all(a > b for a, b in zip(n3, n6))


def test_ceiling_stays_inside_the_brain_and_on_the_case_grid(small_case, tiny_checkpoint):
    _, meta = load_model(tiny_checkpoint)
    case = load_case(small_case)
    classes, _ = grid_study.ceiling_classes(case, grid_study.at_spacing(meta, 4.5))
    assert classes.shape == case.label.shape
    assert set(map(int, set(classes.ravel().tolist()))) <= {0, 1, 2, 3}
    assert (classes[case.images.max(axis=0) == 0] == 0).all()


def test_cli_writes_ceilings_and_times_per_spacing(small_case, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "grid"
    rc = grid_study.main(["--data", str(small_case.parent), "--spacings", "3,6", "--mc-samples", "2",
                          "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    assert rc == 0
    timings = list(csv.DictReader((out / "timings.csv").open()))
    assert [float(t["spacing_mm"]) for t in timings] == [3.0, 6.0]
    assert int(timings[0]["network_voxels"]) > int(timings[1]["network_voxels"])
    assert all(float(t["seconds"]) > 0 for t in timings)
    summary = (out / "summary.md").read_text()
    assert "| 3 |" in summary and "| 6 |" in summary and "1.000 (1.000)" in summary
    assert len(list(csv.DictReader((out / "cases.csv").open()))) == 2


@pytest.mark.parametrize("spacings", ["0,2", "two", "-1"])
def test_bad_spacings_give_one_line(tmp_path, spacings, small_case, capsys):
    rc = grid_study.main(["--data", str(small_case.parent), "--spacings", spacings, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("training.grid_study: error: --spacings") and "\n" not in err
    assert not (tmp_path / "o").exists()
