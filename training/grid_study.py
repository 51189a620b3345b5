"""What a network grid costs in Dice and what it saves in time: ``python -m training.grid_study``.

    python -m training.grid_study --data DIR [--data DIR ...] --spacings 1,1.5,2,2.5,3 --out OUT
                                  [--checkpoint CKPT] [--time-case DIR] [--mc-samples 20] [--silver GLOB]

For every labelled case and every candidate spacing:

* **Ceiling Dice**: the reference labels are brought onto that network grid exactly as training brings
  them (nearest neighbour, after the same reorientation and brain crop), taken as a perfect network's
  one-hot output, mapped back onto the case grid exactly as inference maps probabilities back
  (trilinear, ``invert_stack``) and scored against the original labels. No network can beat it on
  that grid: it is what the grid alone costs, per region (thin enhancing rims lose most).
* **Time**: one case (``--time-case``, default the first labelled case) analysed with the checkpoint's
  architecture and the default options (MC Dropout ``--mc-samples``, Grad-CAM for the three tumour
  classes) at each spacing: preprocessing, network and mapping back onto the case grid, the part of
  ``analyze`` that the grid changes (writing files and figures works on the case grid). The weights are
  the checkpoint's, run at a grid they may not have been trained for: the time is right, the Dice is not,
  so none is reported.

Writes ``cases.csv`` (case x spacing), ``summary.csv`` and ``summary.md`` (per spacing: network grid of
the timed case, seconds, mean and worst ceiling Dice per region).  Labels matching ``--silver`` are
marked as silver-standard.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from BrainTumorXAILib.analysis_options import AnalysisOptions
from BrainTumorXAILib.analyze import resolve_weights
from BrainTumorXAILib.inference.case_prediction import network_input, optional_sequences, predict_case
from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.io.case_files import list_cases
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.io.labels import CLASS_NAMES
from BrainTumorXAILib.io.network_grid import invert_stack
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.reporting.metrics import class_argmax, segmentation_metrics
from BrainTumorXAILib.runtime import resolve_device

from .evaluate import _csv, label_quality
from .io_utils import atomic_write_text

REGIONS = ("WT", "TC", "ET")


def at_spacing(meta: dict, spacing: float) -> dict:
    """The checkpoint's recipe with the network grid replaced (everything else as recorded)."""
    out = copy.deepcopy(meta)
    out.setdefault("normalisation", {})["spacing"] = float(spacing)
    return out


def ceiling_classes(case, meta: dict) -> tuple[np.ndarray, tuple[int, ...]]:
    """The case's labels through the network grid of ``meta`` and back: (classes on the case grid, net shape)."""
    _, _, transform, brain = network_input(case, meta)
    on_grid = transform.crop_and_pad(transform.to_resampled_grid(case.label, order=0), fill=0).astype(np.uint8)
    # A perfect network's softmax: one-hot of the training target; background fills outside the crop.
    one_hot = [(on_grid == c).astype(np.float32) for c in range(len(CLASS_NAMES))]
    back = invert_stack(transform, one_hot, fills=[1.0] + [0.0] * (len(CLASS_NAMES) - 1))
    classes = class_argmax(back)
    classes[~brain] = 0  # as predict_case does
    return classes, tuple(int(n) for n in transform.output_shape)


def ceiling_rows(folders: list[Path], meta: dict, spacings: list[float], silver=()) -> list[dict]:
    rows = []
    for folder in folders:
        case = load_case(folder, optional=optional_sequences(meta))
        if case.label is None:
            raise BrainTumorXAIError(f"{folder}: no ground truth (the ceiling needs labels)")
        quality = label_quality(folder, silver)
        for spacing in spacings:
            classes, shape = ceiling_classes(case, at_spacing(meta, spacing))
            metrics = segmentation_metrics(classes, case.label, case.spacing, include_hd95=False)
            row = {"case": case.case_id, "labels": quality, "spacing_mm": spacing,
                   "network_grid": "x".join(map(str, shape))}
            row.update({f"ceiling_dice_{r}": metrics["regions"][r]["dice"] for r in REGIONS})
            rows.append(row)
    return rows


def timing_rows(folder: Path, model, meta: dict, device, spacings: list[float], mc_samples: int,
                repeats: int) -> list[dict]:
    case = load_case(folder, optional=optional_sequences(meta))
    options = AnalysisOptions(mc_samples=mc_samples, gradcam="all")
    rows = []
    for spacing in spacings:
        recipe = at_spacing(meta, spacing)
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pred = predict_case(case, model, recipe, device, options)
            seconds.append(time.perf_counter() - t0)
        shape = tuple(int(n) for n in pred.transform.output_shape)
        rows.append({"spacing_mm": spacing, "timed_case": case.case_id, "network_grid": "x".join(map(str, shape)),
                     "network_voxels": int(np.prod(shape)), "seconds": statistics.median(seconds)})
    return rows


def summarise(ceilings: list[dict], timings: list[dict], spacings: list[float]) -> list[dict]:
    by_time = {t["spacing_mm"]: t for t in timings}
    out = []
    for spacing in spacings:
        mine = [r for r in ceilings if r["spacing_mm"] == spacing]
        row = {"spacing_mm": spacing, "cases": len(mine)}
        for r in REGIONS:
            values = [m[f"ceiling_dice_{r}"] for m in mine]
            row[f"mean_ceiling_{r}"] = float(np.mean(values))
            row[f"worst_ceiling_{r}"] = float(np.min(values))
        timed = by_time.get(spacing)
        row["timed_grid"] = timed["network_grid"] if timed else ""
        row["seconds"] = timed["seconds"] if timed else float("nan")
        out.append(row)
    return out


def markdown(summary: list[dict], timings: list[dict], trained_spacing, mc_samples: int, device) -> str:
    timed = timings[0]["timed_case"] if timings else "-"
    lines = [
        "# Network grid: Dice ceiling against time",
        "",
        f"Ceiling: mean (worst) Dice of the reference labels taken through the grid and back, over "
        f"{summary[0]['cases']} case(s). Seconds: {timed}, preprocessing + network (MC {mc_samples}, Grad-CAM x3) + "
        f"mapping back, device {device}. The checkpoint was trained at {trained_spacing} mm.",
        "",
        "| spacing (mm) | network grid | seconds | ceiling WT | ceiling TC | ceiling ET |",
        "|---|---|---|---|---|---|",
    ]
    for s in summary:
        cells = [f"{s[f'mean_ceiling_{r}']:.3f} ({s[f'worst_ceiling_{r}']:.3f})" for r in REGIONS]
        seconds = "-" if np.isnan(s["seconds"]) else f"{s['seconds']:.1f}"
        lines.append(f"| {s['spacing_mm']:g} | {s['timed_grid'] or '-'} | {seconds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_spacings(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BrainTumorXAIError(f"--spacings: expected millimetres separated by commas, got {text!r}") from None
    if not values or any(not np.isfinite(v) or v <= 0 for v in values):
        raise BrainTumorXAIError(f"--spacings: every spacing must be a positive number of millimetres, got {text!r}")
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.grid_study", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, action="append", required=True, help="folder of labelled cases (repeatable)")
    p.add_argument("--spacings", default="1,1.5,2,2.5,3", help="candidate network grids in mm, comma-separated")
    p.add_argument("--checkpoint", type=Path, help="architecture and recipe (default: the bundled weights)")
    p.add_argument("--time-case", type=Path, help="case timed at every spacing (default: the first labelled case)")
    p.add_argument("--no-timing", action="store_true", help="ceilings only")
    p.add_argument("--mc-samples", type=int, default=20)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per spacing (the median is reported)")
    p.add_argument("--device", default="auto")
    p.add_argument("--silver", action="append", default=[], metavar="GLOB", help="case folders with silver labels")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    def run() -> int:
        spacings = parse_spacings(args.spacings)
        folders = [f for d in args.data for f in list_cases(d)]
        if not folders:
            raise BrainTumorXAIError(f"{', '.join(map(str, args.data))}: no case folders found")
        device = resolve_device(args.device)
        model, meta = load_model(resolve_weights(args.checkpoint), device=device)
        ceilings = ceiling_rows(folders, meta, spacings, args.silver)
        timings = [] if args.no_timing else timing_rows(args.time_case or folders[0], model, meta, device, spacings,
                                                        args.mc_samples, max(1, args.repeats))
        summary = summarise(ceilings, timings, spacings)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "cases.csv", _csv(ceilings))
        atomic_write_text(args.out / "summary.csv", _csv(summary))
        trained = meta.get("normalisation", {}).get("spacing")
        trained = "native" if trained is None else "/".join(f"{v:g}" for v in np.broadcast_to(trained, (3,)))
        text = markdown(summary, timings, trained, args.mc_samples, device)
        atomic_write_text(args.out / "summary.md", text)
        if timings:
            atomic_write_text(args.out / "timings.csv", _csv(timings))
        print(text, end="")
        return 0

    return exit_code("training.grid_study", run)


if __name__ == "__main__":
    sys.exit(main())
