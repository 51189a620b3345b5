"""A DICOM study folder as the analysis sees it: the series found, what each was taken as, the NIfTI files made."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import DicomError
from .assign import SEQUENCE_TITLES, assign_series, guess_sequence
from .convert import check_decodable, series_to_nifti
from .scan import FolderScan, Series, scan_folder


@dataclass
class DicomStudy:
    scan: FolderScan
    chosen: dict[str, Series]  # sequence -> series

    @property
    def reference(self) -> Series:
        return self.chosen["t1ce"]

    def case_id(self) -> str:
        ds = self.reference.first
        raw = str(ds.get("PatientID", "") or ds.get("StudyID", "") or "dicom")
        return re.sub(r"[^A-Za-z0-9.-]+", "_", raw).strip("._-") or "dicom"


def open_study(folder, overrides: dict | None = None, scan: FolderScan | None = None) -> DicomStudy:
    """Scan ``folder``, assign the sequences (``overrides``: {sequence: series number or UID}), check decoding."""
    scan = scan or scan_folder(folder)
    chosen = assign_series(scan, overrides)
    for series in chosen.values():
        check_decodable(series)
    return DicomStudy(scan, chosen)


def describe_folder(folder, overrides: dict | None = None) -> tuple[str, DicomError | None]:
    """``info``'s table; an assignment that fails still shows the series (nothing used), with the problem."""
    scan = scan_folder(folder)
    try:
        return format_table(open_study(folder, overrides, scan)), None
    except DicomError as exc:
        return format_table(DicomStudy(scan, {})), exc


def convert_study(study: DicomStudy, work_dir: Path) -> dict[str, Path]:
    """Write each chosen series as ``<case>_<sequence>.nii`` in ``work_dir``: the analysis' file mapping
    (uncompressed: the working copies live only as long as the analysis)."""
    case = study.case_id()
    return {seq: series_to_nifti(series, Path(work_dir) / f"{case}_{seq}.nii") for seq, series in study.chosen.items()}


def _used_as(study: DicomStudy, series: Series) -> str:
    for seq, chosen in study.chosen.items():
        if chosen is series:
            return SEQUENCE_TITLES[seq]
    return "-"


def series_rows(study: DicomStudy) -> list[dict]:
    """One row per series: the header facts, the guess and its reason, and what the analysis uses it as."""
    rows = []
    for s in study.scan.series:
        guess = guess_sequence(s)
        row = {"series": s.number, "description": s.description, "images": len(s.files),
               "guess": SEQUENCE_TITLES.get(guess.sequence, "?"), "why": guess.why, "used_as": _used_as(study, s),
               "uid": s.uid}
        if s.stack is not None:
            spacing = np.linalg.norm(s.stack.affine_lps[:3, :3], axis=0)
            row["grid"] = ("x".join(str(n) for n in s.stack.shape) + " @ "
                           + "x".join(f"{v:.2g}" for v in spacing) + " mm")
        else:
            row["problem"] = s.problem
        rows.append(row)
    return rows


def format_table(study: DicomStudy) -> str:
    """The table ``braintumorxai info`` prints for a DICOM folder."""
    ds = study.scan.series[0].first
    lines = [f"DICOM study {ds.get('StudyInstanceUID', '?')} (patient {ds.get('PatientID', '?')}), "
             f"folder {study.scan.folder}",
             f"{'series':>6}  {'used as':<7}  {'guess':<5}  {'images':>6}  {'grid':<26}  description / why"]
    for row in series_rows(study):
        grid = row.get("grid") or f"unusable: {row['problem']}"
        lines.append(f"{row['series']:>6}  {row['used_as']:<7}  {row['guess']:<5}  {row['images']:>6}  {grid:<26}  "
                     f"{row['description']!r} ({row['why']})")
    for skipped in study.scan.skipped:
        lines.append(f"skipped: {skipped.what} ({skipped.files} file{'s' * (skipped.files != 1)}): {skipped.reason}")
    if study.scan.not_dicom:
        lines.append(f"ignored: {study.scan.not_dicom} file(s) that are not DICOM")
    missing = [SEQUENCE_TITLES[s] for s in SEQUENCE_TITLES if s not in study.chosen]
    if missing and study.chosen:
        lines.append(f"no series for {', '.join(missing)} (the model runs without it only where it was trained to)")
    return "\n".join(lines)


def study_summary(study: DicomStudy) -> dict:
    """What ``summary.json`` records about the DICOM input."""
    ds = study.reference.first
    return {"folder": str(study.scan.folder), "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
            "series": series_rows(study),
            "skipped": [{"what": s.what, "reason": s.reason, "files": s.files} for s in study.scan.skipped],
            "assignment": {seq: {"series": s.number, "uid": s.uid, "description": s.description}
                           for seq, s in study.chosen.items()}}
