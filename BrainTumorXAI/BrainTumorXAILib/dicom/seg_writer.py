"""A DICOM Segmentation (NCR, ED, ET) from ``seg.nii.gz`` on the T1ce grid, referencing the T1ce series.

Binary segmentation with one frame per source slice for every segment (empty frames kept, so that each frame of
a segment lies on exactly one source instance); the codes and colours are the Slicer segmentation's.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.coding import Code

from ..io.labels import (CLASS_COLORS, CLASS_LONG_NAMES, TERMINOLOGY_CATEGORY, TERMINOLOGY_REGION,
                         TERMINOLOGY_TYPES, TUMOUR_CLASSES, to_internal)
from .derived import FIRST_SERIES_NUMBER, algorithm, date_the_series, description, equipment
from .frames import frames_for_source, volume_on_source
from .scan import Series


def _code(triple) -> Code:
    scheme, value, meaning = triple
    return Code(value, scheme, meaning)


def segment_descriptions() -> list:
    """One segment per tumour class, numbered as the internal classes (NCR 1, ED 2, ET 3)."""
    out = []
    for number, name in enumerate(TUMOUR_CLASSES, start=1):
        out.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=_code(TERMINOLOGY_CATEGORY),
            segmented_property_type=_code(TERMINOLOGY_TYPES[name]), algorithm_type="AUTOMATIC",
            algorithm_identification=algorithm(), anatomic_regions=[_code(TERMINOLOGY_REGION)],
            display_color=hd.color.CIELabColor.from_rgb(*(round(255 * c) for c in CLASS_COLORS[name]))))
    return out


def segmentation_frames(seg_path: Path, convention: str, series: Series) -> np.ndarray:
    """Internal classes (slices, rows, columns), frame n on the T1ce instance ``series.headers[n]``."""
    values = volume_on_source(seg_path, series)
    return frames_for_source(to_internal(np.rint(values).astype(np.uint8), convention), series)


def write_segmentation(frames: np.ndarray, series: Series, path: Path,
                       series_number: int = FIRST_SERIES_NUMBER) -> Path:
    """Write the SEG for class frames (slices, rows, columns) of ``series`` at ``path``."""
    seg = hd.seg.Segmentation(
        source_images=series.headers, pixel_array=frames.astype(np.uint8), segmentation_type="BINARY",
        segment_descriptions=segment_descriptions(), series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, omit_empty_frames=False,
        series_description=description("Tumour segmentation NCR/ED/ET"),
        content_description="; ".join(f"{n}: {CLASS_LONG_NAMES[n]}" for n in TUMOUR_CLASSES)[:64],
        content_label="TUMOUR", **equipment())
    date_the_series(seg)
    seg.save_as(str(path))
    return Path(path)
