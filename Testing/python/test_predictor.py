"""Whole-volume prediction: MC Dropout statistics, seam-free masks, Grad-CAM definition."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from BrainTumorXAILib.inference import gradcam as gc
from BrainTumorXAILib.models.dropout import MCDropout3d, mc_dropout_modules
from handmade_models import explicit_mc_samples
from BrainTumorXAILib.models.factory import build_model
from BrainTumorXAILib.inference.predictor import Predictor

CPU = torch.device("cpu")


def tiny_model(name="unet", seed=0, dropout=0.3):
    torch.manual_seed(seed)
    return build_model(name, base_channels=4, depth=2, dropout=dropout).eval()


def volume(shape=(4, 32, 32, 24), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_deterministic_path_without_samples():
    maps = Predictor(tiny_model(), CPU, window=(32, 32, 24), mc_samples=0).predict(volume())
    assert maps.variance is None and maps.mutual_information is None
    np.testing.assert_allclose(maps.probabilities.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(maps.probabilities, maps.deterministic, atol=1e-6)
    assert maps.entropy.min() >= 0 and maps.entropy.max() <= np.log(4) + 1e-5


def test_mc_statistics_equal_explicit_full_passes_with_the_same_masks():
    """The cheap path (encoder once, batched decoder) must equal N full forward passes."""
    model, x, n = tiny_model(), volume(), 7
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=n, mc_batch=3, seed=5).predict(x)
    samples = explicit_mc_samples(model, x, n, seed=5)
    np.testing.assert_allclose(maps.probabilities, samples.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(maps.variance, samples.var(0, unbiased=False).numpy(), atol=1e-6)
    assert maps.variance.min() >= 0 and maps.mutual_information.min() >= 0
    assert maps.variance.max() > 0  # dropout really sampled


@pytest.mark.parametrize("gradcam", [(), (1, 2)])
def test_mc_with_encoder_dropout_equals_explicit_full_passes(gradcam):
    """Dropout in the encoder: every sample needs its own encoder pass with its own masks."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4, depth=2, dropout=0.3, dropout_in_encoder=True).eval()
    encoder_modules = [m for m in model.encoder.modules() if isinstance(m, MCDropout3d)]
    assert encoder_modules  # the configuration under test really drops encoder channels
    x, n = volume(), 6
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=n, mc_batch=4, seed=2,
                     gradcam_classes=gradcam).predict(x)
    samples = explicit_mc_samples(model, x, n, seed=2)
    np.testing.assert_allclose(maps.probabilities, samples.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(maps.variance, samples.var(0, unbiased=False).numpy(), atol=1e-6)
    assert not any(m.training for m in model.modules()) and all(m.mask is None for m in encoder_modules)


def test_same_seed_same_maps_and_other_seed_other_maps():
    model, x = tiny_model(), volume()
    a = Predictor(model, CPU, window=(32, 32, 24), mc_samples=5, seed=3).predict(x)
    b = Predictor(model, CPU, window=(32, 32, 24), mc_samples=5, seed=3).predict(x)
    c = Predictor(model, CPU, window=(32, 32, 24), mc_samples=5, seed=4).predict(x)
    np.testing.assert_array_equal(a.variance, b.variance)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert not np.allclose(a.variance, c.variance)


def test_norm_layers_stay_in_eval_and_model_mode_is_restored():
    model = build_model("unet", base_channels=4, depth=2, dropout=0.3, norm="batch").eval()
    stats_before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    Predictor(model, CPU, window=(32, 32, 24), mc_samples=4).predict(volume())
    for k, v in model.state_dict().items():
        if "running" in k:
            assert torch.equal(v, stats_before[k]), k
    assert not any(m.training for m in model.modules())
    assert all(m.mask is None for m in mc_dropout_modules(model))


def test_each_mc_sample_uses_one_mask_in_every_window():
    """Seam-free MC: the channel mask of sample s is the same in all sliding windows."""
    model = tiny_model()
    seen: list[list[torch.Tensor]] = []
    first = next(m for m in model.modules() if isinstance(m, MCDropout3d))
    handle = first.register_forward_pre_hook(lambda mod, inp: seen.append(mod.mask.clone()) if mod.training else None)
    maps = Predictor(model, CPU, window=(16, 16, 16), overlap=0.5, mc_samples=6, mc_batch=6).predict(volume())
    handle.remove()
    assert maps.n_windows > 1 and len(seen) == maps.n_windows
    for window_masks in seen[1:]:
        assert torch.equal(window_masks, seen[0])
    assert len({tuple(row.tolist()) for row in seen[0]}) > 1  # samples differ from each other


@pytest.mark.parametrize("window_batch", [1, 4, None])
def test_encoder_runs_once_per_window(window_batch):
    """Every window is encoded exactly once, whether windows go through one at a time or in batches."""
    model = tiny_model()
    entries = []
    handle = model.encoder[0].register_forward_hook(lambda mod, inp, out: entries.append(out.shape[0]))
    maps = Predictor(model, CPU, window=(16, 16, 16), mc_samples=8, gradcam_classes=(1, 2, 3),
                     window_batch=window_batch).predict(volume())
    handle.remove()
    assert maps.n_windows > 4
    assert sum(entries) == maps.n_windows  # batch entries over all calls: one per window
    if window_batch:
        assert len(entries) == -(-maps.n_windows // window_batch)  # ceil: calls of window_batch windows


def reference_gradcam(model, x, layer_name, cls, region_mask=None):
    """Textbook Grad-CAM with a full backward pass, for comparison (score over argmax == cls [& mask])."""
    store = {}
    layer = model.gradcam_layers()[layer_name]
    h1 = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    x = x.clone().requires_grad_(True)
    logits = model(x)
    h1.remove()
    region = logits.argmax(1) == cls
    if region_mask is not None:
        region = region & torch.as_tensor(region_mask)[None]
    region = region.float()
    score = (logits[:, cls] * region).sum()
    (grad,) = torch.autograd.grad(score, store["a"])
    cam = F.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * store["a"]).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)[0, 0].detach()


@pytest.mark.parametrize("arch", ["unet", "resunet", "attunet"])
def test_gradcam_matches_textbook_definition(arch):
    model = tiny_model(arch)
    x = torch.from_numpy(volume())[None]
    layer_name, layer = gc.resolve_layer(model, None)
    assert layer_name != f"decoder.{model.depth - 1}"  # never the layer feeding the 1x1x1 head
    with torch.no_grad():
        out = gc.gradcam_from_features(model, model.encode(x), layer, [0, 1, 2, 3], method="gradcam")
    for cls in range(4):
        if not bool((out.logits.argmax(1) == cls).any()):
            continue
        np.testing.assert_allclose(out.cams[cls][0].numpy(), reference_gradcam(model, x, layer_name, cls).numpy(),
                                   rtol=1e-4, atol=1e-6)
    assert all(p.requires_grad for p in model.parameters())  # parameters unfrozen again


def test_gradcam_maps_in_unit_range_and_absent_class_falls_back():
    model = tiny_model()
    x = volume()
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=0, gradcam_classes=(1, 2, 3)).predict(x)
    predicted = maps.probabilities.argmax(0)
    for c in (1, 2, 3):
        cam = maps.gradcam[c]
        assert cam.shape == x.shape[1:]
        assert cam.min() >= 0 and cam.max() <= 1
        assert maps.gradcam_fallback[c] == (not (predicted == c).any())
    # Force absence: a brain mask of nothing forces background everywhere.
    empty = Predictor(model, CPU, window=(32, 32, 24), mc_samples=0, gradcam_classes=(3,)).predict(
        x, brain_mask=np.zeros(x.shape[1:], bool))
    assert empty.gradcam_fallback[3] is True
    assert empty.gradcam[3].max() == 0.0  # no brain, nothing to explain


def test_gradcam_is_zero_outside_the_brain_and_normalised_inside():
    model, x = tiny_model(), volume()
    brain = np.zeros(x.shape[1:], bool)
    brain[4:28, 6:26, 3:20] = True
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=0, gradcam_classes=(1, 2, 3)).predict(x, brain)
    for c in (1, 2, 3):
        cam = maps.gradcam[c]
        assert cam[~brain].max() == 0.0
        assert cam[brain].max() == pytest.approx(1.0)


def test_gradcam_score_region_and_fallback_use_the_brain_masked_window_prediction():
    """S_c sums over the window's argmax == c inside the brain; absent means no such voxel anywhere."""
    model, x = tiny_model(), volume()
    with torch.no_grad():
        raw = model(torch.from_numpy(x)[None]).argmax(1)[0].numpy()
    counts = np.bincount(raw.ravel(), minlength=4)
    hidden = int(np.argsort(counts)[-2])  # a class predicted in many voxels ...
    brain = raw != hidden  # ... but only outside the brain
    brain[:2] = False  # and some padding with other classes outside too
    layer_name = gc.resolve_layer(model, None)[0]
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=3, gradcam_classes=(1, 2, 3),
                     gradcam_method="gradcam").predict(x, brain)
    for c in (1, 2, 3):
        inside = bool((brain & (raw == c)).any())
        assert maps.gradcam_fallback[c] == (not inside)
        cam = maps.gradcam[c]
        assert cam[~brain].max() == 0.0
        if inside:
            ref = reference_gradcam(model, torch.from_numpy(x)[None], layer_name, c, brain).numpy()
            ref = np.where(brain, ref, 0.0)
            ref = ref / ref.max() if ref.max() > 0 else ref
            np.testing.assert_allclose(cam, ref, rtol=1e-4, atol=1e-5)
    assert hidden != 0 and maps.gradcam_fallback[hidden]  # predicted only outside the brain: absent


def test_unknown_gradcam_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="decoder.0"):
        Predictor(tiny_model(), CPU, mc_samples=0, gradcam_classes=(1,), gradcam_layer="nope")


def test_attention_maps_exported_for_attunet():
    maps = Predictor(tiny_model("attunet"), CPU, window=(32, 32, 24), mc_samples=2).predict(volume())
    assert maps.attention and all(a.shape == (32, 32, 24) for a in maps.attention.values())
    assert all(0 <= a.min() and a.max() <= 1 for a in maps.attention.values())


def test_mc_only_run_skips_the_deterministic_decoder_pass():
    model = tiny_model()
    decodes = []
    handle = model.head.register_forward_hook(lambda mod, inp, out: decodes.append(out.shape[0]))
    maps = Predictor(model, CPU, window=(32, 32, 24), mc_samples=5).predict(volume())
    handle.remove()
    assert maps.deterministic is None
    assert sum(decodes) == 5 * maps.n_windows  # one decoder run per MC sample, nothing else


def test_batched_windows_and_samples_equal_one_at_a_time():
    """Batching windows (encoder, Grad-CAM, fallback) and MC samples changes no value beyond rounding."""
    model, x = tiny_model(), volume()
    brain = np.zeros(x.shape[1:], bool)
    brain[2:30, 3:29, 2:22] = True
    kwargs = dict(window=(16, 16, 16), overlap=0.5, mc_samples=5, seed=7, gradcam_classes=(1, 2, 3))
    one = Predictor(model, CPU, window_batch=1, mc_batch=1, **kwargs).predict(x, brain)
    many = Predictor(model, CPU, window_batch=7, mc_batch=5, **kwargs).predict(x, brain)
    assert one.n_windows == many.n_windows > 7
    for name in ("probabilities", "deterministic", "variance", "entropy", "mutual_information"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), atol=2e-5, err_msg=name)
    assert many.gradcam_fallback == one.gradcam_fallback
    for c in (1, 2, 3):
        np.testing.assert_allclose(many.gradcam[c], one.gradcam[c], atol=2e-5)
    assert all(m.max() > 0 for m in many.gradcam.values())


def test_channels_last_mc_decode_matches_contiguous_and_restores_the_weights():
    """The CPU MC path runs channels-last (weights too, for a while): same statistics, the model's weights left
    exactly as they were (contiguous, or channels-last as a training model keeps them)."""
    model, x = tiny_model(seed=4), volume(seed=6)
    fast = Predictor(model, CPU, window=(32, 32, 24), mc_samples=6, mc_batch=3, seed=1)
    assert fast.channels_last
    a = fast.predict(x)
    for p in model.parameters():
        assert p.is_contiguous()
    trained = tiny_model(seed=4).to(memory_format=torch.channels_last_3d)
    before = {n: (p.data_ptr(), p.stride()) for n, p in trained.named_parameters()}
    Predictor(trained, CPU, window=(32, 32, 24), mc_samples=2, seed=1).predict(x)
    assert before == {n: (p.data_ptr(), p.stride()) for n, p in trained.named_parameters()}
    plain = Predictor(model, CPU, window=(32, 32, 24), mc_samples=6, mc_batch=3, seed=1)
    plain.channels_last = False
    b = plain.predict(x)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-5)
    np.testing.assert_allclose(a.variance, b.variance, atol=2e-6)
    np.testing.assert_allclose(a.mutual_information, b.mutual_information, atol=2e-5)


@pytest.mark.parametrize("decoder", ["light", "full"])
@pytest.mark.parametrize("name", ["unet", "attunet"])
def test_mc_decode_of_broadcast_features_equals_decode_of_copies(decoder, name):
    """The MC path feeds the shared encoder features as stride-0 views over the samples: the same logits,
    bit for bit, as the per-batch copies it used to make, and the same maps from the predictor."""
    from BrainTumorXAILib.inference.predictor import _weights_channels_last
    from BrainTumorXAILib.models.dropout import draw_masks, mc_dropout_mode, set_masks

    torch.manual_seed(3)
    model = build_model(name, base_channels=4, depth=2, dropout=0.3, decoder=decoder).eval()
    x, n = torch.from_numpy(volume(shape=(4, 32, 32, 24)))[None], 4
    layout = dict(memory_format=torch.channels_last_3d)
    with torch.no_grad(), mc_dropout_mode(model), _weights_channels_last(model, True):
        feats = [f.contiguous(**layout) for f in model.encode(x)]
        set_masks(model, draw_masks(model, n, torch.Generator().manual_seed(2)))
        copies = model.decode([f.expand(n, *f.shape[1:]).contiguous(**layout) for f in feats])
        views = model.decode([f.expand(n, *f.shape[1:]) for f in feats])
        set_masks(model, None)
    assert torch.equal(copies, views) and copies.std() > 0


def test_bf16_precision_approximates_the_exact_path_and_keeps_float32_outputs():
    """--precision bf16: the network in bfloat16 under autocast; probabilities, MC moments and CAMs come
    back float32 and close to the exact path (a random tiny network: its logits are near each other,
    the hardest case for the argmax); fp32, the default, is the exact path itself."""
    model, x = tiny_model(), volume()
    kw = dict(window=(32, 32, 24), mc_samples=6, mc_batch=3, seed=5, gradcam_classes=(1, 2, 3))
    exact = Predictor(model, CPU, **kw).predict(x)
    again = Predictor(model, CPU, precision="fp32", **kw).predict(x)
    assert all(np.array_equal(getattr(exact, k), getattr(again, k)) for k in ("probabilities", "variance"))
    half = Predictor(model, CPU, precision="bf16", **kw).predict(x)
    for name in ("probabilities", "variance", "entropy", "mutual_information"):
        assert getattr(half, name).dtype == np.float32
    np.testing.assert_allclose(half.probabilities, exact.probabilities, atol=0.05)
    assert np.abs(half.probabilities - exact.probabilities).mean() < 0.005
    np.testing.assert_allclose(half.variance, exact.variance, atol=0.01)
    agree = (half.probabilities.argmax(0) == exact.probabilities.argmax(0)).mean()
    assert agree > 0.95
    assert not np.array_equal(half.probabilities, exact.probabilities)  # bf16 really ran
    for c in (1, 2, 3):
        assert half.gradcam[c].dtype == np.float32
        # 0.92-0.999 here (3% of class 3's score region flips with the argmax); 0.9996 on the shipped
        # model and a real case (Testing/benchmark.py --real-size prints it)
        assert np.corrcoef(half.gradcam[c].ravel(), exact.gradcam[c].ravel())[0, 1] > 0.9


def test_the_network_runs_in_bfloat16_under_bf16_precision():
    from BrainTumorXAILib.inference.precision import autocast, resolve_precision

    model = tiny_model()
    with torch.no_grad(), autocast(CPU, resolve_precision("bf16", CPU)):
        feats = model.encode(torch.from_numpy(volume())[None])
        logits = model.decode(feats)
    assert feats[0].dtype == torch.bfloat16 and logits.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_precision_names_resolve_per_device_and_bad_ones_are_one_line_errors():
    from BrainTumorXAILib.errors import BrainTumorXAIError
    from BrainTumorXAILib.inference.precision import native_bf16, precision_name, resolve_precision

    assert resolve_precision("fp32", CPU) is None and resolve_precision(None, CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_precision("auto", CPU) is (torch.bfloat16 if native_bf16(CPU) else None)
    assert resolve_precision("fp16", torch.device("cuda")) is torch.float16
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == ["fp32", "bf16", "fp16"]
    with pytest.raises(BrainTumorXAIError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(BrainTumorXAIError, match="unknown precision 'half'"):
        resolve_precision("half", CPU)
