"""The clinical preprocessing (issue 26) as the module offers and reports it, without Qt: the brain-extraction
choices, the status line after a run and where its registration QC figure is."""

from __future__ import annotations

from pathlib import Path

from .i18n import tr

#: The brain-extraction menu: the CLI's --brain-extraction choices, plus a segmentation of the scene as the mask.
BRAIN_MASK_FROM_SEGMENTATION = "segmentation"
BRAIN_EXTRACTION_CHOICES = ("auto", "atlas", "robex", "none", BRAIN_MASK_FROM_SEGMENTATION)
PREPROCESS_CHOICES = ("auto", "full", "none")
#: Folder attributes of a run: its preprocessing status line and its QC figure (a PNG file).
ATTR_PREPROCESSING = "BrainTumorXAI.Preprocessing"
ATTR_QC_FIGURE = "BrainTumorXAI.PreprocessingQC"


def brainExtractionOptions(choice: str, segmentation) -> dict:
    """``startRun`` keywords for the menu's choice: a segmentation replaces the extraction (``--brain-mask``)."""
    if choice == BRAIN_MASK_FROM_SEGMENTATION:
        return {"brainExtraction": "auto", "brainMaskSegmentation": segmentation}
    return {"brainExtraction": choice or "auto", "brainMaskSegmentation": None}


def brainMaskProblem(choice: str, segmentation) -> str:
    """Why Apply cannot run with this brain-extraction choice ('' when it can)."""
    if choice == BRAIN_MASK_FROM_SEGMENTATION and segmentation is None:
        return tr("Choose the segmentation to use as the brain mask")
    return ""


def preprocessingStatus(summary: dict) -> str:
    """One line for the status bar: that raw scans were preprocessed, and the first registration warning (the
    others are in summary.json); '' for BraTS-preprocessed input without warnings."""
    clinical = summary.get("preprocessing_clinical") or {}
    parts = []
    if clinical.get("mode") == "full":
        method = (clinical.get("brain_extraction") or {}).get("method", "?")
        parts.append(tr("Raw scans preprocessed (co-registered to the T1ce, brain extraction: {method}); "
                        "results on the T1ce grid.").format(method=method))
    warnings = [" ".join(str(w).split()) for w in clinical.get("warnings") or []]
    if warnings:
        more = tr(" (+{n} more in summary.json)").format(n=len(warnings) - 1) if len(warnings) > 1 else ""
        parts.append(tr("Check the registration: {warning}{more}").format(warning=warnings[0], more=more))
    return " ".join(parts)


def qcFigurePath(outDir, summary: dict) -> Path | None:
    """The results folder's registration QC figure, None when the run drew none (no preprocessing, no matplotlib)."""
    rel = ((summary.get("preprocessing_clinical") or {}).get("outputs") or {}).get("qc_figure")
    path = Path(outDir) / rel if rel else None
    return path if path is not None and path.is_file() else None
