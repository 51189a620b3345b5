"""Training recipes as files (``training/recipes/``): each, read by ``training.train --config``, gives back the
configuration its run recorded (config.json), and the sources' real cases lie under one data root."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from training.config import DATA_ROOT_ENV, TrainConfig, default_data_root
from training.generator.mixture import load_sources
from training.train import parse_args, read_recipe, resolve_amp

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "training" / "recipes"
#: The shipped default model's run records (config.json of every run).
RUN_RECORDS = ROOT / "training" / "records" / "default"

#: (recipe, the run's recorded config, flags the run's command line gave beyond the recipe)
RUNS = [("default.json", "config.json", []),
        ("default_finetune.json", "finetune/config.json", ["--init", "/work/runs/v1/best.pt"]),
        ("default_finetune_lgg.json", "finetune2/config.json", ["--init", "/work/runs/v2/best.pt"]),
        ("ablation.json", "ablation/no_mimics/config.json", ["--sources", "training/sources/ablation/no_mimics.json"])]
#: Recorded, but not the recipe's: where the run went, how talkative it was.
NOT_RECIPE = {"out", "quiet"}


def _resolved(cfg: TrainConfig) -> dict:
    """What training itself adds to the configuration before recording it (training.train.Trainer)."""
    record = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as config.json holds them
    record["amp"] = resolve_amp(cfg.amp, torch.device("cpu"))  # these runs trained on a CPU
    record["optional_sequences"] = list(load_sources(ROOT / cfg.sources, default_data_root()).optional_sequences)
    return record


@pytest.mark.parametrize("recipe, recorded, flags", RUNS, ids=[r[0] for r in RUNS])
def test_a_recipe_gives_back_its_runs_recorded_configuration(recipe, recorded, flags, tmp_path):
    cfg, resume, _ = parse_args(["--config", str(RECIPES / recipe), "--out", str(tmp_path / "run"), *flags])
    assert not resume
    config = json.loads((RUN_RECORDS / recorded).read_text())
    mine = _resolved(cfg)
    compared = sorted(set(config) - NOT_RECIPE)
    assert {k: mine[k] for k in compared} == {k: config[k] for k in compared}
    # Settings added since the run was recorded keep their defaults unless the recipe names them (keep_epochs:
    # the run copied every epoch's weights by hand).
    defaults = dataclasses.asdict(TrainConfig())
    added = set(mine) - set(config) - set(read_recipe(RECIPES / recipe))
    assert {k: mine[k] for k in added} == {k: defaults[k] for k in added}


def test_flags_override_the_recipe(tmp_path):
    cfg, _, _ = parse_args(["--config", str(RECIPES / "default.json"), "--out", str(tmp_path), "--epochs", "3",
                            "--batch", "16", "--no-flip", "--data-root", str(tmp_path)])
    assert (cfg.epochs, cfg.batch, cfg.flip, cfg.data_root) == (3, 16, False, str(tmp_path))
    assert (cfg.lr, cfg.patch, cfg.sources) == (0.002, 64, "training/sources/default.json")  # the rest: the recipe's


def test_a_recipe_with_an_unknown_setting_is_one_line_naming_it(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 2, "learning_rate": 0.1}))
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and str(bad) in err and "learning_rate" in err


def test_real_cases_are_named_relative_to_the_data_root(tmp_path, monkeypatch):
    sources = sorted((ROOT / "training" / "sources").rglob("*.json"))
    assert len(sources) >= 14
    for path in sources:
        data = json.loads(path.read_text())
        for case in data.get("real", {}).get("cases", []) + data.get("validation", []):
            name = Path(case["path"] if isinstance(case, dict) else case)
            assert not name.is_absolute() and ".." not in name.parts, (path, name)
    spec = load_sources(ROOT / "training" / "sources" / "default.json", tmp_path)
    assert [c["path"] for c in spec.real] == [tmp_path.resolve() / "BRATS2013" / f"pat000{i}" for i in range(1, 5)]
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert default_data_root() == ROOT.parent / "shared" / "realdata"
