#!/usr/bin/env python
"""Speed figures of the analysis engine, measured side by side on one case.

    python Testing/benchmark.py [--case DIR] [--weights CKPT] [--device auto|cpu|cuda] [--mc-samples 20]
    python Testing/benchmark.py --real-size [--real-case DIR] [--models demo,2mm64,2mm96] [--out FILE]
    python Testing/benchmark.py --preprocess [--native-case DIR] [--robex]

Prints: one deterministic pass; naive MC Dropout (N full passes, as in the
original paper) against ours (MC only, no Grad-CAM: encoder once per window,
then N decoder samples; plus the deterministic decode for attention models, or
N full passes for models with encoder dropout; the row label says which) and
their ratio (goal <= 0.5); Grad-CAM for the three tumour classes against one
forward+backward (goal <= 1.5x); the sequence evidence (occlusion; with --all-methods also
integrated gradients and every other Grad-CAM method); surfaces; the whole ``analyze``; what DICOM in and out add
(``dicom_bench.py``: series read and converted, SEG + maps written; goal <= 5 s together).
Each figure is the median of --repeats runs after one warm-up.

--real-size: a real-size case (``../shared/realdata/TCGA-FG-6692`` when present,
else one generated at 240x240x155, 1 mm) against two peers, per model:
  * MONAI ``sliding_window_inference`` on our own network (same window, overlap
    0.5, Gaussian blending; best ``sw_batch_size`` of 1/2/4/8) against our
    deterministic sliding window (goal: ratio <= 0.8);
  * MONAI ``SegResNet`` (init_filters 16, the BraTS bundle's shape) on the whole
    volume, one window, plain segmentation, network only, against our whole
    ``analyze`` with default options (MC 20, Grad-CAM x3, surfaces, figures;
    goal: ratio <= 1.0), run in a child process whose own peak RSS (VmHWM) is printed (goal <= 4 GiB).
Every row is repeated per --precisions (default fp32,bf16), the peers under the same autocast as ours;
each approximation (bf16, fp16) is then measured against fp32 on the same case and seed (label Dice,
probability and variance differences, Grad-CAM correlation).
Ours and the peer are timed interleaved (ours, peer, ours, peer, ...) so a
loaded machine distorts both alike.  Models: ``demo`` (bundled weights, 1 mm,
64^3 windows) and ``2mm64`` / ``2mm96`` (UNet3D base 16, light decoder, depth 4,
MC dropout 0.1, random weights, 2 mm spacing, windows of 64 / 96).
MONAI is a benchmark-only dependency: pip install 'braintumorxai[bench]'.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case, resolve_weights
from BrainTumorXAILib.inference.case_prediction import network_input
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.models.dropout import mc_dropout_mode
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.inference.sequence_evidence import IG_STEPS, sequence_evidence
from BrainTumorXAILib.inference.precision import autocast, precision_name, resolve_precision
from BrainTumorXAILib.io.labels import REGIONS, region_mask
from BrainTumorXAILib.reporting import metrics
from BrainTumorXAILib.resources import sample_case_path
from BrainTumorXAILib.runtime import resolve_device
from BrainTumorXAILib.inference.sliding_window import make_tiling
from BrainTumorXAILib.reporting.surfaces import case_surfaces
from dicom_bench import dicom_overhead  # Testing/ is the script's own folder, first on sys.path


def timed(fn, device, repeats: int) -> float:
    """Median seconds of ``fn`` after a warm-up (allocations, cuDNN autotune)."""
    return interleaved({"fn": fn}, repeats, device)["fn"]


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
    ap.add_argument("--real-size", action="store_true", help="the real-size case against the MONAI peers")
    ap.add_argument("--real-case", type=Path, help="case folder (default: ../shared/realdata/TCGA-FG-6692 or generated)")
    ap.add_argument("--models", default="demo,2mm64,2mm96", help="comma list of demo, 2mm64, 2mm96")
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="--real-size: comma list of fp32, bf16, fp16 (CUDA), auto; every row per precision, the "
                         "peers under the same autocast too, and each approximation measured against fp32")
    ap.add_argument("--out", type=Path, help="also write the printed figures to this file")
    ap.add_argument("--all-methods", action="store_true",
                    help="also time every other --gradcam-method and the integrated-gradients sequence evidence")
    ap.add_argument("--preprocess", action="store_true",
                    help="the clinical preprocessing stage, per stage (bench_preprocess.py; --native-case, --robex)")
    ap.add_argument("--native-case", type=Path, help="raw case folder (default: ../shared/realdata/TCGA-FG-6692_native)")
    ap.add_argument("--robex", action="store_true", help="--preprocess: also time ROBEX brain extraction")
    args = ap.parse_args()
    if args.preprocess:
        from bench_preprocess import preprocessing_rows, print_rows

        print_rows(preprocessing_rows(args.native_case, args.robex))
        return
    if args.real_size:
        real_size(args)
        return

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

    def gradcam3(method=None):
        _, layers = gc.resolve_layers(model, method, None)
        with torch.no_grad():
            for x in tiles:
                gc.gradcam_from_features(model, model.encode(x), layers, classes, method=method)

    def evidence(method):
        reference = Predictor(model, device, window=(window,) * 3, mc_samples=0).predict(volume, net_mask).probabilities
        return lambda: sequence_evidence(model, device, volume, net_mask, meta.get("sequences"), (window,) * 3,
                                         reference=reference, method=method)

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
    rows.append((f"Grad-CAM ({gc.DEFAULT_METHOD}, the default), 3 classes, one forward", t_cam,
                 f"{t_cam / t_fb:.2f}x forward+backward (goal <= 1.5)"))
    for method in (m for m in gc.METHODS if m != gc.DEFAULT_METHOD and args.all_methods):
        t = timed(lambda: gradcam3(method), device, args.repeats)
        rows.append((f"Grad-CAM --gradcam-method {method}, 3 classes", t, f"{t / t_fb:.2f}x forward+backward"))
    t_ev = timed(evidence("occlusion"), device, args.repeats)
    rows.append(("sequence evidence, occlusion (the default)", t_ev, f"{t_ev / t_single:.2f}x a deterministic pass"))
    if args.all_methods:
        t = timed(evidence("ig"), device, 1)
        rows.append((f"sequence evidence, integrated gradients ({IG_STEPS} steps)", t,
                     f"{t / t_single:.2f}x a deterministic pass"))
    rows.append(("surfaces (brain + 3 classes)", timed(surfaces, device, 1), ""))

    def whole():
        with tempfile.TemporaryDirectory() as tmp:
            analyze_case(args.case, Path(tmp) / "out", AnalysisOptions(weights=weights, device=str(device), mc_samples=n))

    rows.append((f"whole analyze (MC {n}, Grad-CAM 3, surfaces, figures)", timed(whole, device, 1), ""))
    dicom = dicom_overhead(args.case, weights, device, args.repeats)
    rows.append(("DICOM in: scan, assign, 4 series -> NIfTI", dicom["read"], ""))
    rows.append(("DICOM out: SEG + probability and entropy maps", dicom["write"],
                 f"with DICOM in {dicom['read'] + dicom['write']:.2f} s (goal <= 5)"))
    width = max(len(r[0]) for r in rows)
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s  {note}")


# -- real-size case against MONAI ------------------------------------------------------------------
REALDATA = Path(os.environ.get("BRAINTUMORXAI_REALDATA") or Path(__file__).resolve().parents[2] / "shared" / "realdata") / "TCGA-FG-6692"
GiB = 2**30


def real_case(path: Path | None, workdir: Path) -> Path:
    if path is not None:
        return path
    if REALDATA.is_dir():
        return REALDATA.resolve()
    from BrainTumorXAILib.synth.cases import generate_case

    return generate_case(workdir, "Generated-240x240x155", seed=12, shape=(240, 240, 155), spacing=1.0)


def bench_model(kind: str, workdir: Path, device) -> Path:
    """Checkpoint for a model row: the demo weights, or the default-model shape at 2 mm with random weights."""
    if kind == "demo":
        return resolve_weights(None)
    from BrainTumorXAILib.models.checkpoint import save_checkpoint
    from BrainTumorXAILib.models.factory import build_model

    window = int(kind.removeprefix("2mm"))
    torch.manual_seed(0)
    model = build_model("unet", base_channels=16, depth=4, decoder="light", dropout=0.1)
    return save_checkpoint(workdir / f"{kind}.pt", model, normalisation={
        "method": "zscore", "crop": "brain", "spacing": [2.0, 2.0, 2.0], "window": window, "multiple_of": 16,
        "reorient": True}, provenance={"note": "random weights, for timing only"})


def interleaved(fns: dict, repeats: int, device) -> dict:
    """Median seconds per function, the functions taking turns (one warm-up each first)."""
    runs = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            runs[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in runs.items()}


ANALYZE_CHILD = r"""
import json, resource, sys, time, tempfile
from pathlib import Path
import torch
from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
case, weights, device, mc, precision = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    s = analyze_case(case, Path(tmp) / "out", AnalysisOptions(weights=Path(weights), device=device, mc_samples=mc,
                                                              precision=precision))
    wall = time.perf_counter() - t0
# The child's own peak (VmHWM of its address space).  ru_maxrss would not do: Linux carries the parent's
# high-water mark through vfork + exec, so it reported the benchmark parent's peak (MONAI's whole-volume
# SegResNet, ~4 GiB), not the analysis's.
try:
    peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
except (OSError, IndexError, ValueError):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
print(json.dumps({"wall": wall, "rss": peak, "gpu": gpu, "timings": s["timings_s"], "windows": s["options"]["windows"]}))
"""


def analyze_in_child(case: Path, weights: Path, device, mc: int, precision: str) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", ANALYZE_CHILD, str(case), str(weights), str(device), str(mc),
                          precision], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def approximation_error(model, device, window, volume, net_mask, mc: int, precision: str) -> str:
    """How far ``precision`` moves the analysis from the exact fp32 path on the same case and seed."""
    run = {p: Predictor(model, device, window=window, mc_samples=mc, gradcam_classes=(1, 2, 3), precision=p)
           .predict(volume, net_mask) for p in ("fp32", precision)}
    exact, approx = run["fp32"], run[precision]
    la, lb = exact.probabilities.argmax(0), approx.probabilities.argmax(0)
    dice = [metrics.dice(region_mask(lb, r), region_mask(la, r)) for r in REGIONS]  # WT, TC, ET
    dp = np.abs(exact.probabilities - approx.probabilities)
    dv = np.abs(exact.variance - approx.variance).max() if mc else 0.0
    cam = [np.corrcoef(exact.gradcam[c].ravel(), approx.gradcam[c].ravel())[0, 1] for c in (1, 2, 3)]
    return (f"label Dice WT {dice[0]:.4f} TC {dice[1]:.4f} ET {dice[2]:.4f}, voxels relabelled "
            f"{int((la != lb).sum())} of {la.size}; |dp| max {dp.max():.4f} mean {dp.mean():.1e}; |d variance| max "
            f"{dv:.4f}; Grad-CAM correlation NCR {cam[0]:.4f} ED {cam[1]:.4f} ET {cam[2]:.4f}")


def real_size(args) -> None:
    import json

    try:
        from monai.inferers import sliding_window_inference
        from monai.networks.nets import SegResNet
    except ImportError:
        raise SystemExit("the real-size benchmark needs MONAI: pip install 'braintumorxai[bench]'") from None
    device = resolve_device(args.device)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        case_dir = real_case(args.real_case, workdir)
        case = load_case(case_dir)
        say(f"real-size case {case.case_id} {case.shape} spacing {tuple(round(float(s), 2) for s in case.spacing)}, "
            f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, MC {args.mc_samples}")
        # Peer 1: SegResNet, whole volume (padded to a multiple of 8), plain segmentation.
        torch.manual_seed(0)
        segresnet = SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=3,
                              blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), dropout_prob=0.2).to(device).eval()
        pad = [(-s) % 8 for s in case.shape]
        whole = torch.from_numpy(np.pad(case.images.astype(np.float32), [(0, 0)] + [(0, p) for p in pad]))[None]
        whole = whole.to(device)

        def peer_segresnet(dtype):
            def run():
                with torch.no_grad(), autocast(device, dtype):
                    return segresnet(whole).argmax(1)
            return run

        # One row per distinct compute dtype ("auto" may be "fp32" on this machine).
        dtypes = {}
        for name in [p.strip() for p in args.precisions.split(",") if p.strip()]:
            dtype = resolve_precision(name, device)
            dtypes.setdefault(precision_name(dtype), dtype)
        for kind in [k.strip() for k in args.models.split(",") if k.strip()]:
            weights = bench_model(kind, workdir, device)
            model, meta = load_model(weights, device=device)
            volume, net_mask, _, _ = network_input(case, meta)
            win = int(meta["normalisation"].get("window", 128))
            window = tuple(min(win, s) for s in volume.shape[1:])
            n_win = len(make_tiling(volume.shape[1:], window, 0.5))
            say(f"\n[{kind}] network grid {volume.shape[1:]}, {n_win} window(s) of {window}")
            x = torch.from_numpy(volume)[None].to(device)

            def ours_sw(prec):
                return lambda: Predictor(model, device, window=window, mc_samples=0, precision=prec).predict(volume,
                                                                                                            net_mask)

            def monai_sw(b, dtype):
                def run():
                    with torch.no_grad(), autocast(device, dtype):
                        sliding_window_inference(x, window, b, model, overlap=0.5, mode="gaussian").float().softmax(1)
                return run

            fns = {}
            for prec, dtype in dtypes.items():
                fns[f"ours {prec}"] = ours_sw(prec)
                fns.update({f"monai sw_batch_size={b} {prec}": monai_sw(b, dtype) for b in (1, 2, 4, 8)})
            t = interleaved(fns, args.repeats, device)
            for k, v in t.items():
                say(f"  deterministic sliding window, {k:<31} {v:8.3f} s")
            best = {prec: min((v, k) for k, v in t.items() if k.startswith("monai") and k.endswith(f" {prec}"))
                    for prec in dtypes}
            for prec in dtypes:
                ratio = t[f"ours {prec}"] / best[prec][0]
                say(f"  -> ours {prec} / MONAI best under the same precision ({best[prec][1]}): {ratio:.2f}")
                if "fp32" in best:
                    ratio = t[f"ours {prec}"] / best["fp32"][0]
                    what = "exact" if prec == "fp32" else "an approximation, measured against fp32 below"
                    say(f"  -> ours {prec} / MONAI best fp32 ({best['fp32'][1]}): {ratio:.2f} (goal <= 0.8; {what}) "
                        f"{'MET' if ratio <= 0.8 else 'MISSED'}")
            # Whole analyze (child process: its own peak RSS) against SegResNet, interleaved.
            peer_fp32 = None
            for prec, dtype in dtypes.items():
                ours, peer = [], []
                peer_run = peer_segresnet(dtype)
                peer_run()  # warm-up
                for _ in range(max(1, min(args.repeats, 2))):
                    ours.append(analyze_in_child(case_dir, weights, device, args.mc_samples, prec))
                    t0 = time.perf_counter()
                    peer_run()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    peer.append(time.perf_counter() - t0)
                wall = statistics.median(r["wall"] for r in ours)
                t_peer = statistics.median(peer)
                rss = max(r["rss"] for r in ours) / GiB
                say(f"  whole analyze {prec} (MC {args.mc_samples}, Grad-CAM x3, surfaces, figures)   {wall:8.3f} s  "
                    f"peak RSS {rss:.2f} GiB (goal <= 4) {'MET' if rss <= 4 else 'MISSED'}"
                    + (f", GPU peak {max(r['gpu'] for r in ours) / GiB:.2f} GiB" if device.type == "cuda" else ""))
                say(f"  MONAI SegResNet(init_filters=16) {prec}, whole volume {tuple(whole.shape[2:])}, network only  "
                    f"{t_peer:8.3f} s")
                say(f"  -> analyze / SegResNet, both {prec}: {wall / t_peer:.2f} (goal <= 1.0) "
                    f"{'MET' if wall <= t_peer else 'MISSED'}")
                if prec == "fp32":
                    peer_fp32 = t_peer
                elif peer_fp32 is not None:
                    say(f"  -> analyze {prec} / SegResNet fp32: {wall / peer_fp32:.2f} (goal <= 1.0; an approximation, "
                        f"measured against fp32 below) {'MET' if wall <= peer_fp32 else 'MISSED'}")
                stages = {k: round(v, 2) for k, v in ours[-1]["timings"].items()}
                say(f"  analyze stages {prec} (s): {json.dumps(stages)}")
            for prec in dtypes:
                if prec != "fp32":
                    say(f"  {prec} against fp32 (network grid, MC {args.mc_samples}, Grad-CAM x3): "
                        + approximation_error(model, device, window, volume, net_mask, args.mc_samples, prec))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
        print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
