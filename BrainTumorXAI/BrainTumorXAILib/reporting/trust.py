"""The trust report of one analysed case: ``summary.json["trust_report"]`` and its figures.

- ``uncertainty_quality``: per region (WT, TC, ET), only with a ground truth (``region_uncertainty_quality.py``).
- ``review``: the ranked high-uncertainty regions (``review_regions.py``), always; the figure
  ``figures/where_to_look.png`` and the label map ``review_regions.nii.gz`` (1 = first region).
- ``explanation_checks``: only on request (``analyze --explanation-checks``; extra forward passes),
  on the network grid (``explanation_checks.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..analysis_options import AnalysisOptions
from ..inference.case_prediction import CasePrediction, network_input
from ..io.nifti_writer import save_volume
from ..io.labels import SEQUENCES
from ..io.network_grid import invert_stack
from .explanation_checks import explanation_checks
from .region_uncertainty_quality import region_uncertainty_quality
from .review_regions import review_regions, review_summary
from .trust_figures import reliability_figure, where_to_look_figure


def deterministic_entropy_on_case_grid(prediction: CasePrediction) -> np.ndarray | None:
    """Entropy of the dropout-free softmax, mapped onto the case grid like every other map (None if not kept)."""
    if "deterministic_entropy" in prediction.grid:  # carried onto a native grid already (preprocess/native.py)
        return prediction.grid["deterministic_entropy"]
    det = getattr(prediction.maps, "deterministic", None)
    if det is None:
        return None
    p = np.clip(np.asarray(det, np.float64), 1e-12, 1.0)
    ent = -(p * np.log(p)).sum(axis=0).astype(np.float32)
    out = invert_stack(prediction.transform, [ent], [0.0])[0].clip(min=0)
    out[~np.asarray(prediction.brain, bool)] = 0.0
    return out


def case_uncertainty_quality(case, prediction: CasePrediction) -> dict | None:
    """Per-region uncertainty quality of a case with a ground truth (None without one)."""
    if getattr(case, "label", None) is None:
        return None
    grid = prediction.grid
    return region_uncertainty_quality(grid["probabilities"], case.label, prediction.brain, entropy=grid["entropy"],
                                      mutual_information=grid.get("mutual_information"),
                                      variance=grid.get("variance"),
                                      deterministic_entropy=deterministic_entropy_on_case_grid(prediction))


def trust_report(folder: Path | None, case, prediction: CasePrediction, model=None, device=None, meta=None,
                 options: AnalysisOptions | None = None) -> dict:
    """Everything above for one case; writes figures and the review label map into ``folder`` when given."""
    t0 = time.perf_counter()
    grid = prediction.grid
    report: dict = {"uncertainty_quality": case_uncertainty_quality(case, prediction)}
    threshold = 0.5 * float(np.log(grid["probabilities"].shape[0]))
    regions, ranked = review_regions(grid["entropy"], grid["probabilities"], case.affine, prediction.brain,
                                     threshold, return_labels=True)
    report["review"] = review_summary(regions, threshold)
    figures = []
    if folder is not None:
        folder = Path(folder)
        # Integer ranks (0..max_regions): int16 holds them exactly in half the bytes of float32.
        save_volume(ranked.astype(np.int16), case.affine, folder / "review_regions.nii.gz", header=case.header,
                    dtype=np.int16)
        report["review"]["label_map"] = "review_regions.nii.gz"
        if options is None or options.figures:
            background = case.images[SEQUENCES.index("t1ce")]
            figures.append(where_to_look_figure(background, grid["entropy"], ranked, regions, case.affine,
                                                folder / "figures" / "where_to_look.png"))
            if report["uncertainty_quality"] is not None:
                figures.append(reliability_figure(report["uncertainty_quality"], folder / "figures" / "reliability.png"))
    report["figures"] = [str(Path(p).relative_to(folder)) for p in figures]
    report["explanation_checks"] = None
    if options is not None and options.explanation_checks and model is not None:
        report["explanation_checks"] = case_explanation_checks(case, prediction, model, device, meta, options)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def case_explanation_checks(case, prediction: CasePrediction, model, device, meta: dict,
                            options: AnalysisOptions) -> dict:
    """Explanation checks on the network grid (the preprocessing is rerun: it is cheap and deterministic)."""
    volume, net_mask, _, _ = network_input(case, meta)
    window = int(meta.get("normalisation", {}).get("window", 128))
    spacing = np.linalg.norm(prediction.transform.resampled_affine[:3, :3], axis=0)  # the network grid's
    return explanation_checks(model, device, volume, net_mask, prediction.maps, (window,) * 3,
                              overlap=options.overlap, layer=prediction.maps.gradcam_layer, seed=options.seed,
                              method=prediction.maps.gradcam_method, spacing=tuple(float(s) for s in spacing),
                              energy=prediction.grid.get("gradcam_locality"))
