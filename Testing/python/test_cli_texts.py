"""What the command line says: help on every option with true defaults, one monotone progress bar, where the
outputs went, and every missing sequence named at once."""

from __future__ import annotations

import argparse
import io
import shutil

import pytest

from BrainTumorXAILib import cli
from BrainTumorXAILib.analyze import STAGE_WEIGHTS, AnalysisOptions, analyze_case
from BrainTumorXAILib.console import AnalysisProgress
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.runtime import JobControl
from test_missing_sequences import _checkpoint, _without


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_of_every_subcommand_has_help_text():
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), f"{name} {'/'.join(action.option_strings) or action.dest}"


def _help(command: str) -> str:
    return " ".join(_subparsers()[command].format_help().split())  # unwrapped


def test_analyze_help_states_real_defaults_without_code_names():
    from BrainTumorXAILib.inference.postprocess import MIN_ET_ML
    from BrainTumorXAILib.inference.predictor import MC_VOXEL_BUDGET, batch_for
    from BrainTumorXAILib.inference.tta import DEFAULT_FLIPS

    text = _help("analyze")
    assert "inference.tta" not in text and "DEFAULT_FLIPS" not in text
    assert f"(default: {DEFAULT_FLIPS}, no flips)" in text and cli.TTA_DEFAULT_FLIPS == DEFAULT_FLIPS
    assert f"(default: {MIN_ET_ML} mL" in text and cli.MIN_ET_ML_DEFAULT == MIN_ET_ML
    window = 128 ** 3  # the default checkpoint's window, as the help says
    cpu, cuda = (batch_for(d, window, 20, MC_VOXEL_BUDGET) for d in ("cpu", "cuda"))
    assert f"{cpu} on CPU and up to {cuda} on CUDA" in text
    assert "--mc-samples" in text and "(default: 20)" in text


def test_view_help_documents_host_port_samples_gradcam_with_defaults():
    text = _help("view")
    for option, default in (("--host", "127.0.0.1"), ("--port", "8080"), ("--mc-samples", "20"),
                            ("--gradcam", "all"), ("--max-sessions", "4")):
        start = text.index(option + " ", text.index("options:"))
        assert f"(default: {default})" in text[start:start + 300], option


def test_progress_never_moves_back_when_parallel_stages_end_out_of_order():
    seen = []
    control = JobControl(lambda stage, fraction, message="": seen.append(fraction), stage_weights=STAGE_WEIGHTS)
    for stage, fraction in (("load", 0), ("inference", 0.5), ("inference", 1), ("resample", 0), ("outputs", 1),
                            ("resample", 0.5), ("inference", 0.2)):
        control.report(stage, fraction)
    assert seen == sorted(seen) and seen[-1] == 1.0
    passes = [control.share("inference", i, 3) for i in range(3)]  # e.g. test-time flips: each a third
    control2_seen = []
    control2 = JobControl(lambda s, f, m="": control2_seen.append(f), stage_weights={"inference": 1})
    for i in range(3):
        for f in (0.0, 0.5, 1.0):
            control2.share("inference", i, 3).report("inference", f)
    assert control2_seen == pytest.approx([0, 1 / 6, 1 / 3, 1 / 3, 1 / 2, 2 / 3, 2 / 3, 5 / 6, 1])
    assert passes[0].cancel_event is control.cancel_event


def test_analysis_progress_is_monotone_with_honest_stages(small_case, tiny_checkpoint, tmp_path):
    """A real run with test-time flips and the parallel output jobs: the bar only moves forward, the stages
    come in their running order, the outputs stage names what it writes, and it ends at 100 %."""
    events = []
    control = JobControl(lambda stage, fraction, message="": events.append((stage, fraction, message)),
                         stage_weights=STAGE_WEIGHTS)
    analyze_case(small_case, tmp_path / "out", AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=2,
                                                               tta=2, gradcam="ET", surfaces=False), control)
    fractions = [f for _, f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    order = list(STAGE_WEIGHTS)
    stages = [order.index(s) for s, _, _ in events if s in order]
    assert stages == sorted(stages)
    assert any("pass 2/2" in m for s, _, m in events if s == "inference")
    done = [m for s, _, m in events if s == "outputs" and "done" in m]
    assert any(m.startswith("figures done") for m in done) and any(m.startswith("volumes done") for m in done)


def test_eta_waits_for_the_inference_rate():
    now = [0.0]
    progress = AnalysisProgress(stream=io.StringIO(), clock=lambda: now[0])
    progress("load", 0.0)
    now[0] = 2.0
    progress("inference", 0.05, "window 1/8")
    assert progress.eta(0.05) is None
    now[0] = 4.0
    assert progress.eta(0.1) is None  # 5 points since inference began: not yet a rate
    now[0] = 12.0
    assert progress.eta(0.45) == pytest.approx(10 / 0.4 * 0.55)
    progress.close()


def test_analyze_prints_where_outputs_went_and_what_was_missing(small_case, tmp_path, capsys):
    weights, _ = _checkpoint(tmp_path / "opt.pt", optional=("t1", "t2"))
    case = _without(small_case, tmp_path)
    out = tmp_path / "out"
    code = cli.main(["analyze", str(case), "--out", str(out), "--weights", str(weights), "--device", "cpu",
                     "--mc-samples", "0", "--gradcam", "none", "--no-surfaces"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "missing: T1, T2" in printed
    assert "enhancement check (is ET brighter on T1ce than on T1?) skipped: no T1 image" in printed
    assert f"segmentation  {out / 'seg.nii.gz'}" in printed and f"figures       {out / 'figures'}/" in printed
    assert f"summary       {out / 'summary.json'}" in printed


def test_every_missing_sequence_is_named_at_once(small_case, tmp_path):
    case = _without(small_case, tmp_path, drop=("t1", "t2", "flair"))
    with pytest.raises(BrainTumorXAIError, match=r"missing t1, t2 and flair images; expected .*_t1\.nii\.gz.*"
                                                 r"_t2\.nii\.gz.*_flair\.nii\.gz"):
        load_case(case)
    single = tmp_path / "single"
    shutil.copytree(small_case, single)
    next(single.glob("*_t2.nii.gz")).unlink()
    with pytest.raises(BrainTumorXAIError, match=r"missing t2 image; expected"):
        load_case(single)
