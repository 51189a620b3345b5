"""Node attribute names, the segmentation terminology and display defaults shared by the Logic's parts."""

from __future__ import annotations

from ..io.labels import SEQUENCES, TERMINOLOGY_TYPES, TUMOUR_CLASSES
from ..io.labels import TERMINOLOGY_CATEGORY as _CATEGORY
from ..io.labels import TERMINOLOGY_REGION as _REGION
from ..reporting.evidence_table import SEQUENCE_LABELS
from .i18n import tr

# -- terminology --------------------------------------------------------------------
# The codes (io.labels, shared with the DICOM SEG) in Slicer's "DICOM master list" terminology contexts.
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def terminologyEntry(className: str) -> str:
    """Serialized Slicer terminology entry of a tumour class (vtkSegment.SetTerminology format)."""
    triple = "^".join
    return "~".join([TERMINOLOGY_CONTEXT, triple(_CATEGORY), triple(TERMINOLOGY_TYPES[className]), "^^",
                     ANATOMIC_CONTEXT, triple(_REGION), "^^"])


# -- display defaults -----------------------------------------------------------------
#: Colour node per overlay kind: the first one present in the scene wins (Slicer's file-based
#: tables like Inferno/Viridis exist in the application; the wheel has only the built-in ones).
OVERLAY_COLORS = {  # fallbacks chosen dark/cold at 0 and bright/hot at the maximum, like the first choice
    "probability": ("Inferno", "vtkMRMLColorTableNodeIron"),
    "variance": ("Viridis", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "entropy": ("Magma", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "mutual_information": ("Magma", "vtkMRMLPETProceduralColorNodePET-HotMetalBlue"),
    "gradcam": ("ColdToHotRainbow", "vtkMRMLPETProceduralColorNodePET-Rainbow2"),
    # Sequence evidence (evidence_<sequence>, per class): where the class's probability rests on that sequence.
    **{f"evidence_{s}": ("Inferno", "vtkMRMLColorTableNodeIron") for s in SEQUENCES},
}
OVERLAY_TITLES = {"probability": "probability", "variance": "MC variance", "entropy": "entropy",
                  "mutual_information": "mutual information", "gradcam": "Grad-CAM",
                  **{f"evidence_{s}": f"evidence from {SEQUENCE_LABELS[s]}" for s in SEQUENCES}}
#: The colour legends' titles (shown in the views: translated; the node names above stay as they are).
LEGEND_TITLES = {"probability": tr("probability"), "variance": tr("MC variance"), "entropy": tr("entropy"),
                 "mutual_information": tr("mutual information"), "gradcam": tr("Grad-CAM"),
                 **{f"evidence_{s}": tr("evidence from {sequence}").format(sequence=SEQUENCE_LABELS[s])
                    for s in SEQUENCES}}
#: Overlay kinds on a 0..1 scale (the rest: 0 to the map's maximum).
UNIT_OVERLAYS = ("probability", "gradcam", *(f"evidence_{s}" for s in SEQUENCES))
BRAIN_COLOR = (0.90, 0.82, 0.76)
BRAIN_OPACITY = 0.15
PRESETS = {"tumour": TUMOUR_CLASSES, "tumor": TUMOUR_CLASSES, "ncr": ("NCR",), "ed": ("ED",), "et": ("ET",),
           "wt": ("NCR", "ED", "ET"), "tc": ("NCR", "ET"), "all": TUMOUR_CLASSES}

ATTR_RUN = "BrainTumorXAI.Run"  # folder name of the run a node belongs to
ATTR_KIND = "BrainTumorXAI.Kind"  # segmentation, labelmap, probability, variance, ..., brain, table, input
ATTR_CLASS = "BrainTumorXAI.Class"
ATTR_SEQUENCE = "BrainTumorXAI.Sequence"
ATTR_OUTPUT = "BrainTumorXAI.OutputFolder"
ATTR_CASE = "BrainTumorXAI.Case"  # the load batch of a case's volumes (Load case): inputs are paired within one
RUN_FOLDER_PREFIX = "BrainTumorXAI"
SEQUENCE_TITLES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
