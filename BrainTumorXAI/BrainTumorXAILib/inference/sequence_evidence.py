"""Sequence evidence: how much of each tumour class's call rests on each input sequence.

Occlusion (the default, ``occlusion``): for each sequence the checkpoint reads, one more dropout-free pass with
that sequence replaced by its brain mean, the question a radiologist asks ("what if this sequence were not
there?").  For class c, its predicted region R_c (the dropout-free argmax inside the brain) and sequence s:
    drop_c,s(v) = p_c(v) - p_c^{-s}(v)                      (softmax of class c)
    table       drop_c,s = mean over R_c of drop_c,s(v);    share_c,s = max(drop_c,s, 0) / sum_s' max(drop_c,s', 0)
    map         evidence_c,s(v) = clip(drop_c,s(v), 0, 1)   (where the class's probability falls without s)
Integrated gradients (``ig``, Sundararajan et al. 2017): for each sequence s, s alone goes from its brain mean to
the case along a straight path (``IG_STEPS`` midpoint steps), score S_c = sum over R_c of p_c; attribution_s(v) =
(x_s(v) - b_s) x the path's mean dS_c / dx_s(v); table: the attributions summed over the whole volume, over |R_c|
(by completeness about occlusion's drop), shares as above; map: clip(attribution, 0) scaled by the class's largest
value over all sequences: where in the *input* sequence the evidence lies (occlusion's map: where the *output*
falls).
Sequences the checkpoint does not read (not among its inputs, or its first convolution's weights for them all
zero) carry no evidence: 0 exactly, no pass; a sequence the case lacks is fed as zeros, its brain mean already:
0 too.  Either way the table says which (``read``, ``acquired``).
Both are attributions of this network's output, not proof of tumour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..io.labels import CLASS_NAMES, SEQUENCES
from ..io.network_grid import invert_stack
from .explanation_options import DEFAULT_EVIDENCE_METHOD, EVIDENCE_METHODS
from .gradcam import _frozen_parameters
from .predictor import Predictor
from .sliding_window import BlendAccumulator, gaussian_weight, make_tiling

METHODS = EVIDENCE_METHODS
DEFAULT_METHOD = DEFAULT_EVIDENCE_METHOD
IG_STEPS = 8
WHAT_IT_IS = ("How much this network's call for each class rests on each sequence: an attribution of the "
              "network's output, not proof of tumour.")


@dataclass
class SequenceEvidence:
    method: str
    table: dict  # JSON-ready: summary["sequence_evidence"]
    maps: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # (class, sequence) -> network grid


def unread_channels(model: nn.Module) -> set[int]:
    """Input channels whose weights in the network's first convolution are all zero (never read)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv3d)), None)
    if first is None:
        return set()
    w = first.weight.detach()
    return {i for i in range(w.shape[1]) if not bool(w[:, i].any())}


def sequence_evidence(model: nn.Module, device, volume: np.ndarray, brain: np.ndarray, sequences, window,
                      reference: np.ndarray | None = None, missing=(), classes=(1, 2, 3), method: str = DEFAULT_METHOD,
                      overlap: float = 0.5, skip_unread: bool = True, ig_steps: int = IG_STEPS) -> SequenceEvidence:
    """Evidence per (class, sequence) for one preprocessed (C, x, y, z) ``volume`` whose channels are ``sequences``.

    ``reference``: the dropout-free softmax of ``volume`` when already computed (one pass saved).
    ``skip_unread`` False runs the occlusion pass even for channels the first convolution ignores (tests).
    """
    if method not in METHODS or method == "none":
        raise ValueError(f"unknown sequence evidence method {method!r}; expected one of {', '.join(METHODS[:2])}")
    t0 = time.perf_counter()
    brain = np.asarray(brain, bool)
    volume = np.asarray(volume, np.float32)
    window = tuple(int(w) for w in window)
    sequences = list(sequences)
    unread = unread_channels(model)

    def det(vol):
        return Predictor(model, device, window=window, overlap=overlap, mc_samples=0).predict(vol, brain).probabilities

    reference = det(volume) if reference is None else reference
    predicted = reference.argmax(axis=0)
    predicted[~brain] = 0
    regions = {c: predicted == c for c in classes}
    fills = np.array([ch[brain].mean() if brain.any() else 0.0 for ch in volume], np.float32)
    active = [i for i, s in enumerate(sequences) if s not in missing and (i not in unread or not skip_unread)]
    if method == "occlusion":
        drops = {}
        for i in active:
            occluded = volume.copy()
            occluded[i] = fills[i]
            drops[i] = reference - det(occluded)
        voxel = {(c, i): drops[i][c] for c in classes for i in active}
    else:
        voxel = integrated_gradients(model, device, volume, brain, fills, regions, window, overlap, ig_steps, active)
    table, maps = _tabulate(voxel, regions, sequences, set(missing), unread, method)
    table["seconds"] = round(time.perf_counter() - t0, 3)
    return SequenceEvidence(method, table, maps)


def _tabulate(voxel, regions, sequences, missing, unread, method):
    seq_info = {s: {"read": s in sequences and sequences.index(s) not in unread, "acquired": s not in missing}
                for s in SEQUENCES}
    table = {"method": method, "what_it_is": WHAT_IT_IS, "sequences": seq_info, "classes": {}}
    maps = {}
    for c, region in regions.items():
        n = int(region.sum())
        drop = {s: 0.0 for s in SEQUENCES}
        for (cc, i), v in voxel.items():
            if cc == c and n:  # occlusion: the region's mean fall; ig: every voxel's share of it (completeness)
                drop[sequences[i]] = float(v[region].mean() if method == "occlusion" else v.sum() / n)
        positive = {s: max(d, 0.0) for s, d in drop.items()}
        total = sum(positive.values())
        table["classes"][CLASS_NAMES[c]] = {
            "predicted_voxels": n,
            "share": {s: (positive[s] / total if total > 0 else None) for s in SEQUENCES} if n else None,
            "drop": drop if n else None}
        scale = 1.0
        if method == "ig":  # attributions are in score units per voxel: one scale per class, over all sequences
            peak = max((float(np.max(v)) for (cc, _), v in voxel.items() if cc == c), default=0.0)
            scale = 1.0 / peak if peak > 0 else 0.0
        for (cc, i), v in voxel.items():
            if cc == c:
                maps[(c, sequences[i])] = np.clip(v * scale, 0.0, 1.0).astype(np.float32)
    return table, maps


def integrated_gradients(model, device, volume, brain, fills, regions, window, overlap, steps, channels) -> dict:
    """Per (class, channel) integrated-gradient maps over sliding windows (Gaussian-blended), network grid.

    One path per channel: only that channel goes from its brain mean to the case, the others stay as they are.
    A path moving every channel at once would say nothing here: instance normalisation after the first
    convolution cancels a common scaling of all inputs, so the output barely changes along it.  Per channel, the
    attributions add up (completeness) to the occlusion drop of that channel.
    """
    model = model.to(device).eval()
    tiling = make_tiling(volume.shape[1:], window, overlap)
    weight = gaussian_weight(tiling.window, device=device)
    classes = list(regions)
    blend = BlendAccumulator(tiling.shape, {f"c{c}_{i}": 1 for c in classes for i in channels}, device=device)
    x_all = torch.from_numpy(volume).to(device)
    masks = {c: torch.from_numpy(regions[c] & brain).to(device) for c in classes}
    with _frozen_parameters(model), torch.enable_grad():
        for box in tiling.boxes:
            x = x_all[(slice(None), *box)]
            maps = {}
            for i in channels:
                sums = {c: torch.zeros_like(x[i]) for c in classes}
                for k in range(steps):
                    xi = x.clone()
                    xi[i] = float(fills[i]) + (k + 0.5) / steps * (x[i] - float(fills[i]))
                    xi = xi[None].requires_grad_(True)
                    probs = torch.softmax(model(xi).float(), dim=1)
                    for j, c in enumerate(classes):
                        region = masks[c][box]
                        if bool(region.any()):
                            (grad,) = torch.autograd.grad((probs[0, c] * region).sum(), xi,
                                                          retain_graph=j < len(classes) - 1)
                            sums[c] += grad[0, i]
                maps.update({f"c{c}_{i}": ((x[i] - float(fills[i])) * sums[c] / steps).detach()[None]
                             for c in classes})
            blend.add(box, weight, maps)
    return {(c, i): blend.result(f"c{c}_{i}")[0].cpu().numpy() for c in classes for i in channels}


def on_case_grid(evidence: SequenceEvidence, transform, brain: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """The maps mapped back onto the case grid (trilinear, like every map), zero outside the brain."""
    keys = list(evidence.maps)
    if not keys:
        return {}
    inverted = invert_stack(transform, [evidence.maps[k] for k in keys], [0.0] * len(keys))
    inside = np.asarray(brain, bool)
    return {(CLASS_NAMES[c], s): np.clip(inverted[i], 0.0, 1.0) * inside for i, (c, s) in enumerate(keys)}


def case_sequence_evidence(model, device, net_input, net_mask, maps, transform, brain, meta, case, method: str):
    """analyze's step: the evidence of one case, its table and its maps on the case grid ({} when off)."""
    if method in (None, "none"):
        return {}
    window = (int(meta.get("normalisation", {}).get("window", 128)),) * 3
    evidence = sequence_evidence(model, device, net_input, net_mask, meta.get("sequences", list(SEQUENCES)), window,
                                 reference=maps.deterministic, missing=tuple(getattr(case, "missing", ())),
                                 method=method)
    return {"table": evidence.table, "maps": on_case_grid(evidence, transform, brain)}
