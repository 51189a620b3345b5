"""An analysis results folder (NIfTI outputs on the T1ce grid) -> DICOM SEG and Parametric Maps on the T1ce series.

Everything is written into a staging folder beside the target and moved into place at the end: a failure leaves
no half-written DICOM folder.  The objects are independent and their encoding is pure Python (GIL-bound), so on
Linux they are written by forked worker processes, one per CPU up to two; elsewhere, and inside Slicer's process
(which must not be forked), one after the other.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..forked import fork_available, make_fork_safe
from ..reporting.output_folder import check_output_dir
from ..runtime import usable_cpus
from .derived import FIRST_SERIES_NUMBER
from .pmap_writer import DEFAULT_MAPS, map_files, map_frames, write_parametric_map
from .scan import Series
from .seg_writer import segmentation_frames, write_segmentation


def _file_name(nifti_rel: str) -> str:
    name = Path(nifti_rel).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem


#: What the forked workers read (inherited at fork, so the T1ce headers are not pickled for every object).
_JOB_CONTEXT: dict = {}


def _write_object(job: tuple) -> None:
    kind, source, title, target, number = job
    results_dir, t1ce, convention = _JOB_CONTEXT["results_dir"], _JOB_CONTEXT["t1ce"], _JOB_CONTEXT["convention"]
    if kind == "seg":
        write_segmentation(segmentation_frames(results_dir / source, convention, t1ce), t1ce, target)
    else:
        write_parametric_map(map_frames(results_dir / source, t1ce), title, t1ce, target, number)


def default_workers() -> int:
    """Worker processes for the DICOM objects: 1 where forking is unsafe or does not pay (``forked``)."""
    return min(2, usable_cpus()) if fork_available() else 1


def _run_jobs(jobs: list, workers: int) -> None:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _write_object(job)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=make_fork_safe) as pool:
        for future in [pool.submit(_write_object, job) for job in jobs]:
            future.result()  # the first failure is raised here, the pool's exit waits for the rest


def write_dicom_results(results_dir, t1ce: Series, dicom_dir, maps=DEFAULT_MAPS, overwrite: bool = False,
                        workers: int | None = None, segmentation: bool = True) -> dict:
    """Write ``seg.dcm`` (unless ``segmentation`` is False: another exporter writes it) and one Parametric Map per
    requested map into ``dicom_dir``; returns what was written."""
    results_dir, dicom_dir = Path(results_dir), Path(dicom_dir)
    summary = json.loads((results_dir / "summary.json").read_text())
    outputs = summary["outputs"]
    check_output_dir(dicom_dir, overwrite)
    t0 = time.perf_counter()
    dicom_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dicom_dir.name}.partial-", dir=dicom_dir.parent))
    written = {"segmentation": "seg.dcm" if segmentation else None, "maps": {}}
    jobs = [("seg", outputs["seg"], None, staging / "seg.dcm", None)] if segmentation else []  # largest first
    for number, (title, rel) in enumerate(map_files(outputs, maps), start=FIRST_SERIES_NUMBER + 1):
        written["maps"][title] = f"{_file_name(rel)}.dcm"
        jobs.append(("map", rel, title, staging / written["maps"][title], number))
    _JOB_CONTEXT.update(results_dir=results_dir, t1ce=t1ce, convention=summary["case"]["label_convention"])
    try:
        _run_jobs(jobs, default_workers() if workers is None else workers)
        if dicom_dir.exists():
            shutil.rmtree(dicom_dir)
        os.replace(staging, dicom_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _JOB_CONTEXT.clear()
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
