"""Explanation checks for Grad-CAM, on the network grid: the trust report's second part.

- **Energy** of each class's CAM: the share of its mass inside that class's predicted region, inside that
  region grown by ``MARGIN_MM`` (a map that lights the tumour's rim still points at it), and inside the
  brain (the Predictor zeroes the CAM outside the brain mask, so the latter is 1 by construction and only
  guards against a regression), and ``ratio_to_chance`` = energy in the region / the region's share of the
  brain (1: no better than a uniform map).
- **Model-randomisation sanity check** (Adebayo et al., NeurIPS 2018): the blocks of the network are
  re-initialised in cascade from the top (head, finest decoder stage, ..., bottleneck, encoder stages down to
  the first), and after each step the CAM of the randomised network is compared with the trained one by the
  Spearman rank correlation over the brain voxels.  A CAM that explains the model must change: the
  correlation should collapse as the cascade goes down.  ``steps`` evenly spaced cascade depths are run (the
  last is the fully randomised network), each one dropout-free Grad-CAM pass.
- **Deletion curve**: the brain voxels most attributed by a class's CAM are removed (all channels set to the
  brain mean of that channel) in steps of ``fractions`` of the brain; the class score (mean softmax of the
  class over the voxels the unperturbed network predicts as that class) is recorded relative to its value
  before deletion, against removing the same number of random brain voxels (one seeded draw, shared by the
  classes).  ``area_between`` = the trapezoidal area of (random - CAM) over fraction / largest fraction:
  > 0 when removing what the CAM points at hurts the class more than removing random voxels.
Everything needs extra forward passes: ``analyze --explanation-checks`` opts in.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from scipy.stats import rankdata
from torch import nn

from ..inference.predictor import Predictor
from ..io.labels import CLASS_NAMES
from .locality_text import MARGIN_MM

DELETION_FRACTIONS = (0.02, 0.05, 0.1, 0.2)
RANDOMISATION_STEPS = 4
SPEARMAN_MAX_VOXELS = 200_000


def _f(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


# -- energy ------------------------------------------------------------------------
def cam_energy(cams: dict, classes: np.ndarray, brain: np.ndarray, spacing=(1.0, 1.0, 1.0),
               margin_mm: float = MARGIN_MM) -> dict:
    """Per class: CAM mass share inside its predicted region, inside it grown by ``margin_mm`` (``spacing``: the
    grid's voxel size in mm) and inside the brain, and the ratio to chance."""
    brain = np.asarray(brain, bool)
    out = {}
    for c, cam in cams.items():
        cam = np.asarray(cam, np.float64)
        total = cam.sum()
        region = (np.asarray(classes) == c) & brain
        share = region.sum() / max(int(brain.sum()), 1)
        in_region = cam[region].sum() / total if total > 0 else float("nan")
        near = distance_transform_edt(~region, sampling=spacing) <= margin_mm if region.any() else region
        in_margin = cam[near].sum() / total if total > 0 and region.any() else float("nan")
        out[CLASS_NAMES[c]] = {"in_region": _f(in_region), "in_region_margin": _f(in_margin),
                               "in_brain": _f(cam[brain].sum() / total if total > 0 else np.nan),
                               "region_share_of_brain": _f(share),
                               "ratio_to_chance": _f(in_region / share if share > 0 else np.nan)}
    return out


# -- randomisation ---------------------------------------------------------------------
def cascade_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's blocks from the output back to the input (U-Net family; else top-level children reversed)."""
    if all(hasattr(model, n) for n in ("head", "decoder", "bottleneck", "encoder")):
        blocks = [("head", model.head)]
        blocks += [(f"decoder.{i}", s) for i, s in reversed(list(enumerate(model.decoder)))]
        blocks += [("bottleneck", model.bottleneck)]
        blocks += [(f"encoder.{i}", s) for i, s in reversed(list(enumerate(model.encoder)))]
        return blocks
    children = [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
    return list(reversed(children))


def randomised_copy(model: nn.Module, n_blocks: int, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with its top ``n_blocks`` cascade blocks re-initialised (seeded)."""
    clone = copy.deepcopy(model)
    blocks = cascade_blocks(clone)[:n_blocks]
    device = next(clone.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for _, block in blocks:
            for m in block.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    return clone.eval()


def spearman(a, b, mask=None, max_voxels: int = SPEARMAN_MAX_VOXELS, seed: int = 0) -> float:
    """Spearman rank correlation of two maps over ``mask`` (a fixed random subset above ``max_voxels``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    idx = np.flatnonzero(np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool))
    if idx.size > max_voxels:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_voxels, replace=False))
    x, y = a.ravel()[idx], b.ravel()[idx]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def cascade_depths(n_blocks: int, steps: int) -> list[int]:
    """``steps`` cascade depths from 1 to ``n_blocks`` (always including the full randomisation)."""
    return sorted({int(round(v)) for v in np.linspace(1, n_blocks, max(1, min(steps, n_blocks)))})


def randomisation_check(model, run_cams, reference: dict, brain, steps: int = RANDOMISATION_STEPS,
                        seed: int = 0) -> list[dict]:
    """Cascading randomisation; ``run_cams(model) -> {class: cam}`` runs Grad-CAM of a (randomised) model."""
    blocks = cascade_blocks(model)
    out = []
    for k in cascade_depths(len(blocks), steps):
        cams = run_cams(randomised_copy(model, k, seed))
        out.append({"blocks": k, "randomised_up_to": blocks[k - 1][0],
                    "spearman": {CLASS_NAMES[c]: _f(spearman(reference[c], cams[c], brain)) for c in reference}})
    return out


# -- deletion -------------------------------------------------------------------------
def deletion_order(cam, brain, seed: int = 0) -> np.ndarray:
    """Brain voxel indices (flat), most attributed first; ties broken by a seeded random key."""
    idx = np.flatnonzero(np.asarray(brain, bool))
    values = np.asarray(cam, np.float64).ravel()[idx]
    tiebreak = np.random.default_rng(seed).random(idx.size)
    return idx[np.lexsort((tiebreak, -values))]


def delete_voxels(volume: np.ndarray, flat_idx: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """A copy of the (C, x, y, z) ``volume`` with ``flat_idx`` voxels set to ``fill[c]`` in every channel."""
    out = np.array(volume, np.float32, copy=True)
    flat = out.reshape(out.shape[0], -1)
    flat[:, flat_idx] = np.asarray(fill, np.float32)[:, None]
    return out


def class_score(probabilities: np.ndarray, region: np.ndarray, c: int) -> float:
    region = np.asarray(region, bool)
    return float(probabilities[c][region].mean()) if region.any() else float("nan")


def _area(fractions, y) -> float:
    x = np.r_[0.0, np.asarray(fractions, np.float64)]
    y = np.r_[0.0, np.asarray(y, np.float64)]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / x[-1])


def deletion_check(volume, brain, cams: dict, reference_classes, run_probs, fractions=DELETION_FRACTIONS,
                   seed: int = 0) -> dict:
    """Deletion curves per class; ``run_probs(volume) -> (C, x, y, z)`` softmax of the dropout-free network."""
    brain = np.asarray(brain, bool)
    volume = np.asarray(volume, np.float32)
    fill = np.array([ch[brain].mean() if brain.any() else 0.0 for ch in volume])
    n_brain = int(brain.sum())
    base = run_probs(volume)
    regions = {c: (np.asarray(reference_classes) == c) & brain for c in cams}
    start = {c: class_score(base, regions[c], c) for c in cams}
    random_order = np.random.default_rng(seed).permutation(np.flatnonzero(brain))
    counts = [int(round(f * n_brain)) for f in fractions]
    random_curve = {c: [] for c in cams}
    for n in counts:
        probs = run_probs(delete_voxels(volume, random_order[:n], fill))
        for c in cams:
            random_curve[c].append(class_score(probs, regions[c], c) / start[c] if start[c] else float("nan"))
    out = {}
    for c, cam in cams.items():
        order = deletion_order(cam, brain, seed)
        curve = []
        for n in counts:
            probs = run_probs(delete_voxels(volume, order[:n], fill))
            curve.append(class_score(probs, regions[c], c) / start[c] if start[c] else float("nan"))
        # Drops (1 - relative score): the area between the curves is their difference.
        drop_cam = [1.0 - v for v in curve]
        drop_rand = [1.0 - v for v in random_curve[c]]
        out[CLASS_NAMES[c]] = {
            "initial_score": _f(start[c]), "fractions": list(map(float, fractions)),
            "relative_score_cam": [_f(v) for v in curve], "relative_score_random": [_f(v) for v in random_curve[c]],
            "area_between": _f(_area(fractions, drop_cam) - _area(fractions, drop_rand)),
        }
    return out


def map_locality(maps, brain, spacing=(1.0, 1.0, 1.0)) -> dict:
    """:func:`cam_energy` of the Grad-CAM maps of one prediction (network grid) against its own predicted regions
    (:func:`predicted_regions`).  No network pass: every analysis reports it, so a map that lies mostly away from
    its class's call is flagged where the map is shown."""
    brain = np.asarray(brain, bool)
    return cam_energy(maps.gradcam, predicted_regions(maps, brain), brain, spacing)


def predicted_regions(maps, brain: np.ndarray) -> np.ndarray:
    """The class per voxel the maps explain: the dropout-free prediction when kept, else the MC mean's argmax
    (0 outside the brain)."""
    reference = maps.deterministic if maps.deterministic is not None else maps.probabilities
    predicted = reference.argmax(axis=0)
    predicted[~brain] = 0
    return predicted


# -- everything on one case ---------------------------------------------------------------
def explanation_checks(model, device, volume, brain, maps, window, overlap: float = 0.5, layer: str | None = None,
                       steps: int = RANDOMISATION_STEPS, fractions=DELETION_FRACTIONS, seed: int = 0,
                       method: str | None = None, spacing=(1.0, 1.0, 1.0), energy: dict | None = None) -> dict:
    """All checks for one preprocessed volume and its ``PredictionMaps`` (network grid), JSON-serialisable.
    ``energy``: the maps' :func:`map_locality` when the analysis measured it already (the same figures)."""
    t0 = time.perf_counter()
    classes = sorted(maps.gradcam)
    if not classes:
        return {"skipped": "no Grad-CAM maps (--gradcam none)"}
    method = method or maps.gradcam_method
    layer = layer or maps.gradcam_layer
    if "+" in (layer or ""):  # a fused method's layers follow from the method
        layer = None
    window = tuple(int(w) for w in window)
    brain = np.asarray(brain, bool)
    predicted = predicted_regions(maps, brain)

    def run_cams(net):
        p = Predictor(net, device, window=window, overlap=overlap, mc_samples=0, seed=seed,
                      gradcam_classes=classes, gradcam_layer=layer, gradcam_method=method)
        return p.predict(volume, brain).gradcam

    def run_probs(vol):
        p = Predictor(model, device, window=window, overlap=overlap, mc_samples=0, seed=seed)
        return p.predict(vol, brain).probabilities

    result = {"method": method, "layer": maps.gradcam_layer,
              "energy": energy if energy is not None else cam_energy(maps.gradcam, predicted, brain, spacing)}
    result["randomisation"] = randomisation_check(model, run_cams, maps.gradcam, brain, steps, seed)
    result["deletion"] = deletion_check(volume, brain, maps.gradcam, predicted, run_probs, fractions, seed)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def table_columns(checks: dict | None) -> dict:
    """Flat per-case columns for ``training.evaluate``: energy in region, full-randomisation Spearman, deletion area."""
    cols = {}
    checks = checks or {}
    full = (checks.get("randomisation") or [{}])[-1].get("spearman", {})
    for name in CLASS_NAMES[1:]:
        cols[f"cam_energy_{name}"] = checks.get("energy", {}).get(name, {}).get("in_region")
        cols[f"cam_energy_margin_{name}"] = checks.get("energy", {}).get(name, {}).get("in_region_margin")
        cols[f"cam_random_spearman_{name}"] = full.get(name)
        cols[f"deletion_area_{name}"] = checks.get("deletion", {}).get(name, {}).get("area_between")
    return cols
