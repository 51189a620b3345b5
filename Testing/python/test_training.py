"""training/: a short CPU run, overfitting one case, exact resume, torchrun DDP, bad cases, evaluation, cache."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model
from BrainTumorXAILib.io.labels import SEQUENCES
from training.config import TrainConfig
from training.data import CaseStore, PatchDataset, make_split
from training.losses import DiceFocalLoss
from training.train import main as train_main

TINY = ["--base-channels", "4", "--depth", "2", "--patch", "32", "--batch", "2", "--warmup-steps", "2",
        "--val-mc-samples", "2", "--quiet", "--deterministic", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from BrainTumorXAILib.synth import generate_cases

    root = tmp_path_factory.mktemp("train_data")
    generate_cases(root, 5, seed=11, shape=(48, 48, 40), spacing=4.0)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine is shared: one thread avoids OpenMP oversubscription (a 10-30x slowdown)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_short_run_writes_checkpoints_logs_plots_and_split(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert train_main(["--data", str(tiny_data), "--out", str(run), "--epochs", "2", "--steps-per-epoch", "2",
                       *TINY]) == 0
    for name in ("best.pt", "last.pt", "metrics.csv", "split.json", "config.json", "plots/loss.png", "plots/dice.png"):
        assert (run / name).exists(), name
    rows = read_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    split = json.loads((run / "split.json").read_text())
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(p.name for p in tiny_data.iterdir())
    model, meta = load_model(run / "best.pt")
    assert meta["normalisation"]["window"] == 32 and meta["provenance"]["split"] == split
    assert "training_state" in load_checkpoint(run / "last.pt")


def test_loss_decreases_when_overfitting_one_case(tiny_data):
    from BrainTumorXAILib.models.factory import build_model

    cfg = TrainConfig(patch=32, depth=2, foreground_fraction=1.0, flip=False, spatial_prob=0.0, gamma_prob=0.0,
                      noise_prob=0.0, intensity_scale=0.0, intensity_shift=0.0)
    store = CaseStore(tiny_data, cfg.normalisation_record())
    data = PatchDataset(store, store.keys()[:1], cfg, 4)
    image, label = map(torch.stack, zip(*[data[i] for i in range(4)]))
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = DiceFocalLoss()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(image), label)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_resume_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    args = ["--data", str(tiny_data), "--epochs", "3", "--steps-per-epoch", "2", *TINY]
    assert train_main([*args, "--out", str(tmp_path / "straight")]) == 0
    assert train_main([*args, "--out", str(tmp_path / "split"), "--stop-after-epochs", "1"]) == 0
    assert len(read_csv(tmp_path / "split" / "metrics.csv")) == 1
    # The recipe comes from the run's config.json: only data, epochs and runtime flags are needed.
    assert train_main(["--data", str(tiny_data), "--out", str(tmp_path / "split"), "--resume", "--epochs", "3",
                       "--quiet", "--threads", "1"]) == 0
    a, b = read_csv(tmp_path / "straight" / "metrics.csv"), read_csv(tmp_path / "split" / "metrics.csv")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for key in ("lr", "train_loss", "val_loss", "val_dice_WT", "val_mc_accuracy"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-6, abs=1e-9), key
    wa = load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    wb = load_checkpoint(tmp_path / "split" / "last.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_case_is_reported_and_skipped(tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    bad = data / make_split(sorted(p.name for p in data.iterdir()), (0.75, 0.15, 0.10), 0)["train"][0]
    next(bad.glob("*_flair.nii.gz")).write_bytes(b"not a nifti")
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--out", str(run), "--epochs", "1", "--steps-per-epoch", "2", *TINY]) == 0
    err = capsys.readouterr().err
    assert f"skipping case {bad.name}" in err and "_flair" in err
    assert err.count(f"skipping case {bad.name}") == 1


def test_split_is_deterministic_and_covers_every_case():
    keys = [f"case{i:03d}" for i in range(40)]
    a, b = make_split(keys, (0.75, 0.15, 0.10), 3), make_split(list(reversed(keys)), (0.75, 0.15, 0.10), 3)
    assert a == b and (len(a["train"]), len(a["val"]), len(a["test"])) == (30, 6, 4)
    assert make_split(keys, (0.75, 0.15, 0.10), 4) != a


def test_patches_are_reproducible_per_epoch_and_index(tiny_data):
    cfg = TrainConfig(patch=32, depth=2)
    store = CaseStore(tiny_data, cfg.normalisation_record())
    data = PatchDataset(store, store.keys(), cfg, 8)
    data.set_epoch(3)
    x1, y1 = data[5]
    x2, y2 = data[5]
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (4, 32, 32, 32)
    data.set_epoch(4)
    assert not torch.equal(data[5][0], x1)


def test_torchrun_two_processes_gloo(tiny_data, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    run = tmp_path / "ddp"
    run.mkdir()
    names = sorted(p.name for p in tiny_data.iterdir())  # two validation cases: one per rank
    (run / "split.json").write_text(json.dumps({"train": names[:3], "val": names[3:], "test": []}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "training.train", "--data",
                           str(tiny_data), "--out", str(run), "--epochs", "1", "--steps-per-epoch", "2",
                           "--device", "cpu", "--ddp-timeout-min", "30", *TINY], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == 1 and (run / "last.pt").exists()
    assert load_checkpoint(run / "last.pt")["provenance"]["world_size"] == 2
    # Validation was shared between the ranks and gathered: the same numbers as one process on those weights.
    from training.train import Trainer

    cfg = TrainConfig(data=str(tiny_data), out=str(run), epochs=1, device="cpu", quiet=True, threads=1,
                      base_channels=4, depth=2, patch=32, val_mc_samples=2)
    val = Trainer(cfg, resume=True).validate()
    for key in ("loss", "dice_WT", "mc_accuracy"):
        assert float(rows[0][f"val_{key}"]) == pytest.approx(val[key], rel=1e-5, abs=1e-7), key


def test_evaluate_and_preprocess_cache(tiny_data, tmp_path):
    from training.evaluate import main as eval_main
    from training.build_cache import main as cache_main

    cache = tmp_path / "cache"
    assert cache_main(["--data", str(tiny_data), "--out", str(cache), "--patch", "32", "--depth", "2", "--quiet"]) == 0
    index = json.loads((cache / "index.json").read_text())
    assert len(index["cases"]) == 5 and "crop_start" in index["cases"][0]["transform"]
    run = tmp_path / "run"
    assert train_main(["--data", str(cache), "--out", str(run), "--epochs", "1", "--steps-per-epoch", "2", *TINY]) == 0
    assert eval_main(["--run", str(run), "--data", str(tiny_data), "--split", "all", "--mc-samples", "2",
                      "--quiet"]) == 0
    out = run / "eval_all"
    rows = read_csv(out / "cases.csv")
    assert len(rows) == 5
    for r in rows:
        assert 0.0 <= float(r["dice_WT"]) <= 1.0 and float(r["hd95_WT"]) >= 0.0
    summary = (out / "summary.md").read_text()
    assert "dice_WT" in summary and "±" in summary
    assert (out / "violin_dice.png").stat().st_size > 1000 and (out / "violin_hd95.png").exists()


def test_cache_preprocessing_wins_and_cases_keep_their_folder_names(tiny_data, tmp_path):
    from training.build_cache import main as cache_main
    from training.train import Trainer

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    first = sorted(data.iterdir())[0]
    first.rename(data / "renamed_folder")  # a folder name that is not its files' prefix
    cache = tmp_path / "cache"
    assert cache_main(["--data", str(data), "--out", str(cache), "--spacing", "6", "--method", "minmax",
                       "--patch", "32", "--depth", "2", "--quiet"]) == 0
    record = json.loads((cache / "index.json").read_text())["cases"][-1]
    assert record["key"] == "renamed_folder" and set(record["source_files"]) >= {"t1", "t1ce", "t2", "flair"}
    cfg = TrainConfig(data=str(cache), out=str(tmp_path / "run"), patch=32, depth=2, base_channels=4, quiet=True)
    trainer = Trainer(cfg, resume=False)  # asked for native spacing and z-score; the cache holds 6 mm min-max
    norm = trainer.cfg.normalisation_record()
    assert norm["spacing"] == [6.0] * 3 and norm["method"] == "minmax"
    assert trainer.store.get("renamed_folder").image.dtype == np.float16
    assert json.loads((tmp_path / "run" / "config.json").read_text())["spacing"] == 6.0
    conv = next(w for w in trainer.model.parameters() if w.dim() == 5)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)


def test_worker_processes_draw_the_same_batches(tiny_data):
    from torch.utils.data import DataLoader

    cfg = TrainConfig(patch=32, depth=2)
    store = CaseStore(tiny_data, cfg.normalisation_record())
    data = PatchDataset(store, store.usable(store.keys()), cfg, 4)
    data.set_epoch(2)
    (x0, y0), (x1, y1) = (next(iter(DataLoader(data, batch_size=4, num_workers=n))) for n in (0, 1))
    assert torch.equal(x0, x1) and torch.equal(y0, y1)


def _constant_t2_inside_the_brain(case: Path) -> None:
    """A degenerate case: load_case reads it, but z-score normalisation refuses it (ValueError)."""
    import nibabel as nib

    images = {p: np.asanyarray(nib.load(p).dataobj) for p in case.glob("*.nii.gz") if "_seg" not in p.name}
    brain = np.any([v != 0 for v in images.values()], axis=0)
    t2 = next(p for p in images if p.name.endswith("_t2.nii.gz"))
    img = nib.load(t2)
    nib.save(nib.Nifti1Image(np.where(brain, 5.0, 0.0).astype(np.float32), img.affine), t2)


def test_evaluate_skips_a_case_that_fails_in_prediction(tiny_data, tmp_path, capsys):
    from training.evaluate import main as eval_main

    run = tmp_path / "run"
    assert train_main(["--data", str(tiny_data), "--out", str(run), "--epochs", "1", "--steps-per-epoch", "1",
                       *TINY]) == 0
    good, bad = sorted(tiny_data.iterdir())[:2]
    data = tmp_path / "data"
    for case in (good, bad):
        shutil.copytree(case, data / case.name)
    _constant_t2_inside_the_brain(data / bad.name)
    capsys.readouterr()
    assert eval_main(["--run", str(run), "--data", str(data), "--split", "all", "--mc-samples", "0",
                      "--quiet", "--out", str(tmp_path / "eval")]) == 0
    err = capsys.readouterr().err
    assert err.count(f"skipping {bad.name}: ") == 1 and "constant" in err and "Traceback" not in err
    assert [r["case"] for r in read_csv(tmp_path / "eval" / "cases.csv")] == [good.name]
    assert [r["case"] for r in read_csv(tmp_path / "eval" / "skipped.csv")] == [bad.name]
    assert "Skipped 1 case(s)" in (tmp_path / "eval" / "summary.md").read_text()

    shutil.rmtree(data / good.name)  # nothing left to evaluate: one line, exit status 2, no IndexError
    assert eval_main(["--run", str(run), "--data", str(data), "--split", "all", "--mc-samples", "0",
                      "--quiet", "--out", str(tmp_path / "eval2")]) == 2
    err = capsys.readouterr().err
    assert "training.evaluate: error:" in err and "skipped" in err and len(err.strip().splitlines()) == 2


def test_process_group_gets_a_generous_timeout(monkeypatch):
    """Rank 0 writes checkpoints and logs while the others wait: PyTorch's 10 min NCCL default is too short."""
    from datetime import timedelta

    import training.distributed as ddp

    seen = {}
    monkeypatch.setattr(ddp.dist, "init_process_group", lambda backend, **kw: seen.update(backend=backend, **kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    d, device = ddp.setup("cpu")
    assert (d.rank, d.world, device.type) == (1, 2, "cpu")
    assert seen == {"backend": "gloo", "timeout": timedelta(hours=2)}
    ddp.setup("cpu", timeout_min=30)
    assert seen["timeout"] == timedelta(minutes=30)
    assert TrainConfig().ddp_timeout_min == 120


def test_best_is_written_before_last_and_resume_rewrites_the_logs(tiny_data, tmp_path, monkeypatch):
    import training.train as train_module

    written = []
    save = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda path, *a, **k: (written.append(path.name),
                                                                                save(path, *a, **k)))
    run = tmp_path / "run"
    args = ["--data", str(tiny_data), "--out", str(run), "--epochs", "1", "--steps-per-epoch", "1", *TINY]
    assert train_main(args) == 0
    assert written == ["best.pt", "last.pt"]  # the first epoch is always the best so far
    # Killed after last.pt but before the logs of the final epoch: a resume runs no epoch, yet rewrites them.
    rows = read_csv(run / "metrics.csv")
    (run / "metrics.csv").write_text("epoch\n")
    (run / "plots" / "loss.png").unlink()
    assert train_main(["--data", str(tiny_data), "--out", str(run), "--resume", "--epochs", "1", "--quiet",
                       "--threads", "1"]) == 0
    assert read_csv(run / "metrics.csv") == rows and (run / "plots" / "loss.png").exists()
    assert written == ["best.pt", "last.pt"]


def test_amp_is_automatic_on_cuda_and_recorded(tiny_data, tmp_path):
    from training.train import Trainer, parse_args, resolve_amp

    base = ["--data", str(tiny_data), "--out", str(tmp_path / "run")]
    assert parse_args(base)[0].amp is None
    assert parse_args([*base, "--amp"])[0].amp is True and parse_args([*base, "--no-amp"])[0].amp is False
    assert resolve_amp(None, torch.device("cuda")) is True and resolve_amp(None, torch.device("cpu")) is False
    assert resolve_amp(False, torch.device("cuda")) is False and resolve_amp(True, torch.device("cpu")) is True
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), patch=32, depth=2, base_channels=4,
                      device="cpu", quiet=True)
    trainer = Trainer(cfg, resume=False)
    assert trainer.cfg.amp is False and trainer.amp is False
    assert json.loads((tmp_path / "run" / "config.json").read_text())["amp"] is False


def test_amp_on_the_cpu_trains_in_bfloat16_without_loss_scaling(tiny_data, tmp_path):
    """--amp on the CPU: convolutions in bfloat16 (no GradScaler: bf16 has float32's range), weights and
    loss stay float32, an epoch runs to a finite loss and config.json records amp true."""
    from training.train import Trainer, amp_dtype

    assert amp_dtype(True, torch.device("cpu")) is torch.bfloat16
    assert amp_dtype(True, torch.device("cuda")) is torch.float16 and amp_dtype(False, torch.device("cpu")) is None
    cfg = TrainConfig(data=str(tiny_data), out=str(tmp_path / "run"), patch=32, depth=2, base_channels=4,
                      device="cpu", quiet=True, amp=True, epochs=1, steps_per_epoch=2, batch=1, val_mc_samples=0)
    trainer = Trainer(cfg, resume=False)
    assert trainer.amp_dtype is torch.bfloat16 and not trainer.scaler.is_enabled()
    seen = []
    hook = trainer.model.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss = trainer.train_epoch(0)
    hook.remove()
    assert np.isfinite(loss) and seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["amp"] is True


def test_init_fine_tunes_from_a_checkpoint_with_a_fresh_schedule(tiny_data, tmp_path, capsys):
    from training.train import Trainer, parse_args

    first = tmp_path / "first"
    assert train_main(["--data", str(tiny_data), "--out", str(first), "--epochs", "1", "--steps-per-epoch", "1",
                       *TINY]) == 0
    args = ["--data", str(tiny_data), "--out", str(tmp_path / "second"), "--init", str(first / "best.pt"), *TINY]
    trainer = Trainer(parse_args(args)[0], resume=False)
    start = load_checkpoint(first / "best.pt")["state_dict"]
    for key, value in trainer.model.state_dict().items():  # the weights it starts from are the checkpoint's
        assert torch.equal(value, start[key]), key
    assert trainer.step == 0 and trainer.start_epoch == 0  # a new optimiser and schedule, not a resume
    assert train_main([*args, "--epochs", "1", "--steps-per-epoch", "1"]) == 0
    prov = load_checkpoint(tmp_path / "second" / "last.pt")["provenance"]
    assert prov["initialised_from"] == str(first / "best.pt")
    # Another architecture cannot start from these weights: one line naming the checkpoint.
    bad = ["--data", str(tiny_data), "--out", str(tmp_path / "third"), "--init", str(first / "best.pt"),
           *TINY, "--base-channels", "8", "--epochs", "1", "--steps-per-epoch", "1"]
    assert train_main(bad) != 0
    err = capsys.readouterr().err
    assert "best.pt: --init checkpoint has architecture" in err and "Traceback" not in err


def test_init_from_an_exported_checkpoint_that_reads_fewer_sequences(tiny_data, tmp_path):
    """Fine-tuning the shipped default: ``export --sequences t1ce,flair`` dropped T1/T2's first-layer weights;
    ``--init`` gives them back as zeros, the same network wherever T1 and T2 are withheld (zero inputs)."""
    from training.export import export
    from training.train import Trainer, parse_args

    first = tmp_path / "first"
    assert train_main(["--data", str(tiny_data), "--out", str(first), "--epochs", "1", "--steps-per-epoch", "1",
                       *TINY]) == 0
    narrow = export(first, tmp_path / "narrow.pt", sequences=["t1ce", "flair"])
    trainer = Trainer(parse_args(["--data", str(tiny_data), "--out", str(tmp_path / "second"),
                                  "--init", str(narrow), *TINY])[0], resume=False)
    small, _ = load_model(narrow)
    x = torch.randn(1, 2, 32, 32, 32)
    wide = torch.zeros(1, len(SEQUENCES), 32, 32, 32)
    wide[:, SEQUENCES.index("t1ce")], wide[:, SEQUENCES.index("flair")] = x[:, 0], x[:, 1]
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(trainer.model(wide), small(x), atol=1e-6)
        wide[:, SEQUENCES.index("t1")] = 1.0  # the T1 weights are zero: T1 changes nothing either
        assert torch.allclose(trainer.model(wide), small(x), atol=1e-6)
