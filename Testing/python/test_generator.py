"""The training generator: synthetic patches keep the contrasts that carry the diagnosis, tumour kinds
are what they say, sources mix by weight with sequence dropout, BRATS 2013 cases read and convert."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.labels import SEQUENCES
from training.generator.appearance import draw_means
from training.generator.atlas import load_atlas
from training.generator.synthetic import SynthSettings, synthetic_patch
from training.generator.tumour_labels import draw_spec, tumour_labels

T1, T1CE, T2, FLAIR = (SEQUENCES.index(s) for s in ("t1", "t1ce", "t2", "flair"))


@pytest.fixture(scope="module")
def patches():
    return [synthetic_patch(np.random.default_rng(seed), 48, SynthSettings(healthy_prob=0.0)) for seed in range(6)]


def test_patch_is_seeded_zero_outside_brain_and_labelled_inside(patches):
    again = synthetic_patch(np.random.default_rng(0), 48, SynthSettings(healthy_prob=0.0))
    np.testing.assert_array_equal(again[0], patches[0][0])
    np.testing.assert_array_equal(again[1], patches[0][1])
    for image, label in patches:
        assert image.shape == (4, 48, 48, 48) and image.dtype == np.float32 and label.dtype == np.uint8
        outside = np.all(image == 0, axis=0)
        assert not label[outside].any()  # tumour only inside the brain
        assert set(np.unique(label)) <= {0, 1, 2, 3}
    assert sum(int((label > 0).sum() > 50) for _, label in patches) >= 5  # tumours are drawn, not empty


def test_patch_keeps_the_diagnostic_contrasts(patches):
    """Whatever else is random: oedema bright on FLAIR and T2, enhancement bright on T1ce and above T1,
    necrosis darker than healthy tissue on T1ce; every channel z-scored about the brain."""
    for image, label in patches:
        brain = np.any(image != 0, axis=0)
        healthy = brain & (label == 0)
        for c in range(4):
            assert abs(float(image[c][brain].mean())) < 1.0
        if (label == 2).sum() > 30:
            for c in (FLAIR, T2):
                assert image[c][label == 2].mean() > image[c][healthy].mean() + 0.3
        if (label == 3).sum() > 30:
            assert image[T1CE][label == 3].mean() > np.percentile(image[T1CE][healthy], 75)
            assert image[T1CE][label == 3].mean() > image[T1][label == 3].mean()
        if (label == 1).sum() > 30:
            assert image[T1CE][label == 1].mean() < image[T1CE][healthy].mean()


def test_means_randomise_healthy_tissue_but_not_the_signal():
    draws = [draw_means(np.random.default_rng(s), random_share=1.0) for s in range(200)]
    # healthy order is free: GM brighter than WM on T1 in some draws, darker in others
    assert 0.2 < np.mean([d["t1"]["gm"] > d["t1"]["wm"] for d in draws]) < 0.8
    for d in draws:
        assert d["flair"]["ed"] > max(d["flair"]["gm"], d["flair"]["wm"])
        assert d["flair"]["csf"] < min(d["flair"]["gm"], d["flair"]["wm"])
        assert d["t1ce"]["et"] > max(d["t1ce"][k] for k in ("csf", "gm", "wm"))
        assert d["t1ce"]["ncr"] < min(d["t1ce"]["gm"], d["t1ce"]["wm"])


def test_cystic_necrosis_is_fluid_on_flair_and_t2_and_leaves_other_draws_alone():
    """cystic_share 1: necrosis between CSF and healthy tissue on FLAIR, fluid-bright on T2, still dark on T1ce;
    cystic_share 0 is the default (earlier runs' sources files do not name it)."""
    for seed in range(100):
        d = draw_means(np.random.default_rng(seed), random_share=0.5, cystic_share=1.0)
        healthy_lo = min(d["flair"]["gm"], d["flair"]["wm"])
        assert d["flair"]["csf"] < d["flair"]["ncr"] < healthy_lo
        assert d["t2"]["ncr"] >= 0.9 * max(d["t2"]["ed"], d["t2"]["csf"])
        assert d["t1ce"]["ncr"] < min(d["t1ce"]["gm"], d["t1ce"]["wm"])
        plain = draw_means(np.random.default_rng(seed), random_share=0.5)
        assert plain == draw_means(np.random.default_rng(seed), random_share=0.5, cystic_share=0.0)


def test_cystic_necrosis_setting_makes_flair_dark_necrosis_in_patches():
    settings = SynthSettings(cystic_necrosis=1.0, kinds={"ring": 1.0}, healthy_prob=0.0, random_contrast_share=0.0)
    seen = 0
    for seed in range(6):
        image, label = synthetic_patch(np.random.default_rng(seed), 48, settings)
        brain = image[FLAIR] != 0
        if (label == 1).sum() < 30:
            continue
        seen += 1
        healthy = brain & (label == 0)
        assert image[FLAIR][label == 1].mean() < np.median(image[FLAIR][healthy])
        assert image[FLAIR][label == 2].mean() > image[FLAIR][label == 1].mean()
    assert seen >= 2


@pytest.mark.parametrize("kind, present, absent", [
    ("ring", {1, 2, 3}, set()), ("solid", {2, 3}, {1}), ("nonenhancing", {1, 2}, {3}), ("infiltrative", {1, 2}, {3}),
])
def test_tumour_kinds(kind, present, absent):
    shape = (48, 48, 48)
    tissue = np.ones(shape, bool)
    wm = np.full(shape, 0.5, np.float32)
    rng = np.random.default_rng(3)
    spec = draw_spec(rng, np.array([24.0, 24.0, 24.0]), {kind: 1.0})
    spec.core_mm = [14.0]
    spec.centres = spec.centres[:1]
    spec.lobes = [1]
    spec.edema_mm = 8.0
    spec.gaps = 0.0
    classes, weight = tumour_labels(rng, spec, tissue, wm, 2.0)
    found = set(np.unique(classes).tolist()) - {0}
    assert present <= found and not (absent & found)
    assert np.all(weight[classes != 2] == 0) and weight[classes == 2].max() <= 1.0
    if kind == "ring":  # necrosis inside, enhancing rim outside it
        from scipy import ndimage

        depth = ndimage.distance_transform_edt(classes != 0)
        assert depth[classes == 1].mean() > depth[classes == 3].mean()


def test_atlas_is_lps_brain_with_tissue_shares():
    atlas = load_atlas(2.0)
    assert np.allclose(atlas.tissue.sum(0), atlas.brain, atol=1e-4)
    assert 0.3 < atlas.fractions[1] < 0.7 and 0.2 < atlas.fractions[2] < 0.5
    assert len(atlas.deep) > 1000
    # LPS: the cerebellum (lowest third) sits at high P index (posterior)
    brain = atlas.brain > 0.5
    low = brain[:, :, : brain.shape[2] // 4]
    ys = np.nonzero(low)[1]
    assert ys.mean() > brain.shape[1] / 2


# --------------------------------------------------------------------------- real cases


def _brats2013_case(folder, seed=0):
    rng = np.random.default_rng(seed)
    shape = (40, 44, 36)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    brain = np.zeros(shape, bool)
    brain[5:35, 6:38, 4:32] = True
    labels = np.zeros(shape, np.float32)
    labels[15:25, 15:25, 12:22] = 2
    labels[17:23, 17:23, 14:20] = 4
    labels[19:21, 19:21, 16:18] = 1
    labels[17:18, 17:19, 14:15] = 3
    folder.mkdir(parents=True)
    for name in ("Flair_subtrMeanDivStd", "T1c_subtrMeanDivStd"):
        data = np.where(brain, rng.normal(0, 1, shape), -3.5).astype(np.float32)
        data[labels > 0] += 2.0
        nib.save(nib.Nifti1Image(data, affine), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), folder / "OTMultiClass.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.float64), affine), folder / "brainmask.nii.gz")
    return folder, labels, brain


def test_brats2013_reads_with_background_zero_and_labels_mapped(tmp_path):
    from training.generator.real import read_real

    folder, labels, brain = _brats2013_case(tmp_path / "pat0001")
    case = read_real(folder)
    assert case.present == ("flair", "t1ce")
    assert not case.images[T1].any() and not case.images[T2].any()
    assert np.all(case.images[FLAIR][~brain] == 0) and np.all(case.images[FLAIR][brain] > 0)
    np.testing.assert_array_equal(case.label[labels == 4], 3)
    np.testing.assert_array_equal(case.label[labels == 3], 1)  # non-enhancing joins NCR
    np.testing.assert_array_equal(case.label[labels == 1], 1)
    np.testing.assert_array_equal(case.label[labels == 2], 2)


def test_convert_brats2013_to_brats_layout(tmp_path):
    from BrainTumorXAILib.io.case_io import load_case
    from training.convert_brats2013 import main

    folder, labels, _ = _brats2013_case(tmp_path / "src" / "pat0002")
    assert main([str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / "pat0002"
    assert sorted(p.name for p in out.iterdir()) == ["pat0002_flair.nii.gz", "pat0002_seg.nii.gz", "pat0002_t1ce.nii.gz"]
    seg = np.asarray(nib.load(out / "pat0002_seg.nii.gz").dataobj)
    assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}
    case = load_case(out, optional=("t1", "t2"))
    assert case.missing == ["t1", "t2"]
    np.testing.assert_array_equal(case.label[labels == 4], 3)
    assert main([str(tmp_path / "src"), str(tmp_path / "out")]) == 2  # never overwrites


def _sources(tmp_path, **overrides):
    data = {"synthetic": {"weight": 0.5, "settings": {"spacing": 2.0}},
            "real": {"weight": 0.5, "cases": [{"path": "pat0001", "labels": "expert"}]},
            "sequence_dropout": {"t1": 0.5, "t2": 0.5}}
    data.update(overrides)
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(data))
    return path


def test_mixture_draws_both_sources_and_drops_sequences(tmp_path):
    from training.generator.mixture import MixtureDataset, RealStore, load_sources

    _brats2013_case(tmp_path / "pat0001")
    spec = load_sources(_sources(tmp_path), tmp_path)
    assert spec.optional_sequences == ("t1", "t2")
    norm = {"method": "zscore", "crop": "brain", "window": 32, "spacing": [2.0] * 3, "multiple_of": 16}
    store = RealStore(spec.real, norm)
    cfg = SimpleNamespace(seed=0, patch=32, flip=True, foreground_fraction=0.5, spatial_prob=0.3, rotate_deg=10.0,
                          scale=0.1, intensity_scale=0.1, intensity_shift=0.1, gamma=0.3, gamma_prob=0.3,
                          noise_std=0.05, noise_prob=0.2)
    data = MixtureDataset(spec, store, store.keys(), cfg, 40)
    samples = [data[i] for i in range(40)]
    again = data[7]
    np.testing.assert_array_equal(again[0].numpy(), samples[7][0].numpy())
    t1_zero = [not s[0][T1].any() for s in samples]
    assert 0.4 < np.mean(t1_zero) < 1.0  # real cases never have T1; synthetic ones lose it half the time
    assert all(s[0][FLAIR].any() and s[0][T1CE].any() for s in samples)  # FLAIR and T1ce always stay


@pytest.mark.parametrize("bad, message", [
    ({"sequence_dropout": {"flair": 0.5}}, "only t1 and t2"),
    ({"synthetic": {"weight": 0}, "real": {"weight": 0}}, "no source"),
    ({"real": {"weight": 1, "cases": [{"path": "x", "labels": "bronze"}]}}, "labels must be"),
    ({"inserted": {"weight": 1, "settings": {"depth": 3}}}, "inserted settings"),
])
def test_sources_file_errors_are_one_line(tmp_path, bad, message):
    from training.generator.mixture import load_sources

    with pytest.raises(BrainTumorXAIError, match=message):
        load_sources(_sources(tmp_path, **bad), tmp_path)


# --------------------------------------------------------------------------- tumours inserted into real brains


def _host(shape=(56, 56, 56)):
    """A z-scored host on the network grid: a spherical brain with textured FLAIR and T1ce (T1/T2 absent) and its
    own labelled tumour in one corner."""
    rng = np.random.default_rng(11)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    brain = ((grid - np.array(shape)[:, None, None, None] / 2) ** 2).sum(0) < 26**2
    image = np.zeros((4, *shape), np.float32)
    for c in (T1CE, FLAIR):
        image[c] = np.where(brain, rng.normal(0.0, 0.5, shape), 0.0)
    label = np.zeros(shape, np.uint8)
    label[8:16, 20:30, 20:30] = 2
    label[10:14, 23:27, 23:27] = 3
    label &= brain.astype(np.uint8) * 3
    return image, label, brain


@pytest.mark.parametrize("kind", ["ring", "nonenhancing"])
def test_inserted_tumour_is_labelled_in_the_brain_away_from_the_host_tumour_with_the_signal_contrasts(kind):
    from scipy import ndimage

    from training.generator.insertion import InsertSettings, inserted_patch

    image, label, brain = _host()
    settings = InsertSettings(margin_mm=12.0, kinds={kind: 1.0})
    host_far = ndimage.distance_transform_edt(label == 0, sampling=2.0)
    found = 0
    for seed in range(8):
        img, lab = inserted_patch(np.random.default_rng(seed), image, label, 56, settings)
        again = inserted_patch(np.random.default_rng(seed), image, label, 56, settings)
        np.testing.assert_array_equal(img, again[0])
        np.testing.assert_array_equal(label[label > 0], lab[label > 0])  # the host's own labels are kept
        assert not img[T1].any() and not img[T2].any()  # an absent sequence stays absent
        assert not img[:, ~brain].any() and not lab[~brain].any()
        new = (lab > 0) & (label == 0)
        if not new.any():
            continue
        found += 1
        assert host_far[new].min() >= 6.0  # the inserted tumour keeps away from the host's tumour
        healthy = brain & (lab == 0)
        assert img[FLAIR][(lab == 2) & new].mean() > np.median(img[FLAIR][healthy]) + 0.5  # oedema bright on FLAIR
        if kind == "ring":
            assert ((lab == 3) & new).any()
            assert img[T1CE][(lab == 3) & new].mean() > np.median(img[T1CE][healthy]) + 0.5  # enhancement on T1ce
        else:
            assert not ((lab == 3) & new).any()  # a non-enhancing tumour adds no enhancing label
            assert np.array_equal(img[T1CE][(lab == 3)], image[T1CE][label == 3])
    assert found >= 6


def test_mixture_draws_inserted_tumours_and_records_their_settings(tmp_path):
    from training.generator.mixture import MixtureDataset, RealStore, load_sources

    _brats2013_case(tmp_path / "pat0001")
    spec = load_sources(_sources(tmp_path, synthetic={"weight": 0.0}, real={"weight": 0.0, "cases": ["pat0001"]},
                                 inserted={"weight": 1.0, "settings": {"kinds": {"solid": 1.0}}}), tmp_path)
    assert spec.record()["inserted"] == {"weight": 1.0, "settings": {"spacing": 2.0, "margin_mm": 12.0,
                                                                     "kinds": {"solid": 1.0}}}
    norm = {"method": "zscore", "crop": "brain", "window": 32, "spacing": [2.0] * 3, "multiple_of": 16}
    store = RealStore(spec.real, norm)
    host = store.get("pat0001")
    cfg = SimpleNamespace(seed=0, patch=32, flip=False, foreground_fraction=0.5, spatial_prob=0.0, rotate_deg=0.0,
                          scale=0.0, intensity_scale=0.0, intensity_shift=0.0, gamma=0.0, gamma_prob=0.0,
                          noise_std=0.0, noise_prob=0.0)
    data = MixtureDataset(spec, store, store.keys(), cfg, 6)
    enhancing = [int((s[1] == 3).sum()) for s in (data[i] for i in range(6))]
    # every sample is an inserted solid enhancing tumour: more enhancing voxels than any host patch can hold
    assert min(enhancing) > 0 and np.mean(enhancing) > (host.label == 3).sum() / 2


def test_enhancing_mimics_are_bright_on_t1ce_dark_on_t2_and_never_tumour():
    """Vessels / choroid plexus: the healthy look-alikes of enhancement that real T1ce scans are full of."""
    from training.generator.appearance import _enhancing_mimics, render

    rng = np.random.default_rng(5)
    shape = (40, 40, 40)
    brain = np.ones(shape, bool)
    tissue = np.stack([np.full(shape, 0.1), np.full(shape, 0.5), np.full(shape, 0.4)]).astype(np.float32)
    classes = np.zeros(shape, np.uint8)
    classes[15:25, 15:25, 15:25] = 3
    mimics = _enhancing_mimics(np.random.default_rng(2), tissue / tissue.sum(0), brain & (classes == 0), 4.0)
    assert mimics.any() and not (mimics & (classes > 0)).any()
    means = draw_means(rng, 0.0)
    image = render(np.random.default_rng(2), tissue, brain, classes, np.zeros(shape, np.float32), means, 2.0, 0.01,
                   mimics=mimics)
    healthy = (classes == 0) & ~mimics
    assert image[T1CE][mimics].mean() > np.percentile(image[T1CE][healthy], 90)
    assert image[T2][mimics].mean() < image[T2][healthy].mean()


def test_training_on_sources_records_the_recipe_and_resumes_on_another_mixture(tmp_path):
    """training.train --sources: a real run (tiny network, 2 steps) whose checkpoint says what it can do without,
    on which grid it runs and what it was trained on; --resume may switch to a phase-2 sources file."""
    from BrainTumorXAILib.models.checkpoint import load_checkpoint
    from training.train import main as train_main

    _brats2013_case(tmp_path / "pat0001")
    _brats2013_case(tmp_path / "pat0002", seed=1)
    sources = _sources(tmp_path, validation=[{"path": "pat0002", "labels": "expert"}])
    run = tmp_path / "run"
    common = ["--out", str(run), "--data-root", str(tmp_path), "--spacing", "2", "--patch", "32", "--batch", "1",
              "--steps-per-epoch", "2", "--base-channels", "4", "--depth", "2", "--val-mc-samples", "0", "--quiet",
              "--warmup-steps", "1", "--keep-epochs"]
    assert train_main(["--sources", str(sources), "--epochs", "1", *common]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["normalisation"]["spacing"] == [2.0, 2.0, 2.0]
    assert ckpt["normalisation"]["optional_sequences"] == ["t1", "t2"]
    assert ckpt["provenance"]["sources"]["real"]["cases"][0]["labels"] == "expert"
    assert json.loads((run / "split.json").read_text()) == {"train": ["pat0001"], "val": ["pat0002"], "test": []}
    phase2 = tmp_path / "phase2.json"
    data = json.loads(sources.read_text())
    data["sequence_dropout"] = {"t1": 1.0, "t2": 1.0}
    phase2.write_text(json.dumps(data))
    assert train_main(["--sources", str(phase2), "--resume", "--epochs", "2", *common]) == 0
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["training_state"]["epoch"] == 1
    assert ckpt["provenance"]["sources"]["sequence_dropout"] == {"t1": 1.0, "t2": 1.0}
    # --keep-epochs: every epoch's weights, numbered as metrics.csv, for selection on other criteria
    assert sorted(p.name for p in run.glob("epoch_*.pt")) == ["epoch_001.pt", "epoch_002.pt"]
    kept = load_checkpoint(run / "epoch_002.pt")
    assert "training_state" not in kept and kept["provenance"]["epoch"] == 1
    for name, tensor in ckpt["state_dict"].items():
        assert torch.equal(kept["state_dict"][name], tensor), name


def test_synthetic_set_writes_reloadable_cases_of_the_asked_kind_and_never_overwrites(tmp_path, capsys):
    from BrainTumorXAILib.io.case_io import load_case
    from training.synthetic_set import main

    args = [str(tmp_path / "set"), "--n", "2", "--seed", "9000", "--kinds", "nonenhancing", "--size", "48"]
    assert main(args) == 0
    folders = sorted((tmp_path / "set").iterdir())
    assert [f.name for f in folders] == ["Synth-9000-000", "Synth-9000-001"]
    for folder in folders:
        case = load_case(folder)
        np.testing.assert_allclose(case.affine, np.diag([2.0, 2.0, 2.0, 1.0]))
        assert case.images.shape == (4, 48, 48, 48) and case.missing == []
        assert (case.label > 0).any() and not (case.label == 3).any()  # a tumour, never enhancing
    again = synthetic_patch(np.random.default_rng([9000, 1]), 48,
                            SynthSettings(healthy_prob=0.0, kinds={"nonenhancing": 1.0}))
    np.testing.assert_array_equal(load_case(folders[1]).label, again[1])  # the draw is the seeded generator's
    before = (folders[0] / "Synth-9000-000_flair.nii.gz").read_bytes()
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert (folders[0] / "Synth-9000-000_flair.nii.gz").read_bytes() == before
    assert main([str(tmp_path / "x"), "--kinds", "cystic"]) == 2
    assert "unknown tumour kind cystic" in capsys.readouterr().err


def test_ablation_arms_are_synthetic_only_and_each_switches_off_one_part():
    """scripts/ablation.sh measures what each generator part is worth on real scans: an arm must train on
    synthetic data alone (so every real case can measure it) and differ from the full generator in one part
    (deformation is three knobs: rotation, scaling, elastic)."""
    from dataclasses import asdict
    from pathlib import Path

    from training.generator.mixture import load_sources

    folder = Path(__file__).resolve().parents[2] / "training" / "sources" / "ablation"
    full = asdict(load_sources(folder / "synthetic_only.json", folder).synth)
    expected = {"no_mimics": {"mimics": False}, "no_random_contrast": {"random_contrast_share": 0.0},
                "no_mass_effect": {"mass_effect": False}, "no_resolution": {"resolution": False},
                "no_deformation": {"rotate_deg": 0.0, "scale": [1.0, 1.0], "elastic_vox": 0.0}, "synthetic_only": {}}
    assert sorted(p.stem for p in folder.glob("*.json")) == sorted(expected)
    for name, change in expected.items():
        spec = load_sources(folder / f"{name}.json", folder)
        assert spec.real == [] and spec.real_weight == 0 and spec.inserted_weight == 0 and spec.synthetic_weight == 1
        assert [Path(c["path"]).name for c in spec.validation] == ["pat0005", "pat0006"]
        settings = asdict(spec.synth)
        assert {k: v for k, v in settings.items() if full[k] != v} == change, name


def test_resolution_knob_switches_off_blur_and_thick_slices_and_nothing_else():
    """The ablation's no-resolution arm: same draw (labels, contrasts), only the blur is gone."""
    from training.generator.synthetic import SynthSettings, synthetic_patch

    sharper = 0
    for seed in range(4):
        img_on, lab_on = synthetic_patch(np.random.default_rng(seed), 32, SynthSettings(spacing=4.0))
        img_off, lab_off = synthetic_patch(np.random.default_rng(seed), 32, SynthSettings(spacing=4.0, resolution=False))
        assert np.array_equal(lab_on, lab_off)
        assert ((img_on != 0) == (img_off != 0)).mean() > 0.99  # the same brain
        edges = [float(np.mean([np.abs(np.diff(im[c], axis=a)).mean() for c in (1, 3) for a in range(3)]))
                 for im in (img_on, img_off)]
        assert edges[1] >= edges[0] * 0.98
        sharper += edges[1] > edges[0] * 1.02
    assert sharper >= 2  # most draws blur (sigma up to 0.9 voxels, thick slices a quarter of the time)
