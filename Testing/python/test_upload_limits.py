"""Every upload limit reached on purpose, with valid archives (no CRC error can stand in for a limit), and
the same upload one step below each limit accepted, so each test shows which check refused it."""

from __future__ import annotations

import io
import zipfile

import pytest

from BrainTumorXAILib.web import uploads
from BrainTumorXAILib.web.uploads import UploadError, UploadLimits, UploadSession, extract_zip
from nifti_factory import upload_case_files



@pytest.fixture(scope="module")
def case_files(tmp_path_factory) -> dict[str, bytes]:
    return upload_case_files(tmp_path_factory.mktemp("limits"), "Lim", (6, 6, 5), seed=1)


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _session(tmp_path, **limits):
    return UploadSession(UploadLimits(**{"max_total_bytes": 10**7, "max_uncompressed_bytes": 10**7, **limits}),
                         parent=tmp_path)


def test_zip_entry_count_limit(tmp_path, case_files):
    notes = {f"note{i}.txt": b"x" for i in range(3)}
    with _session(tmp_path, max_zip_entries=7) as s:
        s.add([("ok.zip", _zip({**case_files, **notes}))])  # 7 entries: at the limit
        with pytest.raises(UploadError, match=r"8 entries; at most 7"):
            s.add([("many.zip", _zip({**case_files, **notes, "note9.txt": b"x"}))])


def test_file_count_limit(tmp_path, case_files):
    with _session(tmp_path, max_files=4) as s:
        s.add(list(case_files.items()))  # 4 files: at the limit
        extra = [*case_files.items(), ("Lim_seg.nii.gz", case_files["Lim_t1.nii.gz"])]
        with pytest.raises(UploadError, match=r"5 files uploaded; at most 4"):
            s.add(extra)


def test_nested_zip_refused(tmp_path, case_files):
    inner = _zip(case_files)
    with _session(tmp_path) as s:
        with pytest.raises(UploadError, match="nested archive"):
            s.add([("outer.zip", _zip({"inner.zip": inner}))])
        with pytest.raises(UploadError, match="nested archive"):
            s.add([("outer.zip", _zip({**case_files, "more/inner.zip": inner}))])
        assert not any(s.root.rglob("*.nii.gz"))


def test_declared_uncompressed_size_limit(tmp_path, case_files):
    declared = sum(len(d) for d in case_files.values())
    with _session(tmp_path, max_uncompressed_bytes=declared) as s:
        s.add([("exact.zip", _zip(case_files))])  # exactly at the limit
    with _session(tmp_path, max_uncompressed_bytes=declared - 1) as s:
        with pytest.raises(UploadError, match="unpacks to"):
            s.add([("over.zip", _zip(case_files))])


class _Endless(io.RawIOBase):
    """A member stream that yields more than its header declared (what a lying archive would give a reader
    that trusts the data); counts what was read."""

    def __init__(self, total: int):
        self.left, self.read_bytes = total, 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = min(self.left, 1 << 20 if n is None or n < 0 else n)
        self.left -= n
        self.read_bytes += n
        return b"\0" * n


def test_uncompressed_size_cap_holds_while_unpacking(tmp_path, case_files, monkeypatch):
    """Headers within the limit, content far beyond it: extraction stops at the limit and leaves nothing."""
    data = _zip(case_files)
    stream = _Endless(50 * (1 << 20))
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *args, **kwargs):
        name = info.filename if isinstance(info, zipfile.ZipInfo) else info
        return stream if name == "Lim_t2.nii.gz" else real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    out = tmp_path / "out"
    out.mkdir()
    limit = 3 * (1 << 20)
    with pytest.raises(UploadError, match="more than the limit"):
        extract_zip(io.BytesIO(data), out, UploadLimits(max_uncompressed_bytes=limit), archive_name="liar.zip")
    assert stream.read_bytes <= limit + 2 * uploads._CHUNK  # stopped at the limit, not at the end of the data
    assert not (out / "Lim_t2.nii.gz").exists()


def test_total_size_limit_counts_a_stream_while_copying(tmp_path, case_files):
    """A streamed upload is refused once it passes the limit, before it is all read."""
    stream = _Endless(40 * (1 << 20))
    with UploadSession(UploadLimits(max_total_bytes=2 * (1 << 20)), parent=tmp_path) as s:
        with pytest.raises(UploadError, match="larger than the limit"):
            s.add([("Lim_t1.nii.gz", stream), *[(n, d) for n, d in case_files.items() if "t1." not in n]])
        assert stream.read_bytes <= 2 * (1 << 20) + uploads._CHUNK
        assert not any(s.root.rglob("*.nii.gz"))


def test_declared_size_over_the_limit_is_refused_before_anything_is_decompressed(tmp_path, case_files, monkeypatch):
    """An archive whose headers already say it is too big costs no decompression and no disk."""
    bomb = _zip({**case_files, "Lim_seg.nii.gz": b"\0" * 3_000_000})
    opened = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, info, *args, **kwargs):
        opened.append(info)
        return real_open(self, info, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    with _session(tmp_path, max_uncompressed_bytes=2_000_000) as s:
        with pytest.raises(UploadError, match=r"unpacks to 2\.\d MB, more than the limit of 1\.9 MB"):
            s.add([("bomb.zip", bomb)])
        assert opened == []
        assert not any(p.is_file() for p in s.root.rglob("*"))
