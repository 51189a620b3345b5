"""Batch evaluation of a run: ``python -m training.evaluate --run RUN_DIR --data DIR [--split test]``.

Each case goes through exactly what ``analyze`` does (preprocess, sliding
window, MC Dropout, back onto the case grid) and is scored there with the
project's one metrics module.  Writes to RUN_DIR/eval_<split>/: ``cases.csv``
(one row per case), ``summary.csv`` and ``summary.md`` (mean +- standard error,
as in the papers), and violin plots of Dice and HD95 per region.  Cases whose folder
matches ``--silver`` are marked as silver-standard (algorithm-fused) labels in every table;
``--drop t1,t2`` evaluates as if those sequences were missing (for a checkpoint that can do
without them), and a case folder without them is read that way too.  A case that
cannot be evaluated (unreadable, no ground truth, degenerate images) is skipped
with one line on stderr and listed in ``skipped.csv`` and ``summary.md``.
``--estimators mc,tta,mc+tta,ensemble,...`` (with ``--ensemble CKPT`` for the ensembles) also
compares uncertainty estimators on the same cases: ``estimators.csv`` and ``estimators.md``
(``training.estimators``).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from BrainTumorXAILib.analysis_options import AnalysisOptions
from BrainTumorXAILib.inference.case_prediction import optional_sequences, predict_case
from BrainTumorXAILib.io.case_files import list_cases
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.inference.explanation_options import (DEFAULT_GRADCAM_METHOD, GRADCAM_METHODS,
                                                          check_explanation_options)
from BrainTumorXAILib.io.labels import SEQUENCES
from BrainTumorXAILib.reporting.explanation_checks import table_columns as cam_columns
from BrainTumorXAILib.reporting.metrics import mc_accuracy, segmentation_metrics
from BrainTumorXAILib.reporting.region_uncertainty_quality import table_columns
from BrainTumorXAILib.reporting.trust import case_explanation_checks, case_uncertainty_quality
from BrainTumorXAILib.runtime import resolve_device

from .estimators import EstimatorComparison, parse_estimators
from .io_utils import atomic_write_text
from .plots import violins

METRICS = ("dice", "iou", "hd95", "sensitivity", "specificity", "precision")


def case_row(case_id: str, metrics: dict, mc_acc: float, seconds: float, labels: str = "expert",
             missing=()) -> dict:
    row = {"case": case_id, "labels": labels, "missing": "+".join(missing) or "-"}
    for group in ("regions", "classes"):
        for name, values in metrics[group].items():
            for m in METRICS:
                row[f"{m}_{name}"] = values[m]
    row["mc_accuracy"] = mc_acc
    row["seconds"] = seconds
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard error of the mean per column."""
    out = []
    for key in rows[0]:
        if key in TEXT_COLUMNS:
            continue
        values = np.array([r[key] for r in rows if r[key] is not None], float)
        se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        mean = float(values.mean()) if len(values) else float("nan")
        out.append({"metric": key, "mean": mean, "se": se, "n": len(values)})
    return out


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _markdown(summary: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| metric | mean ± SE | n |", "|---|---|---|"]
    lines += [f"| {s['metric']} | {s['mean']:.4f} ± {s['se']:.4f} | {s['n']} |" for s in summary]
    return "\n".join(lines) + "\n"


TEXT_COLUMNS = ("case", "labels", "missing")


def label_quality(folder: Path, silver_globs) -> str:
    """'silver' when the case folder's name matches one of the ``--silver`` globs, else 'expert'."""
    return "silver" if any(fnmatch.fnmatch(folder.name, g) for g in silver_globs) else "expert"


def select_cases(run: Path | None, data: Path, split: str) -> list[Path]:
    folders = {p.name: p for p in list_cases(data)}
    if split == "all":
        return list(folders.values())
    split_file = (run or Path(".")) / "split.json"
    if run is None or not split_file.exists():
        raise BrainTumorXAIError(f"{split_file}: no split in this run folder (use --split all)")
    wanted = json.loads(split_file.read_text())[split]
    missing = [k for k in wanted if k not in folders]
    if missing:
        print(f"warning: {len(missing)} {split} case(s) not found in {data}: {', '.join(missing[:3])}", file=sys.stderr)
    return [folders[k] for k in wanted if k in folders]


def evaluate(run: Path | None, data: Path, split: str = "test", checkpoint: str = "best", mc_samples: int = 10,
             device: str = "auto", out: Path | None = None, quiet: bool = False, silver=(), drop=(),
             explanation_checks: bool = False, estimators: str = "", ensemble=(), tta: int = 8,
             enhancement_check: bool = True, gradcam_method: str | None = None) -> list[dict]:
    if checkpoint in ("best", "last") and run is None:
        raise BrainTumorXAIError("--checkpoint best/last needs --run (or give a checkpoint path)")
    if out is None and run is None:
        raise BrainTumorXAIError("--out is needed without --run")
    ckpt = Path(checkpoint) if checkpoint not in ("best", "last") else run / f"{checkpoint}.pt"
    dev = resolve_device(device)
    model, meta = load_model(ckpt, device=dev)
    drop = tuple(drop)
    cannot = sorted(set(drop) - set(optional_sequences(meta)))
    if cannot:
        raise BrainTumorXAIError(f"{ckpt}: this checkpoint cannot do without {', '.join(cannot)} "
                                 f"(it can do without: {', '.join(optional_sequences(meta)) or 'nothing'})")
    cases = select_cases(run, data, split)
    if not cases:
        raise BrainTumorXAIError(f"{data}: no case of split {split!r} to evaluate")
    # The dropout-free pass too: the deterministic-entropy baseline of the trust report's uncertainty quality.
    options = AnalysisOptions(mc_samples=mc_samples, gradcam="all" if explanation_checks else "none",
                              keep_deterministic=True, explanation_checks=explanation_checks,
                              enhancement_check=enhancement_check, gradcam_method=gradcam_method)
    check_explanation_options(options)
    comparison = None
    if estimators:
        members = [load_model(Path(p), device=dev) for p in ensemble]
        comparison = EstimatorComparison(parse_estimators(estimators, members), model, meta, dev, options, tta,
                                         members)
    rows, skipped = [], []
    for folder in cases:
        t0 = time.perf_counter()
        try:
            quality = label_quality(folder, silver)
            row = evaluate_case(folder, model, meta, dev, options, quality, drop, comparison)
        except CASE_ERRORS as exc:  # one unreadable or degenerate case must not cost the whole report
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(f"skipping {folder.name}: {reason}", file=sys.stderr)
            skipped.append({"case": folder.name, "reason": reason})
            continue
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if not quiet:
            print(f"{row['case']} ({row['labels']} labels, missing {row['missing']}): Dice WT {row['dice_WT']:.3f} "
                  f"TC {row['dice_TC']:.3f} ET {row['dice_ET']:.3f}")
    if not rows:
        raise BrainTumorXAIError(f"{data}: all {len(skipped)} case(s) of split {split!r} were skipped "
                                 f"(first: {skipped[0]['case']}: {skipped[0]['reason']})")
    out = out or run / f"eval_{split}"
    title = f"{run.name if run else ckpt.name}: {split} split, {ckpt.name}, MC {mc_samples}"
    if drop:
        title += f", without {', '.join(drop)}"
    if not enhancement_check:
        title += ", no enhancement check"
    write_report(rows, out, title, skipped)
    if comparison is not None:
        comparison.write(out, title, _csv)
    return rows


#: Per-case failures that skip the case (reported, and listed in skipped.csv) instead of ending the evaluation:
#: unreadable files, no ground truth, degenerate images (e.g. a sequence constant inside the brain: ValueError),
#: and runtime failures of one case (e.g. running out of GPU memory on an unusually large one).
CASE_ERRORS = (BrainTumorXAIError, ValueError, RuntimeError)


def evaluate_case(folder: Path, model, meta: dict, dev, options: AnalysisOptions, labels: str = "expert",
                  drop=(), comparison=None) -> dict:
    case = load_case(folder, optional=optional_sequences(meta))
    for seq in drop:  # evaluate as if the sequence had not been acquired
        if seq not in case.missing:
            case.images[SEQUENCES.index(seq)] = 0.0
            case.missing.append(seq)
    if case.label is None:
        raise BrainTumorXAIError(f"{folder}: no ground truth to evaluate against")
    t0 = time.perf_counter()
    pred = predict_case(case, model, meta, dev, options)
    predict_seconds = time.perf_counter() - t0
    metrics = segmentation_metrics(pred.grid["classes"], case.label, case.spacing)
    acc = mc_accuracy(pred.grid["probabilities"], case.label, mask=pred.brain)
    row = case_row(case.case_id, metrics, acc, 0.0, labels, case.missing)
    row.update(postprocessing_columns(pred.grid.get("postprocessing") or {}))
    # Trust report: per-region ECE, AUROC/AUPRC and QU-BraTS score of each uncertainty measure and baseline.
    row.update(table_columns(case_uncertainty_quality(case, pred)))
    if options.explanation_checks:  # Grad-CAM energy, randomisation Spearman, deletion area (extra passes)
        row.update(cam_columns(case_explanation_checks(case, pred, model, dev, meta, options)))
    if comparison is not None:  # the other uncertainty estimators on the same case (mc: this prediction)
        comparison.add_case(case, labels, pred, predict_seconds)
    return row


def postprocessing_columns(steps: dict) -> dict:
    """Predicted ET (mL) each post-processing step made NCR; None where the step did not run (off, or no T1)."""
    check, small = steps.get("enhancement_check"), steps.get("small_et")
    return {"et_ml_unenhanced_to_ncr": None if not check or "skipped" in check else check["et_ml_relabelled"],
            "et_ml_small_to_ncr": None if small is None else (small["et_ml_predicted"] if small["applied"] else 0.0)}


def write_report(rows: list[dict], out: Path, title: str, skipped: list[dict] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    skipped = skipped or []
    markdown = _markdown(summary, title)
    silver = [r["case"] for r in rows if r.get("labels") == "silver"]
    if silver:
        markdown += (f"\nSilver-standard labels (fused algorithm outputs, not expert-drawn) for {len(silver)} of "
                     f"{len(rows)} case(s): {', '.join(silver)}.\n")
    if skipped:
        markdown += f"\nSkipped {len(skipped)} case(s):\n\n" + "".join(
            f"- {s['case']}: {s['reason']}\n" for s in skipped)
    atomic_write_text(out / "cases.csv", _csv(rows))
    atomic_write_text(out / "summary.csv", _csv(summary))
    atomic_write_text(out / "summary.md", markdown)
    if skipped:
        atomic_write_text(out / "skipped.csv", _csv(skipped))
    elif (out / "skipped.csv").exists():  # a stale list from an earlier evaluation into the same folder
        (out / "skipped.csv").unlink()
    for metric, label in (("dice", "Dice"), ("hd95", "HD95 (mm)")):
        values = {r: [row[f"{metric}_{r}"] for row in rows] for r in ("WT", "TC", "ET")}
        violins(values, label, out / f"violin_{metric}.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="run folder (for --checkpoint best/last and --split)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    p.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path")
    p.add_argument("--mc-samples", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, help="report folder (default RUN_DIR/eval_<split>)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--silver", action="append", default=[], metavar="GLOB",
                   help="case folders whose labels are silver-standard (repeatable), e.g. 'TCGA-*'")
    p.add_argument("--drop", default="", help="evaluate without these sequences, e.g. t1,t2")
    p.add_argument("--explanation-checks", action="store_true",
                   help="also Grad-CAM and its checks per case (randomisation, deletion: extra forward passes)")
    p.add_argument("--gradcam-method", metavar="NAME",
                   help=f"with --explanation-checks: {', '.join(GRADCAM_METHODS)} (default {DEFAULT_GRADCAM_METHOD})")
    p.add_argument("--estimators", default="", metavar="LIST",
                   help="also compare uncertainty estimators on the same cases (estimators.csv/.md): any of "
                        "deterministic, mc, tta, mc+tta, ensemble, ensemble+mc")
    p.add_argument("--ensemble", action="append", default=[], metavar="CKPT",
                   help="further checkpoints for the ensemble estimators (repeatable)")
    p.add_argument("--tta", type=int, default=8, help="flips for the tta estimators (1..8; default 8)")
    p.add_argument("--no-enhancement-check", action="store_true",
                   help="post-processing without the enhancement check, as analyze --no-enhancement-check")
    a = p.parse_args(argv)
    drop = tuple(s for s in a.drop.split(",") if s)
    return exit_code("training.evaluate", lambda: evaluate(a.run, a.data, a.split, a.checkpoint, a.mc_samples,
                                                           a.device, a.out, a.quiet, a.silver, drop,
                                                           a.explanation_checks, a.estimators, a.ensemble,
                                                           a.tta, not a.no_enhancement_check, a.gradcam_method))


if __name__ == "__main__":
    sys.exit(main())
