"""Grad-CAM variants (``--gradcam-method``): each against its textbook definition with a full backward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.inference.explanation_options import GRADCAM_METHODS
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.models.factory import build_model

CPU = torch.device("cpu")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("unet", base_channels=4, depth=2, dropout=0.0).eval()


def x_input(seed=1):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 4, 16, 16, 16)).astype(np.float32))


def textbook(model, x, layer_names, cls, weighting, score="region"):
    """Full backward from the input to every named layer; the method's formula written out."""
    store = {}
    layers = model.gradcam_layers()
    handles = [layers[n].register_forward_hook(lambda m, i, o, n=n: store.__setitem__(n, o)) for n in layer_names]
    logits = model(x.clone().requires_grad_(True))
    for h in handles:
        h.remove()
    region = (logits.argmax(1) == cls).float()
    if score == "contrast":
        grown = F.max_pool3d(region[:, None], 5, stride=1, padding=2)[:, 0]
        band = grown - region
        region = region - band * region.sum() / band.sum()
    target = logits[:, cls]
    others = logits.detach().clone()
    others[:, cls] = float("-inf")
    runner_up = logits.gather(1, others.argmax(1, keepdim=True))[:, 0]  # chosen per voxel without gradient
    if score == "rival":  # minus the runner-up class's logit at each voxel
        target = target - runner_up
    if score == "healthy":  # minus the background logit at each voxel
        target = target - logits[:, 0]
    if score == "dual":  # the runner-up margin plus the margin over background
        target = 2 * target - runner_up - logits[:, 0]
    if score == "logsoftmax":  # log p_c
        target = torch.log_softmax(logits, dim=1)[:, cls]
    grads = torch.autograd.grad((target * region).sum(), [store[n] for n in layer_names])
    total = 0
    for n, g in zip(layer_names, grads):
        a = store[n]
        if weighting == "gradcam":
            cam = (g.mean(dim=(2, 3, 4), keepdim=True) * a).sum(1, keepdim=True)
        elif weighting == "hirescam":
            cam = (g * a).sum(1, keepdim=True)
        elif weighting == "layercam":
            cam = (F.relu(g) * a).sum(1, keepdim=True)
        else:  # Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential left out, as pytorch-grad-cam)
            alpha = g**2 / (2 * g**2 + a.sum(dim=(2, 3, 4), keepdim=True) * g**3)
            alpha = torch.nan_to_num(alpha, nan=0.0, posinf=0.0, neginf=0.0)
            cam = ((alpha * F.relu(g)).sum(dim=(2, 3, 4), keepdim=True) * a).sum(1, keepdim=True)
        total = total + F.interpolate(F.relu(cam), size=x.shape[2:], mode="trilinear", align_corners=False)
    return total[0, 0].detach()


@pytest.mark.parametrize("method", GRADCAM_METHODS)
def test_every_method_matches_its_definition(method):
    model, x = tiny_model(), x_input()
    spec = gc.method_spec(method)
    name, layers = gc.resolve_layers(model, method, None)
    names = name.split("+")
    if spec.all_decoder_stages:
        assert len(names) == model.depth
    else:  # the finest stage feeds the head; the others use the model's mid-decoder default
        assert names == [f"decoder.{model.depth - 1}" if spec.finest_stage else model.default_gradcam_layer]
    with torch.no_grad():
        out = gc.gradcam_from_features(model, model.encode(x), layers, [1, 2, 3], method=method)
    checked = 0
    for cls in (1, 2, 3):
        if not bool((out.logits.argmax(1) == cls).any()):
            continue
        expected = textbook(model, x, names, cls, spec.weighting, spec.score)
        np.testing.assert_allclose(out.cams[cls][0].numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
        checked += 1
    assert checked >= 2


def test_contrast_weights_balance_the_region_against_its_shell():
    region = torch.zeros((1, 12, 12, 12))
    region[0, 5:7, 5:7, 5:7] = 1.0
    brain = torch.ones((1, 12, 12, 12), dtype=torch.bool)
    brain[0, :, :, 9:] = False  # the shell is cut by the brain mask
    w = gc.contrast_weights(region, brain)
    assert float(w.sum()) == pytest.approx(0.0, abs=1e-5)  # +|R| inside, -|R| spread over the shell
    assert bool((w[region > 0] == 1).all()) and float(w[0, :, :, 9:].abs().sum()) == 0.0
    assert float(w[0, 3, 5, 5]) < 0 and float(w[0, 2, 5, 5]) == 0.0  # shell two voxels wide


def _no_competitor(logits, bias, cls, region):
    return 0.0


def _runner_up_mix(logits, bias, cls, region):
    """sum_q pi_q (logit_q - b_q), pi_q the share of the region whose runner-up class is q."""
    others = logits.clone()
    others[cls] = float("-inf")
    rival = others.argmax(0)[region]
    return sum(float((rival == q).float().mean()) * (logits[q] - bias[q]) for q in range(logits.shape[0]))


def _background(logits, bias, cls, region):
    return logits[0] - bias[0]


def _runner_up_and_background(logits, bias, cls, region):
    """Twice the class's logit is scored, against the runner-up mix and background: the map is half that margin."""
    return (_runner_up_mix(logits, bias, cls, region) + _background(logits, bias, cls, region)) / 2


def _probability_mix(logits, bias, cls, region):
    """d log p_c / d logit_q = [q == c] - p_q: the competitor is sum_q pbar_q (logit_q - b_q) / (1 - pbar_c),
    pbar the region's mean softmax."""
    p = torch.softmax(logits, dim=0)[:, region].mean(dim=1)
    return sum(float(p[q]) * (logits[q] - bias[q]) for q in range(logits.shape[0]) if q != cls) / float(1 - p[cls])


def _score_scale(method, logits, cls, region):
    """The weight the score puts on logit_c: 2 for the dual contrast, 1 - pbar_c for log p_c, else 1."""
    if method == "dual-contrast-finest":
        return 2.0
    if method == "log-softmax-finest":
        return float(1 - torch.softmax(logits, dim=0)[cls, region].mean())
    return 1.0


@pytest.mark.parametrize("method, competitor", [("gradcam-finest", _no_competitor),
                                                ("contrastive-finest", _runner_up_mix),
                                                ("healthy-contrast-finest", _background),
                                                ("dual-contrast-finest", _runner_up_and_background),
                                                ("log-softmax-finest", _probability_mix)])
def test_finest_stage_maps_are_the_class_margin_over_their_competitor(method, competitor):
    """Where the 1x1x1 head reads the features: ReLU(logit_c - b_c - competitor) x the region's share (module doc);
    the healthy contrast is therefore zero wherever background beats class c."""
    model, x = tiny_model(), x_input()
    _, layers = gc.resolve_layers(model, method, None)
    with torch.no_grad():
        out = gc.gradcam_from_features(model, model.encode(x), layers, [1, 2, 3], method=method)
        logits, bias = out.logits[0], model.head.bias
        checked = 0
        for cls in (1, 2, 3):
            region = logits.argmax(0) == cls
            if not bool(region.any()):
                continue
            expected = F.relu(logits[cls] - bias[cls] - competitor(logits, bias, cls, region)) * float(
                region.float().mean()) * _score_scale(method, logits, cls, region)
            np.testing.assert_allclose(out.cams[cls][0].numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
            checked += 1
    assert checked >= 2


def test_predictor_records_the_method_and_maps_stay_in_unit_range():
    model = tiny_model()
    vol = x_input()[0].numpy()
    maps = Predictor(model, CPU, window=(16, 16, 16), mc_samples=0, gradcam_classes=(1, 2, 3),
                     gradcam_method="layercam-fused").predict(vol)
    assert maps.gradcam_method == "layercam-fused" and maps.gradcam_layer == "decoder.0+decoder.1"
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in maps.gradcam.values())
    with pytest.raises(ValueError, match="hirescam"):
        Predictor(model, CPU, mc_samples=0, gradcam_classes=(1,), gradcam_method="scorecam")


def test_analyze_refuses_an_unknown_method_in_one_line(tmp_path):
    with pytest.raises(BrainTumorXAIError, match="unknown Grad-CAM method 'scorecam'; expected one of gradcam"):
        analyze_case(tmp_path / "no_case", tmp_path / "out", AnalysisOptions(gradcam_method="scorecam"))
    with pytest.raises(BrainTumorXAIError, match="unknown sequence evidence method"):
        analyze_case(tmp_path / "no_case", tmp_path / "out", AnalysisOptions(sequence_evidence="shap"))
