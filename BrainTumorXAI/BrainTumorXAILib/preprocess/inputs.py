"""Which file is which sequence (BraTS names, common names, an explicit mapping), and reading one series."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import CaseError
from ..io.case_files import CaseFiles, scan_case
from ..io.case_io import load_volume
from ..io.labels import SEQUENCES

#: Common scanner/PACS export names (the last word of the file name, case-insensitive).
COMMON_NAMES = {
    "t1": ("t1", "t1w", "t1n", "t1pre", "t1native"),
    "t1ce": ("t1c", "t1ce", "t1gd", "t1post", "t1contrast", "t1wce", "t1c+"),
    "t2": ("t2", "t2w"),
    "flair": ("flair", "t2flair", "t2f"),
}
_SEPARATORS = re.compile(r"[ _\-.]+")


def _words(path: Path) -> list[str]:
    stem = path.name
    for ext in (".nii.gz", ".nii"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    else:
        return []
    return [w for w in _SEPARATORS.split(stem.lower()) if w]


def match_common_names(folder: Path, optional: tuple[str, ...] = ()) -> CaseFiles | None:
    """T1.nii.gz, t1c.nii.gz, Patient_T1GD.nii, FLAIR.nii.gz ...: one file per sequence by the last word of its
    name (or the last two joined: 'T2_FLAIR'); None when that does not name every required sequence once."""
    found: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        words = _words(path)
        if not words:
            continue
        candidates = {words[-1], "".join(words[-2:])}
        for seq, names in COMMON_NAMES.items():
            if candidates & set(names):
                found.setdefault(seq, []).append(path)
                break
    if any(len(paths) > 1 for paths in found.values()):
        return None
    if any(seq not in found for seq in SEQUENCES if seq not in optional):
        return None
    return CaseFiles(folder.name, "common names", {seq: paths[0] for seq, paths in found.items()})


def find_sequences(folder, mapping: dict | None = None, optional: tuple[str, ...] = ()) -> CaseFiles:
    """The case's files: an explicit mapping, else BraTS names, else common names; the BraTS error when none fits."""
    folder = Path(folder)
    try:
        return scan_case(folder, mapping, optional)
    except CaseError:
        if mapping or not folder.is_dir():
            raise
        common = match_common_names(folder, optional)
        if common is None:
            raise
        return common


def read_series(path: Path) -> tuple[np.ndarray, np.ndarray, object]:
    """(float32 data, affine, header) of one 3D series; a 2D image or a single slice is refused by name."""
    data, affine, header = load_volume(path)
    thin = [n for n in data.shape if n < 2]
    if thin:
        raise CaseError(path, f"a single slice or 2D image (shape {tuple(data.shape)}); co-registration needs a "
                              "3D series")
    return data, affine, header
