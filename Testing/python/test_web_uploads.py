"""Upload validation of the web viewer: every refusal is an UploadError with a clear one-line message."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from BrainTumorXAILib.web.uploads import UploadError, UploadLimits, UploadSession, check_name, extract_zip
from nifti_factory import upload_case_files



@pytest.fixture(scope="module")
def case_files(tmp_path_factory) -> dict[str, bytes]:
    return upload_case_files(tmp_path_factory.mktemp("upcase"), "Up", (8, 8, 6), seed=0)


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.fixture()
def session(tmp_path):
    with UploadSession(UploadLimits(max_total_bytes=5_000_000, max_uncompressed_bytes=5_000_000),
                       parent=tmp_path) as s:
        yield s


def test_four_nifti_files_accepted(session, case_files):
    folder, case_id = session.add(list(case_files.items()))
    assert case_id == "Up"
    assert sorted(p.name for p in folder.iterdir()) == sorted(case_files)
    assert session.root in folder.parents


def test_zip_with_folder_accepted_and_clutter_ignored(session, case_files):
    entries = {f"case/{n}": d for n, d in case_files.items()}
    entries["__MACOSX/._x"] = b"junk"
    entries["case/README.txt"] = b"hello"
    folder, case_id = session.add([("case.zip", _zip(entries))])
    assert case_id == "Up" and len(list(folder.iterdir())) == 4


@pytest.mark.parametrize("member, words", [
    ("../evil_t1.nii.gz", "outside the archive"),
    ("/abs/evil_t1.nii.gz", "absolute path"),
    ("C:/evil_t1.nii.gz", "absolute path"),
])
def test_zip_path_traversal_refused(session, case_files, member, words):
    with pytest.raises(UploadError, match=words):
        session.add([("bad.zip", _zip({**case_files, member: b"x"}))])
    assert not any(session.root.rglob("*.nii.gz"))  # nothing left behind


def test_zip_symlink_refused(session, case_files):
    with pytest.raises(UploadError, match="symbolic link"):
        session.add([("link.zip", _zip(case_files, symlink="Up_seg.nii.gz"))])


@pytest.mark.parametrize("name", ["case.tar.gz", "notes.txt", "image.nii.gz.exe", "x.mha"])
def test_wrong_extension_refused(session, name):
    with pytest.raises(UploadError, match="unsupported file type"):
        session.add([(name, b"data")])


def test_name_is_reduced_to_basename():
    assert check_name("../../etc/Up_t1.nii.gz") == "Up_t1.nii.gz"
    assert check_name("C:\\x\\Up_t1.nii") == "Up_t1.nii"


def test_too_big_refused(tmp_path, case_files):
    with UploadSession(UploadLimits(max_total_bytes=1000), parent=tmp_path) as s:
        with pytest.raises(UploadError, match="larger than the limit"):
            s.add(list(case_files.items()))


def test_zip_bomb_refused(tmp_path, case_files):
    bomb = _zip({**case_files, "Up_seg.nii.gz": b"\0" * 3_000_000})  # compresses to a few KB
    assert len(bomb) < 100_000
    with UploadSession(UploadLimits(max_total_bytes=10**6, max_uncompressed_bytes=2_000_000), parent=tmp_path) as s:
        with pytest.raises(UploadError, match="unpacks to"):
            s.add([("bomb.zip", bomb)])


def test_zip_with_lying_header_refused_without_unpacking_past_its_header(tmp_path):
    """Python's zipfile reads a member only up to its declared size, so a header that lies is refused by the
    CRC check after 10 bytes (the streaming size cap itself is reached on purpose in test_upload_limits)."""
    data = _zip({"Up_t1.nii.gz": b"\0" * 1_000_000})
    # forge the declared uncompressed size in both headers
    data = bytearray(data)
    local = data.index(b"PK\x03\x04")
    data[local + 22:local + 26] = (10).to_bytes(4, "little")
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    (tmp_path / "out").mkdir()
    with pytest.raises(UploadError, match="corrupt or unreadable"):
        extract_zip(io.BytesIO(bytes(data)), tmp_path / "out", UploadLimits(max_uncompressed_bytes=100_000),
                    archive_name="lying.zip")
    assert not any((tmp_path / "out").iterdir())


def test_corrupt_zip_refused(session):
    with pytest.raises(UploadError, match="not a valid zip archive"):
        session.add([("broken.zip", b"PK\x03\x04 this is not really a zip")])


def test_corrupt_member_refused(session, case_files):
    data = bytearray(_zip(case_files))
    i = data.index(b"Up_t1.nii.gz") + len("Up_t1.nii.gz") + 20
    data[i:i + 40] = b"\xff" * 40
    with pytest.raises(UploadError, match="corrupt|not a readable|not a valid"):
        session.add([("damaged.zip", bytes(data))])


def test_missing_sequence_named(session, case_files):
    files = [(n, d) for n, d in case_files.items() if "flair" not in n]
    with pytest.raises(UploadError, match="missing flair image") as exc:
        session.add(files)
    assert "\n" not in str(exc.value)
    assert str(session.root) not in str(exc.value)  # no server paths in the page


def test_not_nifti_content_refused(session, case_files):
    files = dict(case_files)
    files["Up_t2.nii.gz"] = b"definitely not gzip"
    with pytest.raises(UploadError, match="Up_t2.nii.gz"):
        session.add(list(files.items()))


def test_mixing_zip_and_files_refused(session, case_files):
    with pytest.raises(UploadError, match="not both"):
        session.add([("a.zip", _zip(case_files)), *case_files.items()])


def test_session_folder_removed_on_close(tmp_path, case_files):
    s = UploadSession(parent=tmp_path)
    folder, _ = s.add(list(case_files.items()))
    assert folder.exists()
    s.close()
    assert not s.root.exists() and s.closed
    with pytest.raises(UploadError, match="closed"):
        s.add(list(case_files.items()))


def test_failed_upload_leaves_nothing(session, case_files):
    with pytest.raises(UploadError):
        session.add([(n, d) for n, d in case_files.items() if "t1ce" not in n])
    assert [p for p in Path(session.root).iterdir()] == []


def test_t1ce_and_flair_alone_accepted(session, case_files):
    """T1 and T2 are often not acquired: an upload without them is a case (the model says whether it can run)."""
    files = [(n, d) for n, d in case_files.items() if not (n.endswith("_t1.nii.gz") or n.endswith("_t2.nii.gz"))]
    folder, case_id = session.add(files)
    names = {p.name for p in folder.iterdir()}
    assert {"Up_t1ce.nii.gz", "Up_flair.nii.gz"} <= names and case_id == "Up"
    assert not any(n.endswith(("_t1.nii.gz", "_t2.nii.gz")) for n in names)


@pytest.mark.parametrize("t1ce_name", ["T1C.nii.gz", "t1ce.nii.gz", "Patient_T1GD.nii.gz"])
def test_common_names_accepted(session, case_files, t1ce_name):
    """A raw case named as the scanner exports it (T1, T1C/T1CE/T1GD, T2, FLAIR; any case) is a case: the analysis
    matches the names and preprocesses it (issue 26)."""
    common = {"t1": "T1.nii.gz", "t1ce": t1ce_name, "t2": "t2.nii.gz", "flair": "FLAIR.nii.gz"}
    files = [(common[n.rsplit("_", 1)[1].split(".")[0]], d) for n, d in case_files.items()]
    folder, case_id = session.add(files)
    assert case_id == "case" and sorted(p.name for p in folder.iterdir()) == sorted(common.values())


def test_common_names_twice_refused(session, case_files):
    data = next(iter(case_files.values()))
    with pytest.raises(UploadError, match="upload refused"):
        session.add([("T1.nii.gz", data), ("T1C.nii.gz", data), ("T1CE.nii.gz", data), ("FLAIR.nii.gz", data)])


def test_results_view_says_the_case_was_preprocessed():
    from BrainTumorXAILib.web.state import _preprocessing_note

    summary = {"preprocessing_clinical": {"mode": "full", "brain_extraction": {"method": "atlas"},
                                          "atlas": {"name": "sri24"}}}
    assert "preprocessed" in _preprocessing_note(summary) and "atlas" in _preprocessing_note(summary)
    assert _preprocessing_note({"preprocessing_clinical": {"mode": "none"}}) == ""


def test_a_common_named_upload_gets_a_results_cache_folder(session, case_files, tmp_path):
    """The results cache keys a raw upload by its files as it keys a BraTS-named one (both names, same key form)."""
    from BrainTumorXAILib.web.jobs import JobOptions, cache_folder, case_fingerprint

    common = {"t1": "T1.nii.gz", "t1ce": "T1GD.nii.gz", "t2": "T2.nii.gz", "flair": "FLAIR.nii.gz"}
    folder, _ = session.add([(common[n.rsplit("_", 1)[1].split(".")[0]], d) for n, d in case_files.items()])
    fingerprint = case_fingerprint(folder)
    assert sorted(fingerprint) == sorted(common) and fingerprint["t1ce"][0].endswith("T1GD.nii.gz")
    assert cache_folder(tmp_path, folder, JobOptions()).parent == tmp_path
