"""What the user asked of the clinical preprocessing stage (CLI, Slicer module and web viewer alike)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "full", "none")
#: Brain extraction: auto = none when the T1ce is already brain-extracted, else DEFAULT_BRAIN_EXTRACTION.
BRAIN_EXTRACTIONS = ("auto", "atlas", "robex", "none")
#: Chosen by brain-mask Dice against the BraTS mask of TCGA-FG-6692 and by time (docs/performance.md).
DEFAULT_BRAIN_EXTRACTION = "atlas"
ATLASES = ("sri24", "mni152")


@dataclass
class ClinicalOptions:
    mode: str = "auto"  # auto: full for raw scans, none for BraTS-preprocessed input (see decide.py)
    brain_extraction: str = "auto"
    brain_mask: Path | None = None  # a mask the user made on the T1ce grid (overrides brain_extraction)
    atlas: str = "sri24"  # the space the model was trained in (BraTS: SRI24)
    atlas_outputs: bool = False  # also keep the atlas-space maps (OUT/atlas/)
    n4: bool = False  # N4 bias-field correction of every sequence before the atlas resampling
    seed: int = 1  # the registrations' metric sampling
