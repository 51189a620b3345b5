"""An analysis results folder (NIfTI outputs on the T1ce grid) -> DICOM SEG and Parametric Maps on the T1ce series.

Everything is written into a staging folder beside the target and moved into place at the end: a failure leaves
no half-written DICOM folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..reporting.output_folder import check_output_dir
from .derived import FIRST_SERIES_NUMBER
from .pmap_writer import DEFAULT_MAPS, map_files, map_frames, write_parametric_map
from .scan import Series
from .seg_writer import segmentation_frames, write_segmentation


def _file_name(nifti_rel: str) -> str:
    name = Path(nifti_rel).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem


def write_dicom_results(results_dir, t1ce: Series, dicom_dir, maps=DEFAULT_MAPS, overwrite: bool = False) -> dict:
    """Write ``seg.dcm`` and one Parametric Map per requested map into ``dicom_dir``; returns what was written."""
    results_dir, dicom_dir = Path(results_dir), Path(dicom_dir)
    summary = json.loads((results_dir / "summary.json").read_text())
    outputs = summary["outputs"]
    check_output_dir(dicom_dir, overwrite)
    t0 = time.perf_counter()
    dicom_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dicom_dir.name}.partial-", dir=dicom_dir.parent))
    try:
        frames = segmentation_frames(results_dir / outputs["seg"], summary["case"]["label_convention"], t1ce)
        written = {"segmentation": write_segmentation(frames, t1ce, staging / "seg.dcm").name, "maps": {}}
        for number, (title, rel) in enumerate(map_files(outputs, maps), start=FIRST_SERIES_NUMBER + 1):
            name = f"{_file_name(rel)}.dcm"
            write_parametric_map(map_frames(results_dir / rel, t1ce), title, t1ce, staging / name, number)
            written["maps"][title] = name
        if dicom_dir.exists():
            shutil.rmtree(dicom_dir)
        os.replace(staging, dicom_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written["folder"] = str(dicom_dir)
    written["reference_series"] = t1ce.uid
    written["seconds"] = round(time.perf_counter() - t0, 3)
    return written


def record_in_summary(results_dir, key: str, value) -> None:
    """Add ``key`` to ``summary.json`` (replaced atomically)."""
    path = Path(results_dir) / "summary.json"
    summary = json.loads(path.read_text())
    summary[key] = value
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
