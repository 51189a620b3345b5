"""Post-hoc calibration of a checkpoint on validation cases: a temperature or a per-class logit offset.

    python -m training.calibrate --checkpoint CKPT --data VAL_DIR --out NEW.pt [--fit temperature|class-bias]
                                 [--leave-one-out] [--max-cases N]

For every case the deterministic network (dropout off) predicts each sliding window on the network grid; the
logits of brain voxels inside each window (a fixed random subset, at most ``--voxels-per-case``) and the
reference label on the network grid (nearest neighbour) are kept.  Then one of two fits, each minimising the
mean negative log-likelihood over those voxels with the checkpoint's other stored calibration kept:

* ``temperature`` (Guo et al., ICML 2017): one T > 0, output logits / T (LBFGS on log T).  The argmax, hence the
  segmentation, does not change; only the probabilities do.
* ``class-bias``: one offset per class (background fixed at 0), output logits / T + b: a shift of the class
  priors (logit adjustment), for a network whose training mix taught it other priors than the validation
  scans show (for example one that under-segments real tumours).  It moves the segmentation too.

The new checkpoint is the old one with ``normalisation["temperature"]`` or ``normalisation["class_bias"]`` and
``provenance["calibration"]`` (cases, voxels, NLL, ECE per region and predicted class shares before/after);
``load_model`` applies them to the final 1x1x1 head (its stored weights stay the network's own).  On the
fitting set the figures say how much calibration was available, not a held-out figure:
``--leave-one-out`` also fits once without each case and reports that case's NLL and class shares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.inference.case_prediction import network_input, optional_sequences
from BrainTumorXAILib.io.case_files import list_cases
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.inference.sliding_window import make_tiling
from BrainTumorXAILib.models.checkpoint import load_checkpoint, load_model, save_checkpoint_dict
from BrainTumorXAILib.models.head_calibration import checkpoint_class_bias, checkpoint_temperature
from BrainTumorXAILib.reporting.calibration_metrics import region_ece

from .io_utils import refuse_in_place

REGION_NAMES = ("WT", "TC", "ET")


@torch.no_grad()
def window_logits(model, volume: np.ndarray, mask: np.ndarray, label: np.ndarray, window: int, overlap: float,
                  max_voxels: int, rng: np.random.Generator, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, C) float32, labels (N,)) of brain voxels of every window, subsampled to ``max_voxels``."""
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


def _output(logits, temperature: float = 1.0, bias=None) -> torch.Tensor:
    """The network's stored output: logits / T + b (as ``load_model`` applies them), float64."""
    z = torch.as_tensor(np.asarray(logits)).double() / float(temperature)
    return z if bias is None else z + torch.as_tensor(np.asarray(bias, np.float64))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bias=None) -> float:
    return float(torch.nn.functional.cross_entropy(_output(logits, temperature, bias), torch.from_numpy(labels)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 100, bias=None) -> float:
    """T > 0 minimising the mean NLL of softmax(logits / T + b) with b fixed (LBFGS on log T, from T = 1)."""
    y = torch.from_numpy(np.asarray(labels)).long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")
    z = _output(logits)
    b = _output(np.zeros((1, z.shape[1])), 1.0, bias)[0]  # zeros when no bias is stored

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp() + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def fit_class_bias(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                   iterations: int = 200) -> np.ndarray:
    """Per-class logit offsets b (b[0] = 0: only differences matter) minimising the mean NLL of
    softmax(logits / T + b) with T fixed: a correction of the class priors (LBFGS, from b = 0)."""
    z = _output(logits, temperature)
    y = torch.from_numpy(np.asarray(labels)).long()
    free = torch.zeros(z.shape[1] - 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([free], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z + torch.cat([free.new_zeros(1), free]), y)
        loss.backward()
        return loss

    opt.step(closure)
    return np.concatenate([[0.0], free.detach().numpy()])


def region_eces(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bias=None) -> dict:
    probs = torch.softmax(_output(logits, temperature, bias), dim=1).numpy().T
    return {r: float(region_ece(probs, labels, r)) for r in REGION_NAMES}


def class_shares(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, bias=None) -> dict:
    """Share of the sampled brain voxels per class: in the labels, and in the argmax of the output."""
    n = logits.shape[1]
    pred = _output(logits, temperature, bias).argmax(1).numpy()
    return {"labels": (np.bincount(labels, minlength=n) / labels.size).tolist(),
            "predicted": (np.bincount(pred, minlength=n) / labels.size).tolist()}


#: Calibration fits: the stored normalisation key each one writes.
FITS = {"temperature": "temperature", "class-bias": "class_bias"}


def collect(checkpoint: Path, data: Path, max_cases: int | None = None, voxels_per_case: int = 200_000,
            overlap: float = 0.5, device: str = "cpu", seed: int = 0, log=print):
    """(raw checkpoint dict, logits, labels, case ids, voxels per case) — the network itself, without any stored
    temperature or class bias (the fits take them from the checkpoint dict)."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    raw = dict(ckpt)
    raw["normalisation"] = {k: v for k, v in ckpt["normalisation"].items() if k not in FITS.values()}
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
    return ckpt, np.concatenate(xs), np.concatenate(ys), ids, [y.size for y in ys]


def stored_calibration(ckpt: dict) -> tuple[float, np.ndarray | None]:
    """(temperature, class bias) as the checkpoint stores them (1 and None when absent)."""
    t = checkpoint_temperature(ckpt)
    b = checkpoint_class_bias(ckpt)
    return (1.0 if t is None else t), (None if b is None else np.asarray(b, np.float64))


def _fit(fit: str, logits, labels, temperature: float, bias):
    """(temperature, bias) after fitting one of them with the other kept as stored."""
    if fit == "temperature":
        return fit_temperature(logits, labels, bias=bias), bias
    return temperature, fit_class_bias(logits, labels, temperature)


def leave_one_out(fit: str, logits, labels, ids, sizes, temperature: float, bias) -> list[dict]:
    """Each case's NLL and class shares before and after a fit made on the other cases only."""
    bounds = np.cumsum([0, *sizes])
    rows = []
    for k, case in enumerate(ids):
        inside = np.zeros(labels.size, bool)
        inside[bounds[k]:bounds[k + 1]] = True
        t, b = _fit(fit, logits[~inside], labels[~inside], temperature, bias)
        x, y = logits[inside], labels[inside]
        rows.append({"case": case, "fitted": _value(fit, t, b), "nll_before": nll(x, y, temperature, bias),
                     "nll_after": nll(x, y, t, b), "shares_before": class_shares(x, y, temperature, bias),
                     "shares_after": class_shares(x, y, t, b)})
    return rows


def _value(fit: str, temperature: float, bias):
    return float(temperature) if fit == "temperature" else [float(v) for v in bias]


def calibrate(checkpoint: Path, data: Path, out: Path, log=print, fit: str = "temperature",
              loo: bool = False, **options) -> dict:
    """Fit T or the class bias, write the calibrated checkpoint to ``out``; the report (also stored in its
    provenance["calibration"])."""
    if fit not in FITS:
        raise BrainTumorXAIError(f"--fit {fit!r}: expected one of {', '.join(FITS)}")
    ckpt, logits, labels, ids, sizes = collect(Path(checkpoint), Path(data), log=log, **options)
    if loo and len(ids) < 2:
        raise BrainTumorXAIError(f"{data}: --leave-one-out needs at least two cases with labels, found {len(ids)}")
    t0, b0 = stored_calibration(ckpt)
    t, b = _fit(fit, logits, labels, t0, b0)
    report = {"fit": fit, FITS[fit]: _value(fit, t, b), "cases": ids, "voxels": int(labels.size),
              "nll_before": nll(logits, labels, t0, b0), "nll_after": nll(logits, labels, t, b),
              "ece_before": region_eces(logits, labels, t0, b0), "ece_after": region_eces(logits, labels, t, b),
              "shares_before": class_shares(logits, labels, t0, b0), "shares_after": class_shares(logits, labels, t, b),
              "fitted_on": str(data),
              "method": f"LBFGS on {'log T' if fit == 'temperature' else 'the per-class logit offsets (background 0)'}"
                        ", NLL of the network-grid softmax, brain voxels"}
    if loo:
        report["leave_one_out"] = leave_one_out(fit, logits, labels, ids, sizes, t0, b0)
    new = dict(ckpt)
    new["normalisation"] = {**ckpt["normalisation"], FITS[fit]: report[FITS[fit]]}
    new["provenance"] = {**ckpt["provenance"], "calibration": report}
    save_checkpoint_dict(new, out)
    return report


def _shares(shares: dict) -> str:
    return " ".join(f"{p:.4f}" for p in shares["predicted"]) + " (labels " + \
        " ".join(f"{p:.4f}" for p in shares["labels"]) + ")"


def format_report(report: dict) -> str:
    fit = report.get("fit", "temperature")
    value = report[FITS[fit]]
    head = (f"temperature T = {value:.4f}" if fit == "temperature"
            else "class bias b = [" + ", ".join(f"{v:.3f}" for v in value) + "]")
    lines = [f"{head} on {len(report['cases'])} cases, {report['voxels']} voxels",
             f"NLL {report['nll_before']:.4f} -> {report['nll_after']:.4f}", "ECE per region (before -> after):"]
    lines += [f"  {r}: {report['ece_before'][r]:.4f} -> {report['ece_after'][r]:.4f}" for r in REGION_NAMES]
    lines += [f"predicted class shares before: {_shares(report['shares_before'])}",
              f"predicted class shares after:  {_shares(report['shares_after'])}"]
    for row in report.get("leave_one_out", []):
        fitted = f"{row['fitted']:.4f}" if fit == "temperature" else "[" + ", ".join(f"{v:.3f}" for v in row["fitted"]) + "]"
        lines.append(f"held out {row['case']}: fitted on the others {fitted}, its NLL {row['nll_before']:.4f} -> "
                     f"{row['nll_after']:.4f}, predicted shares {_shares(row['shares_after'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="validation case folders (with labels)")
    p.add_argument("--out", type=Path, required=True, help="calibrated checkpoint to write")
    p.add_argument("--fit", choices=tuple(FITS), default="temperature",
                   help="temperature: one T for all classes (probabilities only); class-bias: one logit offset "
                        "per class (moves the class priors, hence the segmentation too)")
    p.add_argument("--leave-one-out", action="store_true",
                   help="also fit once without each case and report that case's NLL and class shares")
    p.add_argument("--max-cases", type=int)
    p.add_argument("--voxels-per-case", type=int, default=200_000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    args = p.parse_args(argv)
    refuse_in_place(p, args.out, args.checkpoint)

    def run() -> int:
        report = calibrate(args.checkpoint, args.data, args.out, max_cases=args.max_cases,
                           voxels_per_case=args.voxels_per_case, device=args.device, fit=args.fit,
                           loo=args.leave_one_out, log=lambda m: print(m, file=sys.stderr))
        print(format_report(report))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0 if np.all(np.isfinite(report[FITS[args.fit]])) else 1

    return exit_code("training.calibrate", run)


if __name__ == "__main__":
    raise SystemExit(main())
