"""Synthetic BraTS-like cases: layout, determinism, label and contrast sanity."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from BrainTumorXAILib import synth
from BrainTumorXAILib.io.labels import SEQUENCES

SHAPE = (64, 64, 48)
SPACING = 3.0
SEEDS = (0, 3, 11)  # 3 has a broken enhancing rim, 0 and 11 small tumours


@pytest.fixture(scope="module")
def cases() -> dict[int, synth.SynthCase]:
    return {seed: synth.synthesize(seed, shape=SHAPE, spacing=SPACING) for seed in SEEDS}


def _load_case(case_dir: Path, case_id: str, naming: str) -> dict[str, nib.Nifti1Image]:
    names = synth.case_file_names(case_id, naming)
    return {key: nib.load(case_dir / name) for key, name in names.items()}


@pytest.mark.parametrize(
    ("naming", "files", "labels"),
    [
        ("brats2021", ["c_t1", "c_t1ce", "c_t2", "c_flair", "c_seg"], {0, 1, 2, 4}),
        ("brats2023", ["c-t1n", "c-t1c", "c-t2w", "c-t2f", "c-seg"], {0, 1, 2, 3}),
    ],
)
def test_layout_names_dtypes_and_labels(tmp_path, naming, files, labels):
    case_dir = synth.generate_case(tmp_path, "c", 5, naming=naming, shape=SHAPE, spacing=SPACING)
    assert case_dir == tmp_path / "c"
    assert sorted(p.name for p in case_dir.iterdir()) == sorted(f + ".nii.gz" for f in files)
    imgs = _load_case(case_dir, "c", naming)
    for seq in SEQUENCES:
        assert imgs[seq].get_data_dtype() == np.int16
        assert imgs[seq].shape == SHAPE
    assert imgs["seg"].get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(imgs["seg"].dataobj)).tolist()) == labels
    np.testing.assert_allclose(imgs["seg"].affine, synth.default_affine(SHAPE, SPACING), atol=1e-4)
    assert nib.aff2axcodes(imgs["seg"].affine) == ("L", "P", "S")


def test_same_seed_same_arrays_different_seed_different(cases):
    again = synth.synthesize(SEEDS[0], shape=SHAPE, spacing=SPACING)
    first = cases[SEEDS[0]]
    for seq in SEQUENCES:
        assert np.array_equal(again.images[seq], first.images[seq])
        assert not np.array_equal(cases[SEEDS[1]].images[seq], first.images[seq])
    assert np.array_equal(again.classes, first.classes)
    assert not np.array_equal(cases[SEEDS[1]].classes, first.classes)


def test_case_k_does_not_depend_on_n(tmp_path):
    calls = []
    three = synth.generate_cases(tmp_path / "a", 3, 42, shape=SHAPE, spacing=SPACING)
    five = synth.generate_cases(tmp_path / "b", 5, 42, shape=SHAPE, spacing=SPACING,
                                progress=lambda i, n: calls.append((i, n)))  # fmt: skip
    assert [p.name for p in five] == [f"BraTS2021_{k:05d}" for k in range(5)]
    assert calls == [(i, 5) for i in range(1, 6)]
    for a, b in zip(three, five):
        for key in ("t1ce", "seg"):
            name = synth.case_file_names(a.name, "brats2021")[key]
            assert np.array_equal(np.asarray(nib.load(a / name).dataobj), np.asarray(nib.load(b / name).dataobj))
    # different cases of one run differ
    seg = [np.asarray(nib.load(p / f"{p.name}_seg.nii.gz").dataobj) for p in five[:2]]
    assert not np.array_equal(*seg)


def test_brats2023_ids(tmp_path):
    paths = synth.generate_cases(tmp_path, 1, 1, naming="brats2023", shape=SHAPE, spacing=SPACING)
    assert paths[0].name == "BraTS-GLI-00000-000"
    assert (paths[0] / "BraTS-GLI-00000-000-t2f.nii.gz").is_file()


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_nested_and_inside_brain(cases, seed):
    case = cases[seed]
    classes, brain = case.classes, case.brain
    counts = np.bincount(classes.ravel(), minlength=4)
    assert (counts[1:] > 0).all(), counts
    wt_cm3 = counts[1:].sum() * SPACING**3 / 1000
    assert 15 < wt_cm3 < 160
    assert not classes[~brain].any()
    for image in case.images.values():
        assert not image[~brain].any()  # skull-stripped: background exactly 0
        assert (image[brain] > 0).mean() > 0.999
    core = np.isin(classes, (1, 3))
    assert ndimage.label(core)[1] == 1
    # edema surrounds the core: every voxel bordering the core is edema
    shell = ndimage.binary_dilation(core) & ~core
    assert (classes[shell] == 2).mean() > 0.95
    # necrosis lies inside the enhancing rim (except where the rim has gaps)
    ncr = classes == 1
    ncr_shell = ndimage.binary_dilation(ncr) & ~ncr
    assert (classes[ncr_shell] == 3).mean() > 0.5


def test_closed_rim_when_no_gaps():
    case = synth.synthesize(3, shape=SHAPE, spacing=SPACING, rng_params={"et_gap_fraction": 0.0})
    ncr = case.classes == 1
    shell = ndimage.binary_dilation(ncr) & ~ncr
    assert (case.classes[shell] == 3).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_contrasts_follow_brats_appearance(cases, seed):
    case = cases[seed]
    classes, images = case.classes, case.images
    wm = (case.tissue["wm"] > 0.9) & (classes == 0)
    csf = (case.tissue["csf"] > 0.9) & (classes == 0)

    def mean(seq: str, mask: np.ndarray) -> float:
        return float(images[seq][mask].mean())

    ncr, ed, et = classes == 1, classes == 2, classes == 3
    assert mean("t1ce", et) > 1.3 * mean("t1ce", wm)
    assert mean("t1ce", ncr) < 0.7 * mean("t1ce", et)
    assert mean("flair", ed) > 1.4 * mean("flair", wm)
    assert mean("t2", ed) > 1.3 * mean("t2", wm)
    assert mean("t1", wm) > mean("t1", csf) * 2
    assert mean("t2", csf) > mean("t2", wm) * 2
    assert mean("flair", csf) < mean("flair", wm)
    assert mean("flair", csf) < mean("flair", ncr)  # necrosis is not CSF on FLAIR
    for seq in SEQUENCES:
        assert 0 < images[seq].max() < 2500


def test_custom_affine_written_exactly_content_unchanged(tmp_path):
    angle = np.deg2rad(20)
    affine = np.array(
        [
            [-0.9 * np.cos(angle), -np.sin(angle), 0, 10.5],
            [np.sin(angle), -np.cos(angle), 0, -20.25],
            [0, 0, 1.7, 33],
            [0, 0, 0, 1],
        ]
    ).astype(np.float32).astype(np.float64)  # representable in the header's float32 srow
    default = synth.generate_case(tmp_path, "d", 9, shape=SHAPE, spacing=SPACING)
    custom = synth.generate_case(tmp_path, "o", 9, shape=SHAPE, spacing=SPACING, affine=affine)
    a, b = _load_case(default, "d", "brats2021"), _load_case(custom, "o", "brats2021")
    for key in (*SEQUENCES, "seg"):
        assert np.array_equal(b[key].affine, affine)
        assert int(b[key].header["sform_code"]) == 1
        assert np.array_equal(np.asarray(a[key].dataobj), np.asarray(b[key].dataobj))


def test_refuses_to_overwrite(tmp_path):
    (tmp_path / "x").mkdir()  # empty folder is fine
    synth.generate_case(tmp_path, "x", 1, shape=SHAPE, spacing=SPACING)
    with pytest.raises(FileExistsError, match=str(tmp_path / "x")):
        synth.generate_case(tmp_path, "x", 1, shape=SHAPE, spacing=SPACING)
    (tmp_path / "x_00000").mkdir()
    (tmp_path / "x_00000" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        synth.generate_cases(tmp_path, 1, 0, shape=SHAPE, spacing=SPACING, prefix="x")
    assert (tmp_path / "x_00000" / "keep.txt").read_text() == "mine"


def test_bad_arguments():
    with pytest.raises(ValueError, match="naming"):
        synth.case_file_names("c", "brats2019")
    with pytest.raises(ValueError, match="rng_params"):
        synth.synthesize(0, shape=SHAPE, spacing=SPACING, rng_params={"no_such": 1})
    with pytest.raises(ValueError, match="spacing"):
        synth.synthesize(0, shape=SHAPE, spacing=0)


def test_size_presets_cover_the_same_field_of_view():
    (big, big_mm), (small, small_mm) = synth.SIZE_PRESETS["brats"], synth.SIZE_PRESETS["small"]
    assert big == (240, 240, 155) and big_mm == 1.0
    assert np.allclose(np.multiply(small, small_mm), np.multiply(big, big_mm), atol=2 * small_mm)


def test_shipped_sample_case():
    folder = Path(__file__).resolve().parents[2] / "Resources" / "SampleCase"
    imgs = _load_case(folder, synth.SAMPLE_CASE_ID, "brats2021")
    shape, _ = synth.SIZE_PRESETS["small"]
    assert all(img.shape == shape for img in imgs.values())
    assert set(np.unique(np.asarray(imgs["seg"].dataobj)).tolist()) == {0, 1, 2, 4}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3 * 2**20
    assert str(synth.SAMPLE_CASE_SEED) in (folder / "README.md").read_text()
