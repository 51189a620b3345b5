"""The CUDA-only code paths: batched MC samples (the default on CUDA), mixed-precision training steps, NCCL
collectives.  They run where CUDA is present and skip elsewhere, saying why."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.models.factory import build_model

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device: the batched-MC/AMP paths run only on CUDA")


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("unet", base_channels=4, depth=2, dropout=0.3, **kw).eval()


def volume(shape=(4, 48, 32, 32), seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@needs_cuda
@pytest.mark.parametrize("encoder_dropout", [False, True])
def test_batched_mc_on_cuda_equals_one_sample_at_a_time_on_the_cpu(encoder_dropout):
    """CUDA decodes MC samples in batches (mc_batch defaults to 10 there); the statistics must not change:
    same masks (drawn on the CPU from the seed), same moments, over several windows, with Grad-CAM."""
    torch.backends.cudnn.deterministic = True
    model, x = tiny_model(dropout_in_encoder=encoder_dropout), volume()
    kw = dict(window=(32, 32, 32), overlap=0.5, mc_samples=13, seed=7, gradcam_classes=(1, 2, 3))
    gpu_predictor = Predictor(model, torch.device("cuda"), **kw)
    assert gpu_predictor.mc_batch > 1
    gpu = gpu_predictor.predict(x)
    cpu = Predictor(tiny_model(dropout_in_encoder=encoder_dropout), torch.device("cpu"), mc_batch=1, **kw).predict(x)
    assert gpu.n_windows == cpu.n_windows == 2
    np.testing.assert_allclose(gpu.probabilities, cpu.probabilities, atol=2e-4)
    np.testing.assert_allclose(gpu.variance, cpu.variance, atol=5e-5)
    np.testing.assert_allclose(gpu.mutual_information, cpu.mutual_information, atol=2e-4)
    for c in (1, 2, 3):
        assert gpu.gradcam_fallback[c] == cpu.gradcam_fallback[c]
        np.testing.assert_allclose(gpu.gradcam[c], cpu.gradcam[c], atol=2e-3)
    assert float(cpu.variance.max()) > 0


@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_inference_on_cuda_approximates_fp32(precision):
    """--precision fp16/bf16 on CUDA: batched MC and Grad-CAM under autocast, float32 maps close to fp32's."""
    model, x = tiny_model(), volume()
    kw = dict(window=(32, 32, 32), overlap=0.5, mc_samples=6, seed=7, gradcam_classes=(1, 2, 3))
    exact = Predictor(model, torch.device("cuda"), **kw).predict(x)
    half = Predictor(model, torch.device("cuda"), precision=precision, **kw).predict(x)
    assert half.probabilities.dtype == np.float32 and not np.array_equal(half.probabilities, exact.probabilities)
    np.testing.assert_allclose(half.probabilities, exact.probabilities, atol=0.05)
    np.testing.assert_allclose(half.variance, exact.variance, atol=0.01)
    assert (half.probabilities.argmax(0) == exact.probabilities.argmax(0)).mean() > 0.95
    for c in (1, 2, 3):
        assert np.isfinite(half.gradcam[c]).all()
        assert np.corrcoef(half.gradcam[c].ravel(), exact.gradcam[c].ravel())[0, 1] > 0.9


@needs_cuda
def test_amp_training_steps_stay_finite_and_learn():
    """autocast + GradScaler as training uses them on CUDA: finite loss that goes down on one batch, fp32
    weights, and the scaler actually scaling."""
    device = torch.device("cuda")
    model = tiny_model().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=True)
    x = torch.from_numpy(volume((2, 4, 32, 32, 32))).to(device)
    y = (x[:, 3] > 0.5).long() + (x[:, 1] > 1.0).long()
    losses = []
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", enabled=True):
            logits = model(x)
            assert logits.dtype == torch.float16 or logits.dtype == torch.bfloat16
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    assert scaler.get_scale() > 1.0
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nccl_worker(rank: int, world: int, port: int, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    from training import distributed

    d, device = distributed.setup("cuda", timeout_min=2)
    try:
        mean = distributed.mean_over_ranks(float(rank + 1), d, device)
        gathered = distributed.gather_objects({"rank": rank}, d)
        distributed.barrier(d)
        out.put((rank, torch.distributed.get_backend(), str(device), mean, gathered))
    finally:
        distributed.teardown(d)


@pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2 or not torch.distributed.is_nccl_available(),
                    reason="NCCL needs at least two CUDA devices (one rank per GPU) and an NCCL build of torch")
def test_nccl_collectives_across_two_gpus():
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_nccl_worker, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for rank, backend, device, mean, gathered in results:
        assert backend == "nccl" and device == f"cuda:{rank}"
        assert mean == pytest.approx(1.5)
        assert gathered == [{"rank": 0}, {"rank": 1}]
