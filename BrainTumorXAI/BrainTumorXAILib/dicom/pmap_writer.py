"""DICOM Parametric Maps (float voxels, exact) of the probability and uncertainty outputs on the T1ce series.

One series per map, each frame on the T1ce instance at the same position, the value mapping (unit, range) in
the Real World Value Mapping so that a viewer shows the true values.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from ..io.labels import TUMOUR_CLASSES
from .derived import description, equipment
from .frames import frames_for_source, volume_on_source
from .scan import Series

#: Map kinds written by default (``--dicom-maps``), and every kind this writer knows.
DEFAULT_MAPS = ("probability", "entropy")
MAP_KINDS = ("probability", "entropy", "variance", "mutual_information", "gradcam")


def map_files(outputs: dict, kinds) -> list[tuple[str, str]]:
    """(title, relative NIfTI path) of each requested map among an analysis' ``summary["outputs"]``."""
    found = []
    for kind in kinds:
        if kind == "probability":
            found += [(f"P({c})", outputs["probabilities"][c]) for c in TUMOUR_CLASSES if c in outputs["probabilities"]]
        elif kind == "entropy":
            found.append(("Entropy", outputs["entropy"]))
        elif kind == "variance" and outputs.get("mc_variance"):
            found += [(f"MC variance {c}", outputs["mc_variance"][c]) for c in TUMOUR_CLASSES
                      if c in outputs["mc_variance"]]
        elif kind == "mutual_information" and outputs.get("mutual_information"):
            found.append(("Mutual information", outputs["mutual_information"]))
        elif kind == "gradcam":
            found += [(f"Grad-CAM {c}", p) for c, p in (outputs.get("gradcam") or {}).items()]
    return found


def map_frames(nifti: Path, series: Series) -> np.ndarray:
    return frames_for_source(volume_on_source(nifti, series).astype(np.float32), series)


def write_parametric_map(frames: np.ndarray, title: str, series: Series, path: Path, series_number: int) -> Path:
    """Write float32 ``frames`` (slices, rows, columns) on ``series`` as a Parametric Map at ``path``."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    low, high = float(frames.min()), float(frames.max())
    high = high if high > low else low + 1.0
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=title[:16], lut_explanation=title[:64], unit=codes.UCUM.NoUnits, value_range=(low, high),
        intercept=0.0, slope=1.0)
    pm = hd.pm.ParametricMap(
        source_images=series.headers, pixel_array=frames, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(  # LINEAR_EXACT: a window narrower than 1 is legal
            window_center=(low + high) / 2, window_width=high - low, voi_lut_function="LINEAR_EXACT")],
        series_description=description(title), content_label="MAP", content_description=title[:64],
        **equipment())
    if "BodyPartExamined" in series.first:  # the same body part (tells a validator the organ is unpaired)
        pm.BodyPartExamined = series.first.BodyPartExamined
    pm.save_as(str(path))
    return Path(path)
