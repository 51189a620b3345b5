"""Grad-CAM candidates on the same footing (issue 28): ``python -m training.gradcam_study CASE_DIR... --out CSV``.

For each case and each candidate (a ``--gradcam-method`` and a layer, ``CANDIDATES``), on the network grid with
the dropout-free network (no MC) and the brain mask, per tumour class: the CAM's mass share inside the predicted
region and inside it grown by 5 mm, the Spearman correlation with the fully randomised network's CAM, the
deletion area, and the seconds of the Grad-CAM pass; one CSV row per (case, candidate, class).  The selection rule
is training/records/default/selection/gradcam_method_rule.txt.  ``--monai`` also compares one window with MONAI's
GradCAM / GradCAMpp (the ``bench`` extra) and writes ``<out>.monai.txt``; ``--pytorch-grad-cam`` does the same with
pytorch-grad-cam's classes (``<out>.pgc.txt``).  ``--evidence occlusion,ig`` writes the
sequence-evidence table of each case instead (one row per class and sequence, with the seconds it took).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from BrainTumorXAILib.analyze import resolve_weights
from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.inference.case_prediction import network_input, optional_sequences
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.inference.sequence_evidence import sequence_evidence
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.io.labels import CLASS_NAMES, SEQUENCES
from BrainTumorXAILib.models.checkpoint import load_model
from BrainTumorXAILib.reporting.explanation_checks import (cam_energy, cascade_blocks, deletion_check,
                                                             randomised_copy, spearman)
from BrainTumorXAILib.runtime import resolve_device

#: (number in the rule, method, layer); layer None: the method's own (the fused one takes every decoder stage).
CANDIDATES = [(1, "gradcam", "decoder.2"), (2, "gradcam", "decoder.0"), (3, "gradcam", "decoder.1"),
              (4, "gradcam", "decoder.3"), (5, "hirescam", "decoder.2"), (6, "gradcampp", "decoder.2"),
              (7, "layercam", "decoder.2"), (8, "gradcam-contrast", "decoder.2"), (9, "layercam-fused", None),
              (10, "contrastive-finest", "decoder.3"), (11, "contrastive", "decoder.2"),  # round 2
              (12, "contrastive-hirescam", "decoder.2"), (13, "contrastive-layercam", "decoder.2"),  # round 3
              (14, "healthy-contrast-finest", "decoder.3"), (15, "healthy-contrast-hirescam", "decoder.2"),
              (16, "dual-contrast-finest", "decoder.3"), (17, "log-softmax-finest", "decoder.3")]  # round 5
TUMOUR = (1, 2, 3)


class CaseOnGrid:
    """One case on the network grid, with a memo of dropout-free softmax passes (deletion's random curve is
    shared by every candidate)."""

    def __init__(self, folder: Path, model, meta, device):
        case = load_case(folder, optional=optional_sequences(meta))
        self.case_id = case.case_id
        self.volume, brain, transform, _ = network_input(case, meta)
        self.brain = np.asarray(brain, bool)
        self.spacing = tuple(float(s) for s in np.linalg.norm(transform.resampled_affine[:3, :3], axis=0))
        self.window = (int(meta.get("normalisation", {}).get("window", 128)),) * 3
        self.model, self.device = model, device
        self._probs: dict[str, np.ndarray] = {}

    def predictor(self, net, method=None, layer=None, classes=TUMOUR) -> Predictor:
        return Predictor(net, self.device, window=self.window, overlap=0.5, mc_samples=0, seed=0,
                         gradcam_classes=classes, gradcam_layer=layer, gradcam_method=method)

    def probs(self, volume: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(np.ascontiguousarray(volume).tobytes()).hexdigest()
        if key not in self._probs:
            self._probs[key] = self.predictor(self.model, classes=()).predict(volume, self.brain).probabilities
        return self._probs[key]


def measure(grid: CaseOnGrid, number: int, method: str, layer: str | None, deletion: bool = True) -> list[dict]:
    maps = grid.predictor(grid.model, method, layer).predict(grid.volume, grid.brain)
    seconds = maps.timings_s["gradcam"]
    predicted = maps.deterministic.argmax(axis=0)
    predicted[~grid.brain] = 0
    energy = cam_energy(maps.gradcam, predicted, grid.brain, grid.spacing)
    randomised = randomised_copy(grid.model, len(cascade_blocks(grid.model)))
    random_cams = grid.predictor(randomised, method, layer).predict(grid.volume, grid.brain).gradcam
    deletion = deletion_check(grid.volume, grid.brain, maps.gradcam, predicted, grid.probs) if deletion else {}
    rows = []
    for c in TUMOUR:
        name = CLASS_NAMES[c]
        rows.append({"case": grid.case_id, "candidate": number, "method": method, "layer": maps.gradcam_layer,
                     "class": name, "predicted_voxels": int((predicted == c).sum()),
                     "fallback": bool(maps.gradcam_fallback.get(c)),
                     "E_region": energy[name]["in_region"], "E_margin": energy[name]["in_region_margin"],
                     "R_full_random": spearman(maps.gradcam[c], random_cams[c], grid.brain),
                     "D_deletion_area": deletion[name]["area_between"] if deletion else None,
                     "T_gradcam_s": seconds})
    return rows


def evidence_rows(grid: CaseOnGrid, meta: dict, method: str) -> list[dict]:
    """The sequence-evidence table of one case (one row per class and sequence) and its seconds."""
    reference = grid.probs(grid.volume)
    t0 = time.perf_counter()
    ev = sequence_evidence(grid.model, grid.device, grid.volume, grid.brain, meta.get("sequences"), grid.window,
                           reference=reference, method=method)
    seconds = time.perf_counter() - t0
    return [{"case": grid.case_id, "method": method, "class": name, "sequence": s,
             "predicted_voxels": entry["predicted_voxels"], "read": ev.table["sequences"][s]["read"],
             "share": (entry["share"] or {}).get(s), "drop": (entry["drop"] or {}).get(s), "seconds": seconds}
            for name, entry in ev.table["classes"].items() for s in SEQUENCES]


def monai_reference(grid: CaseOnGrid) -> str:
    """One window (the volume's centre): ours against MONAI's GradCAM on a network whose output is the logits
    restricted to the predicted region (so both explain the same score), and what MONAI does by itself."""
    from monai.visualize import GradCAM, GradCAMpp

    model = grid.model
    x, brain, prediction, start = _centre_window(grid)
    lines = [f"case {grid.case_id}, window {tuple(x.shape[2:])} at {tuple(start)}"]
    _, layer = gc.resolve_layer(model, "decoder.2")
    default_name, (default_layer,) = gc.resolve_layers(model, gc.DEFAULT_METHOD, None)
    default = gc.method_spec(None)
    for c in TUMOUR:
        region = ((prediction == c) & brain).float()
        if not bool(region.any()):
            lines.append(f"{CLASS_NAMES[c]}: not predicted in this window")
            continue
        t0 = time.perf_counter()
        ours = gc.gradcam_from_features(model, model.encode(x), layer, [c], region_mask=brain,
                                       method="gradcam").cams[c][0]
        t_ours = time.perf_counter() - t0
        # MONAI's CAM objects never remove their hooks: each gets its own copy of the network, so every class
        # is a clean comparison.
        masked = _RegionScore(copy.deepcopy(model), region, c)
        t0 = time.perf_counter()
        # MONAI's default post-processing rescales each map to [1, 0] (max -> 0): compared raw instead.
        theirs = GradCAM(masked, target_layers="model.decoder.2", postprocessing=_raw)(x, class_idx=c)[0, 0]
        t_monai = time.perf_counter() - t0
        plain = GradCAM(copy.deepcopy(model), target_layers="decoder.2", postprocessing=_raw)(x, class_idx=c)[0, 0]
        inside = region[0].bool()
        plain = plain.detach()
        share = float(plain[inside].sum() / plain.sum()) if float(plain.sum()) > 0 else float("nan")
        ours_share = float(ours[inside].sum() / ours.sum()) if float(ours.sum()) > 0 else float("nan")
        gap = _gap(ours, theirs)
        lines.append(f"{CLASS_NAMES[c]}: ours vs MONAI GradCAM (same score) Spearman "
                     f"{spearman(ours.cpu().numpy(), theirs.detach().cpu().numpy()):.4f}, largest difference "
                     f"{gap:.1e} of the peak, time {t_ours:.2f} s vs "
                     f"{t_monai:.2f} s (one class); MONAI's own score (class logit summed over the whole window): "
                     f"energy in the region {share:.3f} (ours {ours_share:.3f})")
        # The default method, when it is Grad-CAM with a per-voxel class score (MONAI has no other weighting and
        # no region-against-shell score), at the layer it hooks.
        if default.weighting == "gradcam" and default.score != "contrast":
            ours_default = gc.gradcam_from_features(model, model.encode(x), default_layer, [c], region_mask=brain,
                                                   method=gc.DEFAULT_METHOD).cams[c][0]
            theirs_default = GradCAM(_RegionScore(copy.deepcopy(model), region, c, default.score),
                                     target_layers=f"model.{default_name}", postprocessing=_raw)(x, class_idx=c)[0, 0]
            lines.append(f"{CLASS_NAMES[c]}: the default ({gc.DEFAULT_METHOD}, {default_name}) vs MONAI GradCAM given "
                         f"its score: largest difference {_gap(ours_default, theirs_default):.1e} of the peak")
        try:
            GradCAMpp(_RegionScore(copy.deepcopy(model), region, c), target_layers="model.decoder.2")(x, class_idx=c)
            lines.append(f"{CLASS_NAMES[c]}: MONAI GradCAMpp ran")
        except Exception as exc:  # noqa: BLE001 -- recorded: what MONAI does with a segmentation score
            lines.append(f"{CLASS_NAMES[c]}: MONAI GradCAMpp fails on a segmentation score: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160]}")
    return "\n".join(lines)


def pytorch_grad_cam_reference(grid: CaseOnGrid) -> str:
    """One window (the volume's centre), layer decoder.2: our GradCAM / HiResCAM / GradCAM++ / LayerCAM against
    pytorch-grad-cam's classes given the same score (the class's logits summed over its predicted region in the
    brain, as their ``SemanticSegmentationTarget``): the raw CAM before any scaling (both resized trilinearly),
    and what pytorch-grad-cam returns by itself (min-max scaled, spline-zoomed), ranked against ours."""
    import pytorch_grad_cam as pgc

    model = grid.model
    x, brain, prediction, start = _centre_window(grid)
    _, layer = gc.resolve_layer(model, "decoder.2")
    classes = {"gradcam": pgc.GradCAM, "hirescam": pgc.HiResCAM, "gradcampp": pgc.GradCAMPlusPlus,
               "layercam": pgc.LayerCAM}
    lines = [f"case {grid.case_id}, window {tuple(x.shape[2:])} at {tuple(start)}, layer decoder.2"]
    for method, their_class in classes.items():
        for c in TUMOUR:
            region = ((prediction == c) & brain).float()
            if not bool(region.any()):
                continue
            t0 = time.perf_counter()
            ours = gc.gradcam_from_features(model, model.encode(x), layer, [c], region_mask=brain,
                                            method=method).cams[c][0]
            t_ours = time.perf_counter() - t0
            cam = their_class(model=model, target_layers=[layer])
            target = partial(_region_target, region=region[0], cls=c)
            t0 = time.perf_counter()
            scaled = cam(input_tensor=x, targets=[target])[0]
            t_theirs = time.perf_counter() - t0
            acts, grads = (np.asarray(t.cpu() if torch.is_tensor(t) else t)
                           for t in (cam.activations_and_grads.activations[0], cam.activations_and_grads.gradients[0]))
            raw = np.maximum(cam.get_cam_image(x, layer, [target], acts, grads, False), 0)
            cam.activations_and_grads.release()
            raw = torch.nn.functional.interpolate(torch.as_tensor(raw)[:, None].float(), size=x.shape[2:],
                                                  mode="trilinear", align_corners=False)[0, 0].to(ours.device)
            gap = _gap(ours, raw)
            rho = spearman(ours.cpu().numpy(), np.asarray(scaled), brain[0].cpu().numpy())
            lines.append(f"{method} {CLASS_NAMES[c]}: raw CAM largest difference {gap:.1e} of the peak; Spearman "
                         f"with their scaled output {rho:.3f}; time ours {t_ours:.2f} s, theirs {t_theirs:.2f} s")
    return "\n".join(lines)


def _centre_window(grid: CaseOnGrid):
    """The volume's centre window: (input, brain mask, dropout-free prediction, start index) on the device."""
    start = [max(0, (s - w) // 2) for s, w in zip(grid.volume.shape[1:], grid.window)]
    box = tuple(slice(a, a + w) for a, w in zip(start, grid.window))
    x = torch.from_numpy(np.ascontiguousarray(grid.volume[(slice(None), *box)]))[None].to(grid.device)
    brain = torch.from_numpy(grid.brain[box])[None].to(grid.device)
    with torch.no_grad():
        prediction = grid.model(x).argmax(1)
    return x, brain, prediction, start


def _region_target(output, region, cls):
    return (output[cls] * region).sum()


def _raw(cam):
    return cam


def _gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """Largest absolute difference of two maps, as a share of our map's peak."""
    return float((ours - theirs.detach()).abs().max() / ours.abs().max().clamp_min(1e-12))


class _RegionScore(torch.nn.Module):
    """The wrapped network's per-voxel score of class ``cls`` (``score``: a Grad-CAM method's kind, the plain
    logit by default) on ``region`` only, zero elsewhere: MONAI's class score is then ours."""

    def __init__(self, model, region, cls, score: str = "region"):
        super().__init__()
        self.model, self.region, self.cls, self.score = model, region, cls, score

    def forward(self, x):
        logits = self.model(x)
        keep = torch.zeros_like(logits)
        keep[:, self.cls] = self.region
        voxel_score = gc.class_score_map(logits, self.cls, self.score)[:, None]
        return torch.where(keep > 0, voxel_score.to(logits.dtype), torch.zeros_like(logits))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gradcam_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cases", nargs="+", type=Path)
    p.add_argument("--weights", type=Path, help="checkpoint (default: the bundled default)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--candidates", default="", help="comma list of candidate numbers (default: all)")
    p.add_argument("--monai", action="store_true")
    p.add_argument("--pytorch-grad-cam", action="store_true",
                   help="also compare one window with pytorch-grad-cam (grad-cam on PyPI); writes <out>.pgc.txt")
    p.add_argument("--no-deletion", action="store_true",
                   help="skip the deletion curves (most of the time; the rule needs them only for the "
                        "candidates that can still win)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--evidence", default="", metavar="METHODS",
                   help="instead of the candidates: the sequence-evidence table per case for these methods "
                        "(comma list of occlusion, ig)")
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    model, meta = load_model(resolve_weights(a.weights), device=device)
    wanted = {int(n) for n in a.candidates.split(",") if n}
    rows = []
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for folder in a.cases:
        grid = CaseOnGrid(folder, model, meta, device)
        if a.evidence:
            for method in a.evidence.split(","):
                rows += evidence_rows(grid, meta, method)
                _write_csv(a.out, rows)
            continue
        if a.pytorch_grad_cam:
            with open(a.out.with_suffix(".pgc.txt"), "a") as f:
                f.write(pytorch_grad_cam_reference(grid) + "\n")
        if a.monai:
            with open(a.out.with_suffix(".monai.txt"), "a") as f:
                f.write(monai_reference(grid) + "\n")
        for number, method, layer in CANDIDATES:
            if wanted and number not in wanted:
                continue
            t0 = time.perf_counter()
            rows += measure(grid, number, method, layer, not a.no_deletion)
            print(f"{grid.case_id} candidate {number} ({method} {layer or ''}): {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr, flush=True)
            _write_csv(a.out, rows)
    return 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Rewritten after each step: a run cut off keeps its rows."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
