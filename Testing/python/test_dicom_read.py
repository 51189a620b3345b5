"""DICOM in: series written from NIfTI arrays read back onto the same geometry in physical space, whatever the
file names and order; sequence assignment from the headers, overrides, ambiguity; ``info``'s table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from BrainTumorXAILib.cli import main as cli_main
from BrainTumorXAILib.dicom import DicomError
from BrainTumorXAILib.dicom.study import convert_study, open_study

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import grid_affine, rotation, study_ids, write_case_study, write_series  # noqa: E402

SHAPE = (34, 30, 9)
GRIDS = {  # oblique thick slices, right-handed and left-handed (slices stored against the normal)
    "oblique": grid_affine(rotation(14, -9, 23), (0.9, 1.1, 5.5), (70.0, -95.0, -30.0)),
    "left_handed": grid_affine(rotation(-6, 11, -170), (1.2, 1.2, 4.0), (-40.0, 60.0, 20.0), flip_slices=True),
}


def _volumes(seed=0):
    rng = np.random.default_rng(seed)
    return {s: rng.integers(-200, 3000, SHAPE).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}


def _same_in_space(read: nib.Nifti1Image, data: np.ndarray, affine: np.ndarray) -> None:
    """``read`` holds ``data`` (on ``affine``) voxel for voxel at the same physical places."""
    m = np.linalg.solve(read.affine, affine)  # original index -> read index
    perm = np.rint(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-4) and np.allclose(m[:3, 3], np.rint(m[:3, 3]), atol=1e-3)
    index = np.indices(data.shape).reshape(3, -1)
    moved = (perm @ index + np.rint(m[:3, 3])[:, None]).astype(int)
    assert np.array_equal(np.asarray(read.dataobj)[tuple(moved)], data.reshape(-1))


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_series_read_back_on_the_same_geometry(tmp_path, grid):
    vols = _volumes()
    written = write_case_study(vols, GRIDS[grid], tmp_path / "in", shuffle="t1ce")
    assert sorted(p.name for p in written["t1ce"]) != [p.name for p in written["t1ce"]]  # names say nothing
    study = open_study(tmp_path / "in")
    files = convert_study(study, tmp_path)
    for seq, path in files.items():
        _same_in_space(nib.load(path), vols[seq], GRIDS[grid])
    along_normal = written["t1ce"][::-1] if np.linalg.det(GRIDS[grid]) < 0 else written["t1ce"]  # LPS flips 2 axes
    assert [p.name for p in study.chosen["t1ce"].files] == [p.name for p in along_normal]  # ordered by position


def test_reader_agrees_with_simpleitk_gdcm(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    write_case_study(_volumes(), GRIDS["left_handed"], tmp_path / "in", shuffle="t1ce")
    study = open_study(tmp_path / "in")
    path = convert_study(study, tmp_path)["t1ce"]
    folder = str(study.chosen["t1ce"].files[0].parent)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    image = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    ours = nib.load(path)
    assert np.allclose(np.diag([-1, -1, 1, 1]) @ lps, ours.affine, atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), np.asarray(ours.dataobj))


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix (Debian package dcm2niix) not installed")
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_reader_agrees_with_dcm2niix(tmp_path, grid):
    vols = _volumes()
    write_case_study(vols, GRIDS[grid], tmp_path / "in", shuffle="t1ce")
    ours = nib.load(convert_study(open_study(tmp_path / "in"), tmp_path)["t1ce"])
    (tmp_path / "d2n").mkdir()
    subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "%s", "-o", str(tmp_path / "d2n"),
                    str(tmp_path / "in" / "S3")], check=True, capture_output=True)
    theirs = nib.load(tmp_path / "d2n" / "3.nii")
    _same_in_space(theirs, np.asarray(ours.dataobj), ours.affine)


def test_assignment_from_headers_without_words(tmp_path):
    """Descriptions that name nothing: the contrast agent and the timing decide."""
    ids, vols = study_ids(), _volumes()
    affine = GRIDS["oblique"]
    write_series(vols["t1"], affine, tmp_path / "a", ids, 7, "SE 3mm", te=10.0, tr=450.0)
    write_series(vols["t1ce"], affine, tmp_path / "b", ids, 9, "SE 3mm", te=10.0, tr=450.0, agent="Gadovist")
    write_series(vols["t2"], affine, tmp_path / "c", ids, 4, "TSE", te=95.0, tr=4500.0)
    write_series(vols["flair"], affine, tmp_path / "d", ids, 5, "IR", te=110.0, tr=9000.0, ti=2500.0)
    chosen = open_study(tmp_path).chosen
    assert {s: c.number for s, c in chosen.items()} == {"t1": "7", "t1ce": "9", "t2": "4", "flair": "5"}


def test_ambiguity_stops_and_overrides_decide(tmp_path, capsys):
    ids, vols = study_ids(), _volumes()
    affine = GRIDS["oblique"]
    write_case_study(vols, affine, tmp_path / "in", ids=ids)
    write_series(vols["t1ce"], affine, tmp_path / "in" / "S9", ids, 9, "T1 MPRAGE GD", te=3.0, tr=2000.0, ti=900.0)
    with pytest.raises(DicomError, match=r"2 series look like T1ce \(3 'AX T1 SE POST'; 9 'T1 MPRAGE GD'\)"):
        open_study(tmp_path / "in")
    assert open_study(tmp_path / "in", {"t1ce": "9"}).chosen["t1ce"].number == "9"
    uid = open_study(tmp_path / "in", {"t1ce": "9"}).chosen["t1ce"].uid
    assert open_study(tmp_path / "in", {"t1ce": uid}).chosen["t1ce"].number == "9"
    assert cli_main(["info", str(tmp_path / "in"), "--t1ce", "3"]) == 0
    table = capsys.readouterr().out
    assert "     3  T1ce" in table and "     9  -       " in table
    assert cli_main(["info", str(tmp_path / "in")]) == 2
    captured = capsys.readouterr()
    assert "choose one with --t1ce" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert cli_main(["info", str(tmp_path / "in"), "--t1ce", "42"]) == 2
    assert "--t1ce 42: no such series" in capsys.readouterr().err


def test_localizer_derived_and_other_modalities_are_skipped_and_listed(tmp_path, capsys):
    ids, vols = study_ids(), _volumes()
    affine = GRIDS["oblique"]
    write_case_study(vols, affine, tmp_path / "in", ids=ids)
    write_series(vols["t1"][:, :, :3], affine, tmp_path / "in" / "loc", ids, 1, "Survey",
                 image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    write_series(vols["t2"], affine, tmp_path / "in" / "adc", ids, 11, "ADC", image_type=["DERIVED", "PRIMARY", "ADC"])
    write_series(vols["t2"], affine, tmp_path / "in" / "ct", ids, 12, "Head CT", modality="CT")
    study = open_study(tmp_path / "in")
    assert sorted(s.number for s in study.chosen.values()) == ["2", "3", "4", "5"]
    assert cli_main(["info", str(tmp_path / "in")]) == 0
    out = capsys.readouterr().out
    assert "series 1 'Survey' (3 files): localizer" in out
    assert "series 11 'ADC'" in out and "derived image" in out
    assert "series 12 'Head CT'" in out and "not MR (modality CT)" in out


def test_gdcm_series_path_equals_the_per_slice_path(tmp_path):
    from BrainTumorXAILib.dicom.convert import _gdcm_volume, _slice_pixels

    write_case_study(_volumes(3), GRIDS["oblique"], tmp_path / "in", shuffle="t1ce")
    series = open_study(tmp_path / "in").chosen["t1ce"]
    per_slice = np.stack([_slice_pixels(p) for p in series.files], axis=-1).transpose(1, 0, 2)
    assert np.array_equal(_gdcm_volume(series), per_slice)


def test_slices_with_their_own_rescale_keep_their_real_values(tmp_path):
    """Per-slice RescaleSlope/Intercept (some vendors scale each slice): every slice gets its own."""
    import pydicom

    from BrainTumorXAILib.dicom.convert import _gdcm_volume, series_volume

    vols = _volumes(4)
    files = write_series(vols["t1ce"], GRIDS["oblique"], tmp_path / "in", study_ids(), 3, "T1 post contrast",
                         agent="Gadovist")
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = f"{1 + 0.25 * k:g}", f"{-5 * k:g}"
        ds.save_as(path)
    from BrainTumorXAILib.dicom.scan import scan_folder

    (series,) = scan_folder(tmp_path / "in").series
    assert _gdcm_volume(series) is None  # GDCM's series output would take the first slice's pixel type
    expected = {path: vols["t1ce"][:, :, k] * (1 + 0.25 * k) - 5 * k for k, path in enumerate(files)}
    assert np.allclose(series_volume(series), np.stack([expected[p] for p in series.files], axis=-1), atol=1e-3)
