"""Finding a case's files: BraTS 2020/2021 naming (``<id>_t1.nii.gz``, ``_t1ce``, ``_t2``, ``_flair``, ``_seg``),
BraTS 2023/2024 naming (``<id>-t1n``, ``-t1c``, ``-t2w``, ``-t2f``, ``-seg``) or an explicit mapping, and the
case folders under a data folder.  Every problem raises :class:`CaseError` naming the file or folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaseError
from .labels import NAMINGS, SEQUENCES

NIFTI_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii")
LABEL_KEY = "seg"


@dataclass(frozen=True)
class CaseFiles:
    """What :func:`scan_case` found: the id, the naming and the file of each sequence (and 'seg')."""

    case_id: str
    naming: str
    files: dict[str, Path]


def _strip_nifti_extension(name: str) -> str | None:
    lower = name.lower()
    for ext in NIFTI_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return None


def _parse_name(name: str) -> list[tuple[str, str, str]]:
    """Every (naming, key, case id) a file name can stand for."""
    stem = _strip_nifti_extension(name)
    if stem is None:
        return []
    hits = []
    for naming, suffixes in NAMINGS.items():
        for key, suffix in suffixes.items():
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                hits.append((naming, key, stem[: -len(suffix)]))
    return hits


def _expected_names(case_id: str, naming: str, key: str) -> str:
    return " or ".join(f"{case_id}{NAMINGS[naming][key]}{ext}" for ext in NIFTI_EXTENSIONS)


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        raise CaseError(folder, "case folder does not exist")
    if not folder.is_dir():
        raise CaseError(folder, "not a folder (expected a case folder holding the NIfTI files)")


def _check_readable(path: Path, key: str) -> None:
    """A file the case names must be there and readable, optional sequence or not: a dangling link or an
    unreadable file is not an absent sequence."""
    if path.is_symlink() and not path.exists():
        raise CaseError(path, f"{key} file is a dangling symbolic link (its target {os.readlink(path)} does not exist)")
    if not path.exists():
        raise CaseError(path, f"{key} file not found")
    if not path.is_file():
        raise CaseError(path, f"{key} file is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CaseError(path, f"{key} file cannot be read ({exc.strerror or exc})") from None


def _scan_explicit(folder: Path, mapping: dict, optional: tuple[str, ...] = ()) -> CaseFiles:
    unknown = set(mapping) - set(SEQUENCES) - {LABEL_KEY}
    if unknown:
        raise CaseError(folder, f"unknown keys in the file mapping: {', '.join(sorted(unknown))}; "
                                f"expected {', '.join(SEQUENCES)} and optionally {LABEL_KEY}")
    missing = [s for s in SEQUENCES if not mapping.get(s) and s not in optional]
    if missing:
        raise CaseError(folder, f"the file mapping names no file for {', '.join(missing)}")
    files = {}
    for key in (*SEQUENCES, LABEL_KEY):
        if mapping.get(key):
            path = Path(mapping[key])
            path = path if path.is_absolute() else folder / path
            _check_readable(path, key)
            files[key] = path
    stems = [_strip_nifti_extension(files[s].name) or files[s].name for s in SEQUENCES if s in files]  # not seg
    case_id = os.path.commonprefix(stems).rstrip("_-. ") or folder.name
    return CaseFiles(case_id, "explicit", files)


def _scan_named(folder: Path, optional: tuple[str, ...] = ()) -> CaseFiles:
    found: dict[str, dict[str, list[tuple[str, Path]]]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() or path.is_symlink():  # a dangling link is refused below, not taken for an absent file
            for naming, key, case_id in _parse_name(path.name):
                found.setdefault(naming, {}).setdefault(key, []).append((case_id, path))
    if not found:
        expected = "; ".join(f"{n}: <id>{', <id>'.join(s[k] for k in SEQUENCES)} (.nii.gz or .nii)"
                             for n, s in NAMINGS.items())  # fmt: skip
        raise CaseError(folder, f"no BraTS image files found; expected names like {expected}")
    if len(found) > 1:
        lists = "; ".join(f"{n}: {', '.join(p.name for hits in keys.values() for _, p in hits)}"
                          for n, keys in found.items())  # fmt: skip
        raise CaseError(folder, f"mixed naming conventions in one case folder ({lists})")
    naming, keys = next(iter(found.items()))
    for key, hits in keys.items():
        if len(hits) > 1:
            raise CaseError(folder, f"two candidate files for {key}: {', '.join(p.name for _, p in hits)}")
    ids = sorted({hits[0][0] for hits in keys.values()})
    if len(ids) > 1:
        raise CaseError(folder, f"files of different cases in one folder (ids {', '.join(ids)})")
    case_id = ids[0]
    missing = [seq for seq in SEQUENCES if seq not in keys and seq not in optional]
    if missing:  # every missing sequence named at once: the user fixes the folder once, not once per file
        where = folder / f"{case_id}{NAMINGS[naming][missing[0]]}.nii.gz" if len(missing) == 1 else folder
        what = " and ".join((", ".join(missing[:-1]), missing[-1]) if len(missing) > 1 else missing)
        expected = "; ".join(_expected_names(case_id, naming, seq) for seq in missing)
        raise CaseError(where, f"missing {what} image{'s' if len(missing) > 1 else ''}; expected {expected} in {folder}")
    files = {key: keys[key][0][1] for key in (*SEQUENCES, LABEL_KEY) if key in keys}
    for key, path in files.items():
        _check_readable(path, key)
    return CaseFiles(case_id, naming, files)


def scan_case(folder, mapping: dict | None = None, optional: tuple[str, ...] = ()) -> CaseFiles:
    """Find a case's files by BraTS naming or from an explicit ``mapping`` {sequence: path};
    sequences in ``optional`` may be absent (for a checkpoint that can do without them)."""
    folder = Path(folder)
    _check_folder(folder)
    return _scan_explicit(folder, mapping, optional) if mapping else _scan_named(folder, optional)


def find_case_files(folder, mapping: dict | None = None, optional: tuple[str, ...] = ()) -> tuple[str, dict[str, Path]]:
    """(case id, {sequence or 'seg': path}) of a case folder; see :func:`scan_case` for the naming too."""
    found = scan_case(folder, mapping, optional)
    return found.case_id, found.files


def looks_like_case(folder: Path) -> bool:
    """A folder holding at least one file with a BraTS sequence name."""
    return folder.is_dir() and any(p.is_file() and _parse_name(p.name) for p in folder.iterdir())


def list_cases(data_dir) -> list[Path]:
    """Case folders under ``data_dir`` (sorted), or ``[data_dir]`` when it is itself a case."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CaseError(data_dir, "data folder does not exist or is not a folder")
    if looks_like_case(data_dir):
        return [data_dir]
    return sorted(p for p in data_dir.iterdir() if looks_like_case(p))
