"""Self-describing weights-only checkpoints: round trip, atomic writes, refusal of unsafe or broken files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from BrainTumorXAILib.models import checkpoint as ck
from BrainTumorXAILib.models.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model,
    restore_rng_state,
    save_checkpoint,
)
from BrainTumorXAILib.errors import CheckpointError
from BrainTumorXAILib.io.labels import CLASS_NAMES, CONVENTIONS, SEQUENCES, from_internal
from BrainTumorXAILib.models import build_model

NORMALISATION = {"method": "zscore", "crop": "brain", "spacing": [2.0, 2.0, 2.0], "window": 32, "multiple_of": 4}
PROVENANCE = {"training_data": "synthetic test volumes", "seed": 0}


def tiny(name="attunet"):
    torch.manual_seed(0)
    return build_model(name, base_channels=4, depth=2)


def save(path, model=None, **kw):
    kw.setdefault("normalisation", NORMALISATION)
    kw.setdefault("provenance", PROVENANCE)
    return save_checkpoint(path, model or tiny(), **kw)


@pytest.fixture
def good(tmp_path):
    return save(tmp_path / "good.pt")


def expect_error(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("name", ["unet", "resunet", "attunet"])
def test_round_trip_gives_identical_outputs(tmp_path, name):
    model = tiny(name).eval()
    path = save(tmp_path / f"{name}.pt", model)
    loaded, meta = load_model(path)
    assert not loaded.training
    x = torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["format"] == ck.FORMAT and meta["format_version"] == 1
    assert meta["architecture"] == model.config
    assert meta["sequences"] == list(SEQUENCES) and meta["class_names"] == list(CLASS_NAMES)
    assert meta["normalisation"] == NORMALISATION
    assert meta["provenance"]["training_data"] == "synthetic test volumes"
    assert meta["provenance"]["torch_version"] == torch.__version__
    assert "state_dict" not in meta
    raw = torch.load(path, weights_only=True)  # plain torch can read it safely too
    assert set(raw["state_dict"]) == set(model.state_dict())


def test_training_state_is_weights_only_loadable(tmp_path):
    model = tiny("unet")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    model(torch.randn(1, 4, 16, 16, 16)).mean().backward()
    opt.step()
    sched.step()
    rng = capture_rng_state()
    expected = torch.rand(3), np.random.rand(3)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 3, "best_score": 0.81,
             "rng": rng, "history": np.arange(4)}
    path = save(tmp_path / "train.pt", model, training_state=state, extra={"note": "x", "n": np.int64(2)})
    ckpt = load_checkpoint(path)
    ts = ckpt["training_state"]
    assert ts["epoch"] == 3 and ts["best_score"] == 0.81 and torch.equal(ts["history"], torch.arange(4))
    assert ckpt["extra"] == {"note": "x", "n": 2}
    opt2 = torch.optim.AdamW(tiny("unet").parameters(), lr=1e-3)
    opt2.load_state_dict(ts["optimizer"])
    restore_rng_state(ts["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert "training_state" not in load_model(path)[1]


def test_unstorable_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"provenance\['when'\]"):
        save(tmp_path / "bad.pt", provenance={"when": object()})
    with pytest.raises(ValueError, match="sequences"):
        save(tmp_path / "bad.pt", sequences=("t1", "t2"))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_temp_files_and_keeps_old_file_on_crash(tmp_path, good, monkeypatch):
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]
    before = good.read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save(good, tiny("unet"))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]
    assert good.read_bytes() == before
    load_model(good)


@pytest.mark.parametrize("kind", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, kind):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    payload = {"format": ck.FORMAT, "format_version": 1, "state_dict": {}, "payload": Evil()}
    if kind == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    expect_error(path, "refused: the file contains pickled code; only weights-only checkpoints are loaded")
    assert not marker.exists()


def test_broken_files_name_the_file(tmp_path, good):
    truncated = tmp_path / "truncated.pt"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    expect_error(truncated, "corrupt or truncated")
    garbage = tmp_path / "random.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    expect_error(garbage, "not a PyTorch checkpoint")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    expect_error(empty, "empty file")
    expect_error(tmp_path / "missing.pt", "checkpoint not found")
    expect_error(tmp_path, "folder")


def _resave(tmp_path, good, name, edit):
    ckpt = torch.load(good, weights_only=True)
    edit(ckpt)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def test_wrong_format_version_and_missing_keys(tmp_path, good):
    bare = tmp_path / "bare.pt"
    torch.save(tiny().state_dict(), bare)
    expect_error(bare, "format tag is None.*bare state_dict")
    expect_error(_resave(tmp_path, good, "tag.pt", lambda c: c.update(format="other")), "format tag is 'other'")
    expect_error(_resave(tmp_path, good, "v2.pt", lambda c: c.update(format_version=2)),
                 "unsupported format_version 2")
    expect_error(_resave(tmp_path, good, "nokey.pt", lambda c: c.pop("normalisation")), "lacks key.*normalisation")
    expect_error(_resave(tmp_path, good, "seq.pt", lambda c: c.update(sequences=["t1", "dwi", "t2", "flair"])),
                 "sequences")
    expect_error(_resave(tmp_path, good, "name.pt", lambda c: c["architecture"].update(name="vnet")),
                 "bad architecture.*unknown model")


def test_wrong_architecture_names_the_keys(tmp_path, good):
    wider = _resave(tmp_path, good, "wide.pt", lambda c: c["architecture"].update(base_channels=8))
    expect_error(wider, "does not match architecture 'attunet'.*shape")
    plain = _resave(tmp_path, good, "plain.pt", lambda c: c["architecture"].update(name="unet"))
    err = expect_error(plain, "unexpected keys: decoder.0.gate")
    assert "more" in str(err)
    deeper = _resave(tmp_path, good, "deep.pt", lambda c: c["architecture"].update(depth=3))
    expect_error(deeper, "missing keys: encoder.2")
    # The same validation applies to load_checkpoint itself.
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(deeper)


def test_load_model_from_dict(good):
    model, meta = load_model(load_checkpoint(good), device="cpu")
    assert meta["architecture"]["name"] == "attunet"
    assert next(model.parameters()).device.type == "cpu"
    bad = load_checkpoint(good)
    bad["format"] = "nope"
    with pytest.raises(CheckpointError, match="format tag"):
        load_model(bad)


def test_label_conventions_round_trip(tmp_path, good):
    _, meta = load_model(good)
    labels = meta["labels"]
    assert labels["internal"] == {0: "background", 1: "NCR", 2: "ED", 3: "ET"}
    assert labels["conventions"] == {"brats2021": {0: 0, 1: 1, 2: 2, 3: 4}, "brats2023": {0: 0, 1: 1, 2: 2, 3: 3}}
    for name, table in labels["conventions"].items():  # the stored tables agree with the writer's
        classes = np.arange(4)
        assert [table[int(c)] for c in classes] == from_internal(classes, name).tolist() == list(CONVENTIONS[name])
    assert torch.load(good, weights_only=True)["labels"] == labels  # plain torch reads it safely
    assert ck.checkpoint_labels(meta) == labels
    custom = save(tmp_path / "custom.pt", class_names=["bg", "a", "b", "c"])
    assert load_model(custom)[1]["labels"] == {"internal": {0: "bg", 1: "a", 2: "b", 3: "c"}}  # no BraTS tables


def test_checkpoints_without_labels_still_load(tmp_path, good):
    old = _resave(tmp_path, good, "old.pt", lambda c: c.pop("labels"))
    _, meta = load_model(old)
    assert "labels" not in meta
    assert ck.checkpoint_labels(meta) == ck.default_labels(CLASS_NAMES) == load_model(good)[1]["labels"]


def test_shipped_demo_weights_still_load():
    from BrainTumorXAILib.resources import demo_weights_path

    path = demo_weights_path()
    if not path.exists():
        pytest.skip("no demo weights in this checkout")
    _, meta = load_model(path)
    assert ck.checkpoint_labels(meta)["internal"] == dict(enumerate(CLASS_NAMES))


def test_inconsistent_labels_are_refused(tmp_path, good):
    expect_error(_resave(tmp_path, good, "l1.pt", lambda c: c.update(labels=["x"])), "'labels' must be a dict")
    expect_error(_resave(tmp_path, good, "l2.pt", lambda c: c["labels"]["internal"].update({3: "XX"})),
                 "'labels' names classes")
    expect_error(_resave(tmp_path, good, "l3.pt", lambda c: c["labels"]["conventions"]["brats2021"].pop(3)),
                 "convention 'brats2021'")


@pytest.mark.parametrize("name", ["unet", "resunet", "attunet"])
def test_meta_build_has_the_real_shapes_and_no_values(name):
    model = tiny(name)
    meta = ck._build(model.config, None, device="meta")
    assert all(p.is_meta for p in meta.parameters())
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_loading_a_model_does_not_import_dynamo(tmp_path, good):
    # The meta build's random initialisers used to import torch._dynamo: ~1.4 s of every analyze's load stage.
    import subprocess
    import sys

    code = ("import sys; from BrainTumorXAILib.models.checkpoint import load_model; "
            f"load_model({str(good)!r}); print('torch._dynamo' in sys.modules)")
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(ck.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "False"
