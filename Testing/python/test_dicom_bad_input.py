"""DICOM input that cannot be analysed: one line naming the folder or file and the problem, exit code 2, no
traceback, no output folder, the input folder untouched.  Compressed series decode or are refused by name."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (BasicTextSRStorage, ExplicitVRLittleEndian, GrayscaleSoftcopyPresentationStateStorage,
                         MediaStorageDirectoryStorage, MPEG2MPML, RLELossless, generate_uid)

from BrainTumorXAILib.cli import main as cli_main
from BrainTumorXAILib.dicom.study import convert_study, open_study

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import grid_affine, rotation, study_ids, write_case_study, write_series  # noqa: E402

AFFINE = grid_affine(rotation(10, 0, 5), (1.0, 1.0, 4.0), (60.0, -80.0, -20.0))
SHAPE = (24, 20, 7)


def _study(folder: Path, ids=None) -> dict:
    rng = np.random.default_rng(3)
    vols = {s: rng.integers(0, 1000, SHAPE).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    return write_case_study(vols, AFFINE, folder, ids=ids)


def _non_image(folder: Path, sop_class, modality: str, name: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = modality, generate_uid(), 99, name
    ds.PatientID, ds.StudyInstanceUID = "PAT001", generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder / name


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _refused(folder: Path, tmp_path: Path, weights: Path, capsys, expected: str) -> str:
    before = _tree_digest(folder)
    out = tmp_path / "out"
    assert cli_main(["analyze", str(folder), "--out", str(out), "--weights", str(weights), "--quiet",
                     "--mc-samples", "0", "--no-surfaces", "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert _tree_digest(folder) == before
    return err


def test_no_image_series(tmp_path, tiny_checkpoint, capsys):
    _non_image(tmp_path / "in", BasicTextSRStorage, "SR", "report")
    _non_image(tmp_path / "in", GrayscaleSoftcopyPresentationStateStorage, "PR", "pstate")
    err = _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "no MR image series")
    assert "not an image (Basic Text SR Storage)" in err and "Presentation State" in err


def test_non_image_objects_beside_a_study_are_skipped(tmp_path):
    _study(tmp_path / "in")
    _non_image(tmp_path / "in" / "SR", BasicTextSRStorage, "SR", "report")
    (tmp_path / "in" / "README.TXT").write_text("not DICOM")
    study = open_study(tmp_path / "in")
    assert [s.what for s in study.scan.skipped] == ["series 99 'report'"] and study.scan.not_dicom == 1


def test_missing_slice(tmp_path, tiny_checkpoint, capsys):
    files = _study(tmp_path / "in")
    files["t1ce"][3].unlink()
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "series 3 'AX T1 SE POST' (T1ce): missing slice")


def test_mixed_orientations(tmp_path, tiny_checkpoint, capsys):
    files = _study(tmp_path / "in")
    ds = pydicom.dcmread(files["flair"][2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(files["flair"][2])
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "(FLAIR): mixed orientations in one series")


def test_two_patients(tmp_path, tiny_checkpoint, capsys):
    ids = study_ids()
    _study(tmp_path / "in", ids=ids)
    other = {**ids, "PatientID": "PAT002"}
    write_series(np.zeros(SHAPE, np.int16), AFFINE, tmp_path / "in" / "X", other, 20, "AX T2 other")
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys,
             "2 patients in one folder (PatientID PAT001: series 2, 3, 4, 5; PatientID PAT002: series 20)")


def test_two_studies(tmp_path, tiny_checkpoint, capsys):
    ids = study_ids()
    _study(tmp_path / "in", ids=ids)
    write_series(np.zeros(SHAPE, np.int16), AFFINE, tmp_path / "in" / "X", {**ids, "StudyInstanceUID": "1.2.3"}, 20,
                 "AX T2 later")
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "2 studies in one folder")


@pytest.mark.parametrize("where", ["header", "pixels"])
def test_truncated_file(tmp_path, tiny_checkpoint, capsys, where):
    files = _study(tmp_path / "in")
    victim = files["t1ce"][4]
    data = victim.read_bytes()
    victim.write_bytes(data[:300] if where == "header" else data[:-200])
    err = _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, str(victim))
    assert ("truncated" in err) if where == "header" else ("pixel data" in err.lower())


def test_dicomdir_only(tmp_path, tiny_checkpoint, capsys):
    _non_image(tmp_path / "in", MediaStorageDirectoryStorage, "", "DICOMDIR")
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "only a DICOMDIR")


def test_rle_compressed_series_decodes(tmp_path):
    files = _study(tmp_path / "in")
    for path in files["t1ce"]:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    study = open_study(tmp_path / "in")
    original = pydicom.dcmread(files["t2"][0]).pixel_array  # t2 is still uncompressed
    assert study.chosen["t1ce"].first.file_meta.TransferSyntaxUID == RLELossless
    converted = convert_study(study, tmp_path)
    assert converted["t1ce"].is_file() and original.shape == SHAPE[1::-1]


def test_undecodable_syntax_is_refused_by_name(tmp_path, tiny_checkpoint, capsys):
    files = _study(tmp_path / "in")
    for path in files["t1ce"]:
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([b"\x00" * 64])
        ds.file_meta.TransferSyntaxUID = MPEG2MPML
        ds.save_as(path)
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "transfer syntax MPEG2 Main Profile")


def test_jpeg_lossless_series_decodes_through_gdcm(tmp_path):
    """JPEG Lossless (the usual PACS MR export): pydicom lacks the decoder here, SimpleITK's GDCM reads it."""
    sitk = pytest.importorskip("SimpleITK")
    files = _study(tmp_path / "in")
    (tmp_path / "plain").mkdir()
    plain = convert_study(open_study(tmp_path / "in"), tmp_path / "plain")["t1ce"]
    for path in files["t1ce"]:
        ds = pydicom.dcmread(path)
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp_path / "jpeg.dcm"))
        writer.SetImageIO("GDCMImageIO")
        writer.SetUseCompression(True)
        writer.SetCompressor("JPEG")
        writer.Execute(sitk.GetImageFromArray(ds.pixel_array[None]))
        jpeg = pydicom.dcmread(tmp_path / "jpeg.dcm")
        ds.PixelData, ds.file_meta.TransferSyntaxUID = jpeg.PixelData, jpeg.file_meta.TransferSyntaxUID
        ds.save_as(path)
    study = open_study(tmp_path / "in")
    assert study.chosen["t1ce"].first.file_meta.TransferSyntaxUID.name.startswith("JPEG Lossless")
    (tmp_path / "jpeg").mkdir()
    decoded = convert_study(study, tmp_path / "jpeg")["t1ce"]
    assert np.array_equal(np.asarray(nib.load(decoded).dataobj), np.asarray(nib.load(plain).dataobj))


def test_irregular_spacing_refused_and_rounding_accepted(tmp_path, tiny_checkpoint, capsys):
    files = _study(tmp_path / "in")
    normal = np.cross(AFFINE[:3, 0], AFFINE[:3, 1]) / np.linalg.norm(np.cross(AFFINE[:3, 0], AFFINE[:3, 1]))
    normal_lps = normal * [-1, -1, 1]

    def shift(path, mm):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(ds.ImagePositionPatient, float) + mm * normal_lps]
        ds.save_as(path)

    shift(files["t2"][2], 0.01)  # scanner rounding: fine
    assert open_study(tmp_path / "in").chosen["t2"].problem is None
    shift(files["t1ce"][3], 1.2)  # 30% of the 4 mm step
    _refused(tmp_path / "in", tmp_path, tiny_checkpoint, capsys, "(T1ce): irregular slice spacing")
