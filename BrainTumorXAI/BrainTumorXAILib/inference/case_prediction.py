"""The case-level inference stage: one loaded case and a checkpoint in, every map on the case's own grid out.

``network_input`` prepares the network grid as the checkpoint's recipe says, ``predict_case`` runs the predictor
(MC Dropout, test-time flips, Grad-CAM) and maps everything back onto the case grid, ``pool_checkpoints`` pools a
checkpoint ensemble there.  ``analyze``, the trust report and the training tools share it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from ..analysis_options import AnalysisOptions, gradcam_class_indices, resolved_flips
from ..errors import CaseError
from ..io.intensity import brain_mask
from ..io.labels import SEQUENCES
from ..io.network_grid import PreprocessTransform, invert_stack, preprocess
from ..reporting.explanation_checks import map_locality
from ..reporting.metrics import class_argmax
from ..runtime import JobControl
from .combine import Member, pool
from .postprocess import ENHANCEMENT_CHECK, MIN_ET_ML, small_et_to_core, unenhanced_et_to_core
from .predictor import PredictionMaps, Predictor
from .sequence_evidence import DEFAULT_METHOD, case_sequence_evidence
from .tta import predict_with_flips


@dataclass
class CasePrediction:
    grid: dict  # maps on the case grid: probabilities, classes, entropy, variance, ...
    maps: PredictionMaps  # on the network grid
    transform: PreprocessTransform
    brain: np.ndarray  # brain mask on the case grid
    timings: dict


def optional_sequences(meta: dict) -> tuple[str, ...]:
    """Sequences the checkpoint was trained to do without (sequence dropout); () for older checkpoints."""
    return tuple(meta.get("normalisation", {}).get("optional_sequences", ()))


def network_input(case, meta: dict):
    """(input, network brain mask, PreprocessTransform, case brain mask) as the checkpoint's recipe says.

    A missing optional sequence is a channel of zeros after normalisation, as in training.
    """
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
    """The normalisation speaks of channel indices; the user needs the file and the sequence."""
    match = re.match(r"channel (\d+) is constant inside the brain mask \(([^)]*)\)", str(exc))
    if match is None:
        return exc
    seq = sequences[int(match.group(1))]
    path = getattr(case, "files", {}).get(seq) or getattr(case, "folder", None)
    return CaseError(path, f"the {seq} image is constant inside the brain ({match.group(2)} everywhere); "
                           "cannot normalise it (is this the right file?)")


def predict_case(case, model, meta: dict, device, options: AnalysisOptions, control: JobControl | None = None,
                 gradcam_classes=None, postprocessing: bool = True, evidence: bool = False) -> CasePrediction:
    """Prepare the network grid, predict on it, and map everything back onto the case grid.

    Grad-CAM is computed for ``options.gradcam`` unless ``gradcam_classes`` says otherwise (() for none).
    ``postprocessing`` False leaves the segmentation the maps' argmax (an ensemble member: ``pool_checkpoints``
    post-processes the pooled segmentation once).  ``evidence``: also the sequence evidence
    (``options.sequence_evidence``; ``grid["sequence_evidence"]``).
    """
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
                         gradcam_layer=options.gradcam_layer if primary else None,
                         control=control.share("inference", seed_offset, resolved_flips(options)),
                         gradcam_method=options.gradcam_method if primary else None,
                         keep_deterministic=primary and options.keep_deterministic,
                         precision=options.precision)

    t0 = time.perf_counter()
    n_flips = resolved_flips(options)
    if n_flips > 1:
        maps = predict_with_flips(make_predictor, net_input, net_mask, n_flips, options.mc_samples)
    else:
        maps = make_predictor(options.mc_samples).predict(net_input, net_mask)
    timings["inference"] = time.perf_counter() - t0
    timings.update({f"inference.{k}": v for k, v in maps.timings_s.items()})
    control.report("resample", 0.0, "mapping back to the input grid")
    t0 = time.perf_counter()
    grid = back_to_input_grid(maps, transform, brain)
    timings["resample"] = time.perf_counter() - t0
    if maps.gradcam:  # measured where the maps were made, the network grid (the model card's figures too)
        spacing = np.linalg.norm(transform.resampled_affine[:3, :3], axis=0)
        grid["gradcam_locality"] = map_locality(maps, net_mask, tuple(float(s) for s in spacing))
    if evidence:
        t0 = time.perf_counter()
        grid["sequence_evidence"] = case_sequence_evidence(model, device, net_input, net_mask, maps, transform, brain,
                                                           meta, case, options.sequence_evidence or DEFAULT_METHOD)
        timings["sequence_evidence"] = time.perf_counter() - t0
    if postprocessing:
        grid["postprocessing"] = postprocess_segmentation(grid["classes"], case, brain, options)
    return CasePrediction(grid, maps, transform, brain, timings)


def postprocess_segmentation(classes: np.ndarray, case, brain: np.ndarray, options: AnalysisOptions) -> dict:
    """The segmentation's post-processing steps, in place, in order; what each did (``summary["postprocessing"]``)."""
    steps = {}
    check = options.enhancement_check
    if ENHANCEMENT_CHECK if check is None else check:
        images = dict(zip(SEQUENCES, case.images))
        t1 = None if "t1" in getattr(case, "missing", ()) else images["t1"]
        steps["enhancement_check"] = unenhanced_et_to_core(classes, images["t1ce"], t1, brain, case.spacing)
    min_ml = options.min_et_ml
    steps["small_et"] = small_et_to_core(classes, case.spacing, MIN_ET_ML if min_ml is None else float(min_ml))
    return steps


def pool_checkpoints(primary: CasePrediction, others: list[CasePrediction], case,
                     options: AnalysisOptions, postprocessing: bool = True) -> CasePrediction:
    """A checkpoint ensemble: every member's samples pooled on the case grid (members may differ in grid and
    window, so the network grids do not match).  Grad-CAM, attention and the dropout-free baseline stay the
    primary checkpoint's.  The moments are pooled after trilinear mapping (exact inside a member's voxels,
    interpolated between them like every other map)."""
    members = [Member(probabilities=p.grid["probabilities"], variance=p.grid.get("variance"),
                      mutual_information=p.grid.get("mutual_information"), entropy=p.grid["entropy"],
                      samples=max(int(p.maps.mc_samples), 1)) for p in [primary, *others]]
    pooled = pool(members)
    classes = class_argmax(pooled.probabilities)
    classes[~primary.brain] = 0
    # The same steps, on the pooled segmentation.
    steps = postprocess_segmentation(classes, case, primary.brain, options) if postprocessing else None
    grid = dict(primary.grid, probabilities=pooled.probabilities, classes=classes, entropy=pooled.entropy,
                variance=pooled.variance, mutual_information=pooled.mutual_information, postprocessing=steps)
    return CasePrediction(grid, primary.maps, primary.transform, primary.brain, dict(primary.timings))


def _require_sequences(case, meta: dict) -> None:
    """A checkpoint fed a zero channel for a sequence it was never trained to miss would answer nonsense."""
    required = [s for s in meta.get("sequences", SEQUENCES) if s not in optional_sequences(meta)]
    lacking = [s for s in required if s in getattr(case, "missing", ())]
    if lacking:
        raise CaseError(getattr(case, "folder", None), f"no {', '.join(lacking)} image, and a checkpoint of this "
                        f"analysis needs {'it' if len(lacking) == 1 else 'them'} (it can do without: "
                        f"{', '.join(optional_sequences(meta)) or 'nothing'})")


def _reorder_channels(images: np.ndarray, model_sequences) -> np.ndarray:
    """Feed the channels in the order the checkpoint recorded (case images come in SEQUENCES order)."""
    order = [SEQUENCES.index(s) for s in model_sequences]
    return images[order]


def back_to_input_grid(maps: PredictionMaps, transform: PreprocessTransform, brain: np.ndarray) -> dict:
    """Every network-grid map onto the case grid; probabilities stay a partition of unity."""
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
