"""Temperature scaling (Guo et al., ICML 2017): one temperature T for a checkpoint, fitted on validation cases.

    python -m training.calibrate --checkpoint CKPT --data VAL_DIR --out NEW.pt [--max-cases N]

For every case the deterministic network (dropout off) predicts each sliding window on the network grid; the
logits of brain voxels inside each window (a fixed random subset, at most ``--voxels-per-case``) and the
reference label on the network grid (nearest neighbour) are kept.  T minimises the mean negative log-likelihood
of softmax(logits / T) over them (LBFGS on log T, so T > 0).  The new checkpoint is the old one with
``normalisation["temperature"] = T`` and ``provenance["calibration"]`` (cases, voxels, NLL and ECE per region
before/after); ``load_model`` divides the head's weight and bias by T, which makes the network output exactly
logits / T (nothing else changes).  ECE per region (WT, TC, ET) is measured on the same voxels before and after
and printed; on the fitting set it says how much calibration was available, not a held-out figure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.reporting.calibration import region_ece

from .io_utils import refuse_in_place

REGION_NAMES = ("WT", "TC", "ET")


@torch.no_grad()
def window_logits(model, volume: np.ndarray, mask: np.ndarray, label: np.ndarray, window: int, overlap: float,
                  max_voxels: int, rng: np.random.Generator, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, C) float32, labels (N,)) of brain voxels of every window, subsampled to ``max_voxels``."""
    from BrainTumorXAILib.inference.sliding_window import make_tiling

    tiling = make_tiling(volume.shape[1:], (window,) * 3, overlap)
    per_window = max(1, max_voxels // max(1, len(tiling)))
    xs, ys = [], []
    for box in tiling.boxes:
        inside = np.asarray(mask[box], bool)
        idx = np.flatnonzero(inside)
        if idx.size == 0:
            continue
        idx = np.sort(rng.choice(idx, min(per_window, idx.size), replace=False))
        x = torch.from_numpy(np.ascontiguousarray(volume[(slice(None), *box)]))[None].to(device)
        out = model(x)[0].float().cpu().numpy()
        logits = out.reshape(out.shape[0], -1)
        xs.append(logits[:, idx].T)
        ys.append(np.asarray(label[box]).ravel()[idx])
    if not xs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = torch.from_numpy(logits).double() / float(temperature)
    return float(torch.nn.functional.cross_entropy(z, torch.from_numpy(labels)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> float:
    """T > 0 minimising the mean NLL of softmax(logits / T) (LBFGS on log T, from T = 1)."""
    z = torch.from_numpy(np.asarray(logits)).double()
    y = torch.from_numpy(np.asarray(labels)).long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def region_eces(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    probs = torch.softmax(torch.from_numpy(logits).double() / float(temperature), dim=1).numpy().T
    return {r: float(region_ece(probs, labels, r)) for r in REGION_NAMES}


def collect(checkpoint: Path, data: Path, max_cases: int | None = None, voxels_per_case: int = 200_000,
            overlap: float = 0.5, device: str = "cpu", seed: int = 0, log=print):
    """(raw checkpoint dict, logits, labels, case ids) — the model run without any stored temperature."""
    from BrainTumorXAILib.analyze import network_input, optional_sequences
    from BrainTumorXAILib.io.case_io import list_cases, load_case
    from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model

    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    raw = dict(ckpt)
    raw["normalisation"] = {k: v for k, v in ckpt["normalisation"].items() if k != "temperature"}
    model, meta = load_model(raw, device=device)
    window = int(meta["normalisation"].get("window", 128))
    rng = np.random.default_rng(seed)
    xs, ys, ids = [], [], []
    cases = list_cases(data)[: max_cases or None]
    for folder in cases:
        case = load_case(folder, optional=optional_sequences(meta))  # e.g. BRATS 2013: FLAIR + T1c only
        if case.label is None:
            log(f"{folder.name}: no reference label, skipped")
            continue
        volume, net_mask, transform, _ = network_input(case, meta)
        label = transform.apply(np.asarray(case.label, np.float32), order=0, fill=0.0).round().astype(np.int64)
        x, y = window_logits(model, volume, net_mask, label, window, overlap, voxels_per_case, rng, device)
        xs.append(x)
        ys.append(y)
        ids.append(folder.name)
        log(f"{folder.name}: {y.size} voxels")
    if not ids:
        raise BrainTumorXAIError(f"{data}: no case with a reference label to calibrate on")
    return ckpt, np.concatenate(xs), np.concatenate(ys), ids


def calibrate(checkpoint: Path, data: Path, out: Path, log=print, **options) -> dict:
    """Fit T, write the calibrated checkpoint to ``out``; the report (also stored in its provenance)."""
    from BrainTumorXAILib.models.checkpoint import save_checkpoint_dict

    ckpt, logits, labels, ids = collect(Path(checkpoint), Path(data), log=log, **options)
    t = fit_temperature(logits, labels)
    report = {"temperature": t, "cases": ids, "voxels": int(labels.size),
              "nll_before": nll(logits, labels, 1.0), "nll_after": nll(logits, labels, t),
              "ece_before": region_eces(logits, labels, 1.0), "ece_after": region_eces(logits, labels, t),
              "fitted_on": str(data), "method": "LBFGS on log T, NLL of the network-grid softmax, brain voxels"}
    new = dict(ckpt)
    new["normalisation"] = {**ckpt["normalisation"], "temperature": t}
    new["provenance"] = {**ckpt["provenance"], "calibration": report}
    save_checkpoint_dict(new, out)
    return report


def format_report(report: dict) -> str:
    lines = [f"temperature T = {report['temperature']:.4f} on {len(report['cases'])} cases, {report['voxels']} voxels",
             f"NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}", "ECE per region (before -> after):"]
    lines += [f"  {r}: {report['ece_before'][r]:.4f} -> {report['ece_after'][r]:.4f}" for r in REGION_NAMES]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="validation case folders (with labels)")
    p.add_argument("--out", type=Path, required=True, help="calibrated checkpoint to write")
    p.add_argument("--max-cases", type=int)
    p.add_argument("--voxels-per-case", type=int, default=200_000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    args = p.parse_args(argv)
    refuse_in_place(p, args.out, args.checkpoint)

    def run() -> int:
        report = calibrate(args.checkpoint, args.data, args.out, max_cases=args.max_cases,
                           voxels_per_case=args.voxels_per_case, device=args.device,
                           log=lambda m: print(m, file=sys.stderr))
        print(format_report(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0 if math.isfinite(report["temperature"]) else 1

    return exit_code("training.calibrate", run)


if __name__ == "__main__":
    raise SystemExit(main())
