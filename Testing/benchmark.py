#!/usr/bin/env python
"""Speed figures of the analysis engine, measured side by side on one case.

    python Testing/benchmark.py [--case DIR] [--weights CKPT] [--device auto|cpu|cuda] [--mc-samples 20]

Prints: one deterministic pass; naive MC Dropout (N full passes, as in the
original paper) against ours (MC only, no Grad-CAM: encoder once per window,
then N decoder samples; plus the deterministic decode for attention models, or
N full passes for models with encoder dropout; the row label says which) and
their ratio (goal <= 0.5); Grad-CAM for the three tumour classes against one
forward+backward (goal <= 1.5x); surfaces; the whole ``analyze``.
Each figure is the median of --repeats runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case, network_input, resolve_weights
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.models.dropout import mc_dropout_mode
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.resources import sample_case_path
from BrainTumorXAILib.runtime import resolve_device
from BrainTumorXAILib.inference.sliding_window import make_tiling
from BrainTumorXAILib.reporting.surfaces import case_surfaces


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up (allocations, cuDNN autotune)
    runs = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def windows(volume: np.ndarray, window: int, device):
    tiling = make_tiling(volume.shape[1:], (window,) * 3, 0.5)
    return [torch.from_numpy(np.ascontiguousarray(volume[(slice(None), *b)]))[None].to(device) for b in tiling.boxes]


def ours_label(predictor: Predictor, n: int) -> str:
    """What the 'ours' MC row really times (MC only, no Grad-CAM), from the predictor's own plan."""
    if predictor.full_mc_passes:
        what = f"{n} MC samples as full passes (encoder dropout)"
    else:
        what = f"{n} MC samples (encoder once per window, decoder per sample)"
    if predictor.run_deterministic:
        what += " + deterministic decode"
    return f"ours: {what}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", type=Path, default=sample_case_path())
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mc-samples", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    device = resolve_device(args.device)
    weights = resolve_weights(args.weights)
    model, meta = load_model(weights, device=device)
    norm = meta["normalisation"]
    case = load_case(args.case)
    volume, net_mask, _, mask = network_input(case, meta)
    window = int(norm.get("window", 128))
    tiles = windows(volume, window, device)
    n = args.mc_samples
    print(f"case {case.case_id} {case.shape} -> network grid {volume.shape[1:]}, {len(tiles)} window(s) of {window}^3, "
          f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    def single_pass():
        Predictor(model, device, window=(window,) * 3, mc_samples=0).predict(volume, net_mask)

    def naive_mc():
        with torch.no_grad(), mc_dropout_mode(model):
            for _ in range(n):
                for x in tiles:
                    torch.softmax(model(x), dim=1)

    def ours_mc():
        Predictor(model, device, window=(window,) * 3, mc_samples=n, seed=0).predict(volume, net_mask)

    classes = (1, 2, 3)
    _, layer = gc.resolve_layer(model, None)

    def gradcam3():
        with torch.no_grad():
            for x in tiles:
                gc.gradcam_from_features(model, model.encode(x), layer, classes)

    def forward_backward():
        for x in tiles:
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()

    def surfaces():
        case_surfaces(case.label if case.label is not None else np.zeros(case.shape, np.uint8), mask, case.affine)

    rows = []
    t_single = timed(single_pass, device, args.repeats)
    rows.append(("single deterministic pass (sliding window)", t_single, ""))
    t_naive = timed(naive_mc, device, args.repeats)
    rows.append((f"naive MC Dropout, {n} full passes", t_naive, ""))
    t_ours = timed(ours_mc, device, args.repeats)
    rows.append((ours_label(Predictor(model, device, window=(window,) * 3, mc_samples=n), n), t_ours,
                 f"ratio {t_ours / t_naive:.2f} (goal <= 0.5)"))
    t_fb = timed(forward_backward, device, args.repeats)
    rows.append(("one forward + backward", t_fb, ""))
    t_cam = timed(gradcam3, device, args.repeats)
    rows.append(("Grad-CAM, 3 classes, one forward", t_cam, f"{t_cam / t_fb:.2f}x forward+backward (goal <= 1.5)"))
    rows.append(("surfaces (brain + 3 classes)", timed(surfaces, device, 1), ""))

    def whole():
        with tempfile.TemporaryDirectory() as tmp:
            analyze_case(args.case, Path(tmp) / "out", AnalysisOptions(weights=weights, device=str(device), mc_samples=n))

    rows.append((f"whole analyze (MC {n}, Grad-CAM 3, surfaces, figures)", timed(whole, device, 1), ""))
    width = max(len(r[0]) for r in rows)
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s  {note}")


if __name__ == "__main__":
    main()
