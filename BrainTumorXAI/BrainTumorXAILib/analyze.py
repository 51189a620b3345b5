"""``braintumorxai analyze``: one case in, every explainability output on the case's own grid out."""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .errors import BrainTumorXAIError, CaseError
from .inference.precision import precision_name, resolve_precision
from .io.labels import CLASS_NAMES, SEQUENCES, TUMOUR_CLASSES, class_index
from .reporting.output_folder import check_not_replacing_inputs, check_output_dir, staged_output
from .runtime import JobControl, resolve_device, usable_cpus

STAGE_WEIGHTS = {"load": 3, "preprocess": 2, "inference": 70, "resample": 8, "write": 5,
                 "surfaces": 5, "metrics": 3, "figures": 4}


#: Output jobs (volumes, figures, trust report, surfaces, metrics) run one thread each from this many CPUs on;
#: from 2 CPUs ``OUTPUT_THREADS_FEW_CPUS`` threads (see ``_output_workers``).
OUTPUT_THREADS_MIN_CPUS = 4
OUTPUT_THREADS_FEW_CPUS = 3


@dataclass
class AnalysisOptions:
    weights: Path | None = None  # None: the bundled demo weights
    device: str = "auto"
    precision: str = "fp32"  # the network's compute dtype: fp32 (exact), bf16, fp16 (CUDA) or auto; see inference.precision
    mc_samples: int = 20
    mc_batch: int | None = None
    gradcam: str | list[str] = "all"  # 'all', 'none', or class names
    gradcam_layer: str | None = None
    seed: int = 0
    overlap: float = 0.5
    mapping: dict | None = None  # explicit sequence -> file mapping
    surfaces: bool = True
    figures: bool = True
    overwrite: bool = False
    scene: Path | None = None
    extra_summary: dict = field(default_factory=dict)
    explanation_checks: bool = False  # trust report: Grad-CAM sanity checks (extra forward passes)
    keep_deterministic: bool = False  # also run the dropout-free pass (the trust report's baseline)
    tta: int | None = None  # test-time flips of the network grid (None: inference.tta.DEFAULT_FLIPS; 1: none); the MC
    # samples are spread over them
    ensemble: tuple = ()  # further checkpoints, pooled with ``weights`` on the case grid (a checkpoint ensemble)
    min_et_ml: float | None = None  # a smaller predicted ET becomes NCR (None: inference.postprocess.MIN_ET_ML; 0: off)
    enhancement_check: bool | None = None  # predicted ET not brighter on T1ce than on T1 becomes NCR (None:
    # inference.postprocess.ENHANCEMENT_CHECK)


def gradcam_class_indices(spec) -> list[int]:
    """'all' -> the tumour classes, 'none' -> [], else names/indices like 'NCR,ET'."""
    if spec is None:
        return []
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in ("none", ""):
            return []
        if key == "all":
            return [class_index(c) for c in TUMOUR_CLASSES]
        spec = [s for s in spec.split(",") if s.strip()]
    return sorted({class_index(str(s).strip()) for s in spec})


def resolve_weights(weights: Path | None) -> Path:
    from .resources import demo_weights_path

    if not weights:
        path = demo_weights_path()
        if not path.is_file():
            raise BrainTumorXAIError(f"no default weights (the bundled demo weights are not installed at {path}): "
                                     "pass --weights")
        return path
    path = Path(weights)
    if not path.exists():
        raise BrainTumorXAIError(f"{path}: checkpoint not found")
    return path


def analyze_case(case_dir, out_dir, options: AnalysisOptions | None = None,
                 control: JobControl | None = None) -> dict:
    """Run the whole analysis and return the summary (also written as summary.json)."""
    from .io.case_io import load_case
    from .models.checkpoint import load_model

    options = options or AnalysisOptions()
    control = control or JobControl(stage_weights=STAGE_WEIGHTS)
    out_dir = Path(out_dir)
    weights = resolve_weights(options.weights)
    # Replacing the output folder must never delete an input (--out CASE --overwrite, --out ..).
    protect = [("weights file", weights)]
    if case_dir is not None:
        protect.append(("case folder", Path(case_dir)))
    check_not_replacing_inputs(out_dir, protect)
    check_output_dir(out_dir, options.overwrite)  # fail before any heavy work
    if options.scene is not None:
        _require_slicer()
        if Path(options.scene).exists() and not options.overwrite:
            raise BrainTumorXAIError(f"{options.scene}: scene file exists (use --overwrite to replace it)")
    if options.surfaces:
        _require_vtk()
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    control.report("load", 0.0, "loading case")
    t0 = time.perf_counter()
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)  # fp16 on a CPU fails here, before the model loads
    model, meta = load_model(weights, device=device)
    members = [(Path(w), *load_model(resolve_weights(Path(w)), device=device)) for w in options.ensemble]
    protect += [("weights file", w) for w, _, _ in members]
    # Only what every member can do without may be missing.
    optional = set(optional_sequences(meta)).intersection(*(optional_sequences(m) for _, _, m in members))
    case = load_case(case_dir, mapping=options.mapping, optional=tuple(s for s in SEQUENCES if s in optional))
    protect += [(f"{key} file", path) for key, path in case.files.items()]  # an explicit mapping may point anywhere
    check_not_replacing_inputs(out_dir, protect)
    if case.missing:
        control.report("load", 1.0, f"{', '.join(case.missing)} missing: the model runs without "
                                    f"{'it' if len(case.missing) == 1 else 'them'}")
    timings["load"] = time.perf_counter() - t0

    classes = gradcam_class_indices(options.gradcam)
    # The staging folder is created before inference: an unwritable --out fails in seconds, not after it.
    with staged_output(out_dir, overwrite=options.overwrite, protect=protect) as staging:
        prediction = predict_case(case, model, meta, device, options, control, classes, postprocessing=not members)
        timings.update(prediction.timings)
        if members:
            t0 = time.perf_counter()
            prediction = pool_checkpoints(prediction, [predict_case(case, m, mm, device, options, control, (),
                                                                    postprocessing=False)
                                                       for _, m, mm in members], case, options)
            timings["ensemble"] = time.perf_counter() - t0
        grid, maps, transform, brain = prediction.grid, prediction.maps, prediction.transform, prediction.brain

        from .reporting.trust import trust_report

        report = partial(trust_report, staging, case, prediction, model, device, meta, options)
        # The trust report needs only the finished maps: it joins the output jobs, unless its explanation
        # checks (forward passes of the network) are asked for.
        in_pool = not getattr(options, "explanation_checks", False)
        outputs, evaluation = _write_outputs(staging, case, grid, brain, options, control, timings,
                                             trust=report if in_pool else None)
        if not in_pool:
            evaluation["trust_report"] = report()
        timings["trust_report"] = evaluation["trust_report"]["seconds"]
        timings["total"] = time.perf_counter() - t_start
        summary = {
            "braintumorxai_version": __version__,
            "case": case.summary(),
            "missing_sequences": list(case.missing),
            "model": _model_summary(weights, meta, model),
            "ensemble": [{"weights": str(w), "sequences": m.get("sequences"),
                          "provenance_epoch": (m.get("provenance") or {}).get("epoch")} for w, _, m in members],
            "device": str(device),
            "precision": precision_name(precision),
            "platform": {"python": platform.python_version(), "torch": torch.__version__},
            "options": {"mc_samples": options.mc_samples, "gradcam_classes": [CLASS_NAMES[c] for c in classes],
                        "gradcam_layer": maps.gradcam_layer, "seed": options.seed, "overlap": options.overlap,
                        "windows": maps.n_windows, "tta_flips": resolved_flips(options),
                        "ensemble_members": 1 + len(members)},
            "gradcam_fallback_all_voxels": {CLASS_NAMES[c]: v for c, v in maps.gradcam_fallback.items()},
            "preprocessing": transform.to_dict(),
            "postprocessing": grid.get("postprocessing"),
            "timings_s": {k: round(v, 4) for k, v in timings.items()},
            **evaluation,
            "outputs": outputs,
            **options.extra_summary,
        }
        (staging / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    if options.scene is not None:
        from .slicer_bridge.mrb_from_results import write_scene_from_results

        write_scene_from_results(out_dir, options.scene)
        summary["scene"] = str(options.scene)
    control.report("figures", 1.0, "done")
    return summary


@dataclass
class CasePrediction:
    grid: dict  # maps on the case grid: probabilities, classes, entropy, variance, ...
    maps: object  # PredictionMaps on the network grid
    transform: object  # PreprocessTransform
    brain: np.ndarray  # brain mask on the case grid
    timings: dict


def optional_sequences(meta: dict) -> tuple[str, ...]:
    """Sequences the checkpoint was trained to do without (sequence dropout); () for older checkpoints."""
    return tuple(meta.get("normalisation", {}).get("optional_sequences", ()))


def network_input(case, meta: dict):
    """(input, network brain mask, PreprocessTransform, case brain mask) as the checkpoint's recipe says.

    A missing optional sequence is a channel of zeros after normalisation, as in training.
    """
    from .io.intensity import brain_mask
    from .io.network_grid import preprocess

    norm = dict(meta.get("normalisation", {}))
    sequences = list(meta.get("sequences", list(SEQUENCES)))
    missing = set(getattr(case, "missing", ()))
    present = [i for i, s in enumerate(sequences) if s not in missing]
    images = _reorder_channels(case.images, sequences)[present]
    brain = brain_mask(case.images)
    try:
        net_present, net_mask, transform = preprocess(
            images, case.affine, method=norm.get("method", "zscore"), crop=norm.get("crop", "brain"),
            window=int(norm.get("window", 128)), spacing=norm.get("spacing"),
            multiple_of=int(norm.get("multiple_of", 16)), mask=brain, reorient=bool(norm.get("reorient", True)),
        )
    except ValueError as exc:
        raise _name_the_file(exc, case, [sequences[i] for i in present]) from exc
    net_input = np.zeros((len(sequences), *net_present.shape[1:]), np.float32)
    net_input[present] = net_present
    return net_input, net_mask, transform, brain


def _name_the_file(exc: ValueError, case, sequences) -> Exception:
    """preprocessing speaks of channel indices; the user needs the file and the sequence."""
    match = re.match(r"channel (\d+) is constant inside the brain mask \(([^)]*)\)", str(exc))
    if match is None:
        return exc
    seq = sequences[int(match.group(1))]
    path = getattr(case, "files", {}).get(seq) or getattr(case, "folder", None)
    return CaseError(path, f"the {seq} image is constant inside the brain ({match.group(2)} everywhere); "
                           "cannot normalise it (is this the right file?)")


def predict_case(case, model, meta: dict, device, options: AnalysisOptions, control: JobControl | None = None,
                 gradcam_classes=None, postprocessing: bool = True) -> CasePrediction:
    """Preprocess, predict on the network grid, and map everything back onto the case grid.

    Grad-CAM is computed for ``options.gradcam`` unless ``gradcam_classes`` says otherwise (() for none).
    ``postprocessing`` False leaves the segmentation the maps' argmax (an ensemble member: ``pool_checkpoints``
    post-processes the pooled segmentation once).
    """
    from .inference.predictor import Predictor

    if gradcam_classes is None:
        gradcam_classes = gradcam_class_indices(options.gradcam)
    control = control or JobControl()
    timings = {}
    control.report("preprocess", 0.0, "preprocessing")
    t0 = time.perf_counter()
    net_input, net_mask, transform, brain = network_input(case, meta)
    timings["preprocess"] = time.perf_counter() - t0
    window = int(meta.get("normalisation", {}).get("window", 128))
    _require_sequences(case, meta)

    def make_predictor(mc_samples: int, seed_offset: int = 0, primary: bool = True):
        # Grad-CAM and the dropout-free baseline belong to the un-augmented pass only.
        return Predictor(model, device, window=(window,) * 3, overlap=options.overlap,
                         mc_samples=mc_samples, mc_batch=options.mc_batch, seed=options.seed + seed_offset,
                         gradcam_classes=gradcam_classes if primary else (),
                         gradcam_layer=options.gradcam_layer if primary else None, control=control,
                         keep_deterministic=primary and getattr(options, "keep_deterministic", False),
                         precision=options.precision)

    t0 = time.perf_counter()
    n_flips = resolved_flips(options)
    if n_flips > 1:
        from .inference.tta import predict_with_flips

        maps = predict_with_flips(make_predictor, net_input, net_mask, n_flips, options.mc_samples)
    else:
        maps = make_predictor(options.mc_samples).predict(net_input, net_mask)
    timings["inference"] = time.perf_counter() - t0
    timings.update({f"inference.{k}": v for k, v in maps.timings_s.items()})
    control.report("resample", 0.0, "mapping back to the input grid")
    t0 = time.perf_counter()
    grid = _back_to_input_grid(maps, transform, brain)
    timings["resample"] = time.perf_counter() - t0
    if postprocessing:
        grid["postprocessing"] = postprocess(grid["classes"], case, brain, options)
    return CasePrediction(grid, maps, transform, brain, timings)


def resolved_flips(options) -> int:
    from .inference.tta import DEFAULT_FLIPS

    flips = getattr(options, "tta", None)
    return DEFAULT_FLIPS if flips is None else int(flips)


def postprocess(classes: np.ndarray, case, brain: np.ndarray, options) -> dict:
    """The segmentation's post-processing steps, in place, in order; what each did (``summary["postprocessing"]``)."""
    from .inference.postprocess import ENHANCEMENT_CHECK, MIN_ET_ML, small_et_to_core, unenhanced_et_to_core

    steps = {}
    check = getattr(options, "enhancement_check", None)
    if ENHANCEMENT_CHECK if check is None else check:
        images = dict(zip(SEQUENCES, case.images))
        t1 = None if "t1" in getattr(case, "missing", ()) else images["t1"]
        steps["enhancement_check"] = unenhanced_et_to_core(classes, images["t1ce"], t1, brain, case.spacing)
    min_ml = getattr(options, "min_et_ml", None)
    steps["small_et"] = small_et_to_core(classes, case.spacing, MIN_ET_ML if min_ml is None else float(min_ml))
    return steps


def pool_checkpoints(primary: CasePrediction, others: list[CasePrediction], case, options) -> CasePrediction:
    """A checkpoint ensemble: every member's samples pooled on the case grid (members may differ in grid and
    window, so the network grids do not match).  Grad-CAM, attention and the dropout-free baseline stay the
    primary checkpoint's.  The moments are pooled after trilinear mapping (exact inside a member's voxels,
    interpolated between them like every other map)."""
    from .inference.combine import Member, pool
    from .reporting.metrics import class_argmax

    members = [Member(probabilities=p.grid["probabilities"], variance=p.grid.get("variance"),
                      mutual_information=p.grid.get("mutual_information"), entropy=p.grid["entropy"],
                      samples=max(int(p.maps.mc_samples), 1)) for p in [primary, *others]]
    pooled = pool(members)
    classes = class_argmax(pooled.probabilities)
    classes[~primary.brain] = 0
    steps = postprocess(classes, case, primary.brain, options)  # the same steps, on the pooled segmentation
    grid = dict(primary.grid, probabilities=pooled.probabilities, classes=classes, entropy=pooled.entropy,
                variance=pooled.variance, mutual_information=pooled.mutual_information, postprocessing=steps)
    return CasePrediction(grid, primary.maps, primary.transform, primary.brain, dict(primary.timings))


# -- helpers ---------------------------------------------------------------------
def _require_sequences(case, meta: dict) -> None:
    """A checkpoint fed a zero channel for a sequence it was never trained to miss would answer nonsense."""
    required = [s for s in meta.get("sequences", SEQUENCES) if s not in optional_sequences(meta)]
    lacking = [s for s in required if s in getattr(case, "missing", ())]
    if lacking:
        raise CaseError(getattr(case, "folder", None), f"no {', '.join(lacking)} image, and a checkpoint of this "
                        f"analysis needs {'it' if len(lacking) == 1 else 'them'} (it can do without: "
                        f"{', '.join(optional_sequences(meta)) or 'nothing'})")


def _require_slicer() -> None:
    try:
        import slicer  # noqa: F401
    except ImportError as exc:
        raise BrainTumorXAIError("--scene needs the slicer-core wheel: pip install 'braintumorxai[slicer]'") from exc


def _require_vtk() -> None:
    """Fail before any heavy work when VTK is not installed (found, not imported: the surfaces job imports
    the few VTK modules it uses)."""
    from importlib.util import find_spec

    if find_spec("vtkmodules") is None:
        raise BrainTumorXAIError("surface meshes need VTK: pip install vtk (or pass --no-surfaces)")


def _reorder_channels(images: np.ndarray, model_sequences) -> np.ndarray:
    """Feed the channels in the order the checkpoint recorded (case images come in SEQUENCES order)."""
    order = [SEQUENCES.index(s) for s in model_sequences]
    return images[order]


def _back_to_input_grid(maps, transform, brain: np.ndarray) -> dict:
    """Every network-grid map onto the case grid; probabilities stay a partition of unity."""
    from .io.network_grid import invert_stack

    n_cls = maps.probabilities.shape[0]
    fills = [1.0] + [0.0] * (n_cls - 1)  # outside the crop: background for sure
    # One stack, one pass: the same trilinear map for every channel.
    stack = [*maps.probabilities, maps.entropy]
    if maps.variance is not None:
        stack += [*maps.variance, maps.mutual_information]
    cams, atts = list(maps.gradcam), list(maps.attention)
    stack += [maps.gradcam[c] for c in cams] + [maps.attention[k] for k in atts]
    fills += [0.0] * (len(stack) - n_cls)
    inverted = invert_stack(transform, stack, fills)  # float32, ours: clipped in place (no second copy at 1 mm)
    probs = np.clip(inverted[:n_cls], 0.0, 1.0, out=inverted[:n_cls])
    probs /= np.maximum(probs.sum(axis=0, keepdims=True), 1e-12)
    from .reporting.metrics import class_argmax

    classes = class_argmax(probs)
    classes[~brain] = 0

    def clipped(a, hi=None):
        return np.clip(a, 0.0, hi, out=a)

    out = {"probabilities": probs, "classes": classes, "entropy": clipped(inverted[n_cls])}
    k = n_cls + 1
    if maps.variance is not None:
        out["variance"] = clipped(inverted[k:k + n_cls])
        out["mutual_information"] = clipped(inverted[k + n_cls])
        k += n_cls + 1
    out["gradcam"] = {c: clipped(inverted[k + i], 1.0) for i, c in enumerate(cams)}
    k += len(cams)
    out["attention"] = {name: clipped(inverted[k + i], 1.0) for i, name in enumerate(atts)}
    return out


def _write_outputs(staging: Path, case, grid: dict, brain: np.ndarray, options: AnalysisOptions,
                   control: JobControl, timings: dict, trust=None) -> tuple[dict, dict]:
    """NIfTI volumes, figures, the trust report (``trust``: a callable, when given), surfaces and
    metrics: independent jobs.

    None needs the network; each reads the finished maps and writes its own files.
    They run in threads (``_output_workers``: one each from ``OUTPUT_THREADS_MIN_CPUS``
    CPUs, three on 2-3 CPUs, none on one), so the stage costs about its slowest lane.
    Every job's own duration is recorded; ``outputs`` is the wall time of all of them.
    Progress is reported per stage in the usual order; a cancel stops the volume
    writer at its next file, and the folder is removed only after every job ended.
    The trust report's figures use matplotlib's object API (no pyplot), so they may
    be drawn beside the pyplot figures.
    """
    from concurrent.futures import ThreadPoolExecutor, wait

    def job(name, fn, *args):
        def run():
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                timings[name] = time.perf_counter() - t0
        return name, run

    # Longest first (figures and volumes, ~3 s each on a real-size case; the trust report ~2.5 s; metrics
    # ~0.6 s; surfaces ~0.4 s): the short jobs fill the lanes that end first.
    jobs = [job("write", _write_volumes, staging, case, grid, control)]
    if options.figures:
        jobs.append(job("figures", _write_figures, staging, case, grid))
    if trust is not None:
        jobs.append(("trust_report", trust))  # times itself (its "seconds")
    if options.surfaces:
        jobs.append(job("surfaces", _write_surfaces, staging, grid["classes"], brain, case.affine))
    jobs.append(job("metrics", _evaluate, case, grid, brain))
    control.report("write", 0.0, "writing volumes" + (", surfaces" if options.surfaces else "")
                   + ", metrics" + (" and figures" if options.figures else ""))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=_output_workers(len(jobs)), thread_name_prefix="analyze-output") as pool:
        futures = {name: pool.submit(run) for name, run in jobs}
        wait(futures.values())
    timings["outputs"] = time.perf_counter() - t0
    for future in futures.values():  # the first failure (a cancel included), in stage order
        if future.exception() is not None:
            raise future.exception()
    outputs = futures["write"].result()
    if "surfaces" in futures:
        outputs["surfaces"] = futures["surfaces"].result()
    if "figures" in futures:
        outputs["figures"] = futures["figures"].result()
    for name in futures:
        if name in STAGE_WEIGHTS:
            control.report(name, 1.0, f"{name} done")
    evaluation = futures["metrics"].result()
    if "trust_report" in futures:
        evaluation["trust_report"] = futures["trust_report"].result()
    return outputs, evaluation


def _output_workers(n_jobs: int, cpus: int | None = None) -> int:
    """Threads for the output jobs.  They are submitted longest first (write, figures, trust report, surfaces,
    metrics), so on 2-3 CPUs three workers start writing (zlib, in threads, outside the GIL), the figures and the
    trust report together, and take the rest as they finish.  Measured on an idle 2-core machine with the
    default weights on a 240x240x155 case, trust report included: outputs 6.0 s with two threads, 5.2 s with
    three (four runs each); before the trust report joined, 5.15 s one after the other and 3.70 s with two
    threads (four threads were then 2x slower than one: the GIL-bound jobs thrashed)."""
    cpus = cpus or usable_cpus()
    if cpus >= OUTPUT_THREADS_MIN_CPUS:
        return n_jobs
    return min(OUTPUT_THREADS_FEW_CPUS, n_jobs) if cpus >= 2 else 1


def _write_volumes(folder: Path, case, grid: dict, control: JobControl) -> dict:
    from .io.case_io import save_label_map, save_volume

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
    from .reporting.surfaces import case_surfaces, write_case_surfaces

    written = write_case_surfaces(case_surfaces(classes, brain, affine), folder / "surfaces")
    return {name: {fmt: str(Path(p).relative_to(folder)) for fmt, p in files.items()} for name, files in written.items()}


def _evaluate(case, grid: dict, brain: np.ndarray) -> dict:
    from .reporting.metrics import mc_accuracy, segmentation_metrics, volumes_cm3

    spacing = tuple(float(s) for s in case.spacing)
    result: dict = {"volumes_cm3": volumes_cm3(grid["classes"], spacing), "metrics": None,
                    "uncertainty_quality": None}
    if case.label is not None:
        from .reporting.calibration_metrics import uncertainty_quality

        result["metrics"] = segmentation_metrics(grid["classes"], case.label, spacing)
        result["metrics"]["mc_accuracy"] = mc_accuracy(grid["probabilities"], case.label, mask=brain)
        result["uncertainty_quality"] = uncertainty_quality(grid["probabilities"], grid["entropy"], case.label, brain)
    return result


def _write_figures(folder: Path, case, grid: dict) -> list[str]:
    from .reporting.figures import write_all_figures

    images = {s: case.images[SEQUENCES.index(s)] for s in ("t1ce", "flair", "t2")}
    probs = {n: p for n, p in zip(CLASS_NAMES, grid["probabilities"]) if n != "background"}
    uncertainty = {n: v for n, v in zip(CLASS_NAMES, grid.get("variance", ())) if n != "background"}
    uncertainty["entropy"] = grid["entropy"]
    cams = {CLASS_NAMES[c]: m for c, m in grid["gradcam"].items()}
    paths = write_all_figures(folder / "figures", images, grid["classes"], probs, uncertainty, cams, case.affine,
                              gt_classes=case.label)
    return [str(Path(p).relative_to(folder)) for p in paths]


def _model_summary(weights: Path, meta: dict, model) -> dict:
    from .reporting.checkpoint_trust import checkpoint_trust

    return {"weights": str(weights), "architecture": meta.get("architecture"),
            "sequences": meta.get("sequences"), "normalisation": meta.get("normalisation"),
            "provenance": meta.get("provenance"),
            "trust": checkpoint_trust(meta, weights),  # the checkpoint's uncertainty-quality card (None: not measured)
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def _jsonable(obj):
    """NaN -> None and numpy scalars -> Python, so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if not np.isfinite(v) else v
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj
