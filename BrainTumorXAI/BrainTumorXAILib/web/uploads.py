"""Validating and unpacking a case uploaded through the web viewer.

An upload is either the MR sequences (T1ce and FLAIR; T1, T2 and the label map optional) as
NIfTI files, or one zip archive holding them, or one zip archive of a DICOM study (any names, nested
folders: the series are found and assigned as ``analyze`` does).  Everything lands in the
connection's own temporary folder (:class:`UploadSession`), which is removed when
the connection closes.  Every problem raises :class:`UploadError` with one line
naming the file and the problem; nothing here may crash the server.

Guards:

* only ``.nii``, ``.nii.gz`` and ``.zip`` names are accepted; names are reduced
  to their last path component (a browser never sends folders, a crafted
  request might);
* a total size limit on what is received (checked while streaming);
* zip entries: absolute paths, ``..`` components, drive letters and symbolic
  links are refused; the sum of uncompressed sizes is limited both as declared
  and as actually decompressed (a zip bomb that lies in its headers is stopped
  at the limit), as is the number of entries;
* the result must be one case, named by BraTS convention or with common names
  (``preprocess.inputs.find_sequences``), and every NIfTI header must be readable; or one DICOM study whose series assign (``dicom.study.open_study``),
  its files unpacked flat under numbered names (no folder of the archive is recreated).
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterable

from ..errors import BrainTumorXAIError

ACCEPTED_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".zip")
NIFTI_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii")
GIB = 1024**3
_CHUNK = 1 << 20
# Names of archive members that are silently skipped (macOS / Windows clutter).
_IGNORED_MEMBERS = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|\._)")


class UploadError(BrainTumorXAIError):
    """An upload was refused; the message is shown in the page as is."""


@dataclass(frozen=True)
class UploadLimits:
    max_total_bytes: int = 2 * GIB  # what the browser sends, all files together
    max_uncompressed_bytes: int = 4 * GIB  # what the zip archives unpack to, all together
    max_files: int = 16  # files in one upload
    max_zip_entries: int = 64
    max_dicom_files: int = 5000  # entries of a DICOM study zip (one file per slice)


def accepted_extension(name: str) -> str | None:
    lower = name.lower()
    for ext in ACCEPTED_EXTENSIONS:
        if lower.endswith(ext) and len(lower) > len(ext):
            return ext
    return None


def safe_basename(name: str) -> str:
    """The last component of a client-supplied file name, refusing anything odd."""
    if not isinstance(name, str) or not name.strip():
        raise UploadError("an uploaded file has no name")
    base = PureWindowsPath(PurePosixPath(name.replace("\\", "/")).name).name.strip()
    if base in ("", ".", "..") or "\x00" in base:
        raise UploadError(f"{name!r}: not a valid file name")
    return base


def check_name(name: str) -> str:
    base = safe_basename(name)
    if accepted_extension(base) is None:
        raise UploadError(f"{base}: unsupported file type; upload .nii or .nii.gz images (the four sequences), "
                          f"or one .zip holding them or a DICOM study")
    return base


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


# --------------------------------------------------------------------------- zip archives


def _member_path(info: zipfile.ZipInfo, archive: str) -> PurePosixPath | None:
    """The safe relative path of a zip member, None for a directory; refuses traversal and links."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise UploadError(f"{archive}: entry {raw!r} has an absolute path; refused")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        raise UploadError(f"{archive}: entry {raw!r} points outside the archive ('..'); refused")
    mode = (info.external_attr >> 16) & 0xFFFF
    if info.create_system == 3 and stat.S_ISLNK(mode):  # created on Unix with a symlink mode
        raise UploadError(f"{archive}: entry {raw!r} is a symbolic link; refused")
    if info.is_dir():
        return None
    return PurePosixPath(*[p for p in parts if p not in ("", ".")])


def extract_zip(source: str | Path | BinaryIO, dest: Path, limits: UploadLimits = UploadLimits(),
                archive_name: str | None = None, budget: list[int] | None = None) -> list[Path]:
    """Extract the NIfTI members of ``source`` flat into ``dest`` (or, in an archive without NIfTI files, every
    member as a DICOM study, flat under numbered names); return the written files.

    ``budget`` (one-element list) is the uncompressed byte allowance still left,
    shared between archives of one upload.
    """
    archive = archive_name or (Path(source).name if isinstance(source, (str, Path)) else "archive.zip")
    budget = budget if budget is not None else [limits.max_uncompressed_bytes]
    try:
        zf = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise UploadError(f"{archive}: not a valid zip archive ({exc})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise UploadError(f"{archive}: cannot read the zip archive ({exc})") from None
    written: list[Path] = []
    with zf:
        infos = zf.infolist()
        if len(infos) > max(limits.max_zip_entries, limits.max_dicom_files):
            raise UploadError(f"{archive}: {len(infos)} entries; at most "
                              f"{max(limits.max_zip_entries, limits.max_dicom_files)} are accepted")
        members, others = [], []
        for info in infos:
            rel = _member_path(info, archive)  # checks every entry, even skipped ones
            if rel is None or _IGNORED_MEMBERS.search(str(rel)):
                continue
            ext = accepted_extension(rel.name)
            if ext == ".zip":
                raise UploadError(f"{archive}: nested archive {rel} is not supported; zip the NIfTI files directly")
            if ext is None:
                others.append((info, rel))  # README, JSON side cars... ignored; or a DICOM study's files
                continue
            members.append((info, rel))
        dicom = not members and bool(others)
        if dicom:  # named by position in the archive: series files often share names (IM0001 in each folder)
            members = [(info, PurePosixPath(f"{n:05d}_{rel.name}")) for n, (info, rel) in enumerate(others)]
        limit = limits.max_dicom_files if dicom else limits.max_zip_entries
        if len(infos) > limit:
            raise UploadError(f"{archive}: {len(infos)} entries; at most {limit} are accepted")
        declared = sum(i.file_size for i, _ in members)
        if declared > budget[0]:
            raise UploadError(f"{archive}: unpacks to {_human(declared)}, more than the limit of "
                              f"{_human(limits.max_uncompressed_bytes)}")
        names = [rel.name for _, rel in members]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UploadError(f"{archive}: several entries named {', '.join(dupes)}; upload one case at a time")
        for info, rel in members:
            target = dest / rel.name
            if target.exists():
                raise UploadError(f"{archive}: {rel.name} was uploaded twice")
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        budget[0] -= len(chunk)
                        if budget[0] < 0:  # headers lied: stop at the limit
                            raise UploadError(f"{archive}: unpacks to more than the limit of "
                                              f"{_human(limits.max_uncompressed_bytes)}")
                        out.write(chunk)
            except UploadError:
                target.unlink(missing_ok=True)
                raise
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                    NotImplementedError, RuntimeError) as exc:  # CRC errors, encryption, truncation, zlib
                target.unlink(missing_ok=True)
                raise UploadError(f"{archive}: entry {info.filename!r} is corrupt or unreadable ({exc})") from None
            written.append(target)
    if not written:
        raise UploadError(f"{archive}: the archive holds no .nii or .nii.gz files and no DICOM study")
    return written


# --------------------------------------------------------------------------- validating the case


def check_nifti_headers(paths: Iterable[Path]) -> None:
    import nibabel as nib

    for path in paths:
        try:
            img = nib.load(str(path))
            shape = img.shape
        except Exception as exc:  # nibabel raises many kinds
            raise UploadError(f"{path.name}: not a readable NIfTI image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if len(shape) < 3:
            raise UploadError(f"{path.name}: a {len(shape)}D image; expected a 3D volume")
        if path.name.lower().endswith(".gz"):
            try:  # a truncated gzip only shows when reading to the end
                import gzip

                with gzip.open(path, "rb") as fh:
                    while fh.read(_CHUNK):
                        pass
            except (OSError, EOFError) as exc:
                raise UploadError(f"{path.name}: the gzip stream is corrupt or truncated ({exc})") from None


#: Sequences an upload may lack: T1 and T2 are often not acquired, and the default model reads T1ce + FLAIR.
#: A checkpoint that needs them says so, in one line, when the analysis starts.
OPTIONAL_SEQUENCES = ("t1", "t2")


def is_analysable(folder: Path, dicom_below: bool = True) -> bool:
    """Whether the analysis takes ``folder`` as a case: BraTS names, common names or a DICOM study, its files at
    any depth (``dicom_below``) or directly in it (cheap checks, no header is parsed; the analysis gives the
    one-line reason when it still refuses)."""
    from ..dicom.scan import is_dicom_file, looks_like_dicom_folder
    from ..io.case_files import looks_like_case
    from ..preprocess.inputs import match_common_names

    if not folder.is_dir():
        return False
    if looks_like_case(folder) or match_common_names(folder, OPTIONAL_SEQUENCES) is not None:
        return True
    if dicom_below:
        return looks_like_dicom_folder(folder)
    return any(p.is_file() and is_dicom_file(p) for p in folder.iterdir())


def list_analysable(data_dir: Path) -> list[Path]:
    """The case folders under ``data_dir`` the web page offers (sorted), or ``[data_dir]`` when it is one (its
    own files name the sequences or are DICOM: a folder of DICOM studies is not one study)."""
    from ..errors import CaseError

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CaseError(data_dir, "data folder does not exist or is not a folder")
    if is_analysable(data_dir, dicom_below=False):
        return [data_dir]
    return sorted(p for p in data_dir.iterdir() if is_analysable(p))


def validate_case_folder(folder: Path) -> tuple[str, dict[str, Path]]:
    """The case id and files (for a DICOM study: the first file of each assigned series) of an unpacked upload,
    or an UploadError naming what is missing."""
    from ..dicom.scan import looks_like_dicom_folder
    from ..dicom.study import open_study
    from ..errors import CaseError
    from ..preprocess.inputs import find_sequences

    try:
        if looks_like_dicom_folder(folder):
            study = open_study(folder)
            return study.case_id(), {seq: series.files[0] for seq, series in study.chosen.items()}
        # BraTS names, else common names (T1, T1C/T1CE/T1GD, T2, FLAIR): a raw case is preprocessed by the analysis
        found = find_sequences(folder, optional=OPTIONAL_SEQUENCES)
        case_id, files = found.case_id, found.files
    except CaseError as exc:
        problem = exc.problem
        if exc.path is not None and exc.path != folder:
            problem = f"{exc.path.name}: {problem}"
        problem = problem.replace(str(folder), "the upload")
        raise UploadError(f"upload refused: {problem}") from None
    check_nifti_headers(files.values())
    return case_id, files


# --------------------------------------------------------------------------- one connection's uploads


class UploadSession:
    """A temporary folder for one browser connection; each upload becomes one case folder in it."""

    def __init__(self, limits: UploadLimits = UploadLimits(), parent: str | Path | None = None):
        self.limits = limits
        self.root = Path(tempfile.mkdtemp(prefix="braintumorxai-upload-", dir=parent))
        self._count = 0

    @property
    def closed(self) -> bool:
        return not self.root.exists()

    def new_folder(self) -> Path:
        self._count += 1
        folder = self.root / f"upload{self._count:03d}" / "case"
        folder.mkdir(parents=True)
        return folder

    def add(self, files: Iterable[tuple[str, bytes | BinaryIO | Path]]) -> tuple[Path, str]:
        """Validate and store one upload: ``files`` are (client name, content) pairs.

        Returns (case folder, case id).  On any problem the partial folder is
        removed and UploadError raised.
        """
        if self.closed:
            raise UploadError("the upload session is closed")
        files = list(files)
        if not files:
            raise UploadError("no file was uploaded")
        if len(files) > self.limits.max_files:
            raise UploadError(f"{len(files)} files uploaded; at most {self.limits.max_files} are accepted")
        names = [check_name(name) for name, _ in files]
        lowered = [n.lower() for n in names]
        dupes = sorted({n for n in names if lowered.count(n.lower()) > 1})
        if dupes:
            raise UploadError(f"{', '.join(dupes)}: uploaded twice")
        n_zip = sum(accepted_extension(n) == ".zip" for n in names)
        if n_zip and len(files) > 1:
            raise UploadError("upload either one .zip or the NIfTI files, not both / not several archives")
        folder = self.new_folder()
        try:
            self._store(folder, names, [content for _, content in files])
            case_id, _ = validate_case_folder(folder)
        except BaseException:
            shutil.rmtree(folder.parent, ignore_errors=True)
            raise
        return folder, case_id

    def _store(self, folder: Path, names: list[str], contents: list) -> None:
        total = [0]
        incoming = folder.parent / "incoming"
        incoming.mkdir()
        budget = [self.limits.max_uncompressed_bytes]
        for name, content in zip(names, contents):
            is_zip = accepted_extension(name) == ".zip"
            target = (incoming if is_zip else folder) / name
            self._write_limited(target, content, total, name)
            if is_zip:
                extract_zip(target, folder, self.limits, archive_name=name, budget=budget)
                target.unlink()
        shutil.rmtree(incoming, ignore_errors=True)

    def _write_limited(self, target: Path, content, total: list[int], name: str) -> None:
        limit = self.limits.max_total_bytes

        def account(n: int) -> None:
            total[0] += n
            if total[0] > limit:
                raise UploadError(f"{name}: the upload is larger than the limit of {_human(limit)}")

        if isinstance(content, (bytes, bytearray, memoryview)):
            account(len(content))
            target.write_bytes(content)
            return
        if isinstance(content, (str, Path)):
            src_path = Path(content)
            account(src_path.stat().st_size)
            shutil.copyfile(src_path, target)
            return
        with open(target, "wb") as out:  # a stream: count while copying
            while True:
                chunk = content.read(_CHUNK)
                if not chunk:
                    break
                account(len(chunk))
                out.write(chunk)

    def remove(self, folder: Path) -> None:
        folder = Path(folder)
        if self.root in folder.parents:
            shutil.rmtree(folder.parent if folder.name == "case" else folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bytes_of(content) -> bytes:
    """Raw bytes of what a browser sent through trame's file input (bytes, list of chunks, or base64 text)."""
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    if isinstance(content, memoryview):
        return content.tobytes()
    if isinstance(content, list):
        return b"".join(bytes_of(c) for c in content)
    if isinstance(content, str):
        import base64

        data = content.split(",", 1)[1] if content.startswith("data:") else content
        return base64.b64decode(data)
    raise UploadError("unsupported upload payload")


__all__ = ["UploadError", "UploadLimits", "UploadSession", "extract_zip", "check_name", "safe_basename",
           "validate_case_folder", "bytes_of", "ACCEPTED_EXTENSIONS", "GIB"]
