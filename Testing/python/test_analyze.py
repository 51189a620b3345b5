"""``analyze`` end to end on small synthetic cases with a tiny network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case
from BrainTumorXAILib.io.case_io import load_case
from BrainTumorXAILib.cli import main
from BrainTumorXAILib.runtime import Cancelled, JobControl
from BrainTumorXAILib.reporting.surfaces import read_surface


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def oblique_result(oblique_case, tiny_checkpoint, tmp_path_factory):
    before = digest(oblique_case)
    out = tmp_path_factory.mktemp("analyze") / "result"
    summary = analyze_case(oblique_case, out, AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=3,
                                                              gradcam="all", seed=1))
    assert digest(oblique_case) == before  # inputs untouched
    return out, summary


def test_every_volume_is_on_the_input_grid(oblique_case, oblique_result):
    out, summary = oblique_result
    case = load_case(oblique_case)
    volumes = sorted(out.glob("*.nii.gz"))
    names = {p.name for p in volumes}
    expected = {"seg.nii.gz", "entropy.nii.gz", "mutual_information.nii.gz"}
    expected |= {f"prob_{c}.nii.gz" for c in ("background", "NCR", "ED", "ET")}
    expected |= {f"mc_variance_{c}.nii.gz" for c in ("background", "NCR", "ED", "ET")}
    expected |= {f"gradcam_{c}.nii.gz" for c in ("NCR", "ED", "ET")}
    assert expected <= names
    for path in volumes:
        img = nib.load(path)
        assert img.shape == case.shape, path.name
        np.testing.assert_allclose(img.affine, case.affine, atol=1e-5, err_msg=path.name)


def test_probabilities_variance_gradcam_ranges(oblique_result):
    out, summary = oblique_result
    probs = np.stack([nib.load(out / f"prob_{c}.nii.gz").get_fdata() for c in ("background", "NCR", "ED", "ET")])
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert probs.min() >= 0
    for c in ("background", "NCR", "ED", "ET"):
        assert nib.load(out / f"mc_variance_{c}.nii.gz").get_fdata().min() >= 0
    for c in ("NCR", "ED", "ET"):
        cam = nib.load(out / f"gradcam_{c}.nii.gz").get_fdata()
        assert cam.min() >= 0 and cam.max() <= 1 + 1e-6
    seg = np.asarray(nib.load(out / "seg.nii.gz").dataobj)
    # brats2023 case: ET is written back as 3, never 4; seg is the argmax of the probabilities, except where the
    # post-processing made predicted ET necrotic core, as much as summary.json says
    assert set(np.unique(seg)) <= {0, 1, 2, 3}
    argmax = np.array([0, 1, 2, 3])[probs.argmax(0)]
    changed = seg != argmax
    assert (argmax[changed] == 3).all() and (seg[changed] == 1).all()
    steps = summary["postprocessing"]
    relabelled = steps["enhancement_check"]["et_ml_relabelled"] + (
        steps["small_et"]["et_ml_predicted"] if steps["small_et"]["applied"] else 0.0)
    voxel_ml = abs(np.linalg.det(nib.load(out / "seg.nii.gz").affine[:3, :3])) / 1000
    assert changed.sum() * voxel_ml == pytest.approx(relabelled, rel=1e-3)  # spacing from the header, not the det


def test_summary_and_surfaces(oblique_case, oblique_result):
    out, summary = oblique_result
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["case"]["naming"] == "brats2023"
    assert set(on_disk["volumes_cm3"]["regions"]) == {"WT", "TC", "ET"}
    assert on_disk["metrics"]["regions"]["WT"]["dice"] is not None  # the case has a ground truth
    # The default method explains at the finest decoder stage (this tiny network has two).
    assert on_disk["options"]["gradcam_method"] == "log-softmax-finest" and on_disk["options"]["gradcam_layer"] == "decoder.1"
    # Sequence evidence for every sequence the network reads, written beside the other maps (checked on the case
    # grid with them above).
    read = [s for s, info in on_disk["sequence_evidence"]["sequences"].items() if info["read"]]
    assert read and all((out / f"evidence_{c}_{s}.nii.gz").is_file() for c in ("NCR", "ED", "ET") for s in read)
    assert {"load", "inference", "total"} <= set(on_disk["timings_s"])
    for fig in on_disk["outputs"]["figures"]:
        assert (out / fig).stat().st_size > 1000
    # The brain surface must lie inside the brain's world bounding box.
    case = load_case(oblique_case)
    brain = np.argwhere(np.any(case.images != 0, axis=0))
    corners = np.array([[x, y, z, 1.0] for x in (brain[:, 0].min() - 1, brain[:, 0].max() + 1)
                        for y in (brain[:, 1].min() - 1, brain[:, 1].max() + 1)
                        for z in (brain[:, 2].min() - 1, brain[:, 2].max() + 1)])
    world = (case.affine @ corners.T).T[:, :3]
    surface = read_surface(out / on_disk["outputs"]["surfaces"]["brain"]["vtp"])
    bounds = np.array(surface.GetBounds()).reshape(3, 2)
    assert surface.GetNumberOfPoints() > 100
    assert np.all(bounds[:, 0] >= world.min(0) - 1e-3) and np.all(bounds[:, 1] <= world.max(0) + 1e-3)


def test_same_seed_same_maps_and_deterministic_only_path(small_case, tiny_checkpoint, tmp_path):
    opts = dict(weights=tiny_checkpoint, device="cpu", gradcam="ET", surfaces=False, figures=False)
    analyze_case(small_case, tmp_path / "a", AnalysisOptions(mc_samples=2, seed=3, **opts))
    analyze_case(small_case, tmp_path / "b", AnalysisOptions(mc_samples=2, seed=3, **opts))
    a = nib.load(tmp_path / "a" / "mc_variance_ET.nii.gz").get_fdata()
    b = nib.load(tmp_path / "b" / "mc_variance_ET.nii.gz").get_fdata()
    np.testing.assert_array_equal(a, b)
    summary = analyze_case(small_case, tmp_path / "det", AnalysisOptions(mc_samples=0, **opts))
    assert not list((tmp_path / "det").glob("mc_variance_*"))
    assert "mc_variance" not in summary["outputs"] and (tmp_path / "det" / "entropy.nii.gz").exists()
    seg = np.asarray(nib.load(tmp_path / "det" / "seg.nii.gz").dataobj)
    assert set(np.unique(seg)) <= {0, 1, 2, 4}  # brats2021 case: ET written as 4


def test_bf16_precision_runs_end_to_end_and_is_recorded(small_case, tiny_checkpoint, tmp_path):
    """--precision bf16 through the whole analysis: the summary says so, the maps are float32 and near
    the exact run's; fp32 stays the default and is recorded too."""
    opts = dict(weights=tiny_checkpoint, device="cpu", gradcam="ET", surfaces=False, figures=False, mc_samples=2)
    exact = analyze_case(small_case, tmp_path / "fp32", AnalysisOptions(**opts))
    fast = analyze_case(small_case, tmp_path / "bf16", AnalysisOptions(precision="bf16", **opts))
    assert exact["precision"] == "fp32" and fast["precision"] == "bf16"
    a, b = (nib.load(tmp_path / d / "prob_ET.nii.gz") for d in ("fp32", "bf16"))
    assert b.get_data_dtype() == a.get_data_dtype() and np.array_equal(a.affine, b.affine)
    diff = np.abs(a.get_fdata() - b.get_fdata())
    assert 0 < diff.max() < 0.05


def test_cli_refuses_fp16_on_the_cpu_in_one_line_before_any_work(tmp_path, capsys, small_case, tiny_checkpoint):
    code = main(["analyze", str(small_case), "--out", str(tmp_path / "o"), "--weights", str(tiny_checkpoint),
                 "--device", "cpu", "--precision", "fp16", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fp16 needs a CUDA device" in err[0]
    assert not (tmp_path / "o").exists()


def test_existing_output_is_never_overwritten_without_permission(small_case, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("radiologist's notes")
    opts = dict(weights=tiny_checkpoint, device="cpu", mc_samples=0, gradcam="none", surfaces=False, figures=False)
    with pytest.raises(Exception, match="not empty"):
        analyze_case(small_case, out, AnalysisOptions(**opts))
    assert (out / "precious.txt").read_text() == "radiologist's notes"
    analyze_case(small_case, out, AnalysisOptions(overwrite=True, **opts))
    assert not (out / "precious.txt").exists() and (out / "seg.nii.gz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging or trash left behind


def test_cancelled_run_leaves_no_partial_results(small_case, tiny_checkpoint, tmp_path):
    def cancel_when_writing(stage, fraction, message=""):
        if stage == "outputs":
            control.cancel()

    control = JobControl(cancel_when_writing)
    with pytest.raises(Cancelled):
        analyze_case(small_case, tmp_path / "out", AnalysisOptions(weights=tiny_checkpoint, device="cpu",
                                                                   mc_samples=0, gradcam="none"), control)
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys, small_case, tiny_checkpoint):
    broken = tmp_path / "case"
    broken.mkdir()
    for f in small_case.iterdir():
        if "_flair" not in f.name:
            (broken / f.name).write_bytes(f.read_bytes())
    code = main(["analyze", str(broken), "--out", str(tmp_path / "o"), "--weights", str(tiny_checkpoint), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "flair" in err[0].lower() and str(broken) in err[0]
    code = main(["analyze", str(small_case), "--out", str(tmp_path / "o"), "--weights", str(tmp_path / "nope.pt"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nope.pt" in err[0]
    assert not (tmp_path / "o").exists()


def test_output_jobs_get_threads_by_cpu_count():
    from BrainTumorXAILib.reporting.case_outputs import OUTPUT_THREADS_MIN_CPUS, _output_workers

    assert _output_workers(4, cpus=1) == 1
    # Write, figures and the trust report together, then the rest.
    assert _output_workers(5, cpus=2) == 3 and _output_workers(1, cpus=2) == 1
    assert _output_workers(4, cpus=OUTPUT_THREADS_MIN_CPUS) == 4
