"""``braintumorxai analyze``: one case in, every explainability output on the case's own grid out.

The orchestrator: check the request, load the case and the checkpoints, run the case-level inference stage
(``inference.case_prediction``), write the outputs (``reporting.case_outputs``, ``reporting.trust``) into a staged
folder, and return the summary (also written as ``summary.json``).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import __version__, resources
from .analysis_options import AnalysisOptions, gradcam_class_indices, resolved_flips
from .errors import BrainTumorXAIError
from .inference.case_prediction import (CasePrediction, optional_sequences, pool_checkpoints, postprocess_segmentation,
                                        predict_case)
from .inference.explanation_options import check_explanation_options
from .inference.precision import precision_name, resolve_precision
from .io.labels import CLASS_NAMES, SEQUENCES
from .models.checkpoint import load_model
from .preprocess.stage import back_to_native, load_for_analysis, write_stage_outputs
from .reporting.case_outputs import write_volumes, write_outputs
from .reporting.checkpoint_trust import checkpoint_trust
from .reporting.output_folder import check_not_replacing_inputs, check_output_dir, staged_output
from .reporting.trust import trust_report
from .runtime import JobControl, resolve_device

__all__ = ["STAGE_WEIGHTS", "AnalysisOptions", "analyze_case", "resolve_weights"]

#: Stages in the order they run; "outputs" are the parallel jobs (volumes, figures, trust report, surfaces, metrics).
STAGE_WEIGHTS = {"load": 3, "preprocess": 2, "inference": 70, "resample": 8, "outputs": 17}


def resolve_weights(weights: Path | None) -> Path:
    if not weights:
        path = resources.demo_weights_path()
        if not path.is_file():
            raise BrainTumorXAIError(f"no default weights (the bundled demo weights are not installed at {path}): "
                                     "pass --weights")
        return path
    path = Path(weights)
    if not path.exists():
        raise BrainTumorXAIError(f"{path}: checkpoint not found")
    return path


def analyze_case(case_dir, out_dir, options: AnalysisOptions | None = None,
                 control: JobControl | None = None) -> dict:
    """Run the whole analysis and return the summary (also written as summary.json)."""
    options = options or AnalysisOptions()
    check_explanation_options(options)
    control = control or JobControl(stage_weights=STAGE_WEIGHTS)
    out_dir = Path(out_dir)
    weights = resolve_weights(options.weights)
    # Replacing the output folder must never delete an input (--out CASE --overwrite, --out ..).
    protect = [("weights file", weights)]
    if case_dir is not None:
        protect.append(("case folder", Path(case_dir)))
    check_not_replacing_inputs(out_dir, protect)
    check_output_dir(out_dir, options.overwrite)  # fail before any heavy work
    if options.surfaces:
        _require_vtk()
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    control.report("load", 0.0, "loading case")
    t0 = time.perf_counter()
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)  # fp16 on a CPU fails here, before the model loads
    model, meta = load_model(weights, device=device)
    members = [(Path(w), *load_model(resolve_weights(Path(w)), device=device)) for w in options.ensemble]
    protect += [("weights file", w) for w, _, _ in members]
    # Only what every member can do without may be missing.
    optional = set(optional_sequences(meta)).intersection(*(optional_sequences(m) for _, _, m in members))
    prepared, case = load_for_analysis(case_dir, options.mapping, options.clinical,
                                       tuple(s for s in SEQUENCES if s in optional))
    protect += [(f"{key} file", path) for key, path in case.files.items()]  # an explicit mapping may point anywhere
    check_not_replacing_inputs(out_dir, protect)
    if case.missing:
        control.report("load", 1.0, f"{', '.join(case.missing)} missing: the model runs without "
                                    f"{'it' if len(case.missing) == 1 else 'them'}")
    timings["load"] = time.perf_counter() - t0

    classes = gradcam_class_indices(options.gradcam)
    # The staging folder is created before inference: an unwritable --out fails in seconds, not after it.
    # After full preprocessing the labels are made again on the native grid: the atlas-grid labels are
    # post-processed only when their copy is written.
    atlas_labels_kept = prepared.clinical is None or bool(getattr(options.clinical, "atlas_outputs", False))
    with staged_output(out_dir, overwrite=options.overwrite, protect=protect) as staging:
        prediction = _predict(case, model, meta, members, device, options, control, classes, timings,
                              postprocessing=atlas_labels_kept)
        atlas_case, atlas_grid = case, prediction.grid
        case, prediction = back_to_native(prepared, case, prediction)
        if case is not atlas_case:  # the segmentation's post-processing, again on the native labels
            prediction.grid["postprocessing"] = postprocess_segmentation(prediction.grid["classes"], case,
                                                                         prediction.brain, options)
        maps = prediction.maps
        report = partial(trust_report, staging, case, prediction, model, device, meta, options)
        # The trust report needs only the finished maps: it joins the output jobs, unless its explanation
        # checks (forward passes of the network) are asked for.
        in_pool = not options.explanation_checks
        outputs, evaluation = write_outputs(staging, case, prediction.grid, prediction.brain, options.surfaces,
                                            options.figures, control, timings, trust=report if in_pool else None)
        if not in_pool:
            evaluation["trust_report"] = report()
        timings["trust_report"] = evaluation["trust_report"]["seconds"]
        keep_atlas = options.clinical.atlas_outputs and case is not atlas_case
        clinical = write_stage_outputs(prepared, staging, partial(write_volumes, case=atlas_case, grid=atlas_grid,
                                                                  control=control) if keep_atlas else None)
        timings.update({f"preprocess_clinical.{k}": v for k, v in clinical.get("timings_s", {}).items()})
        timings["total"] = time.perf_counter() - t_start
        summary = {
            "braintumorxai_version": __version__,
            "case": case.summary(),
            "missing_sequences": list(case.missing),
            "model": _model_summary(weights, meta, model),
            "ensemble": [{"weights": str(w), "sequences": m.get("sequences"),
                          "provenance_epoch": (m.get("provenance") or {}).get("epoch")} for w, _, m in members],
            "device": str(device),
            "precision": precision_name(precision),
            "platform": {"python": platform.python_version(), "torch": torch.__version__},
            "options": {"mc_samples": options.mc_samples, "gradcam_classes": [CLASS_NAMES[c] for c in classes],
                        "gradcam_layer": maps.gradcam_layer, "gradcam_method": maps.gradcam_method,
                        "seed": options.seed, "overlap": options.overlap,
                        "windows": maps.n_windows, "tta_flips": resolved_flips(options),
                        "ensemble_members": 1 + len(members)},
            "gradcam_fallback_all_voxels": {CLASS_NAMES[c]: v for c, v in maps.gradcam_fallback.items()},
            "gradcam_locality": prediction.grid.get("gradcam_locality"),
            "preprocessing": prediction.transform.to_dict(),
            "preprocessing_clinical": clinical,
            "postprocessing": prediction.grid.get("postprocessing"),
            "sequence_evidence": (prediction.grid.get("sequence_evidence") or {}).get("table"),
            "timings_s": {k: round(v, 4) for k, v in timings.items()},
            **evaluation,
            "outputs": outputs,
            **options.extra_summary,
        }
        (staging / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    control.report("outputs", 1.0, "done")
    return summary


def _predict(case, model, meta: dict, members: list, device, options: AnalysisOptions, control: JobControl,
             classes: list[int], timings: dict, postprocessing: bool = True) -> CasePrediction:
    """The primary checkpoint's prediction, pooled with the ensemble members' when there are any
    (``postprocessing``: post-process its segmentation)."""
    passes = 1 + len(members)  # each checkpoint's inference takes its share of the bar
    prediction = predict_case(case, model, meta, device, options, control.share("inference", 0, passes), classes,
                              postprocessing=postprocessing and not members, evidence=True)
    timings.update(prediction.timings)
    if members:
        t0 = time.perf_counter()
        prediction = pool_checkpoints(prediction, [predict_case(case, m, mm, device, options,
                                                                control.share("inference", i, passes), (),
                                                                postprocessing=False)
                                                   for i, (_, m, mm) in enumerate(members, 1)], case, options,
                                      postprocessing=postprocessing)
        timings["ensemble"] = time.perf_counter() - t0
    return prediction


def _require_vtk() -> None:
    """Fail before any heavy work when VTK is not installed (found, not imported: the surfaces job imports
    the few VTK modules it uses)."""
    if importlib.util.find_spec("vtkmodules") is None:
        raise BrainTumorXAIError("surface meshes need VTK: pip install vtk (or pass --no-surfaces)")


def _model_summary(weights: Path, meta: dict, model) -> dict:
    return {"weights": str(weights), "architecture": meta.get("architecture"),
            "sequences": meta.get("sequences"), "normalisation": meta.get("normalisation"),
            "provenance": meta.get("provenance"),
            "trust": checkpoint_trust(meta, weights),  # the checkpoint's uncertainty-quality card (None: not measured)
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def _jsonable(obj):
    """NaN -> None and numpy scalars -> Python, so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if not np.isfinite(v) else v
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj
