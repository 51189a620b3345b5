"""The web viewer takes a zip of a DICOM study (nested folders, any names) under the same limits and traversal
checks as a NIfTI zip; its analysis writes the DICOM SEG into the results folder the download zips."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from BrainTumorXAILib.dicom.study import open_study
from BrainTumorXAILib.web.jobs import JobOptions, JobRunner, case_fingerprint, is_complete
from BrainTumorXAILib.web.uploads import UploadError, UploadLimits, UploadSession

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import grid_affine, rotation, study_ids, write_case_study, write_series  # noqa: E402

AFFINE = grid_affine(rotation(0, 10, 0), (1.5, 1.5, 4.0), (40.0, -50.0, -20.0))
SHAPE = (26, 22, 6)


@pytest.fixture(scope="module")
def study_zip(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("web_dicom")
    rng = np.random.default_rng(4)
    vols = {s: rng.integers(0, 800, SHAPE).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    write_case_study(vols, AFFINE, root / "CD" / "DICOM", shuffle="t1ce")
    return _zip_folder(root / "CD", extra={"__MACOSX/._IM0001": b"x", "README.TXT": b"exported from PACS"})


def _zip_folder(folder: Path, extra=None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(folder.parent)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _session(tmp_path, **limits):
    return UploadSession(UploadLimits(**{"max_total_bytes": 10**7, "max_uncompressed_bytes": 10**7, **limits}),
                         parent=tmp_path)


def test_dicom_study_zip_is_accepted_and_analysed_with_the_seg_in_the_results(tmp_path, study_zip, tiny_checkpoint):
    with _session(tmp_path) as session:
        folder, case_id = session.add([("study.zip", study_zip)])
        assert case_id == "PAT001"
        study = open_study(folder)
        assert sorted(s.number for s in study.chosen.values()) == ["2", "3", "4", "5"]
        assert all(p.parent == folder for p in folder.rglob("*"))  # unpacked flat, no archive folder recreated
        assert "dicom" in case_fingerprint(folder)
        # Random volumes are no anatomy to co-register: the clinical preprocessing (issue 26) stays off.
        runner = JobRunner(tmp_path / "results", JobOptions(weights=tiny_checkpoint, device="cpu", mc_samples=0,
                                                            gradcam="none", preprocess="none"))
        job = runner.submit(folder)
        assert job.wait(120) and job.state == "done", job.error
        assert is_complete(job.out_dir) and (job.out_dir / "dicom" / "seg.dcm").is_file()
        assert (job.out_dir / "inputs" / "PAT001_t1ce.nii").is_file()


def test_dicom_zip_traversal_refused(tmp_path, study_zip):
    buf = io.BytesIO(study_zip)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("../escape.dcm", b"DICM")
    with _session(tmp_path) as session, pytest.raises(UploadError, match=r"points outside the archive"):
        session.add([("study.zip", buf.getvalue())])
    assert not (tmp_path / "escape.dcm").exists()


def test_dicom_zip_limits_apply(tmp_path, study_zip):
    with _session(tmp_path, max_dicom_files=10) as session:
        with pytest.raises(UploadError, match=r"entries; at most 10 are accepted"):
            session.add([("study.zip", study_zip)])
    with _session(tmp_path, max_uncompressed_bytes=50_000) as session:
        with pytest.raises(UploadError, match=r"more than the limit"):
            session.add([("study.zip", study_zip)])
        assert not any(session.root.rglob("*.dcm"))  # nothing half-unpacked stays


def test_dicom_zip_of_two_patients_refused_in_one_line(tmp_path):
    ids = study_ids()
    write_case_study({s: np.ones(SHAPE, np.int16) for s in ("t1", "t1ce", "t2", "flair")}, AFFINE,
                     tmp_path / "CD", ids=ids)
    write_series(np.ones(SHAPE, np.int16), AFFINE, tmp_path / "CD" / "X", {**ids, "PatientID": "PAT002"}, 20, "T2")
    with _session(tmp_path) as session, pytest.raises(UploadError) as caught:
        session.add([("two.zip", _zip_folder(tmp_path / "CD"))])
    message = str(caught.value)
    assert message.startswith("upload refused: ") and "2 patients in one folder" in message
    assert "\n" not in message and str(session.root) not in message


def test_the_data_folder_lists_brats_common_name_and_dicom_cases(tmp_path):
    """``--data-dir``: every folder the analysis takes is offered, not only BraTS-named ones."""
    import nibabel as nib

    from BrainTumorXAILib.web.uploads import list_analysable

    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    vols = {s: rng.integers(0, 800, SHAPE).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    write_case_study(vols, AFFINE, data / "PatientA_DICOM")
    for folder, names in (("Brats_1", ["Brats_1_t1ce.nii.gz", "Brats_1_flair.nii.gz"]),
                          ("Raw_B", ["T1.nii.gz", "T1GD.nii.gz", "T2.nii.gz", "FLAIR.nii.gz"])):
        (data / folder).mkdir()
        for name in names:
            nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(data / folder / name))
    (data / "notes").mkdir()
    (data / "notes" / "report.txt").write_text("not a case")
    assert [p.name for p in list_analysable(data)] == ["Brats_1", "PatientA_DICOM", "Raw_B"]
    assert list_analysable(data / "Raw_B") == [data / "Raw_B"]  # the folder is itself a case
