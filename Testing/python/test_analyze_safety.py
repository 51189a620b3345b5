"""analyze never destroys its inputs, fails early and in one line, and cleans up after killed runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from BrainTumorXAILib import analyze as analyze_mod
from BrainTumorXAILib.analyze import AnalysisOptions, analyze_case, resolve_weights
from BrainTumorXAILib.cli import main
from BrainTumorXAILib.console import print_analysis
from BrainTumorXAILib.errors import BrainTumorXAIError
from BrainTumorXAILib.reporting.output_folder import remove_stale_staging, staged_output
from BrainTumorXAILib.runtime import JobControl

REPO = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--mc-samples", "0", "--gradcam", "none", "--no-surfaces", "--no-figures", "--quiet"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def case_copy(small_case, tmp_path):
    """A private copy of the small case in tmp/cases/case (tests may try to destroy it)."""
    dest = tmp_path / "cases" / "case"
    shutil.copytree(small_case, dest)
    return dest


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# -- 1. the output folder must never be, or hold, an input ----------------------------------------------
@pytest.mark.parametrize("where", ["case", "parent", "grandparent"])
def test_out_that_is_or_holds_the_case_folder_is_refused(where, case_copy, tiny_checkpoint, capsys):
    out = {"case": case_copy, "parent": case_copy.parent, "grandparent": case_copy.parent.parent}[where]
    before = digest(case_copy)
    code = main(["analyze", str(case_copy), "--out", str(out), "--overwrite", "--weights", str(tiny_checkpoint),
                 *FAST])
    line = one_error_line(capsys)
    assert code == 2 and "case folder" in line and "--out" in line
    assert digest(case_copy) == before  # every input file still there, unchanged
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_out_through_a_symlink_to_the_case_folder_is_refused(case_copy, tiny_checkpoint, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(case_copy, target_is_directory=True)
    before = digest(case_copy)
    code = main(["analyze", str(case_copy), "--out", str(link), "--overwrite", "--weights", str(tiny_checkpoint),
                 *FAST])
    assert code == 2 and "case folder" in one_error_line(capsys)
    assert digest(case_copy) == before


def test_out_that_holds_the_weights_is_refused(small_case, tiny_checkpoint, tmp_path, capsys):
    weights = tmp_path / "w" / "tiny.pt"
    weights.parent.mkdir()
    shutil.copy(tiny_checkpoint, weights)
    code = main(["analyze", str(small_case), "--out", str(weights.parent), "--overwrite", "--weights", str(weights),
                 *FAST])
    assert code == 2 and "weights" in one_error_line(capsys)
    assert weights.read_bytes() == Path(tiny_checkpoint).read_bytes()


def test_out_that_holds_an_explicitly_mapped_file_is_refused(case_copy, tiny_checkpoint, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    flair = next(case_copy.glob("*_flair.nii.gz"))
    moved = elsewhere / flair.name
    shutil.move(flair, moved)
    mapping = {"flair": moved, **{s: next(case_copy.glob(f"*_{s}.nii.gz")) for s in ("t1", "t1ce", "t2")}}
    opts = AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=0, gradcam="none", surfaces=False,
                           figures=False, overwrite=True, mapping=mapping)
    with pytest.raises(BrainTumorXAIError, match="flair"):
        analyze_case(case_copy, elsewhere, opts)
    assert moved.exists()


def test_out_inside_the_case_folder_is_fine(case_copy, tiny_checkpoint):
    before = digest(case_copy)
    out = case_copy / "results"
    analyze_case(case_copy, out, AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=0,
                                                 gradcam="none", surfaces=False, figures=False))
    assert (out / "seg.nii.gz").exists()
    assert {k: v for k, v in digest(case_copy).items() if not k.startswith("results")} == before


# -- 2. an unusable output location fails before inference, in one line ----------------------------------
def test_unwritable_out_fails_before_inference(small_case, tiny_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    stages = []
    control = JobControl(lambda stage, fraction, message="": stages.append(stage))
    opts = AnalysisOptions(weights=tiny_checkpoint, device="cpu", mc_samples=0, gradcam="none")
    with pytest.raises(BrainTumorXAIError, match="a_file"):
        analyze_case(small_case, blocker / "out", opts, control)
    assert "inference" not in stages and "preprocess" not in stages
    code = main(["analyze", str(small_case), "--out", str(blocker / "out"), "--weights", str(tiny_checkpoint),
                 *FAST])
    line = one_error_line(capsys)
    assert code == 2 and str(blocker / "out") in line and "Traceback" not in line


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_out_under_proc_is_one_line(small_case, tiny_checkpoint, capsys):
    code = main(["analyze", str(small_case), "--out", "/proc/x", "--weights", str(tiny_checkpoint), *FAST])
    assert code == 2 and "/proc/x" in one_error_line(capsys)


def test_cli_turns_any_oserror_into_one_line_naming_the_path(monkeypatch, small_case, tmp_path, capsys):
    def boom(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/locked")

    monkeypatch.setattr(analyze_mod, "analyze_case", boom)
    code = main(["analyze", str(small_case), "--out", str(tmp_path / "o"), "--quiet"])
    line = one_error_line(capsys)
    assert code == 2 and "/somewhere/locked" in line and "Permission denied" in line


# -- 3. packaging: vtk is a core dependency; demo files ship in the wheel; clear error without them --------
def test_wheel_ships_vtk_dependency_and_the_demo_files(tmp_path):
    """A non-editable install must analyse without --weights: build the wheel and look inside."""
    import subprocess
    import zipfile

    pytest.importorskip("setuptools", minversion="77")  # what pyproject's build-system asks for
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "out", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(source)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("braintumorxai-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "BrainTumorXAILib/demo_data/demo_weights.pt" in names
    for seq in ("t1", "t1ce", "t2", "flair", "seg"):
        assert f"BrainTumorXAILib/demo_data/SampleCase/BraTS2021_Sample_{seq}.nii.gz" in names
    assert "BrainTumorXAILib/cli.py" in names
    # every module of the Lib, in every subpackage, is in the wheel; training/ is not (it would claim the global
    # import name "training"; it runs from the repository)
    sources = {str(p.relative_to(REPO / "BrainTumorXAI")) for p in (REPO / "BrainTumorXAI" / "BrainTumorXAILib").rglob("*.py")}
    assert sources - names == set()
    assert not any(name.split("/")[0] == "training" for name in names)
    assert any(line.startswith("Requires-Dist: vtk") and "extra" not in line for line in metadata.splitlines())


def test_missing_default_weights_is_one_clear_line(monkeypatch, tmp_path):
    from BrainTumorXAILib import resources

    monkeypatch.setattr(resources, "demo_weights_path", lambda: tmp_path / "none" / "demo_weights.pt")
    with pytest.raises(BrainTumorXAIError, match="no default weights.*pass --weights") as info:
        resolve_weights(None)
    assert "\n" not in str(info.value)


# -- 8. argument checks -------------------------------------------------------------------------------------
def test_unknown_device_is_an_argparse_error(small_case, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(small_case), "--out", str(tmp_path / "o"), "--device", "tpu"])
    assert info.value.code == 2 and "tpu" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("spacing", ["0", "-1.5"])
def test_synth_rejects_a_non_positive_spacing(spacing, tmp_path, capsys):
    code = main(["synth", "--out", str(tmp_path / "s"), "--size", "small", "--spacing", spacing, "--quiet"])
    assert code == 2 and "--spacing" in one_error_line(capsys)
    assert not (tmp_path / "s").exists()


# -- 9. a constant sequence is named by file ----------------------------------------------------------------
def test_constant_sequence_names_the_file(case_copy, tiny_checkpoint, tmp_path, capsys):
    files = {s: next(case_copy.glob(f"*_{s}.nii.gz")) for s in ("t1", "t1ce", "t2", "flair")}
    images = {s: nib.load(p) for s, p in files.items()}
    brain = np.any([np.asarray(img.dataobj) != 0 for img in images.values()], axis=0)
    t2 = images["t2"]
    nib.save(nib.Nifti1Image((brain * 100.0).astype(np.float32), t2.affine, t2.header), files["t2"])
    code = main(["analyze", str(case_copy), "--out", str(tmp_path / "o"), "--weights", str(tiny_checkpoint),
                 *FAST])
    line = one_error_line(capsys)
    assert code == 2 and files["t2"].name in line and "t2" in line and "constant" in line
    assert not (tmp_path / "o").exists()


# -- 10. staging folders of killed runs -------------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_staging_of_dead_processes_is_removed(tmp_path):
    host = socket.gethostname()
    out = tmp_path / "out"
    dead = tmp_path / f".out.partial-{dead_pid()}@{host}-abcd1234"
    dead_trash = tmp_path / f".out.old-{dead_pid()}@{host}-efgh5678"
    alive = tmp_path / f".out.partial-{os.getppid()}@{host}-ijkl9012"
    other_host = tmp_path / f".out.partial-{dead_pid()}@not-{host}-mnop3456"
    legacy = tmp_path / ".out.partial-qrst7890"
    other_out = tmp_path / f".other.partial-{dead_pid()}@{host}-uvwx1234"
    for folder in (dead, dead_trash, alive, other_host, legacy, other_out):
        folder.mkdir()
        (folder / "x.nii.gz").write_bytes(b"x")
    with staged_output(out) as staging:
        assert f".out.partial-{os.getpid()}@" in staging.name
        (staging / "seg.nii.gz").write_bytes(b"y")
    assert not dead.exists() and not dead_trash.exists()
    assert all(p.exists() for p in (alive, other_host, legacy, other_out))
    assert (out / "seg.nii.gz").exists()
    assert remove_stale_staging(out) == []


# -- 6. a Grad-CAM class explained over all voxels is said on the terminal -----------------------------------
def test_cli_summary_names_gradcam_fallback_classes(capsys):
    summary = {"case": {"id": "c"}, "volumes_cm3": {"regions": {"WT": 1.0}}, "metrics": None, "device": "cpu",
               "timings_s": {"total": 1.0}, "gradcam_fallback_all_voxels": {"NCR": False, "ET": True}}
    print_analysis(summary, Path("o"))
    lines = [line for line in capsys.readouterr().out.splitlines() if "grad-cam" in line.lower()]
    assert len(lines) == 1 and "ET" in lines[0] and "NCR" not in lines[0]
