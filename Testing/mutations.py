#!/usr/bin/env python
"""Mutation check: apply deliberate bugs one at a time to a temporary copy of the repository and run the
relevant tests there; a mutation the tests do not notice *survived*.

    python Testing/mutations.py                 # all mutations
    python Testing/mutations.py --only mi_zero gradcam_swap_files
    python Testing/mutations.py --list
    python Testing/mutations.py --json out.json

Each mutation names code *snippets* (exact text) and their replacement, not line numbers, so it survives
small code moves; a snippet that is no longer found exactly once makes the mutation "not applicable"
(reported, never silently skipped).  A survivor a reviewer judged harmless carries its reason
(``harmless=``) and is reported as such; any other survivor makes the exit status 1.  The copy is imported through PYTHONPATH ahead of the editable
install, and an unmutated baseline run must pass first.  Run it niced: it is slow by nature.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = "BrainTumorXAI/BrainTumorXAILib"
PRED = f"{LIB}/inference/predictor.py"
UNC = f"{LIB}/inference/uncertainty.py"
SW = f"{LIB}/inference/sliding_window.py"
GC = f"{LIB}/inference/gradcam.py"
CASE = f"{LIB}/inference/case_prediction.py"
OUT = f"{LIB}/reporting/case_outputs.py"
PRE = f"{LIB}/io/network_grid.py"
INT = f"{LIB}/io/intensity.py"
UPL = f"{LIB}/web/uploads.py"
UI = "BrainTumorXAI/Resources/UI/BrainTumorXAI.ui"

T = "Testing/python/"
INFERENCE_TESTS = [T + "test_window_statistics.py", T + "test_output_content.py", T + "test_predictor.py",
                   T + "test_sliding_window_uncertainty.py"]
ANALYZE_TESTS = [T + "test_output_content.py", T + "test_analyze.py"]
GEOMETRY_TESTS = [T + "test_output_content.py", T + "test_network_grid.py"]
UPLOAD_TESTS = [T + "test_upload_limits.py", T + "test_web_uploads.py"]
UI_TESTS = [T + "test_slicer_module_static.py"]
DICOM_TESTS = [T + "test_dicom_read.py", T + "test_dicom_out.py"]


@dataclass
class Mutation:
    id: str
    what: str
    path: str
    edits: list[tuple[str, str]]  # (snippet, replacement); each snippet must occur exactly once
    tests: list[str]
    issue_row: bool = False  # one of the deliberate bugs listed in issue 15
    extra: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)  # more files: (path, edits)
    alternatives: list[list[tuple[str, str]]] = field(default_factory=list)  # other spellings of the same bug
    harmless: str = ""  # why surviving is acceptable (an equivalent or harmless change), judged by a reviewer


M = Mutation
MUTATIONS: list[Mutation] = [
    # ---- issue 15's table
    M("blend_variance", "blend per-window variance instead of the raw moments (mean, E[p^2])", PRED,
      [('"second": acc.variance + acc.mean**2', '"second": acc.variance'),
       ('variance = (blend.result("second") - mean**2).clamp_min(0.0)', 'variance = blend.result("second").clamp_min(0.0)')],
      INFERENCE_TESTS, True),
    M("mi_zero", "mutual information := H[mean] - H[mean]", PRED,
      [('mi = mutual_information(mean, blend.result("sample_entropy")[0])', "mi = mutual_information(mean, entropy(mean))")],
      INFERENCE_TESTS, True),
    M("gradcam_swap_files", "gradcam_NCR and gradcam_ET files swapped", OUT,
      [('write(f"gradcam_{CLASS_NAMES[c]}.nii.gz", m)', 'write(f"gradcam_{CLASS_NAMES[{1: 3, 3: 1}.get(c, c)]}.nii.gz", m)')],
      ANALYZE_TESTS, True),
    M("variance_flipped_i", "variance volumes flipped along i on the case grid (header still right)", CASE,
      [('out["variance"] = clipped(inverted[k:k + n_cls])', 'out["variance"] = clipped(inverted[k:k + n_cls])[:, ::-1]')],
      ANALYZE_TESTS, True),
    M("uniform_blending", "Gaussian blending weights replaced by uniform ones", PRED,
      [("weight = gaussian_weight(tiling.window, device=self.device)",
        "weight = torch.ones(tiling.window, device=self.device)")],
      INFERENCE_TESTS, True),
    M("zip_cap_unpacking_off", "zip size cap while unpacking disabled", UPL,
      [("if budget[0] < 0:  # headers lied", "if False:  # headers lied")], UPLOAD_TESTS, True),
    M("zip_entry_count_off", "zip entry-count check removed", UPL,
      [("if len(infos) > limits.max_zip_entries:", "if False:")], UPLOAD_TESTS, True),
    M("file_count_off", "upload file-count check removed", UPL,
      [("if len(files) > self.limits.max_files:", "if False:")], UPLOAD_TESTS, True),
    M("nested_zip_allowed", "nested zip allowed", UPL,
      [('if ext == ".zip":\n', "if False:\n")], UPLOAD_TESTS, True),
    M("fallback_ignores_brain", "Grad-CAM fallback scored over all voxels, ignoring the brain", PRED,
      [("region = None if brain is None else brain[box][None].float()", "region = None")],
      INFERENCE_TESTS, True,
      alternatives=[[("region = None if brain is None else torch.stack([brain[box] for box in group]).float()",
                      "region = None")]]),
    M("analyze_no_reorient", "analyze passes reorient=False (the network sees un-reoriented input)", CASE,
      [('reorient=bool(norm.get("reorient", True))', "reorient=False")], ANALYZE_TESTS, True),
    M("ui_mcsamples_renamed", ".ui SlicerParameterName mcSamples renamed", UI,
      [("<string>mcSamples</string>", "<string>mcSampleCount</string>")], UI_TESTS, True),
    M("ui_device_renamed", ".ui SlicerParameterName device renamed", UI,
      [("         <string>device</string>", "         <string>computeDevice</string>")], UI_TESTS, True),
    M("cam_normalised_per_window", "each window's Grad-CAM normalised before blending", PRED,
      [('maps.update({f"cam{c}": cam[0:1] for c, cam in out.cams.items()})',
        'maps.update({f"cam{c}": cam[0:1] / cam.max().clamp_min(1e-12) for c, cam in out.cams.items()})')],
      INFERENCE_TESTS, True,
      alternatives=[[('maps.update({f"cam{c}": cam[:, None] for c, cam in out.cams.items()})',
                      'maps.update({f"cam{c}": (cam / cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None, None])'
                      '[:, None] for c, cam in out.cams.items()})')]]),
    M("fallback_constant_one", "fallback Grad-CAM := constant 1", PRED,
      [("result.gradcam[c] = _np(_normalise(cam, self._outside(brain_mask)))",
        "result.gradcam[c] = _np(torch.ones_like(cam))")],
      INFERENCE_TESTS, True),
    # ---- more inference
    M("seed_ignored", "MC masks drawn from another seed than asked", PRED,
      [("gen = torch.Generator().manual_seed(self.seed)", "gen = torch.Generator().manual_seed(self.seed + 1)")],
      INFERENCE_TESTS),
    M("last_mc_batch_dropped", "the last MC sample is never decoded", PRED,
      [("for start in range(0, self.mc_samples, self.mc_batch):",
        "for start in range(0, max(self.mc_samples - 1, 1), self.mc_batch):")],
      INFERENCE_TESTS),
    M("no_force_background", "probabilities outside the brain not forced to background", PRED,
      [("probs = _force_background(probs, outside)", "probs = probs")], INFERENCE_TESTS),
    M("entropy_of_deterministic", "entropy of the dropout-free prediction instead of the MC mean", PRED,
      [("ent = entropy(probs)", "ent = entropy(det) if det is not None else entropy(probs)")], INFERENCE_TESTS),
    M("variance_not_masked", "variance left as computed outside the brain", PRED,
      [("variance = variance.masked_fill(outside[None], 0.0)", "variance = variance")], INFERENCE_TESTS),
    M("cam_outside_not_zeroed", "Grad-CAM not zeroed outside the brain before normalising", PRED,
      [("    if outside is not None:\n        cam = cam.masked_fill(outside, 0.0)\n",
        "    if outside is not None:\n        cam = cam\n")], INFERENCE_TESTS),
    # ---- uncertainty
    M("sample_variance", "unbiased (N-1) variance instead of the population variance", UNC,
      [("return self.m2 / self.count", "return self.m2 / max(self.count - 1, 1)")], INFERENCE_TESTS),
    M("chan_merge_no_delta", "chunk merge forgets the between-chunk term", UNC,
      [("self.m2 = self.m2 + chunk_m2 + delta**2 * (self.count * n / total)", "self.m2 = self.m2 + chunk_m2")],
      INFERENCE_TESTS),
    M("welford_wrong", "Welford update with delta*delta", UNC,
      [("self.m2.addcmul_(delta, sample - self.mean)", "self.m2.addcmul_(delta, delta)")], INFERENCE_TESTS),
    M("mi_abs", "MI clamp replaced by abs", UNC,
      [("return (entropy(mean_probs, dim=dim) - mean_sample_entropy).clamp_min(0.0)",
        "return (entropy(mean_probs, dim=dim) - mean_sample_entropy).abs()")], INFERENCE_TESTS,
      harmless="H[E p] - E[H p] >= 0 (concavity of entropy): abs and clamp differ only on float rounding (~1e-7)"),
    M("entropy_bits", "entropy in bits instead of nats", UNC,
      [("torch.log(probs.clamp_min(EPS))", "torch.log2(probs.clamp_min(EPS))")], INFERENCE_TESTS),
    # ---- sliding window
    M("sigma_wide", "Gaussian sigma four times too wide", SW,
      [("sigma = max(w * sigma_scale, 1e-3)", "sigma = max(w * sigma_scale * 4, 1e-3)")], INFERENCE_TESTS),
    M("last_window_missing", "the last window along each axis left out", SW,
      [("for i in range(n)})", "for i in range(n - 1)})")], INFERENCE_TESTS),
    M("blend_not_normalised", "blend not divided by the summed weights", SW,
      [("return self.sums[name] / self.weights.clamp_min(1e-12)", "return self.sums[name]")], INFERENCE_TESTS),
    # ---- Grad-CAM
    M("alpha_not_pooled", "gradient x activation instead of pooled Grad-CAM weights", GC,
      [("weights = grad.float().mean(dim=(2, 3, 4), keepdim=True)", "weights = grad.float()")], INFERENCE_TESTS),
    M("cam_no_relu", "|.| instead of ReLU", GC,
      [("cam = F.relu((weights * acts.float()).sum(dim=1, keepdim=True))",
        "cam = (weights * acts.float()).sum(dim=1, keepdim=True).abs()")],
      INFERENCE_TESTS),
    M("score_region_ignores_brain", "score region not restricted to the brain", GC,
      [("region = region & region_mask.to(device=region.device, dtype=torch.bool)", "region = region")],
      INFERENCE_TESTS),
    M("score_region_everything", "class score summed over every voxel, not the predicted class", GC,
      [("region = prediction == cls", "region = torch.ones_like(prediction, dtype=torch.bool)")], INFERENCE_TESTS),
    # ---- analyze outputs
    M("mi_file_is_entropy", "mutual_information.nii.gz holds the entropy", OUT,
      [('write("mutual_information.nii.gz", grid["mutual_information"])', 'write("mutual_information.nii.gz", grid["entropy"])')],
      ANALYZE_TESTS),
    M("prob_files_reversed", "probability files written in reversed class order", OUT,
      [('for n, p in zip(CLASS_NAMES, grid["probabilities"])}', 'for n, p in zip(CLASS_NAMES, grid["probabilities"][::-1])}')],
      ANALYZE_TESTS),
    M("mc_accuracy_unmasked", "MC accuracy counted over the whole image", OUT,
      [("mc_accuracy(grid[\"probabilities\"], case.label, mask=brain)", "mc_accuracy(grid[\"probabilities\"], case.label, mask=None)")],
      ANALYZE_TESTS),
    M("seg_outside_not_cleared", "segmentation not cleared outside the brain", CASE,
      [("classes[~brain] = 0", "pass")], ANALYZE_TESTS),
    # ---- geometry / preprocessing inverse
    M("unreorient_wrong_direction", "inverse reorientation applies the forward transform", PRE,
      [("nio.ornt_transform(nio.axcodes2ornt(NETWORK_AXCODES), nio.io_orientation(\n            self.input_affine))",
        "nio.ornt_transform(nio.io_orientation(\n            self.input_affine), nio.axcodes2ornt(NETWORK_AXCODES))")],
      GEOMETRY_TESTS),
    M("zscore_scale_off", "z-score divides by 1.1 x the standard deviation", INT,
      [("shift, scale = values.mean(), values.std()", "shift, scale = values.mean(), values.std() * 1.1")],
      GEOMETRY_TESTS),
    M("padding_swapped", "round-up padding split swapped (before/after)", PRE,
      [("return extra // 2, extra - extra // 2", "return extra - extra // 2, extra // 2")], GEOMETRY_TESTS,
      harmless="the split of the round-up padding is free: invert reads the recorded pad_before/after, so every map "
               "still lands on its voxel (test_output_content); only the brain's place in the network grid moves"),
    M("crop_margin_zero", "no margin around the brain box", PRE,
      [("return np.maximum(lo - margin, 0), np.minimum(hi + margin, shape), zeros, zeros",
        "return np.maximum(lo, 0), np.minimum(hi, shape), zeros, zeros")], GEOMETRY_TESTS,
      harmless="the normalised input is exactly 0 outside the brain, so the margin holds the same zeros as the "
               "padding that replaces it; placement stays exact (invert); only the pooling phase can shift"),
    # ---- uploads
    M("declared_size_off", "declared uncompressed size check removed", UPL,
      [("if declared > budget[0]:", "if False:")], UPLOAD_TESTS),
    M("traversal_allowed", "'..' members allowed", UPL,
      [('if any(p == ".." for p in parts):', "if False:")], UPLOAD_TESTS),
    M("symlink_allowed", "symbolic-link members allowed", UPL,
      [("if info.create_system == 3 and stat.S_ISLNK(mode):", "if False:")], UPLOAD_TESTS),
    M("total_size_off", "total upload size check removed", UPL,
      [("if total[0] > limit:", "if False:")], UPLOAD_TESTS),
    M("stream_not_counted", "streamed uploads not counted against the size limit", UPL,
      [("                account(len(chunk))\n", "                pass\n")], UPLOAD_TESTS),
    M("entry_count_off_by_one", "entry-count limit off by one (>=)", UPL,
      [("if len(infos) > limit:", "if len(infos) >= limit:")], UPLOAD_TESTS),
    M("partial_member_kept", "a member stopped at the limit is left on disk", UPL,
      [("            except UploadError:\n                target.unlink(missing_ok=True)\n                raise",
        "            except UploadError:\n                raise")], UPLOAD_TESTS),
    # ---- DICOM in and out (issue 30)
    M("dicom_file_order", "slices stacked in file-name order instead of by position", f"{LIB}/dicom/geometry.py",
      [('order = np.argsort(along, kind="stable")', "order = np.arange(len(along))")], DICOM_TESTS),
    M("seg_frames_reversed", "SEG frames paired with the source slices in reverse", f"{LIB}/dicom/seg_writer.py",
      [("pixel_array=frames.astype(np.uint8)", "pixel_array=frames[::-1].astype(np.uint8)")], DICOM_TESTS),
    M("output_flip_ignored", "a flipped output axis taken as unflipped", f"{LIB}/dicom/frames.py",
      [("cuts.append(slice(start, start + n) if rot[a, b] > 0", "cuts.append(slice(start, start + n) if True")],
      DICOM_TESTS),
    # ---- uncertainty estimators, post-processing, explanation checks in evaluate (issue 14)
    M("pool_second_moment", "pooled variance := E[p^2] (the squared mean not subtracted)", f"{LIB}/inference/combine.py",
      [("variance=np.clip(second - mean * mean, 0.0, None)", "variance=np.clip(second, 0.0, None)")],
      [T + "test_uncertainty_estimators.py"]),
    M("tta_not_flipped_back", "flipped predictions pooled without flipping them back", f"{LIB}/inference/tta.py",
      [("members.append(Member(probabilities=_flip(maps.probabilities, axes, 1),",
        "members.append(Member(probabilities=maps.probabilities,")],
      [T + "test_uncertainty_estimators.py"]),
    M("postprocess_voxels_not_ml", "the ET threshold compared with a voxel count instead of millilitres",
      f"{LIB}/inference/postprocess.py",
      [("volume = float(mask.sum()) * voxel_ml", "volume = float(mask.sum()) / 1000.0")],
      [T + "test_uncertainty_estimators.py"]),
    M("enhancement_check_sign", "the enhancement check keeps the unenhanced components and relabels the enhancing ones",
      f"{LIB}/inference/postprocess.py", [("unenhanced = np.flatnonzero(means <= 0.0) + 1", "unenhanced = np.flatnonzero(means > 0.0) + 1")],
      [T + "test_uncertainty_estimators.py"]),
    M("enhancement_check_face_connected", "ET components 6-connected (one real component split in pieces)",
      f"{LIB}/inference/postprocess.py", [("structure=np.ones((3, 3, 3), bool)", "structure=None")],
      [T + "test_uncertainty_estimators.py"]),
    M("predict_case_ignores_gradcam_option", "predict_case computes no Grad-CAM unless given classes (evaluate's checks empty)",
      CASE, [("        gradcam_classes = gradcam_class_indices(options.gradcam)\n", "        gradcam_classes = ()\n")],
      [T + "test_region_uncertainty_quality.py"]),
    M("cystic_necrosis_bright", "cystic necrosis drawn as bright on FLAIR as the ordinary kind (the setting does nothing)",
      "training/generator/appearance.py",
      [('m["ncr"] = m["csf"] + float(rng.uniform(0.05, 0.9)) * (healthy_lo - m["csf"])',
        'm["ncr"] = m["ed"] * float(rng.uniform(0.6, 1.3))')],
      [T + "test_generator.py"]),
    M("init_widen_wrong_channel", "--init puts an exported checkpoint's sequences on the wrong input channels",
      "training/export.py", [("wide[:, sequences.index(seq)] = narrow[:, i]", "wide[:, i] = narrow[:, i]")],
      [T + "test_training.py"]),
]


# --------------------------------------------------------------------------- running
IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", "*.pyc", ".mypy_cache",
                                ".ruff_cache", "build", "dist", "*.egg-info", "runs", "outputs")


def copy_tree(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, ignore=IGNORE, symlinks=True)
    return dest


def apply(copy: Path, path: str, edits: list[tuple[str, str]], alternatives=()) -> str | None:
    """Apply the first applicable edit set to ``copy/path``; the reason when none applies, else None."""
    file = copy / path
    if not file.is_file():
        return f"{path} not found"
    original = file.read_text()
    reasons = []
    for option in [edits, *alternatives]:
        text, reason = original, None
        for snippet, replacement in option:
            n = text.count(snippet)
            if n != 1:
                reason = f"snippet {'not found' if n == 0 else f'found {n} times'} in {path}: {snippet.splitlines()[0][:60]!r}"
                break
            text = text.replace(snippet, replacement)
        if reason is None:
            file.write_text(text)
            return None
        reasons.append(reason)
    return "; ".join(reasons)


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """('passed' | 'failed' | 'timeout', seconds, output tail)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy / "BrainTumorXAI"), str(copy)]),
               VTK_SMP_BACKEND_IN_USE=os.environ.get("VTK_SMP_BACKEND_IN_USE", "STDThread"),
               PYTHONDONTWRITEBYTECODE="1")
    present = [t for t in tests if (copy / t).is_file()]
    if not present:
        return "no-tests", 0.0, "none of the test files exist"
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *present]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-2000:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-2000:]
        return "timeout", time.monotonic() - t0, str(out)
    tail = (proc.stdout + proc.stderr)[-2000:]
    return ("passed" if proc.returncode == 0 else "failed"), time.monotonic() - t0, tail


def check_import_from(copy: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy / "BrainTumorXAI"), str(copy)]))
    where = subprocess.run([sys.executable, "-c", "import BrainTumorXAILib; print(BrainTumorXAILib.__file__)"],
                           cwd=copy, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not where.startswith(str(copy)):
        raise SystemExit(f"the copy is not what gets imported ({where}); mutations would be invisible")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="mutation ids to run")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--timeout", type=float, default=900, help="seconds per test run (a timeout counts as killed)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated baseline run")
    a = p.parse_args(argv)
    chosen = [m for m in MUTATIONS if not a.only or m.id in a.only]
    if a.only and len(chosen) != len(set(a.only)):
        raise SystemExit(f"unknown ids: {sorted(set(a.only) - {m.id for m in MUTATIONS})}")
    if a.list:
        for m in chosen:
            print(f"{m.id:28s} {'[issue] ' if m.issue_row else ''}{m.what}  ({m.path})")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="btx-mutations-") as tmp:
        if not a.no_baseline:
            base = copy_tree(Path(tmp) / "baseline")
            check_import_from(base)
            tests = sorted({t for m in chosen for t in m.tests})
            status, secs, tail = run_tests(base, tests, a.timeout * 2)
            print(f"baseline: {status} ({secs:.0f} s)", flush=True)
            if status != "passed":
                print(tail)
                raise SystemExit("the unmutated baseline fails: fix that first")
            shutil.rmtree(base)
        for m in chosen:
            copy = copy_tree(Path(tmp) / m.id)
            reason = apply(copy, m.path, m.edits, m.alternatives)
            for path, edits in m.extra:
                reason = reason or apply(copy, path, edits)
            if reason:
                outcome, secs, tail = "not applicable", 0.0, reason
            else:
                status, secs, tail = run_tests(copy, m.tests, a.timeout)
                outcome = {"passed": "SURVIVED", "failed": "killed", "timeout": "killed (timeout)",
                           "no-tests": "not applicable"}[status]
                if outcome == "SURVIVED" and m.harmless:
                    outcome, tail = "survived-harmless", m.harmless
                if status == "failed":
                    failed = [ln for ln in tail.splitlines() if ln.startswith("FAILED") or ln.startswith("ERROR")]
                    tail = failed[0] if failed else tail.splitlines()[-1]
            print(f"{outcome:16s} {m.id:28s} {secs:5.0f} s  {m.what}" + (f"\n{'':17s}{tail}" if outcome != "killed (timeout)" else ""),
                  flush=True)
            results.append({"id": m.id, "what": m.what, "path": m.path, "issue_row": m.issue_row,
                            "outcome": outcome, "seconds": round(secs, 1), "detail": tail})
            shutil.rmtree(copy, ignore_errors=True)
    counts = {k: sum(r["outcome"].startswith(k) for r in results)
              for k in ("killed", "SURVIVED", "survived-harmless", "not applicable")}
    print(f"\nkilled {counts['killed']}, survived {counts['SURVIVED']}, survived but judged harmless "
          f"{counts['survived-harmless']}, not applicable {counts['not applicable']}")
    for r in results:
        if r["outcome"] == "SURVIVED":
            print(f"  survivor: {r['id']} — {r['what']}")
        elif r["outcome"] == "survived-harmless":
            print(f"  harmless survivor: {r['id']} — {r['what']}: {r['detail']}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 1 if counts["SURVIVED"] else 0


if __name__ == "__main__":
    sys.exit(main())
