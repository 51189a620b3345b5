"""Names of the explanation methods, without torch: the CLI, the Slicer GUI and the web viewer list them and
``analyze`` checks a choice before any heavy work (one clear line, not a traceback from inside inference)."""

from __future__ import annotations

from ..errors import BrainTumorXAIError

#: ``--gradcam-method`` (inference.gradcam.METHODS defines each).
GRADCAM_METHODS = ("gradcam-finest", "gradcam", "hirescam", "gradcampp", "layercam", "gradcam-contrast",
                   "layercam-fused", "contrastive-finest", "contrastive", "contrastive-hirescam",
                   "contrastive-layercam", "healthy-contrast-finest", "healthy-contrast-hirescam",
                   "dual-contrast-finest", "log-softmax-finest")
#: Chosen on the validation cases by rules fixed before measuring (training/records/default/selection/
#: gradcam_method_rule*.txt): the largest share of each class's map within 5 mm of its predicted region
#: (round 1 chose gradcam-finest, round 2 the contrastive score at the same stage, round 5 log p_c there).
DEFAULT_GRADCAM_METHOD = "log-softmax-finest"
#: ``--sequence-evidence`` (inference.sequence_evidence).
EVIDENCE_METHODS = ("occlusion", "ig", "none")
DEFAULT_EVIDENCE_METHOD = "occlusion"


def check_explanation_options(options) -> None:
    method = getattr(options, "gradcam_method", None)
    if method is not None and method.strip().lower() not in GRADCAM_METHODS:
        raise BrainTumorXAIError(f"unknown Grad-CAM method {method!r}; expected one of {', '.join(GRADCAM_METHODS)}")
    evidence = getattr(options, "sequence_evidence", None)
    if evidence is not None and evidence.strip().lower() not in EVIDENCE_METHODS:
        raise BrainTumorXAIError(f"unknown sequence evidence method {evidence!r}; expected one of "
                                 f"{', '.join(EVIDENCE_METHODS)}")
