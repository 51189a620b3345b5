"""Sequence evidence: which input sequence each class's call rests on (hand-made networks with known answers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from BrainTumorXAILib.inference.sequence_evidence import sequence_evidence, unread_channels
from handmade_models import linear_unet

CPU = torch.device("cpu")
SHAPE = (24, 24, 24)
T1CE, FLAIR = 0, 1
# Features f = (t1ce+, t1ce-, flair+, flair-) (handmade_models); logits: background 1, NCR never,
# ED 2 flair, ET 2 t1ce + flair - 2.  Oedema is bright on FLAIR only, enhancement bright on T1ce (and FLAIR).
HEAD_W = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [2, 0, 1, 0]]
HEAD_B = [1, -20, 0, -2]


def two_sequence_case(seed=0):
    """A sphere of enhancement (T1ce 2.5, FLAIR 2) inside a shell of oedema (FLAIR 2), faint noise elsewhere."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(sum((g - 12.0) ** 2 for g in np.mgrid[:24, :24, :24]))
    volume = rng.normal(0.0, 0.05, (2, *SHAPE)).astype(np.float32)
    volume[FLAIR][r < 8] += 2.0
    volume[T1CE][r < 4] += 2.5
    return volume, np.ones(SHAPE, bool), r


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_enhancement_rests_on_t1ce_and_oedema_on_flair(method):
    model = linear_unet(HEAD_W, HEAD_B, channel=T1CE, second_channel=FLAIR, dropout=0.0, in_channels=2)
    volume, brain, r = two_sequence_case()
    ev = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method=method)
    classes = ev.table["classes"]
    assert classes["ET"]["predicted_voxels"] > 0 and classes["ED"]["predicted_voxels"] > 0
    assert classes["ET"]["share"]["t1ce"] >= 0.7
    assert classes["ED"]["share"]["flair"] >= 0.7
    assert classes["NCR"]["share"] is None  # not predicted: no evidence to share
    # T1 and T2 are not inputs of this network: zero, and the table says they are not read.
    assert classes["ET"]["share"]["t1"] == 0.0 and classes["ED"]["share"]["t2"] == 0.0
    assert not ev.table["sequences"]["t1"]["read"] and ev.table["sequences"]["t1ce"]["read"]
    # The maps lie where the evidence is: the T1ce map of ET inside the enhancing sphere, on the case's grid.
    et_t1ce = ev.maps[(3, "t1ce")]
    assert et_t1ce.shape == SHAPE and et_t1ce.min() >= 0.0 and et_t1ce.max() <= 1.0
    assert et_t1ce[r < 4].mean() > 10 * max(et_t1ce[r > 9].mean(), 1e-6)


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_a_channel_the_network_ignores_carries_exactly_zero(method):
    # Reads only channel 0 (its first convolution's weights for channel 1 are zero).
    model = linear_unet([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [3, 0, 0, 0]], [1, -20, -20, -2],
                        channel=0, dropout=0.0, in_channels=2)
    volume, brain, _ = two_sequence_case(1)
    assert unread_channels(model) == {1}
    ev = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method=method, skip_unread=False)
    et = ev.table["classes"]["ET"]
    assert et["predicted_voxels"] > 0
    assert et["drop"]["flair"] == 0.0 and et["share"]["flair"] == 0.0 and et["share"]["t1ce"] == 1.0
    assert not ev.maps[(3, "flair")].any()
    # Skipped by default (no pass run), with the same answer, and the table says it is not read.
    skipped = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method=method)
    assert skipped.table["classes"]["ET"]["share"]["flair"] == 0.0
    assert not skipped.table["sequences"]["flair"]["read"] and (3, "flair") not in skipped.maps


def test_a_missing_sequence_carries_no_evidence_and_unknown_methods_fail():
    model = linear_unet(HEAD_W, HEAD_B, channel=T1CE, second_channel=FLAIR, dropout=0.0, in_channels=2)
    volume, brain, _ = two_sequence_case()
    volume[FLAIR] = 0.0  # not acquired: fed as zeros, as analyze does
    ev = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, missing=("flair",))
    assert not ev.table["sequences"]["flair"]["acquired"]
    assert all(v["drop"] is None or v["drop"]["flair"] == 0.0 for v in ev.table["classes"].values())
    with pytest.raises(ValueError, match="occlusion, ig"):
        sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method="shap")


def test_integrated_gradients_add_up_to_the_occlusion_drop():
    """Completeness: one path per sequence, so its attributions sum to what removing that sequence costs."""
    model = linear_unet(HEAD_W, HEAD_B, channel=T1CE, second_channel=FLAIR, dropout=0.0, in_channels=2)
    volume, brain, _ = two_sequence_case()
    occlusion = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE).table["classes"]
    ig = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method="ig").table["classes"]
    for name in ("ED", "ET"):
        for seq in ("t1ce", "flair"):
            assert ig[name]["drop"][seq] == pytest.approx(occlusion[name]["drop"][seq], abs=0.01)


@pytest.mark.parametrize("method", ["occlusion", "ig"])
def test_the_figure_shows_each_map_with_a_colour_bar_that_names_its_unit(method):
    from BrainTumorXAILib.io.labels import CLASS_NAMES
    from BrainTumorXAILib.reporting.evidence_report import MAP_UNITS, draw_evidence

    model = linear_unet(HEAD_W, HEAD_B, channel=T1CE, second_channel=FLAIR, dropout=0.0, in_channels=2)
    volume, brain, r = two_sequence_case()
    ev = sequence_evidence(model, CPU, volume, brain, ["t1ce", "flair"], SHAPE, method=method)
    maps = {(CLASS_NAMES[c], s): m for (c, s), m in ev.maps.items()}
    classes = np.where(r < 4, 3, np.where(r < 8, 2, 0)).astype(np.uint8)
    fig = draw_evidence(ev.table, maps, volume[T1CE], classes, np.eye(4))
    bars = [ax for ax in fig.axes if ax.get_ylabel() == MAP_UNITS[method]]
    assert len(bars) == len(ev.table["classes"])  # one per class row
    assert all(ax.get_ylim() == (0.0, 1.0) for ax in bars)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"ET from T1ce", "ET from FLAIR", "ED from FLAIR"} <= titles
