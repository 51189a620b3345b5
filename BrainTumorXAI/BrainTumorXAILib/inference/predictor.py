"""Whole-volume prediction: sliding windows, MC Dropout and Grad-CAM in one sweep.

Windows go through the network in batches (``window_batch`` windows per call):
the encoder, the deterministic / Grad-CAM decode and the Grad-CAM fallback all
run on a batch of windows at once.  Every window of a batch is independent of
the others (instance norm is per entry, batch norm is frozen, and the Grad-CAM
score of a batch is the sum of per-window scores, so each window's gradient is
its own), so batching changes no value beyond float rounding.
Per window the encoder runs once.  Its features feed
  1. one deterministic decoder pass, when it is needed: without MC samples,
     for Grad-CAM (hooked), or on request,
  2. the MC Dropout samples, decoded in batches from the same features.
That shortcut is exact only when the encoder holds no dropout.  A model built
with ``dropout_in_encoder`` runs the whole network (encoder and decoder) per MC
sample instead, each with its own masks everywhere: slower, but correct.
Batch sizes follow a voxel budget per network call (``VOXEL_BUDGET``): on the
CPU batched 3D convolutions pay off up to about a million voxels per call, on
CUDA up to far more.  MC samples of one window are decoded ``mc_batch`` at a time
(default: as many as ``MC_VOXEL_BUDGET`` holds).  On the CPU the shared
features reach every sample as broadcast views (no copy per batch), and one
80x96x80 sample at a time is then the fastest (values equal to ~4e-7, the
moments' summation order); 64^3 windows still go 4 at a time.
On the CPU the MC decoder batches run channels-last (NDHWC): oneDNN's 3D
convolutions then skip their layout reorders, and the instance norms keep the
layout (``models.blocks.ChannelsLastInstanceNorm3d``; torch's own copies it back).
The encoder and the dropout-free (Grad-CAM) decode run channels-last as well.
Only the float summation order changes (logits agree to ~1e-5); the model's
parameters are left as they are.
Dropout masks are drawn once per MC sample for the whole volume, so sample s
uses the same channel mask in every window: no seams where windows meet.
Per-window moments are blended with Gaussian weights and normalised once.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import gradcam as gc
from ..models.dropout import MCDropout3d, draw_masks, mc_dropout_mode, set_masks
from ..runtime import JobControl
from .precision import autocast, resolve_precision
from .sliding_window import BlendAccumulator, gaussian_weight, make_tiling
from .uncertainty import MomentAccumulator, entropy, mutual_information

#: Voxels per network call that batching aims for (windows x samples x window voxels).
VOXEL_BUDGET = {"cpu": 1_100_000, "cuda": 24_000_000}
#: Voxels per MC decoder call (samples x window voxels): decoder activations only, no encoder, no gradients.
MC_VOXEL_BUDGET = {"cpu": 1_100_000, "cuda": 24_000_000}


def batch_for(device: torch.device, window_voxels: int, most: int, budgets: dict | None = None) -> int:
    """How many entries of ``window_voxels`` voxels one call takes on ``device`` (1..most)."""
    budgets = budgets or VOXEL_BUDGET
    budget = budgets.get(torch.device(device).type, budgets["cpu"])
    return int(max(1, min(most, budget // max(int(window_voxels), 1))))


@dataclass
class PredictionMaps:
    """Everything predicted for one volume, on the network grid, as float32 numpy arrays."""

    probabilities: np.ndarray  # (C, x, y, z): MC mean softmax (deterministic when no samples)
    deterministic: np.ndarray | None  # (C, x, y, z): softmax of the dropout-free network (when computed)
    variance: np.ndarray | None  # (C, x, y, z): per-class variance over MC samples
    entropy: np.ndarray  # (x, y, z): predictive entropy of ``probabilities``
    mutual_information: np.ndarray | None  # (x, y, z)
    gradcam: dict[int, np.ndarray] = field(default_factory=dict)  # class -> [0, 1]
    gradcam_fallback: dict[int, bool] = field(default_factory=dict)
    gradcam_layer: str | None = None
    gradcam_method: str | None = None
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    n_windows: int = 0
    mc_samples: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)


class Predictor:
    """Runs a trained network over a preprocessed (C, x, y, z) volume."""

    def __init__(self, model: nn.Module, device: torch.device, *, window=(128, 128, 128), overlap: float = 0.5,
                 mc_samples: int = 20, mc_batch: int | None = None, window_batch: int | None = None, seed: int = 0,
                 gradcam_classes=(), gradcam_layer: str | None = None, gradcam_method: str | None = None,
                 keep_deterministic: bool = False,
                 control: JobControl | None = None, precision: str = "fp32"):
        if mc_samples < 0:
            raise ValueError("mc_samples must be >= 0")
        self.model = model.to(device).eval()
        self.device = device
        self.window = tuple(int(w) for w in window)
        self.overlap = overlap
        self.mc_samples = int(mc_samples)
        if (mc_batch is not None and mc_batch < 1) or (window_batch is not None and window_batch < 1):
            raise ValueError("mc_batch and window_batch must be >= 1")
        self._mc_batch, self._window_batch = mc_batch, window_batch
        # Sized for the nominal window here; ``predict`` resizes them for the window it really uses.
        vox = int(np.prod(self.window))
        self.window_batch = int(window_batch or batch_for(device, vox, 10**6))
        self.mc_batch = int(mc_batch or batch_for(device, vox, max(self.mc_samples, 1), MC_VOXEL_BUDGET))
        self.channels_last = torch.device(device).type == "cpu"
        # The network's compute dtype (None: exact float32); softmax, moments and CAMs stay float32.
        self.autocast_dtype = resolve_precision(precision, torch.device(device))
        self.seed = int(seed)
        self.gradcam_classes = tuple(int(c) for c in gradcam_classes)
        self.gradcam_method = (gradcam_method or gc.DEFAULT_METHOD).strip().lower()
        gc.method_spec(self.gradcam_method)  # an unknown name fails here, with the list
        self.gradcam_layer = (gc.resolve_layers(model, self.gradcam_method, gradcam_layer)
                              if self.gradcam_classes else None)
        self.control = control or JobControl()
        # Attention maps are read from the dropout-free pass, so gated models always run it.
        self.run_deterministic = (keep_deterministic or not self.mc_samples or bool(self.gradcam_classes)
                                  or bool(getattr(model, "use_attention", False)))
        # Encoder dropout: the shared dropout-free features would ignore the encoder masks.
        self.full_mc_passes = bool(self.mc_samples) and encoder_has_mc_dropout(model)

    # -- public -----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, volume: np.ndarray, brain_mask: np.ndarray | None = None) -> PredictionMaps:
        timings = {"encoder": 0.0, "deterministic": 0.0, "mc_dropout": 0.0, "gradcam": 0.0}
        x_all = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
        tiling = make_tiling(x_all.shape[1:], self.window, self.overlap)
        weight = gaussian_weight(tiling.window, device=self.device)
        n_cls = self._num_classes()
        channels = {"det": n_cls} if self.run_deterministic else {}
        if self.mc_samples:
            channels.update(mean=n_cls, second=n_cls, sample_entropy=1)
        channels.update({f"cam{c}": 1 for c in self.gradcam_classes})
        blend = BlendAccumulator(tiling.shape, channels, device=self.device)
        attention: BlendAccumulator | None = None
        masks = self._draw_masks()
        brain = None if brain_mask is None else torch.from_numpy(np.asarray(brain_mask, bool)).to(self.device)
        # Classes with a Grad-CAM score region (deterministic prediction inside the brain) in some window.
        cam_found = {c: False for c in self.gradcam_classes}

        vox = int(np.prod(tiling.window))
        self.window_batch = int(self._window_batch or batch_for(self.device, vox, len(tiling)))
        self.mc_batch = int(self._mc_batch or batch_for(self.device, vox, max(self.mc_samples, 1), MC_VOXEL_BUDGET))
        done = 0
        # The whole sweep runs channels-last on the CPU, the conv weights too (swapped once, restored after).
        with _weights_channels_last(self.model, self.channels_last):
            for group in _chunks(tiling.boxes, self.window_batch):
                last = '' if len(group) == 1 else f'-{done + len(group)}'
                self.control.report("inference", done / len(tiling), f"window {done + 1}{last}/{len(tiling)}")
                x = torch.stack([x_all[(slice(None), *box)] for box in group]).to(self.device)
                feats = None
                if self.run_deterministic or not self.full_mc_passes:
                    t0 = time.perf_counter()
                    with self._autocast():
                        feats = self.model.encode(self._layout(x))
                    timings["encoder"] += _elapsed(t0, self.device)
                group_brain = None if brain is None else torch.stack([brain[box] for box in group])
                with self._autocast():
                    det = self._deterministic(feats, timings, group_brain, cam_found) if self.run_deterministic else {}
                # Attention gates of the dropout-free pass (the MC passes overwrite them).
                att = gc.upsample_attention(self.model, tiling.window) if det else {}
                for i, box in enumerate(group):
                    maps = {k: v[i] for k, v in det.items()}
                    if self.mc_samples:
                        self.control.check()
                        t0 = time.perf_counter()
                        with self._autocast():  # one context for all samples: the weights are cast once
                            window_feats = None if feats is None else [f[i:i + 1] for f in feats]
                            maps.update(self._mc_moments(x[i:i + 1], window_feats, masks))
                        timings["mc_dropout"] += _elapsed(t0, self.device)
                    blend.add(box, weight, maps)
                    if att:
                        attention = attention or BlendAccumulator(tiling.shape, {k: 1 for k in att}, device=self.device)
                        attention.add(box, weight, {k: v[i:i + 1] for k, v in att.items()})
                done += len(group)
        self.control.report("inference", 1.0, "blending")
        result = self._finish(blend, attention, brain_mask, len(tiling), timings)
        # "Absent" by the same prediction that defines the score regions: no window had one.
        absent = [c for c in self.gradcam_classes if not cam_found[c]]
        if absent:
            t0 = time.perf_counter()
            for c, cam in self._gradcam_fallback_pass(x_all, tiling, weight, absent, brain).items():
                result.gradcam[c] = _np(_normalise(cam, self._outside(brain_mask)))
                result.gradcam_fallback[c] = True
            result.timings_s["gradcam"] = round(result.timings_s["gradcam"] + _elapsed(t0, self.device), 4)
        return result

    # -- pieces -----------------------------------------------------------------
    def _autocast(self):
        """A fresh autocast context per network stage, not one per sweep: autocast caches the bf16 copy of
        each weight for the whole context, and the copies are made in whatever layout the weights have then
        (channels-last during the CPU sweep, ``_weights_channels_last``)."""
        return autocast(self.device, self.autocast_dtype)

    def _layout(self, t: torch.Tensor) -> torch.Tensor:
        """Channels-last on the CPU (see the module doc), unchanged elsewhere."""
        return t.contiguous(memory_format=torch.channels_last_3d) if self.channels_last and t.ndim == 5 else t

    def _num_classes(self) -> int:
        return int(self.model.config.get("num_classes", 4)) if hasattr(self.model, "config") else 4

    def _draw_masks(self):
        if not self.mc_samples:
            return None
        gen = torch.Generator().manual_seed(self.seed)
        return [m.to(self.device) for m in draw_masks(self.model, self.mc_samples, gen)]

    def _deterministic(self, feats, timings, window_brain=None, cam_found=None) -> dict[str, torch.Tensor]:
        t0 = time.perf_counter()
        if not self.gradcam_classes:
            logits = self.model.decode(feats)
            timings["deterministic"] += _elapsed(t0, self.device)
            return {"det": torch.softmax(logits.float(), dim=1)}
        _, layer = self.gradcam_layer
        out = gc.gradcam_from_features(self.model, feats, layer, self.gradcam_classes, region_mask=window_brain,
                                       method=self.gradcam_method)
        timings["gradcam"] += _elapsed(t0, self.device)
        if cam_found is not None:
            for c, found in out.has_region.items():
                cam_found[c] = cam_found[c] or found
        maps = {"det": torch.softmax(out.logits.float(), dim=1)}
        maps.update({f"cam{c}": cam[:, None] for c, cam in out.cams.items()})
        return maps

    def _mc_moments(self, x, feats, masks) -> dict[str, torch.Tensor]:
        acc = MomentAccumulator()
        # The shared features in the decoder's layout once per window; each batch of samples sees them as
        # broadcast views (stride 0 over the samples), not as n copies: the skips are only added or
        # concatenated, and the full-resolution skip copied per batch was a fifth of the MC time.
        shared = None if feats is None else [self._layout(f) for f in feats]
        with mc_dropout_mode(self.model):  # the weights are channels-last already on the CPU (``predict``)
            for start in range(0, self.mc_samples, self.mc_batch):
                stop = min(start + self.mc_batch, self.mc_samples)
                n = stop - start
                set_masks(self.model, [m[start:stop] for m in masks])
                if self.full_mc_passes:  # the encoder's masks act too: encode each sample
                    logits = self.model.decode(self.model.encode(self._layout(x.expand(n, *x.shape[1:]))))
                else:
                    logits = self.model.decode([f.expand(n, *f.shape[1:]) for f in shared])
                probs = torch.softmax(logits.float(), dim=1)
                acc.update(probs)
                self.control.check()
            set_masks(self.model, None)
        # Blend raw moments (mean and E[p^2]) so the variance stays a variance after blending.
        return {"mean": acc.mean, "second": acc.variance + acc.mean**2, "sample_entropy": acc.mean_entropy[None]}

    def _gradcam_fallback_pass(self, x_all, tiling, weight, classes, brain=None) -> dict[int, torch.Tensor]:
        """Classes no window predicts in the brain: score over all brain voxels (all voxels without a mask)."""
        _, layer = self.gradcam_layer
        blend = BlendAccumulator(tiling.shape, {f"cam{c}": 1 for c in classes}, device=self.device)
        for group in _chunks(tiling.boxes, self.window_batch):
            self.control.check()
            region = None if brain is None else torch.stack([brain[box] for box in group]).float()
            regions = {c: region for c in classes}
            with self._autocast():
                feats = self.model.encode(torch.stack([x_all[(slice(None), *box)] for box in group]).to(self.device))
                out = gc.gradcam_from_features(self.model, feats, layer, classes, score_regions=regions,
                                               method=self.gradcam_method)
            for i, box in enumerate(group):
                blend.add(box, weight, {f"cam{c}": out.cams[c][i:i + 1] for c in classes})
        return {c: blend.result(f"cam{c}")[0] for c in classes}

    def _outside(self, brain_mask) -> torch.Tensor | None:
        return None if brain_mask is None else ~torch.from_numpy(np.asarray(brain_mask, bool)).to(self.device)

    def _finish(self, blend, attention, brain_mask, n_windows, timings) -> PredictionMaps:
        det = blend.result("det") if self.run_deterministic else None
        if self.mc_samples:
            mean = blend.result("mean")
            variance = (blend.result("second") - mean**2).clamp_min(0.0)
            probs = mean
            mi = mutual_information(mean, blend.result("sample_entropy")[0])
        else:
            probs, variance, mi = det, None, None
        probs = probs / probs.sum(dim=0, keepdim=True).clamp_min(1e-12)
        ent = entropy(probs)
        outside = self._outside(brain_mask)
        if outside is not None:
            probs = _force_background(probs, outside)
            det = None if det is None else _force_background(det, outside)
            ent = ent.masked_fill(outside, 0.0)
            if variance is not None:
                variance = variance.masked_fill(outside[None], 0.0)
                mi = mi.masked_fill(outside, 0.0)

        cams = {c: blend.result(f"cam{c}")[0] for c in self.gradcam_classes}
        return PredictionMaps(
            probabilities=_np(probs), deterministic=None if det is None else _np(det),
            variance=None if variance is None else _np(variance), entropy=_np(ent),
            mutual_information=None if mi is None else _np(mi),
            gradcam={c: _np(_normalise(cam, outside)) for c, cam in cams.items()},
            gradcam_fallback={c: False for c in cams},
            gradcam_layer=None if self.gradcam_layer is None else self.gradcam_layer[0],
            gradcam_method=None if self.gradcam_layer is None else self.gradcam_method,
            attention={} if attention is None else {k: _np(attention.result(k)[0]) for k in attention.sums},
            n_windows=n_windows, mc_samples=self.mc_samples, timings_s={k: round(v, 4) for k, v in timings.items()},
        )


@contextmanager
def _weights_channels_last(model: nn.Module, enabled: bool):
    """The 3D conv weights channels-last for a while (same values), then exactly the tensors they were
    (a training model may keep channels-last weights itself: its layout must not change under it).

    With channels-last weights oneDNN keeps every conv output channels-last, whatever layout
    instance norm hands back; a transposed conv then runs several times faster, which is most of the MC
    decode's gain.
    """
    weights = [p for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))
               for p in (m.weight,) if p.ndim == 5] if enabled else []
    originals = [p.data for p in weights]
    try:
        for p in weights:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
        yield
    finally:
        for p, original in zip(weights, originals):
            p.data = original


def _chunks(items, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def encoder_has_mc_dropout(model: nn.Module) -> bool:
    """Whether any active MC dropout module runs inside ``encode`` (encoder stages or bottleneck)."""
    parts = [getattr(model, name, None) for name in ("encoder", "bottleneck")]
    if not any(isinstance(p, nn.Module) for p in parts):
        # Unknown layout: only the configuration can tell; assume the worst when it says so.
        return bool(getattr(model, "config", {}).get("dropout_in_encoder", False))
    return any(isinstance(m, MCDropout3d) and m.p > 0
               for part in parts if isinstance(part, nn.Module) for m in part.modules())


def _force_background(probs: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    probs = probs.masked_fill(outside[None], 0.0)
    probs[0] = probs[0].masked_fill(outside, 1.0)
    return probs


def _normalise(cam: torch.Tensor, outside: torch.Tensor | None = None) -> torch.Tensor:
    """One normalisation for the whole volume, after blending: [0, 1].

    Outside the brain the input is zero padding; the CAM there is the network's
    response to padding, not evidence, and it often holds most of the mass (seen
    on the demo model), which would squash the colour scale inside the brain.
    It is zeroed first, like the probabilities and uncertainty maps.
    """
    if outside is not None:
        cam = cam.masked_fill(outside, 0.0)
    peak = cam.max()
    return cam / peak if float(peak) > 0 else torch.zeros_like(cam)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _elapsed(t0: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0
