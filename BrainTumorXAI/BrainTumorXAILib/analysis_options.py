"""What one analysis is asked to do (``AnalysisOptions``), shared by ``analyze``, the case-level inference
stage and the output writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inference.tta import DEFAULT_FLIPS
from .io.labels import TUMOUR_CLASSES, class_index
from .preprocess.options import ClinicalOptions


@dataclass
class AnalysisOptions:
    weights: Path | None = None  # None: the bundled demo weights
    device: str = "auto"
    precision: str = "fp32"  # the network's compute dtype: fp32 (exact), bf16, fp16 (CUDA) or auto; see inference.precision
    mc_samples: int = 20
    mc_batch: int | None = None
    gradcam: str | list[str] = "all"  # 'all', 'none', or class names
    gradcam_layer: str | None = None
    gradcam_method: str | None = None  # None: inference.explanation_options.DEFAULT_GRADCAM_METHOD
    sequence_evidence: str | None = None  # occlusion, ig or none (None: explanation_options.DEFAULT_EVIDENCE_METHOD)
    seed: int = 0
    overlap: float = 0.5
    mapping: dict | None = None  # explicit sequence -> file mapping
    clinical: ClinicalOptions = field(default_factory=ClinicalOptions)  # raw scans: preprocess/ (issue 26)
    surfaces: bool = True
    figures: bool = True
    overwrite: bool = False
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


def resolved_flips(options: AnalysisOptions) -> int:
    return DEFAULT_FLIPS if options.tta is None else int(options.tta)
