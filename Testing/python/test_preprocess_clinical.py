"""Clinical preprocessing (issue 26) on generated data: a synthetic case moved by known rigid transforms onto
thick-slice grids of its own per sequence, as a scanner would write it."""

from __future__ import annotations

import hashlib
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.cli import main
from BrainTumorXAILib.errors import CaseError
from BrainTumorXAILib.io.case_files import scan_case
from BrainTumorXAILib.models.checkpoint import save_checkpoint
from BrainTumorXAILib.models.factory import build_model
from BrainTumorXAILib.preprocess import ClinicalOptions
from BrainTumorXAILib.preprocess.coregister import register_rigid
from BrainTumorXAILib.preprocess.decide import decide
from BrainTumorXAILib.preprocess.inputs import find_sequences
from BrainTumorXAILib.preprocess.n4 import n4_correct
from BrainTumorXAILib.preprocess.pipeline import prepare
from BrainTumorXAILib.preprocess.sitk_images import affine_of, is_orthonormal, to_array, to_sitk
from conftest import OBLIQUE_AFFINE

#: Patient motion of each series relative to the T1ce: (rotation about x, y, z in degrees, translation in mm).
MOTION = {"t1": ((0, 0, 4), (2, -3, 1)), "t2": ((7, -3, 0), (-6, 4, 8)), "flair": ((-6, 4, 5), (5, 7, -9))}
THICK = (2.0, 2.0, 6.0)  # mm: in-plane 2 mm, 6 mm slices


def _motion(seq: str, centre) -> sitk.Euler3DTransform:
    """A: point of the moved series -> where that anatomy lies in the T1ce's frame."""
    angles, shift = MOTION[seq]
    transform = sitk.Euler3DTransform()
    transform.SetCenter(centre)
    transform.SetRotation(*np.radians(angles))
    transform.SetTranslation(shift)
    return transform


def _thick_grid(image: sitk.Image, tilt_deg: float) -> sitk.Image:
    """A thick-slice grid over the same field of view, tilted about x (an oblique acquisition)."""
    size = np.asarray(image.GetSize()) * np.asarray(image.GetSpacing()) / np.asarray(THICK)
    tilt = sitk.Euler3DTransform()
    tilt.SetRotation(np.radians(tilt_deg), 0.0, 0.0)
    direction = np.asarray(tilt.GetMatrix()).reshape(3, 3) @ np.asarray(image.GetDirection()).reshape(3, 3)
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint(((np.asarray(image.GetSize()) - 1) / 2).tolist()))
    grid = sitk.Image([int(round(n)) for n in size], sitk.sitkFloat32)
    grid.SetSpacing(THICK)
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((centre - direction @ ((np.asarray(grid.GetSize()) - 1) / 2 * np.asarray(THICK))).tolist())
    return grid


def _save(image: sitk.Image, path) -> None:
    affine = affine_of(image)
    data = np.round(to_array(image)).astype(np.int16)
    nifti = nib.Nifti1Image(data, affine)
    nifti.set_sform(affine, 1)
    nifti.set_qform(affine, 1)
    nib.save(nifti, str(path))


@pytest.fixture(scope="module")
def raw_case(small_case, tmp_path_factory):
    """(folder, {seq: A}): the small case as scanner series, common names, each moved by MOTION[seq]."""
    folder = tmp_path_factory.mktemp("raw") / "patient"
    folder.mkdir()
    found = scan_case(small_case)
    motions = {}
    names = {"t1": "T1.nii.gz", "t1ce": "T1GD.nii.gz", "t2": "t2.nii.gz", "flair": "Flair.nii.gz"}
    for i, seq in enumerate(("t1ce", "t1", "t2", "flair")):
        source = nib.load(str(found.files[seq]))
        image = to_sitk(np.asarray(source.dataobj, np.float32), source.affine)
        grid = _thick_grid(image, tilt_deg=4.0 * i)
        centre = grid.TransformContinuousIndexToPhysicalPoint(((np.asarray(grid.GetSize()) - 1) / 2).tolist())
        motion = sitk.Euler3DTransform() if seq == "t1ce" else _motion(seq, centre)
        motions[seq] = motion
        _save(sitk.Resample(image, grid, motion, sitk.sitkLinear, 0.0), folder / names[seq])
        if seq == "t1ce":  # the reference labels, drawn on the T1ce's own grid
            labels = nib.load(str(found.files["seg"]))
            _save(sitk.Resample(to_sitk(np.asarray(labels.dataobj, np.float32), labels.affine), grid,
                                sitk.Transform(), sitk.sitkNearestNeighbor, 0.0), folder / "labels.nii.gz")
    return folder, motions


def _brain_points(folder) -> np.ndarray:
    image = nib.load(str(folder / "T1GD.nii.gz"))
    ijk = np.argwhere(np.asarray(image.dataobj) > 0)[::50]
    ras = nib.affines.apply_affine(image.affine, ijk)
    return ras * np.array([-1.0, -1.0, 1.0])  # LPS


def _oblique_rotation() -> np.ndarray:
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(0.3, -0.2, 0.5)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(rotation.GetMatrix()).reshape(3, 3) @ np.diag([-0.9, 0.9, 5.5])
    affine[:3, 3] = (90.7, -71.4, -98.4)
    return affine


@pytest.mark.parametrize("affine", [np.diag([-1.5, 1.2, 4.0, 1.0]), _oblique_rotation()])
def test_sitk_bridge_keeps_every_voxel_in_place(affine):
    assert is_orthonormal(affine) and not is_orthonormal(OBLIQUE_AFFINE)  # ITK has no shear
    array = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    image = to_sitk(array, affine)
    assert np.allclose(affine_of(image), affine, atol=1e-5)
    assert np.array_equal(to_array(image), array)
    ijk = (4, 1, 6)
    ras = affine[:3, :3] @ ijk + affine[:3, 3]
    assert np.allclose(image.TransformIndexToPhysicalPoint(ijk), ras * [-1, -1, 1], atol=1e-4)


def test_common_names_are_matched(raw_case):
    folder, _ = raw_case
    files = find_sequences(folder)
    assert files.naming == "common names"
    assert {k: v.name for k, v in files.files.items()} == {
        "t1": "T1.nii.gz", "t1ce": "T1GD.nii.gz", "t2": "t2.nii.gz", "flair": "Flair.nii.gz"}


def test_auto_decides_none_for_brats_input_and_full_for_scanner_series(small_case, raw_case):
    assert decide("auto", scan_case(small_case)).run == "none"
    decision = decide("auto", find_sequences(raw_case[0]))
    assert decision.run == "full" and "another grid" in decision.reason
    forced = decide("none", find_sequences(raw_case[0]))
    assert forced.run == "none" and len(forced.warnings) == 1 and "headers only" in forced.warnings[0]


@pytest.mark.parametrize("seq", ["t2", "flair"])
def test_coregistration_recovers_the_known_motion_in_physical_space(raw_case, seq):
    folder, motions = raw_case
    names = {"t2": "t2.nii.gz", "flair": "Flair.nii.gz"}

    def load(name):
        image = nib.load(str(folder / name))
        return to_sitk(np.asarray(image.dataobj, np.float32), image.affine)

    result = register_rigid(load("T1GD.nii.gz"), load(names[seq]))
    expected = motions[seq].GetInverse()  # T1ce point -> the moved series' point showing the same anatomy
    points = _brain_points(folder)
    errors = np.linalg.norm([np.subtract(result.transform.TransformPoint(p), expected.TransformPoint(p))
                             for p in points.tolist()], axis=1)
    assert errors.mean() < 1.0 and errors.max() < 2.5, (errors.mean(), errors.max())
    assert result.mi_after > result.mi_before
    assert not result.implausible()


def test_a_registration_repeats_bit_for_bit_alone_and_side_by_side(raw_case):
    """ITK sums the sampled metric over threads in a varying order; on one ITK thread per registration a run
    repeats exactly, also when registrations run side by side (the pipeline's co-registrations)."""
    from BrainTumorXAILib.preprocess.repeatable import run_side_by_side

    folder, _ = raw_case

    def load(name):
        image = nib.load(str(folder / name))
        return to_sitk(np.asarray(image.dataobj, np.float32), image.affine)

    fixed, moving = load("T1GD.nii.gz"), load("Flair.nii.gz")
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    alone = [register_rigid(fixed, moving).transform.GetParameters() for _ in range(2)]
    together = run_side_by_side({i: lambda: register_rigid(fixed, moving).transform.GetParameters()
                                 for i in range(2)})
    assert alone[0] == alone[1] == together[0] == together[1]
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads  # restored for everything else


@pytest.fixture(scope="module")
def coarse_checkpoint(tmp_path_factory):
    """An untrained 2-level U-Net that works at 4 mm (fast on the 1 mm atlas grid)."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.2)
    path = tmp_path_factory.mktemp("weights") / "coarse.pt"
    save_checkpoint(path, model, normalisation={"method": "zscore", "crop": "brain", "spacing": [4.0, 4.0, 4.0],
                                                "window": 32, "multiple_of": 16},
                    provenance={"note": "untrained test network"})
    return path


@pytest.fixture(scope="module")
def analysed(raw_case, coarse_checkpoint, tmp_path_factory):
    """The raw case analysed through an explicit mapping that also names reference labels on the T1ce grid."""
    folder, _ = raw_case
    out = tmp_path_factory.mktemp("out") / "result"
    mapping = {"t1": "T1.nii.gz", "t1ce": "T1GD.nii.gz", "t2": "t2.nii.gz", "flair": "Flair.nii.gz",
               "seg": "labels.nii.gz"}
    options = AnalysisOptions(weights=coarse_checkpoint, mc_samples=2, surfaces=False, figures=False, device="cpu",
                              tta=1, mapping=mapping, clinical=ClinicalOptions(atlas_outputs=True))
    analyze_case(folder, out, options)
    return folder, out, json.loads((out / "summary.json").read_text())


def test_every_output_lies_on_the_native_t1ce_grid(analysed):
    folder, out, summary = analysed
    native = nib.load(str(folder / "T1GD.nii.gz"))
    names = ["seg.nii.gz", "brain_mask.nii.gz", "entropy.nii.gz", "mutual_information.nii.gz",
             *(f"prob_{c}.nii.gz" for c in ("background", "NCR", "ED", "ET")), "gradcam_ET.nii.gz"]
    evidence = sorted(p.name for p in out.glob("evidence_*.nii.gz"))  # the sequence evidence maps (default on)
    assert summary["sequence_evidence"] and evidence
    names += evidence
    for name in names:
        image = nib.load(str(out / name))
        assert image.shape == native.shape, name
        assert np.allclose(image.affine, native.affine, atol=1e-5), name
    probs = np.stack([np.asarray(nib.load(str(out / f"prob_{c}.nii.gz")).dataobj)
                      for c in ("background", "NCR", "ED", "ET")])
    assert np.allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    seg = np.asarray(nib.load(str(out / "seg.nii.gz")).dataobj)
    brain = np.asarray(nib.load(str(out / "brain_mask.nii.gz")).dataobj) > 0
    assert not seg[~brain].any()
    atlas_seg = nib.load(str(out / "atlas" / "seg.nii.gz"))
    assert atlas_seg.shape == (240, 240, 155)
    assert (out / summary["preprocessing_clinical"]["outputs"]["qc_figure"]).is_file()


def test_summary_and_transform_files_record_the_registration(analysed, raw_case):
    folder, out, summary = analysed
    clinical = summary["preprocessing_clinical"]
    assert clinical["mode"] == "full" and clinical["matched_by"] == "explicit"
    assert summary["metrics"]["regions"]["WT"]["dice"] is not None  # judged on the native grid, labels there
    assert clinical["brain_extraction"]["method"] == "none"  # the synthetic case is already skull-stripped
    for seq in ("t1", "t2", "flair"):
        reg = clinical["coregistration"][seq]
        assert reg["mutual_information_after"] > reg["mutual_information_before"]
    assert set(clinical["timings_s"]) >= {"coregistration", "brain_extraction", "atlas_registration", "resample"}
    flair = sitk.ReadTransform(str(out / clinical["outputs"]["transforms"]["flair"]))
    expected = raw_case[1]["flair"].GetInverse()
    point = _brain_points(folder)[0].tolist()
    assert np.linalg.norm(np.subtract(flair.TransformPoint(point), expected.TransformPoint(point))) < 2.5
    assert clinical["warnings"] == []


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _copy(folder, dest):
    shutil.copytree(folder, dest)
    return dest


@pytest.mark.parametrize("problem", ["unrelated", "empty", "single_slice", "mask_grid"])
def test_bad_input_is_one_line_naming_the_file(raw_case, coarse_checkpoint, tmp_path, capsys, problem):
    folder = _copy(raw_case[0], tmp_path / "case")
    flair = folder / "Flair.nii.gz"
    image = nib.load(str(flair))
    extra = []
    if problem == "unrelated":
        noise = np.random.default_rng(1).integers(1, 1000, image.shape).astype(np.int16)
        nib.save(nib.Nifti1Image(noise, image.affine), str(flair))
        expected = "cannot be co-registered"
    elif problem == "empty":
        nib.save(nib.Nifti1Image(np.zeros(image.shape, np.int16), image.affine), str(flair))
        expected = "empty volume"
    elif problem == "single_slice":
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 3:4], image.affine), str(flair))
        expected = "single slice"
    else:
        mask = tmp_path / "mask.nii.gz"
        nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), np.eye(4)), str(mask))
        extra, expected, flair = ["--brain-mask", str(mask)], "another grid", mask
    before = _digest(folder)
    out = tmp_path / "out"
    code = main(["analyze", str(folder), "--out", str(out), "--weights", str(coarse_checkpoint), "--quiet",
                 "--mc-samples", "0", "--no-surfaces", "--no-figures", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and str(flair) in err and expected in err, err
    assert not out.exists()
    assert _digest(folder) == before


def test_none_mode_on_scanner_series_warns_in_one_line(raw_case, coarse_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["analyze", str(raw_case[0]), "--out", str(out), "--weights", str(coarse_checkpoint), "--quiet",
                 "--mc-samples", "0", "--no-surfaces", "--no-figures", "--preprocess", "none", "--tta", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0
    assert len(err) == 1 and "warning" in err[0] and "--preprocess none" in err[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preprocessing_clinical"]["mode"] == "none"


def test_unknown_or_unavailable_brain_extraction_is_one_line(raw_case):
    with pytest.raises(Exception, match="not available"):
        prepare(raw_case[0], None, ClinicalOptions(mode="full", brain_extraction="hd-bet"))
    with pytest.raises(CaseError, match="another grid"):
        prepare(raw_case[0], None, ClinicalOptions(mode="full", brain_mask=raw_case[0] / "t2.nii.gz"))


def test_the_web_page_says_a_raw_case_was_preprocessed(analysed):
    pytest.importorskip("slicer")
    from BrainTumorXAILib.web.state import _preprocessing_note  # the web viewer needs the slicer-core wheel

    _, _, summary = analysed
    assert "raw scans preprocessed" in _preprocessing_note(summary) and "sri24" in _preprocessing_note(summary)
    assert _preprocessing_note({"preprocessing_clinical": {"mode": "none"}}) == ""


def test_n4_removes_a_smooth_multiplicative_bias():
    shape = (48, 48, 32)
    ijk = np.indices(shape).astype(np.float32)
    brain = np.linalg.norm((ijk.T - np.array(shape) / 2).T / np.array(shape)[:, None, None, None], axis=0) < 0.4
    tissue = np.where(brain, 100.0, 0.0).astype(np.float32)
    bias = np.exp(0.4 * (ijk[0] / shape[0] - 0.5)).astype(np.float32)  # +-20 % across the volume
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    corrected = to_array(n4_correct(to_sitk(tissue * bias, affine), to_sitk(brain.astype(np.uint8), affine,
                                                                           sitk.sitkUInt8)))

    def spread(a):
        return float(np.std(a[brain]) / np.mean(a[brain]))

    assert spread(corrected) < 0.5 * spread(tissue * bias)


def test_labels_are_post_processed_once_on_the_native_grid(raw_case, coarse_checkpoint, tmp_path, monkeypatch):
    """Without atlas-space copies the atlas-grid labels are discarded: only the native labels are post-processed."""
    import BrainTumorXAILib.analyze as analyze_module
    import BrainTumorXAILib.inference.case_prediction as case_prediction

    folder, _ = raw_case
    shapes = []
    real = case_prediction.postprocess_segmentation

    def counted(classes, case, brain, options):
        shapes.append(classes.shape)
        return real(classes, case, brain, options)

    monkeypatch.setattr(case_prediction, "postprocess_segmentation", counted)
    monkeypatch.setattr(analyze_module, "postprocess_segmentation", counted)
    mapping = {"t1": "T1.nii.gz", "t1ce": "T1GD.nii.gz", "t2": "t2.nii.gz", "flair": "Flair.nii.gz"}
    summary = analyze_case(folder, tmp_path / "out", AnalysisOptions(
        weights=coarse_checkpoint, mc_samples=0, surfaces=False, figures=False, device="cpu", tta=1, mapping=mapping,
        gradcam="none", sequence_evidence="none"))
    assert shapes == [nib.load(str(folder / "T1GD.nii.gz")).shape]
    assert set(summary["postprocessing"]) == {"enhancement_check", "small_et"}
