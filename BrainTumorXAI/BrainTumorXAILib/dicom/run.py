"""``braintumorxai analyze DICOM_DIR``: series -> NIfTI in a working folder, the ordinary analysis with an explicit
sequence -> file mapping, then DICOM SEG and Parametric Maps from its outputs into ``OUT/dicom/``."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from ..analysis_options import AnalysisOptions
from ..analyze import analyze_case
from ..errors import BrainTumorXAIError
from ..reporting.output_folder import check_not_replacing_inputs, check_output_dir
from .export import record_in_summary, write_dicom_results
from .pmap_writer import DEFAULT_MAPS
from .study import convert_study, open_study, study_summary


#: Where the NIfTI copies of the analysed series stay (viewers show them under the results).
INPUTS_FOLDER = "inputs"


def keep_inputs(mapping: dict, folder: Path, case: dict) -> dict:
    """Move the working NIfTI copies into ``folder``; the summary's case entry then lists them there."""
    folder.mkdir()
    files = {seq: str(Path(shutil.move(str(path), folder / Path(path).name))) for seq, path in mapping.items()}
    return {**case, "folder": str(folder), "files": files}


def analyze_dicom(dicom_dir, out_dir, options: AnalysisOptions, control=None, overrides: dict | None = None,
                  dicom_out: Path | None | bool = None, maps=DEFAULT_MAPS) -> dict:
    """Analyse a DICOM study folder.  ``dicom_out``: None -> ``OUT/dicom``, False -> no DICOM output."""
    dicom_dir, out_dir = Path(dicom_dir), Path(out_dir)
    check_not_replacing_inputs(out_dir, [("DICOM folder", dicom_dir)])
    t0 = time.perf_counter()
    study = open_study(dicom_dir, overrides)  # every one-line refusal comes before any heavy work
    target = None if dicom_out is False else Path(dicom_out) if dicom_out else out_dir / "dicom"
    if target is not None and dicom_out:
        check_not_replacing_inputs(target, [("DICOM folder", dicom_dir), ("results folder", out_dir)])
        check_output_dir(target, options.overwrite)
    with tempfile.TemporaryDirectory(prefix="braintumorxai-dicom-") as work:
        mapping = convert_study(study, Path(work))
        read_s = time.perf_counter() - t0
        extra = {**options.extra_summary, "dicom_input": study_summary(study)}
        summary = analyze_case(work, out_dir, dataclasses.replace(options, mapping=mapping, extra_summary=extra),
                               control)
        summary["case"] = keep_inputs(mapping, out_dir / INPUTS_FOLDER, summary["case"])
    record_in_summary(out_dir, "case", summary["case"])
    summary["timings_s"]["dicom_read"] = round(read_s, 3)
    if target is not None:
        try:
            written = write_dicom_results(out_dir, study.reference, target, maps, overwrite=options.overwrite)
        except BrainTumorXAIError as exc:
            raise BrainTumorXAIError(f"DICOM outputs not written ({exc}); the NIfTI results are in {out_dir}") from None
        summary["dicom_outputs"] = written
        summary["timings_s"]["dicom_write"] = written["seconds"]
        record_in_summary(out_dir, "dicom_outputs", written)
    record_in_summary(out_dir, "timings_s", summary["timings_s"])
    return summary
