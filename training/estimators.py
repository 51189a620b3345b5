"""Uncertainty estimators compared on the same cases: ``training.evaluate --estimators mc,tta,...``.

Every estimator is a way of drawing softmax samples of one case, pooled into the same maps
(mean, variance, entropy, mutual information; ``BrainTumorXAILib.inference.combine``):

- ``deterministic``  the dropout-free softmax alone (its entropy is the usual baseline);
- ``mc``             MC Dropout with N samples (analyze's default);
- ``tta``            dropout-free passes over F flips of the image (test-time augmentation);
- ``mc+tta``         the same N MC samples spread over the F flips (one sample budget: a fair comparison);
- ``ensemble``       dropout-free passes of the checkpoint and every ``--ensemble`` checkpoint;
- ``ensemble+mc``    N MC samples of each of them.

Per case and estimator: Dice per region, and the trust report's uncertainty quality (ECE, AUROC/AUPRC
and QU-BraTS score per measure).  ``estimators.csv`` holds the rows, ``estimators.md`` the means and
which estimator ranks the voxel errors best (mean entropy AUROC over WT, TC, ET) — the measurement the
default follows.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from BrainTumorXAILib.analysis_options import resolved_flips
from BrainTumorXAILib.inference.case_prediction import pool_checkpoints, predict_case
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.labels import REGIONS
from BrainTumorXAILib.reporting.metrics import segmentation_metrics
from BrainTumorXAILib.reporting.trust import case_uncertainty_quality
from BrainTumorXAILib.reporting.region_uncertainty_quality import table_columns

from .io_utils import atomic_write_text

ESTIMATORS = ("deterministic", "mc", "tta", "mc+tta", "ensemble", "ensemble+mc")
#: The columns of the comparison table (means over cases), in this order.
TABLE = ([f"dice_{r}" for r in REGIONS] + [f"ece_{r}" for r in REGIONS]
         + [f"auroc_entropy_{r}" for r in REGIONS] + [f"auprc_entropy_{r}" for r in REGIONS]
         + [f"qubrats_entropy_{r}" for r in REGIONS] + [f"qubrats_zero_{r}" for r in REGIONS] + ["seconds"])


def parse_estimators(text: str, members: list) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise BrainTumorXAIError(f"unknown estimator(s) {', '.join(unknown)} (choose from {', '.join(ESTIMATORS)})")
    if any(n.startswith("ensemble") for n in names) and not members:
        raise BrainTumorXAIError("the ensemble estimators need at least one --ensemble checkpoint")
    return names


class EstimatorComparison:
    """Collects one row per (case, estimator); the ``mc`` row reuses evaluate's own prediction."""

    def __init__(self, names, model, meta: dict, device, options, flips: int = 8, members=()):
        self.names, self.model, self.meta, self.device = tuple(names), model, meta, device
        # evaluate's own prediction is the mc row when evaluate ran plain MC (the default might add flips)
        self.reuse_mc = resolved_flips(options) == 1
        self.options = replace(options, gradcam="none", explanation_checks=False, keep_deterministic=False, tta=1)
        self.flips, self.members = int(flips), list(members)  # members: [(model, meta), ...]
        self.rows: list[dict] = []

    def add_case(self, case, labels: str, mc_prediction=None, mc_seconds: float | None = None) -> None:
        """``mc_prediction``: evaluate's own prediction, reused as the ``mc`` row when it is plain MC (no flips)."""
        for name in self.names:
            if name == "mc" and mc_prediction is not None and self.reuse_mc:
                pred, seconds = mc_prediction, mc_seconds
            else:
                t0 = time.perf_counter()
                pred = self.predict(name, case)
                seconds = time.perf_counter() - t0
            self.rows.append(self._row(name, case, labels, pred, seconds))

    def predict(self, name: str, case):
        det = replace(self.options, mc_samples=0)
        if name == "deterministic":
            return predict_case(case, self.model, self.meta, self.device, det)
        if name == "mc":
            return predict_case(case, self.model, self.meta, self.device, self.options)
        if name in ("tta", "mc+tta"):
            opts = replace(det if name == "tta" else self.options, tta=self.flips)
            return predict_case(case, self.model, self.meta, self.device, opts)
        opts = det if name == "ensemble" else self.options
        first = predict_case(case, self.model, self.meta, self.device, opts, postprocessing=False)
        return pool_checkpoints(first, [predict_case(case, m, mm, self.device, opts, postprocessing=False)
                                        for m, mm in self.members], case, opts)

    @staticmethod
    def _row(name, case, labels, pred, seconds) -> dict:
        # Dice only: the HD95 surface distances are evaluate's main table's, not needed once per estimator.
        metrics = segmentation_metrics(pred.grid["classes"], case.label, case.spacing, include_hd95=False)
        row = {"case": case.case_id, "estimator": name, "labels": labels}
        row.update({f"dice_{r}": metrics["regions"][r]["dice"] for r in REGIONS})
        row.update(table_columns(case_uncertainty_quality(case, pred)))
        row["seconds"] = seconds
        return row

    # -- report -------------------------------------------------------------------
    def summary(self) -> list[dict]:
        """Mean of every TABLE column per estimator (None where no case has a value)."""
        out = []
        for name in self.names:
            rows = [r for r in self.rows if r["estimator"] == name]
            entry = {"estimator": name, "cases": len(rows)}
            for col in TABLE:
                values = [r[col] for r in rows if r.get(col) is not None and np.isfinite(r[col])]
                entry[col] = float(np.mean(values)) if values else None
            auroc = [entry[f"auroc_entropy_{r}"] for r in REGIONS if entry[f"auroc_entropy_{r}"] is not None]
            entry["mean_auroc_entropy"] = float(np.mean(auroc)) if auroc else None
            out.append(entry)
        return out

    def markdown(self, title: str) -> str:
        summary = self.summary()
        rows = ["cases", "mean_auroc_entropy", *TABLE]
        lines = [f"# Uncertainty estimators: {title}", "",
                 "Means over the cases. AUROC/AUPRC: predictive entropy finding the region's voxel errors; "
                 "QU-BraTS: the entropy's score next to the all-zero baseline (higher is better); ECE: lower "
                 "is better; seconds: prediction only.", "",
                 "| | " + " | ".join(e["estimator"] for e in summary) + " |", "|---" * (len(summary) + 1) + "|"]
        lines += [f"| {r} | " + " | ".join(_fmt(e[r]) for e in summary) + " |" for r in rows]
        ranked = [e for e in summary if e["mean_auroc_entropy"] is not None]
        if ranked:
            best = max(ranked, key=lambda e: e["mean_auroc_entropy"])
            lines += ["", f"Ranks voxel errors best (mean entropy AUROC over WT, TC, ET): **{best['estimator']}** "
                          f"({best['mean_auroc_entropy']:.4f})."]
            qubrats = {e["estimator"]: [r for r in REGIONS
                                        if None not in (e[f"qubrats_entropy_{r}"], e[f"qubrats_zero_{r}"])
                                        and e[f"qubrats_entropy_{r}"] > e[f"qubrats_zero_{r}"]] for e in summary}
            lines += ["QU-BraTS above the all-zero baseline: " + "; ".join(
                f"{name}: {', '.join(regions) or 'no region'}" for name, regions in qubrats.items()) + "."]
        return "\n".join(lines) + "\n"

    def write(self, out: Path, title: str, csv_text) -> None:
        atomic_write_text(out / "estimators.csv", csv_text(self.rows))
        atomic_write_text(out / "estimators.md", self.markdown(title))


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
