"""3D U-Net family: shapes, encode/decode split, MC Dropout, fixed masks, attention, Grad-CAM layers."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from BrainTumorXAILib.models import (
    MODEL_NAMES,
    MCDropout3d,
    build_model,
    build_model_from_config,
    count_parameters,
    draw_masks,
    enable_mc_dropout,
    mc_dropout_mode,
    mc_dropout_modules,
    set_masks,
)

TINY = dict(base_channels=4, depth=2, dropout=0.3)


def tiny(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **kw})


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(1, 4, 32, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_and_gradient(name, x):
    model = tiny(name)
    out = model(x)
    assert out.shape == (1, 4, 32, 32, 32)
    out.square().mean().backward()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv3d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encode_decode_equals_forward_and_eval_is_deterministic(name, x):
    model = tiny(name).eval()
    with torch.no_grad():
        feats = model.encode(x)
        assert len(feats) == model.depth + 1
        assert [f.shape[1] for f in feats] == list(model.channels)
        a, b, c = model(x), model.decode(feats), model(x)
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mc_dropout_samples_differ_but_encoder_is_deterministic(name, x):
    model = tiny(name)
    enable_mc_dropout(model)
    assert not model.training and all(m.training for m in mc_dropout_modules(model))
    with torch.no_grad():
        assert torch.equal(model.encode(x)[-1], model.encode(x)[-1])
        assert not torch.equal(model(x), model(x))


def test_mc_mode_does_not_touch_batchnorm_statistics(x):
    model = tiny("unet", norm="batch")
    model(torch.randn(2, 4, 32, 32, 32))  # training step: populate running stats
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    assert before
    with mc_dropout_mode(model), torch.no_grad():
        outs = [model(x) for _ in range(2)]
        assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm3d))
    assert not torch.equal(*outs)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert model.training  # previous (train) mode restored


def test_mc_dropout_mode_restores_modes_and_masks():
    model = tiny("resunet").eval()
    masks = draw_masks(model, 1, torch.Generator().manual_seed(0))
    set_masks(model, masks)
    with mc_dropout_mode(model):
        set_masks(model, None)
        assert any(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())
    assert all(m.mask is k for m, k in zip(mc_dropout_modules(model), masks))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fixed_masks_make_samples_reproducible_and_batch_independent(name, x):
    model = tiny(name)
    masks = draw_masks(model, 3, torch.Generator().manual_seed(7))
    again = draw_masks(model, 3, torch.Generator().manual_seed(7))
    assert len(masks) == len(mc_dropout_modules(model)) == model.depth + 1  # bottleneck + each decoder stage
    assert all(torch.equal(a, b) for a, b in zip(masks, again))
    assert all(m.shape == (3, mod.num_channels) for m, mod in zip(masks, mc_dropout_modules(model)))
    with mc_dropout_mode(model), torch.no_grad():
        feats = model.encode(x)
        set_masks(model, masks)
        batch = [f.expand(3, *f.shape[1:]) for f in feats]
        first, second = model.decode(batch), model.decode(batch)
        set_masks(model, [m[1:2] for m in masks])
        alone = model.decode(feats)  # sample 1 decoded on its own (another window, another batch split)
        set_masks(model, None)
    assert torch.equal(first, second)
    assert not torch.allclose(first[0], first[1])
    torch.testing.assert_close(alone[0], first[1], rtol=1e-4, atol=1e-5)


def test_mask_is_applied_per_channel():
    drop = MCDropout3d(p=0.25, num_channels=3).train()
    x = torch.randn(2, 3, 4, 4, 4)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    drop.set_mask(mask)
    y = drop(x)
    torch.testing.assert_close(y, x * mask[:, :, None, None, None] / 0.75)
    assert torch.equal(y, drop(x))
    drop.eval()
    assert torch.equal(drop(x), x)  # eval: identity even with a mask set
    with pytest.raises(ValueError):
        drop.set_mask(torch.ones(2, 4))
    drop.train()
    drop.set_mask(torch.ones(1, 3))
    with pytest.raises(ValueError, match="does not match"):
        drop(x)


def test_random_channel_dropout_drops_whole_channels():
    drop = MCDropout3d(p=0.5, num_channels=8).train()
    y = drop(torch.ones(4, 8, 3, 3, 3))
    per_channel = y.flatten(2)
    assert torch.all(per_channel.amax(-1) == per_channel.amin(-1))  # each channel all 0 or all 2
    assert set(per_channel.unique().tolist()) <= {0.0, 2.0}


def test_attention_maps(x):
    model = tiny("attunet").eval()
    assert model.attention_maps == {}
    with torch.no_grad():
        model(x)
    maps = model.attention_maps
    assert set(maps) == {"decoder.0", "decoder.1"}
    assert maps["decoder.0"].shape == (1, 1, 16, 16, 16)
    assert maps["decoder.1"].shape == (1, 1, 32, 32, 32)
    for m in maps.values():
        assert m.min() >= 0 and m.max() <= 1
    for name in ("unet", "resunet"):
        plain = tiny(name)
        with torch.no_grad():
            plain(x)
        assert plain.attention_maps == {}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradcam_layers_run_inside_decode(name, x):
    model = tiny(name).eval()
    layers = model.gradcam_layers()
    assert list(layers) == ["bottleneck", "decoder.0", "decoder.1"]
    assert model.default_gradcam_layer in layers and model.default_gradcam_layer != "decoder.1"
    fired = []
    handles = [m.register_forward_hook(lambda *_a, n=n: fired.append(n)) for n, m in layers.items()]
    with torch.no_grad():
        feats = model.encode(x)
        assert fired == []
        model.decode(feats)
    for h in handles:
        h.remove()
    assert fired == list(layers)
    assert build_model(name, base_channels=4, depth=4).default_gradcam_layer == "decoder.2"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_input_raises_value_error(name):
    model = tiny(name)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        model(torch.zeros(1, 4, 32, 30, 32))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 3, 32, 32, 32))
    with pytest.raises(ValueError, match="feature maps"):
        model.decode([torch.zeros(1, 4, 8, 8, 8)])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_round_trip(name):
    model = tiny(name, norm="group", channel_multiplier=2)
    config = model.config
    assert config["name"] == name
    assert json.loads(json.dumps(config)) == config
    clone = build_model_from_config(config)
    assert type(clone) is type(model) and clone.config == config
    assert {k: v.shape for k, v in clone.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert count_parameters(clone) == count_parameters(model)


def test_factory_errors_and_options(x):
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vnet")
    with pytest.raises(ValueError, match="bad parameters"):
        build_model("unet", kernel=5)
    with pytest.raises(ValueError, match="unknown norm"):
        build_model("unet", norm="layer")
    assert mc_dropout_modules(tiny("unet", dropout=0.0)) == []
    enc = tiny("unet", dropout_in_encoder=True)
    assert len(mc_dropout_modules(enc)) == 2 * enc.depth + 1
    enable_mc_dropout(enc)
    with torch.no_grad():
        assert not torch.equal(enc.encode(x)[0], enc.encode(x)[0])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_light_decoder_is_cheaper_and_equivalent_in_interface(name, x):
    torch.manual_seed(0)
    full = build_model(name, base_channels=4, depth=2, decoder="full")
    light = build_model(name, base_channels=4, depth=2, decoder="light")
    assert light(x).shape == full(x).shape == (x.shape[0], 4, *x.shape[2:])
    assert count_parameters(light) < count_parameters(full)
    assert build_model_from_config(light.config).config["decoder"] == "light"
    assert set(light.gradcam_layers()) == set(full.gradcam_layers())
    with pytest.raises(ValueError, match="decoder"):
        build_model(name, decoder="heavy")


@pytest.mark.parametrize("affine", [True, False])
def test_channels_last_instance_norm_equals_torchs_and_keeps_the_layout(affine):
    """The U-Net's instance norm: on a channels-last input without a graph (inference) the values of torch's
    (batches of several samples, a mean far from 0) and the output stays channels-last; with a graph (training,
    Grad-CAM) and for any other input, torch's own path bit for bit."""
    from BrainTumorXAILib.models.blocks import ChannelsLastInstanceNorm3d, norm_layer

    torch.manual_seed(0)
    ours = ChannelsLastInstanceNorm3d(5, affine=affine)
    if affine:
        with torch.no_grad():
            ours.weight.uniform_(0.5, 2.0), ours.bias.uniform_(-1.0, 1.0)
    theirs = nn.InstanceNorm3d(5, affine=affine)
    theirs.load_state_dict(ours.state_dict())
    x = (torch.randn(3, 5, 6, 7, 8) * torch.arange(1.0, 6.0).view(1, 5, 1, 1, 1) + 40.0)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        y_cl, y_plain = ours(x_cl), theirs(x)
        assert y_cl.is_contiguous(memory_format=torch.channels_last_3d) and not y_cl.is_contiguous()
        assert torch.allclose(y_cl, y_plain, atol=2e-5)
        assert torch.equal(ours(x), theirs(x))  # a contiguous input: torch's own path
    x_grad = x_cl.clone().requires_grad_(True)  # a graph is recorded: torch's kernels, as in training
    assert torch.equal(ours(x_grad), theirs(x_grad))
    ours.requires_grad_(False)  # grad enabled, nothing needing it (Grad-CAM before its hooked layer): no graph
    assert ours(x_cl).is_contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():  # bf16 (--precision bf16): torch's kernels too
        half = x_cl.to(torch.bfloat16)
        assert torch.equal(ours(half), theirs(half))
    assert isinstance(norm_layer("instance", 4), ChannelsLastInstanceNorm3d)
