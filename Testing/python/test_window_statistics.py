"""Sliding windows seen from outside: ``Predictor(...).predict`` with several windows against values computed
by hand — explicit MC samples per window blended with the documented Gaussian weights, Grad-CAM across
windows against one large-window pass, and the Grad-CAM fallback against the textbook score over the brain.

Only public behaviour is used (the predictor's outputs), so the tests hold however windows are batched.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.models.factory import build_model

import handmade_models as hm

CPU = torch.device("cpu")
WINDOW = (32, 32, 32)
SHAPE = (4, 48, 32, 32)  # with WINDOW and overlap 0.5: exactly two windows, [0:32] and [16:48] along axis 0
BOXES = [(slice(0, 32), slice(None), slice(None)), (slice(16, 48), slice(None), slice(None))]


def tiny_model(seed=0, dropout=0.3):
    torch.manual_seed(seed)
    return build_model("unet", base_channels=4, depth=2, dropout=dropout).eval()


def volume(shape=SHAPE, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def gaussian(window, sigma_scale=0.125):
    """The documented importance map, written independently: separable Gaussian, sigma = w/8, max 1, >= 1e-3."""
    axes = [np.exp(-0.5 * ((np.arange(w) - (w - 1) / 2.0) / (w * sigma_scale)) ** 2) for w in window]
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return np.maximum(g / g.max(), 1e-3)


def hand_blend(per_window: list[np.ndarray]) -> np.ndarray:
    """Gaussian-weighted average of the two windows' maps (..., 32, 32, 32) on the (48, 32, 32) grid."""
    g = gaussian(WINDOW)
    lead = per_window[0].shape[:-3]
    num = np.zeros(lead + SHAPE[1:])
    den = np.zeros(SHAPE[1:])
    for box, value in zip(BOXES, per_window):
        num[(Ellipsis, *box)] += value * g
        den[box] += g
    return num / den


def explicit_samples(model, x, n, seed):
    """N full forward passes of one window, sample s with keep mask s in every dropout module (float64)."""
    return hm.explicit_mc_samples(model, x, n, seed).double().numpy()


def test_the_case_really_has_two_overlapping_windows():
    maps = Predictor(tiny_model(), CPU, window=WINDOW, overlap=0.5, mc_samples=0).predict(volume())
    assert maps.n_windows == 2


def test_deterministic_probabilities_are_the_gaussian_blend_of_the_two_windows():
    model, x = tiny_model(), volume()
    maps = Predictor(model, CPU, window=WINDOW, overlap=0.5, mc_samples=0).predict(x)
    per_window = []
    with torch.no_grad():
        for box in BOXES:
            per_window.append(torch.softmax(model(torch.from_numpy(x[(slice(None), *box)])[None]), 1)[0].double().numpy())
    # The two windows really disagree in the overlap (context differs), so the weights matter.
    assert np.abs(per_window[0][:, 16:] - per_window[1][:, :16]).max() > 0.05
    expected = hand_blend(per_window)
    np.testing.assert_allclose(maps.probabilities, expected, atol=2e-5)


def test_multi_window_mc_statistics_equal_explicit_samples_blended_as_raw_moments():
    """Per window: explicit samples -> mean, E[p^2], mean sample entropy; blend those; then variance and MI."""
    model, x, n, seed = tiny_model(), volume(), 6, 11
    maps = Predictor(model, CPU, window=WINDOW, overlap=0.5, mc_samples=n, mc_batch=4, seed=seed).predict(x)
    assert maps.n_windows == 2
    means, seconds, sample_entropies, variances = [], [], [], []
    for box in BOXES:
        s = explicit_samples(model, np.ascontiguousarray(x[(slice(None), *box)]), n, seed)
        means.append(s.mean(0))
        seconds.append((s**2).mean(0))
        variances.append(s.var(0))
        sample_entropies.append(hm.entropy(np.moveaxis(s, 0, 1)).mean(0))
    mean = hand_blend(means)
    variance = np.maximum(hand_blend(seconds) - mean**2, 0.0)
    mi = np.maximum(hm.entropy(mean) - hand_blend(sample_entropies), 0.0)
    np.testing.assert_allclose(maps.probabilities, mean, atol=2e-5)
    np.testing.assert_allclose(maps.variance, variance, atol=2e-6)
    np.testing.assert_allclose(maps.mutual_information, mi, atol=2e-5)
    np.testing.assert_allclose(maps.entropy, hm.entropy(mean), atol=2e-5)
    # The check has teeth: blending per-window variances would differ in the overlap, and MI is not 0.
    naive = hand_blend(variances)
    assert np.abs(naive - variance).max() > 20 * 2e-6
    assert mi.max() > 0.01


# --------------------------------------------------------------------------- Grad-CAM across windows
RAMP_HEAD_W = [[0, 0, 0, 0], [1.0, 0, 0, 0], [2.0, 0, 0, 0], [0.5, 3.0, 0, 0]]
RAMP_HEAD_B = [0.0, 10.0, 0.0, 0.0]  # class 1 wins everywhere; 2 and 3 are absent (fallback)


def ramp_volume(shape=(4, 24, 20, 16)):
    i, j, k = np.indices(shape[1:], dtype=np.float64)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    x[3] = (1.0 + (i + 2 * j + 3 * k) / 40.0).astype(np.float32)  # positive ramp in the model's channel
    return x


def test_gradcam_across_windows_equals_one_large_window_and_the_known_answer():
    """A model whose CAM at a voxel depends only on that voxel: every window must give the same map as one
    window over the whole volume, which is the ramp divided by its maximum (for every class, fallback or not)."""
    model = hm.linear_unet(RAMP_HEAD_W, RAMP_HEAD_B, channel=3, gradient_axis=None)
    x = ramp_volume()
    kwargs = dict(mc_samples=0, gradcam_classes=(1, 2, 3), gradcam_layer="decoder.0", gradcam_method="gradcam")
    many = Predictor(model, CPU, window=(8, 8, 8), overlap=0.5, **kwargs).predict(x)
    one = Predictor(model, CPU, window=x.shape[1:], overlap=0.5, **kwargs).predict(x)
    assert many.n_windows > 8 and one.n_windows == 1
    expected = x[3] / x[3].max()
    for c in (1, 2, 3):
        assert many.gradcam_fallback[c] == (c != 1)
        np.testing.assert_allclose(one.gradcam[c], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(many.gradcam[c], one.gradcam[c], rtol=1e-4, atol=1e-5)


def reference_gradcam_region(model, x, layer_name, cls, region):
    """Textbook Grad-CAM with the class score summed over an explicit region (full backward pass)."""
    store = {}
    layer = model.gradcam_layers()[layer_name]
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    logits = model(x.clone().requires_grad_(True))
    handle.remove()
    score = (logits[:, cls] * torch.as_tensor(region, dtype=logits.dtype)[None]).sum()
    (grad,) = torch.autograd.grad(score, store["a"])
    cam = F.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * store["a"]).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)[0, 0].detach().numpy()


def test_gradcam_fallback_is_the_score_over_brain_voxels():
    """A class predicted nowhere in the brain: its map is Grad-CAM with S_c summed over all brain voxels."""
    model = tiny_model(seed=4)
    x = volume((4, 32, 32, 24), seed=5)
    with torch.no_grad():
        raw = model(torch.from_numpy(x)[None]).argmax(1)[0].numpy()
    counts = np.bincount(raw.ravel(), minlength=4)
    hidden = max((1, 2, 3), key=lambda c: counts[c])  # predicted in many voxels, but ...
    brain = raw != hidden  # ... only outside the brain
    brain[:3] = False
    assert counts[hidden] > 100 and brain.sum() > 1000
    layer = gc.resolve_layer(model, None)[0]
    maps = Predictor(model, CPU, window=x.shape[1:], mc_samples=0, gradcam_classes=(hidden,),
                     gradcam_method="gradcam").predict(x, brain)
    assert maps.gradcam_fallback[hidden]
    ref = reference_gradcam_region(model, torch.from_numpy(x)[None], layer, hidden, brain.astype(np.float32))
    ref = np.where(brain, ref, 0.0)
    ref = ref / ref.max()
    np.testing.assert_allclose(maps.gradcam[hidden], ref, rtol=1e-4, atol=1e-5)
    # Scoring over every voxel (brain ignored) gives a visibly different map: the test can tell them apart.
    other = reference_gradcam_region(model, torch.from_numpy(x)[None], layer, hidden, np.ones_like(ref, np.float32))
    other = np.where(brain, other, 0.0)
    assert np.abs(other / other.max() - ref).max() > 0.05


def test_a_brain_mask_changes_nothing_inside_and_means_certain_background_outside():
    """Outside the brain: background with probability 1 and no uncertainty at all; inside: exactly the maps
    of the same run without a mask (several windows, MC samples)."""
    model, x = tiny_model(seed=2), volume(seed=6)
    brain = np.zeros(x.shape[1:], bool)
    brain[6:44, 4:28, 5:27] = True
    kw = dict(window=WINDOW, overlap=0.5, mc_samples=5, seed=1)
    masked = Predictor(model, CPU, **kw).predict(x, brain)
    free = Predictor(model, CPU, **kw).predict(x)
    out = ~brain
    np.testing.assert_array_equal(masked.probabilities[0][out], 1.0)
    np.testing.assert_array_equal(masked.probabilities[1:][:, out], 0.0)
    for name in ("entropy", "mutual_information"):
        np.testing.assert_array_equal(getattr(masked, name)[out], 0.0, err_msg=name)
    np.testing.assert_array_equal(masked.variance[:, out], 0.0)
    # without the mask those voxels are uncertain: the zeros above are the mask's doing
    assert free.variance[:, out].max() > 1e-4 and free.probabilities[0][out].min() < 0.9
    for name in ("probabilities", "variance"):
        np.testing.assert_allclose(getattr(masked, name)[:, brain], getattr(free, name)[:, brain], atol=1e-6)
    for name in ("entropy", "mutual_information"):
        np.testing.assert_allclose(getattr(masked, name)[brain], getattr(free, name)[brain], atol=1e-6)
