"""Sliding-window tiling/blending and the streaming MC statistics."""

import numpy as np
import pytest
import torch

from BrainTumorXAILib.inference.sliding_window import BlendAccumulator, gaussian_weight, make_tiling
from BrainTumorXAILib.inference.uncertainty import MomentAccumulator, entropy, mutual_information


@pytest.mark.parametrize("shape,window", [((64, 80, 48), (32, 32, 32)), ((30, 31, 17), (32, 32, 32)),
                                          ((96, 96, 96), (96, 96, 96)), ((100, 64, 70), (48, 64, 32))])
def test_tiling_covers_volume_and_stays_inside(shape, window):
    tiling = make_tiling(shape, window, overlap=0.5)
    covered = np.zeros(shape, dtype=int)
    for box in tiling.boxes:
        assert all(s.stop <= n for s, n in zip(box, shape))
        assert tuple(s.stop - s.start for s in box) == tiling.window
        covered[box] += 1
    assert covered.min() >= 1


def test_blending_a_constant_gives_the_constant():
    shape = (40, 50, 36)
    tiling = make_tiling(shape, (24, 24, 24), overlap=0.5)
    weight = gaussian_weight(tiling.window)
    acc = BlendAccumulator(shape, {"v": 2})
    for box in tiling.boxes:
        acc.add(box, weight, {"v": torch.tensor([3.0, -1.0])[:, None, None, None].expand(2, *tiling.window)})
    out = acc.result("v")
    assert torch.allclose(out[0], torch.full(shape, 3.0), atol=1e-5)
    assert torch.allclose(out[1], torch.full(shape, -1.0), atol=1e-5)


def test_gaussian_weight_peaks_in_centre_and_is_positive():
    g = gaussian_weight((17, 17, 9))
    assert float(g.min()) > 0
    assert tuple(int(i) for i in np.unravel_index(int(g.argmax()), g.shape)) == (8, 8, 4)


def test_moment_accumulator_matches_direct_statistics_in_any_chunking():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(23, 4, 5, 6, 7, generator=gen)
    samples = torch.softmax(logits, dim=1)
    expected_mean = samples.mean(0)
    expected_var = samples.var(0, unbiased=False)  # over samples only, per class
    expected_ent = entropy(samples, dim=1).mean(0)
    for chunk in (1, 4, 7, 23):
        acc = MomentAccumulator()
        for start in range(0, 23, chunk):
            acc.update(samples[start:start + chunk])
        assert acc.count == 23
        assert torch.allclose(acc.mean, expected_mean, atol=1e-6)
        assert torch.allclose(acc.variance, expected_var, atol=1e-6)
        assert torch.allclose(acc.mean_entropy, expected_ent, atol=1e-6)
        assert acc.variance.shape == (4, 5, 6, 7)


def test_mutual_information_zero_for_identical_samples_and_positive_for_disagreement():
    p = torch.softmax(torch.randn(4, 3, 3, 3), dim=0)
    same = MomentAccumulator()
    same.update(torch.stack([p, p, p]))
    assert float(mutual_information(same.mean, same.mean_entropy).max()) < 1e-6
    disagree = MomentAccumulator()
    one_hot = torch.eye(4)[:, :, None, None, None].expand(4, 4, 3, 3, 3)
    disagree.update(one_hot)  # four confident samples, each a different class
    mi = mutual_information(disagree.mean, disagree.mean_entropy)
    assert torch.allclose(mi, torch.full_like(mi, float(np.log(4))), atol=1e-5)
