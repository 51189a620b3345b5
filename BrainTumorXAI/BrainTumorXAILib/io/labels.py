"""Class and region definitions, BraTS label conventions, colours.

Internally every label map uses four classes:
    0 background, 1 necrotic / non-enhancing core (NCR), 2 edema (ED),
    3 enhancing tumour (ET).
On disk BraTS uses two conventions: 2020/2021 writes ET as 4, 2023/2024 as 3.
Predictions are written back in the case's own convention.
"""

from __future__ import annotations

import numpy as np

#: Fixed input channel order of every model (recorded in checkpoints).
SEQUENCES: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")

CLASS_NAMES: tuple[str, ...] = ("background", "NCR", "ED", "ET")
CLASS_LONG_NAMES: dict[str, str] = {
    "background": "Background",
    "NCR": "Necrotic / non-enhancing tumour core",
    "ED": "Peritumoral edema",
    "ET": "Enhancing tumour",
}
TUMOUR_CLASSES: tuple[str, ...] = ("NCR", "ED", "ET")

#: Evaluation regions as sets of internal class indices.
REGIONS: dict[str, tuple[int, ...]] = {
    "WT": (1, 2, 3),  # whole tumour
    "TC": (1, 3),  # tumour core
    "ET": (3,),  # enhancing tumour
}

#: File-name suffix of each sequence and of the label map, per BraTS naming convention.
NAMINGS: dict[str, dict[str, str]] = {
    "brats2021": {"t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "flair": "_flair", "seg": "_seg"},
    "brats2023": {"t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "flair": "-t2f", "seg": "-seg"},
}

#: On-disk label value of each internal class, per convention.
CONVENTIONS: dict[str, tuple[int, int, int, int]] = {
    "brats2021": (0, 1, 2, 4),
    "brats2023": (0, 1, 2, 3),
}

#: BraTS-like display colours (RGB, 0..1): NCR red, ED green, ET yellow.
CLASS_COLORS: dict[str, tuple[float, float, float]] = {
    "NCR": (0.86, 0.18, 0.15),
    "ED": (0.20, 0.75, 0.25),
    "ET": (1.00, 0.85, 0.10),
}


#: Coded terminology of the tumour classes (scheme, code, meaning), one table for the Slicer segmentation and the
#: DICOM SEG: SNOMED CT entries of the DICOM master list (as in Slicer's General Anatomy list and MONAI's BraTS models).
TERMINOLOGY_CATEGORY = ("SCT", "49755003", "Morphologically Altered Structure")
TERMINOLOGY_REGION = ("SCT", "12738006", "Brain")
TERMINOLOGY_TYPES: dict[str, tuple[str, str, str]] = {
    "NCR": ("SCT", "6574001", "Necrosis"),
    "ED": ("SCT", "79654002", "Edema"),
    "ET": ("SCT", "86049000", "Neoplasm, Primary"),
}
#: The segmenting algorithm as a DICOM SEG names it (SegmentAlgorithmName; the type is AUTOMATIC).
ALGORITHM_NAME = "BrainTumorXAI"


def class_index(name: str) -> int:
    """Index of a class given by name (case-insensitive) or as a digit string."""
    if name.isdigit():
        idx = int(name)
        if 0 <= idx < len(CLASS_NAMES):
            return idx
    for i, n in enumerate(CLASS_NAMES):
        if n.lower() == name.lower():
            return i
    raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}")


def detect_label_convention(values) -> str | None:
    """Which convention a set of on-disk label values fits.

    Returns 'brats2021' (ET = 4), 'brats2023' (ET = 3), 'ambiguous' when only
    {0, 1, 2} occur (identical in both; the caller decides from the file naming),
    or None when the values fit neither convention.
    """
    vals = {int(v) for v in values}
    if not vals <= {0, 1, 2, 3, 4} or {3, 4} <= vals:
        return None
    if 4 in vals:
        return "brats2021"
    if 3 in vals:
        return "brats2023"
    return "ambiguous"


def to_internal(labels: np.ndarray, convention: str) -> np.ndarray:
    """Map on-disk label values to internal classes 0..3 (uint8)."""
    table = CONVENTIONS[convention]
    out = np.zeros(labels.shape, dtype=np.uint8)
    for internal, disk in enumerate(table):
        if internal:
            out[labels == disk] = internal
    return out


def from_internal(classes: np.ndarray, convention: str) -> np.ndarray:
    """Map internal classes 0..3 back to the on-disk values of ``convention`` (uint8)."""
    lut = np.asarray(CONVENTIONS[convention], dtype=np.uint8)
    return lut[np.asarray(classes, dtype=np.intp)]


def region_mask(classes: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of a region (WT/TC/ET) from an internal class map."""
    return np.isin(classes, REGIONS[region])
