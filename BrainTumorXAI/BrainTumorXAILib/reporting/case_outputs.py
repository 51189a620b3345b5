"""An analysis's outputs from the finished maps on the case grid: NIfTI volumes, figures, surface meshes,
metrics and (when handed in) the trust report, written as independent jobs in threads.  The figures (matplotlib)
and the trust report, pure Python and GIL-bound, run in forked child processes where ``forked`` allows it, so that
they do not queue behind each other for the GIL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from functools import partial
from pathlib import Path

import numpy as np

from ..forked import ForkedCall, fork_available
from ..io.nifti_writer import save_label_map, save_volume
from ..io.labels import CLASS_NAMES, SEQUENCES
from ..runtime import Cancelled, JobControl, usable_cpus
from .calibration_metrics import uncertainty_quality
from .evidence_report import write_evidence, write_evidence_figure
from .figures import FIGURE_KINDS, write_all_figures
from .locality_text import locality_note
from .metrics import mc_accuracy, segmentation_metrics, volumes_cm3

#: Output jobs (volumes, figures, trust report, surfaces, metrics) run one thread each from this many CPUs on;
#: from 2 CPUs ``OUTPUT_THREADS_FEW_CPUS`` threads (see ``_output_workers``).
OUTPUT_THREADS_MIN_CPUS = 4
OUTPUT_THREADS_FEW_CPUS = 3
#: Seconds a forked job may stay silent after the in-process jobs ended before it is redone in this process.
FORKED_JOB_GRACE_S = 300.0
#: The figures in two jobs of about equal length (the sequence-evidence figure goes with the first): with one
#: figures job, on 2 CPUs, that job ran alone at the end of the stage while the other core idled.
FIGURE_LANES = {"figures": ("overview", "probabilities"), "figures_maps": ("uncertainty", "gradcam")}
#: Job names as the progress line says them.
_OUTPUT_WORDS = {"write": "volumes", "trust_report": "trust report", "evidence": "sequence evidence",
                 "figures_maps": "uncertainty and Grad-CAM figures"}


def write_outputs(staging: Path, case, grid: dict, brain: np.ndarray, surfaces: bool, figures: bool,
                  control: JobControl, timings: dict, trust=None) -> tuple[dict, dict]:
    """NIfTI volumes, figures (``figures``), the trust report (``trust``: a callable, when given), surfaces
    (``surfaces``) and metrics: independent jobs.

    None needs the network; each reads the finished maps and writes its own files.
    They run in threads (``_output_workers``: one each from ``OUTPUT_THREADS_MIN_CPUS``
    CPUs, three on 2-3 CPUs, none on one), the figures and the trust report in forked
    children where possible, so the stage costs about its slowest lane.
    Every job's own duration is recorded; ``outputs`` is the wall time of all of them.
    Progress: one "outputs" stage, ticked by each job as it ends; a cancel stops the volume
    writer at its next file, and the folder is removed only after every job ended.
    Every figure uses matplotlib's object API (no pyplot), so figure jobs may run in
    threads side by side where they cannot be forked.
    """
    def job(name, fn, *args):
        def run():
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                timings[name] = time.perf_counter() - t0
        return name, run

    evidence = grid.get("sequence_evidence")
    # The GIL-bound jobs (figures, trust report; it times itself, its "seconds") go to forked children where
    # possible, forked before any output thread starts (a child inherits only the forking thread).
    gil_bound = {}
    if figures:
        for lane, (name, kinds) in enumerate(FIGURE_LANES.items()):
            gil_bound[name] = partial(_draw_figures, staging, case, grid, evidence if lane == 0 else None, kinds)
    if trust is not None:
        gil_bound["trust_report"] = trust
    forking = fork_available()
    children = {name: ForkedCall(fn, _OUTPUT_WORDS.get(name, name)) for name, fn in gil_bound.items() if forking}
    # Longest first (volumes and figures, then the trust report): the short jobs (surfaces, metrics) fill the
    # lanes that end first.
    jobs = [job("write", write_volumes, staging, case, grid, control)]
    if not forking:
        jobs += [job(name, fn) if name in FIGURE_LANES else (name, fn) for name, fn in gil_bound.items()]
    if surfaces:
        jobs.append(job("surfaces", _write_surfaces, staging, grid["classes"], brain, case.affine))
    if evidence:  # its figure is drawn with the others
        jobs.append(job("evidence", write_evidence, staging, case, evidence["maps"]))
    jobs.append(job("metrics", _evaluate, case, grid, brain))
    running = [name for name, _ in jobs] + list(children)
    n_jobs = len(running)
    control.report("outputs", 0.0, "writing " + ", ".join(_OUTPUT_WORDS.get(n, n) for n in running))

    def finished(name, failed: bool = False):  # each job ticks the bar as it ends, in whatever order
        running.remove(name)
        if not failed and not control.cancel_event.is_set():
            rest = ", ".join(_OUTPUT_WORDS.get(n, n) for n in running)
            with suppress(Cancelled):  # a cancel between the test and the report: the main thread raises it
                control.report("outputs", 1 - len(running) / n_jobs, f"{_OUTPUT_WORDS.get(name, name)} done"
                               + (f"; still writing {rest}" if rest else ""))

    t0 = time.perf_counter()
    results = {}
    try:
        with ThreadPoolExecutor(max_workers=_output_workers(len(jobs)), thread_name_prefix="analyze-output") as pool:
            futures = {name: pool.submit(run) for name, run in jobs}
            for name, future in futures.items():
                future.add_done_callback(lambda f, name=name: finished(name, f.exception() is not None))
            wait(futures.values())
        for future in futures.values():  # the first failure (a cancel included), in stage order
            if future.exception() is not None:
                raise future.exception()
        results = {name: future.result() for name, future in futures.items()}
        for name, child in children.items():
            results[name], seconds = _await_child(name, child, gil_bound[name], control)
            if name in FIGURE_LANES:  # the trust report times itself (its "seconds")
                timings[name] = seconds
            finished(name)
    except BaseException:
        for child in children.values():
            child.kill()
        raise
    timings["outputs"] = time.perf_counter() - t0
    outputs = results["write"]
    if "surfaces" in results:
        outputs["surfaces"] = results["surfaces"]
    if "figures" in results:  # in FIGURE_KINDS order, then the evidence figure (drawn by the first lane)
        outputs["figures"] = [path for name in FIGURE_LANES for path in results[name][0]]
        evidence_figure = results["figures"][1]
        if evidence_figure is not None:
            results["evidence"]["figure"] = evidence_figure
            outputs["figures"].append(evidence_figure)
    if "evidence" in results:
        outputs["sequence_evidence"] = results["evidence"]
    evaluation = results["metrics"]
    if "trust_report" in results:
        evaluation["trust_report"] = results["trust_report"]
    return outputs, evaluation


def _await_child(name: str, child: ForkedCall, fn, control: JobControl) -> tuple[object, float]:
    """The child's result and its seconds.  A cancel ends the child; a child silent for ``FORKED_JOB_GRACE_S``
    after the threads' jobs ended is killed and its job is done here instead (a hung worker costs time, never the
    analysis)."""
    deadline = time.monotonic() + FORKED_JOB_GRACE_S
    while not child.ready(0.2):
        control.check()
        if time.monotonic() > deadline:
            child.kill()
            control.report("outputs", 0.99, f"{_OUTPUT_WORDS.get(name, name)}: the worker process gave no result "
                                            f"within {FORKED_JOB_GRACE_S:g} s; making it here instead")
            t0 = time.perf_counter()
            return fn(), time.perf_counter() - t0
    return child.result()


def _output_workers(n_jobs: int, cpus: int | None = None) -> int:
    """Threads for the output jobs.  They are submitted longest first (write, then, where they are not forked, the
    two figure lanes and the trust report, then surfaces, evidence, metrics), so on 2-3 CPUs three workers start
    and take the rest as they finish.  More threads than that on few CPUs thrash: the GIL-bound jobs (figures,
    trust report) then slow each other down (docs/performance.md)."""
    cpus = cpus or usable_cpus()
    if cpus >= OUTPUT_THREADS_MIN_CPUS:
        return n_jobs
    return min(OUTPUT_THREADS_FEW_CPUS, n_jobs) if cpus >= 2 else 1


def write_volumes(folder: Path, case, grid: dict, control: JobControl) -> dict:
    outputs: dict = {}

    def write(name: str, array: np.ndarray) -> str:
        control.check()
        save_volume(array.astype(np.float32, copy=False), case.affine, folder / name, header=case.header,
                    dtype=np.float32)
        return name

    save_label_map(grid["classes"], case, folder / "seg.nii.gz")
    outputs["seg"] = "seg.nii.gz"
    outputs["probabilities"] = {n: write(f"prob_{n}.nii.gz", p) for n, p in zip(CLASS_NAMES, grid["probabilities"])}
    if "variance" in grid:
        outputs["mc_variance"] = {n: write(f"mc_variance_{n}.nii.gz", v) for n, v in zip(CLASS_NAMES, grid["variance"])}
        outputs["mutual_information"] = write("mutual_information.nii.gz", grid["mutual_information"])
    outputs["entropy"] = write("entropy.nii.gz", grid["entropy"])
    outputs["gradcam"] = {CLASS_NAMES[c]: write(f"gradcam_{CLASS_NAMES[c]}.nii.gz", m) for c, m in grid["gradcam"].items()}
    if grid["attention"]:
        outputs["attention"] = {k: write(f"attention_{k.replace('.', '_')}.nii.gz", m) for k, m in grid["attention"].items()}
    return outputs


def _write_surfaces(folder: Path, classes: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> dict:
    # Imported here: ``analyze --no-surfaces`` runs where VTK is not installed (analyze checks for it first).
    from .surfaces import case_surfaces, write_case_surfaces

    written = write_case_surfaces(case_surfaces(classes, brain, affine), folder / "surfaces")
    return {name: {fmt: str(Path(p).relative_to(folder)) for fmt, p in files.items()} for name, files in written.items()}


def _evaluate(case, grid: dict, brain: np.ndarray) -> dict:
    spacing = tuple(float(s) for s in case.spacing)
    result: dict = {"volumes_cm3": volumes_cm3(grid["classes"], spacing), "metrics": None,
                    "uncertainty_quality": None}
    if case.label is not None:
        result["metrics"] = segmentation_metrics(grid["classes"], case.label, spacing)
        result["metrics"]["mc_accuracy"] = mc_accuracy(grid["probabilities"], case.label, mask=brain)
        result["uncertainty_quality"] = uncertainty_quality(grid["probabilities"], grid["entropy"], case.label, brain)
    return result


def _draw_figures(folder: Path, case, grid: dict, evidence: dict | None,
                  kinds=FIGURE_KINDS) -> tuple[list[str], str | None]:
    """A figures job: the map figures of ``kinds`` and, given ``evidence``, the sequence-evidence figure (its name
    apart)."""
    paths = _write_figures(folder, case, grid, kinds)
    if not evidence:
        return paths, None
    return paths, write_evidence_figure(folder, case, evidence["table"], evidence["maps"], grid["classes"])


def _write_figures(folder: Path, case, grid: dict, kinds=FIGURE_KINDS) -> list[str]:
    images = {s: case.images[SEQUENCES.index(s)] for s in ("t1ce", "flair", "t2")}
    probs = {n: p for n, p in zip(CLASS_NAMES, grid["probabilities"]) if n != "background"}
    uncertainty = {n: v for n, v in zip(CLASS_NAMES, grid.get("variance", ())) if n != "background"}
    uncertainty["entropy"] = grid["entropy"]
    cams = {CLASS_NAMES[c]: m for c, m in grid["gradcam"].items()}
    paths = write_all_figures(folder / "figures", images, grid["classes"], probs, uncertainty, cams, case.affine,
                              gt_classes=case.label, gradcam_note=locality_note(grid.get("gradcam_locality")),
                              kinds=kinds)
    return [str(Path(p).relative_to(folder)) for p in paths]
