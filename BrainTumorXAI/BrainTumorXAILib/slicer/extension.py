"""What the Slicer module needs around the analysis, testable without Qt: the Python packages the analysis
process needs (looked up, never imported) and the bundled sample case as a Sample Data source."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from ..io.labels import SEQUENCES

#: Python packages the analysis process needs besides torch (installed on request).
REQUIREMENTS = ["nibabel>=5.0", "scipy>=1.10", "scikit-image>=0.21", "matplotlib>=3.7", "tqdm>=4.60", "nilearn>=0.10"]
#: The import name of each requirement, in the same order.
REQUIREMENT_MODULES = ("nibabel", "scipy", "skimage", "matplotlib", "tqdm", "nilearn")


def torchMissing() -> bool:
    """Whether torch cannot be imported (looked up only: the GUI process never imports it)."""
    return importlib.util.find_spec("torch") is None


def missingRequirements() -> list[str]:
    """The :data:`REQUIREMENTS` whose packages cannot be imported (looked up only)."""
    return [requirement for module, requirement in zip(REQUIREMENT_MODULES, REQUIREMENTS)
            if importlib.util.find_spec(module) is None]


def sampleDataSource(iconsPath) -> dict | None:
    """Arguments of ``SampleDataLogic.registerCustomSampleDataSource`` for the bundled synthetic case,
    or None when the sample case is absent or not usable (a broken sample must not break Slicer's start-up)."""
    from ..io.case_io import scan_case
    from ..resources import sample_case_path

    folder = sample_case_path()
    if not folder.is_dir():
        return None
    try:
        found = scan_case(folder)
    except Exception:  # a broken sample must not break Slicer's start-up
        logging.warning(f"BrainTumorXAI: sample case in {folder} is not usable")
        return None
    files = [found.files[s] for s in SEQUENCES]
    return dict(
        category="BrainTumorXAI",
        sampleName="BrainTumorXAI synthetic glioma",
        thumbnailFileName=os.path.join(iconsPath, "BrainTumorXAI.png"),
        uris=[Path(f).as_uri() for f in files],
        fileNames=[Path(f).name for f in files],
        nodeNames=[f"{found.case_id}_{s}" for s in SEQUENCES],
        loadFileType=["VolumeFile"] * len(files),
    )
