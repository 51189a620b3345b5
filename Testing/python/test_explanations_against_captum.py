"""Our explanations against Captum's implementations of the same definitions (the field's reference library):
Grad-CAM against ``LayerGradCam`` (+ ``LayerAttribution.interpolate``), the sequence evidence's integrated
gradients against ``IntegratedGradients`` with the same baseline, path and midpoint Riemann sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.inference.sequence_evidence import integrated_gradients
from BrainTumorXAILib.models.factory import build_model

captum_attr = pytest.importorskip("captum.attr", reason="captum (the test extra) is not installed")

CPU = torch.device("cpu")
SHAPE = (4, 16, 16, 16)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("unet", base_channels=4, depth=2, dropout=0.0).eval()


def case(seed=1):
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def predicted_classes(model, x):
    with torch.no_grad():
        prediction = model(x).argmax(1)[0]
    classes = [c for c in range(4) if bool((prediction == c).any())]
    assert len(classes) >= 2, "the design needs at least two predicted classes"
    return prediction, classes


@pytest.mark.parametrize("layer_name", ["decoder.0", "decoder.1"])
def test_gradcam_equals_captum_layer_gradcam(layer_name):
    model = tiny_model()
    x = torch.from_numpy(case())[None]
    prediction, classes = predicted_classes(model, x)
    layer = model.gradcam_layers()[layer_name]
    with torch.no_grad():
        ours = gc.gradcam_from_features(model, model.encode(x), layer, classes, method="gradcam")
    for c in classes:
        region = (prediction == c).float()
        # Captum's target is one scalar per sample: the class's logit summed over its predicted region.
        explainer = captum_attr.LayerGradCam(lambda inp, c=c, region=region: (model(inp)[:, c] * region).sum(
            dim=(1, 2, 3)), layer)
        theirs = explainer.attribute(x.clone(), relu_attributions=True)
        theirs = captum_attr.LayerAttribution.interpolate(theirs, x.shape[2:], interpolate_mode="trilinear")
        np.testing.assert_allclose(ours.cams[c][0].numpy(), theirs[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=f"class {c}")
        assert float(theirs.detach().max()) > 0


@pytest.mark.parametrize("channel", [1, 3])
def test_integrated_gradients_equal_captum_per_channel(channel):
    model = tiny_model(seed=2)
    volume = case(seed=3)
    x = torch.from_numpy(volume)[None]
    prediction, classes = predicted_classes(model, x)
    brain = np.ones(SHAPE[1:], bool)
    fills = volume.reshape(4, -1).mean(axis=1)
    regions = {c: (prediction == c).numpy() for c in classes}
    steps = 6
    ours = integrated_gradients(model, CPU, volume, brain, fills, regions, window=SHAPE[1:], overlap=0.5,
                                steps=steps, channels=[channel])
    baseline = x.clone()
    baseline[0, channel] = float(fills[channel])  # only this sequence moves along the path
    for c in classes:
        region = torch.from_numpy(regions[c]).float()
        explainer = captum_attr.IntegratedGradients(
            lambda inp, c=c, region=region: (torch.softmax(model(inp), dim=1)[:, c] * region).sum(dim=(1, 2, 3)))
        theirs = explainer.attribute(x.clone(), baselines=baseline, n_steps=steps, method="riemann_middle")
        np.testing.assert_allclose(ours[(c, channel)], theirs[0, channel].detach().numpy(), rtol=1e-3, atol=1e-6,
                                   err_msg=f"class {c}")
        assert float(theirs[0, channel].abs().max()) > 0
        others = [i for i in range(4) if i != channel]
        assert float(theirs[0, others].abs().max()) == 0.0  # the other sequences did not move: no attribution
