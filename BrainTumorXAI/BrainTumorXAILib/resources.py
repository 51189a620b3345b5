"""Where the bundled demo weights and sample case live.

The repository keeps them in the top-level ``Resources/`` folder; a Slicer
extension build installs them next to the module; a wheel (pip install of the
project, not editable) carries them as ``BrainTumorXAILib/demo_data``.  All
three places are searched.
"""

from __future__ import annotations

from pathlib import Path

_LIB_DIR = Path(__file__).resolve().parent
_CANDIDATES = (
    _LIB_DIR.parent.parent / "Resources",  # source tree / editable install
    _LIB_DIR.parent / "Resources",  # installed Slicer module
    _LIB_DIR / "demo_data",  # wheel install (package data, see pyproject.toml)
)

DEMO_WEIGHTS_NAME = "demo_weights.pt"
SAMPLE_CASE_NAME = "SampleCase"


def resources_dir() -> Path:
    for candidate in _CANDIDATES:
        if (candidate / DEMO_WEIGHTS_NAME).exists() or (candidate / SAMPLE_CASE_NAME).is_dir():
            return candidate
    return _CANDIDATES[0]


def demo_weights_path() -> Path:
    return resources_dir() / DEMO_WEIGHTS_NAME


def sample_case_path() -> Path:
    return resources_dir() / SAMPLE_CASE_NAME
