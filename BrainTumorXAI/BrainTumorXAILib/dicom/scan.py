"""Walk a folder (nested, any file names) and group its DICOM image files by series.

What cannot be a volume for the analysis is skipped and listed with the reason: localizers, derived images,
non-MR series, non-image objects (structured reports, presentation states), multi-frame objects, a DICOMDIR.
One folder must hold one patient's one study.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import MediaStorageDirectoryStorage

from . import DicomError
from .geometry import GeometryProblem, SliceStack, stack_slices

#: Where a Part 10 file says "DICM".
_PREAMBLE = 128


@dataclass
class Series:
    uid: str
    number: str
    description: str
    headers: list  # pydicom datasets without pixel data, in the order ``stack`` sorted them when usable
    files: list[Path]
    stack: SliceStack | None = None
    problem: str | None = None  # why this series is not one regular volume (None: usable)

    @property
    def first(self):
        return self.headers[0]

    def label(self) -> str:
        return f"series {self.number or '?'} '{self.description}'"


@dataclass
class Skipped:
    what: str  # "series 3 'Survey'", "DICOMDIR", ...
    reason: str
    files: int


@dataclass
class FolderScan:
    folder: Path
    series: list[Series] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    not_dicom: int = 0


def is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PREAMBLE + 4)
    except OSError:
        return False
    return head[_PREAMBLE:] == b"DICM"


def looks_like_dicom_folder(folder) -> bool:
    """A folder holding DICOM files (at any depth) and no NIfTI file at its top: the DICOM path of ``analyze``."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    if any(p.name.lower().endswith((".nii", ".nii.gz")) for p in folder.iterdir()):
        return False
    return any(is_dicom_file(p) for p in _files(folder))


def _files(folder: Path):
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield Path(root) / name


def _read_header(path: Path):
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DicomError(path, f"truncated or unreadable DICOM file ({type(exc).__name__})") from None
    # pydicom stops quietly at a cut: a file whose identity or image attributes are missing was cut short.
    if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
        return ds
    if "SOPClassUID" not in ds or "SeriesInstanceUID" not in ds:
        raise DicomError(path, "truncated or incomplete DICOM file (no SOP class or series UID)")
    if "Image Storage" in _sop_name(ds) and "Rows" not in ds:
        raise DicomError(path, f"truncated DICOM file ({_sop_name(ds)} without its image attributes)")
    return ds


def _skip_reason(ds) -> str | None:
    """Why a series (judged by one of its headers) is no input for the analysis; None when it may be."""
    if "Rows" not in ds or "Columns" not in ds:
        return f"not an image ({_sop_name(ds)})"
    modality = str(ds.get("Modality", "")).upper()
    if modality != "MR":
        return f"not MR (modality {modality or 'missing'})"
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        return f"multi-frame object ({_sop_name(ds)}), not read here: export the series as single-frame images"
    image_type = [str(v).upper() for v in ds.get("ImageType", [])]
    if {"LOCALIZER", "SCOUT"} & set(image_type):
        return "localizer"
    if image_type and image_type[0] == "DERIVED":
        return f"derived image ({'/'.join(image_type[2:4]) or 'DERIVED'})"
    return None


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    return getattr(uid, "name", None) or str(uid or "no SOP class")


def scan_folder(folder) -> FolderScan:
    """Group every DICOM file below ``folder`` by SeriesInstanceUID; raise ``DicomError`` for an unusable folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DicomError(folder, "not a folder")
    result = FolderScan(folder)
    groups: dict[str, list] = defaultdict(list)
    dicomdirs = 0
    for path in _files(folder):
        if not is_dicom_file(path):
            result.not_dicom += 1
            continue
        ds = _read_header(path)
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            dicomdirs += 1
            continue
        groups[str(ds.SeriesInstanceUID)].append((path, ds))
    if dicomdirs:
        result.skipped.append(Skipped("DICOMDIR", "an index of files, not an image", dicomdirs))
    for uid, members in groups.items():
        members.sort(key=lambda m: str(m[0]))
        files, headers = [m[0] for m in members], [m[1] for m in members]
        series = Series(uid, str(headers[0].get("SeriesNumber", "") or ""),
                        str(headers[0].get("SeriesDescription", "") or "").strip(), headers, files)
        reason = _skip_reason(series.first)
        if reason:
            result.skipped.append(Skipped(series.label(), reason, len(files)))
            continue
        try:
            series.stack = stack_slices(headers)
        except GeometryProblem as exc:
            series.problem = str(exc)
        else:
            series.headers = [headers[i] for i in series.stack.order]
            series.files = [files[i] for i in series.stack.order]
        result.series.append(series)
    result.series.sort(key=lambda s: (_number_key(s.number), s.uid))
    _check_one_study(result)
    return result


def _number_key(number: str):
    return (0, int(number)) if number.isdigit() else (1, number)


def _check_one_study(result: FolderScan) -> None:
    if not result.series:
        skipped = "; ".join(f"{s.what}: {s.reason}" for s in result.skipped)
        if result.skipped and all(s.what == "DICOMDIR" for s in result.skipped):
            raise DicomError(result.folder, "only a DICOMDIR, none of the image files it lists is in the folder")
        raise DicomError(result.folder, "no MR image series" + (f" (skipped {skipped})" if skipped else
                                                              " (no DICOM file found)"))
    for attr, what in (("PatientID", "patients"), ("StudyInstanceUID", "studies")):
        found: dict[str, list[str]] = defaultdict(list)
        for s in result.series:
            found[str(s.first.get(attr, ""))].append(s.number or "?")
        if len(found) > 1:
            listed = "; ".join(f"{attr} {key or '(none)'}: series {', '.join(nums)}" for key, nums in found.items())
            raise DicomError(result.folder, f"{len(found)} {what} in one folder ({listed}); give one study's folder")


def read_series(files) -> Series:
    """One series from its files (e.g. those a Slicer volume was loaded from), ordered by position."""
    files = [Path(f) for f in files]
    if not files:
        raise DicomError(None, "no DICOM files given for the series")
    headers = [_read_header(f) for f in files]
    uids = {str(ds.SeriesInstanceUID) for ds in headers}
    if len(uids) != 1:
        raise DicomError(files[0].parent, f"the files belong to {len(uids)} series, expected one")
    series = Series(uids.pop(), str(headers[0].get("SeriesNumber", "") or ""),
                    str(headers[0].get("SeriesDescription", "") or "").strip(), headers, files)
    try:
        series.stack = stack_slices(headers)
    except GeometryProblem as exc:
        raise DicomError(files[0].parent, f"{series.label()}: {exc}") from None
    series.headers = [headers[i] for i in series.stack.order]
    series.files = [files[i] for i in series.stack.order]
    return series
