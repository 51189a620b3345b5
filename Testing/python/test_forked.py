"""Work in forked child processes (``BrainTumorXAILib.forked``): results, errors and deaths come back to the
parent; the analysis's figures drawn in a child are the figures drawn in a thread."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from BrainTumorXAILib import forked
from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.errors import BrainTumorXAIError, CaseError
from BrainTumorXAILib.reporting import case_outputs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking is used on Linux only")


def test_the_result_and_its_seconds_come_back():
    big = np.arange(1_000_000, dtype=np.float32)  # inherited, not pickled on the way in
    value, seconds = forked.ForkedCall(lambda: float(big.sum()), "sum").result()
    assert value == float(big.sum()) and seconds >= 0.0


def test_an_error_is_raised_in_the_parent_with_its_path():
    def fail():
        raise CaseError("/data/case/flair.nii.gz", "truncated gzip stream")

    with pytest.raises(CaseError, match="flair.nii.gz: truncated gzip stream") as caught:
        forked.ForkedCall(fail, "figures").result()
    assert str(caught.value.path) == "/data/case/flair.nii.gz"


def test_a_child_that_dies_is_one_line_with_its_exit_code():
    with pytest.raises(BrainTumorXAIError, match=r"figures: the worker process ended without a result \(exit code 3\)"):
        forked.ForkedCall(lambda: os._exit(3), "figures").result()


def test_kill_ends_a_running_child():
    call = forked.ForkedCall(lambda: time.sleep(60), "slow")
    t0 = time.perf_counter()
    call.kill()
    assert time.perf_counter() - t0 < 10 and not call._process.is_alive()


def test_a_child_runs_multithreaded_torch_work_after_the_parent_used_its_pool():
    """torch's OpenMP pool does not survive a fork: without ``make_fork_safe`` this child waits forever."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    torch.set_num_threads(max(2, torch.get_num_threads()))
    x = torch.rand(1, 4, 80, 96, 80)
    F.interpolate(x, size=(160, 192, 160), mode="trilinear")  # the parent's pool now exists
    expected = float(F.interpolate(x, size=(160, 192, 160), mode="trilinear").mean())
    value, _ = forked.ForkedCall(lambda: float(F.interpolate(x, size=(160, 192, 160), mode="trilinear").mean()),
                                 "trust report").result(timeout=60)
    assert value == pytest.approx(expected, rel=1e-6)


def test_a_child_past_its_timeout_is_killed_and_named():
    call = forked.ForkedCall(lambda: time.sleep(60), "figures")
    with pytest.raises(BrainTumorXAIError, match=r"figures: the worker process gave no result within 0.5 s"):
        call.result(timeout=0.5)
    assert not call._process.is_alive()


def test_figures_and_trust_report_made_in_children_equal_those_made_in_threads(small_case, tiny_checkpoint, tmp_path, monkeypatch):
    options = dict(weights=tiny_checkpoint, device="cpu", mc_samples=2, surfaces=False)
    drawn_in = []
    real = case_outputs.ForkedCall

    def recorded(fn, what):
        drawn_in.append(what)
        return real(fn, what)

    # Forced on: earlier tests in this process may have imported slicer-core's 'slicer', which turns forking off.
    monkeypatch.setattr(case_outputs, "fork_available", lambda: True)
    monkeypatch.setattr(case_outputs, "ForkedCall", recorded)
    in_child = analyze_case(small_case, tmp_path / "child", AnalysisOptions(**options))
    assert drawn_in == ["figures", "uncertainty and Grad-CAM figures", "trust report"]  # two figure lanes
    monkeypatch.setattr(case_outputs, "fork_available", lambda: False)
    in_thread = analyze_case(small_case, tmp_path / "thread", AnalysisOptions(**options))
    assert in_child["outputs"]["figures"] == in_thread["outputs"]["figures"]
    assert "figures/evidence.png" in in_child["outputs"]["figures"]
    assert in_child["outputs"]["sequence_evidence"]["figure"] == "figures/evidence.png"
    for name in in_child["outputs"]["figures"]:
        a = np.asarray(Image.open(tmp_path / "child" / name))
        b = np.asarray(Image.open(tmp_path / "thread" / name))
        assert a.shape == b.shape and np.array_equal(a, b), name
    assert in_child["timings_s"]["figures"] > 0 and in_child["timings_s"]["figures_maps"] > 0
    # Both lanes' figures, in the one order of figures.FIGURE_KINDS, the evidence figure last.
    stems = [Path(name).stem.split("_")[0] for name in in_child["outputs"]["figures"]]
    assert stems == ["overview"] * 3 + ["probabilities"] * 3 + ["uncertainty"] * 3 + ["gradcam"] * 3 + ["evidence"]
    child_trust, thread_trust = in_child["trust_report"], in_thread["trust_report"]
    assert child_trust["review"] == thread_trust["review"] and child_trust["figures"] == thread_trust["figures"]
    assert child_trust["uncertainty_quality"] == thread_trust["uncertainty_quality"]
    for name in child_trust["figures"]:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "child" / name)),
                              np.asarray(Image.open(tmp_path / "thread" / name))), name


def test_a_cancel_ends_the_figures_child_and_leaves_nothing(small_case, tiny_checkpoint, tmp_path, monkeypatch):
    from BrainTumorXAILib.runtime import Cancelled, JobControl

    children = []
    real = case_outputs.ForkedCall

    def recorded(fn, what):
        children.append(real(fn, what))
        return children[-1]

    monkeypatch.setattr(case_outputs, "fork_available", lambda: True)
    monkeypatch.setattr(case_outputs, "ForkedCall", recorded)
    monkeypatch.setattr(case_outputs, "_draw_figures", lambda *a: time.sleep(120))  # a figure that never ends

    def cancel_when_the_threads_are_done(stage, fraction, message=""):
        if stage == "outputs" and "metrics done" in message:
            control.cancel()

    control = JobControl(cancel_when_the_threads_are_done)
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        analyze_case(small_case, tmp_path / "out", AnalysisOptions(weights=tiny_checkpoint, device="cpu",
                                                                   mc_samples=0, surfaces=False), control)
    assert time.perf_counter() - t0 < 60
    assert children and not any(c._process.is_alive() for c in children)
    assert list(tmp_path.iterdir()) == []


def test_a_silent_figures_child_is_replaced_by_drawing_here(small_case, tiny_checkpoint, tmp_path, monkeypatch):
    """A worker that hangs (as torch's OpenMP pool once made one) costs the grace period, not the analysis."""
    children, messages = [], []
    real_call, real_draw = case_outputs.ForkedCall, case_outputs._draw_figures
    parent = os.getpid()

    def recorded(fn, what):
        children.append(real_call(fn, what))
        return children[-1]

    def hangs_in_a_child(*args):
        if os.getpid() != parent:
            time.sleep(120)
        return real_draw(*args)

    from BrainTumorXAILib.runtime import JobControl

    monkeypatch.setattr(case_outputs, "fork_available", lambda: True)
    monkeypatch.setattr(case_outputs, "ForkedCall", recorded)
    monkeypatch.setattr(case_outputs, "_draw_figures", hangs_in_a_child)
    monkeypatch.setattr(case_outputs, "FORKED_JOB_GRACE_S", 2.0)
    control = JobControl(lambda stage, fraction, message="": messages.append(message))
    t0 = time.perf_counter()
    summary = analyze_case(small_case, tmp_path / "out", AnalysisOptions(weights=tiny_checkpoint, device="cpu",
                                                                        mc_samples=0, surfaces=False), control)
    assert time.perf_counter() - t0 < 60
    assert children and not any(c._process.is_alive() for c in children)
    assert any("figures: the worker process gave no result within 2 s" in m for m in messages)
    assert summary["outputs"]["figures"]
    for name in summary["outputs"]["figures"]:
        assert Image.open(tmp_path / "out" / name).size[0] > 0
