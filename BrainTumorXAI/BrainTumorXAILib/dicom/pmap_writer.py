"""DICOM Parametric Maps (float voxels, exact) of the probability and uncertainty outputs on the T1ce series.

One series per map, each frame on the T1ce instance at the same position, the value mapping (unit, range) in
the Real World Value Mapping so that a viewer shows the true values.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from ..io.labels import TERMINOLOGY_REGION, TUMOUR_CLASSES
from .derived import date_the_series, description, equipment
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
    # The Frame Anatomy functional group is mandatory in a Parametric Map and highdicom does not write it; DCMTK's
    # reader (dcmqi's paramap2itkimage, which Slicer's Parametric Map plugin runs) refuses the object without it.
    pm.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [_frame_anatomy()]
    _store_frames_along_the_normal(pm)
    date_the_series(pm)
    pm.save_as(str(path))
    return Path(path)


def _frame_anatomy() -> Dataset:
    scheme, value, meaning = TERMINOLOGY_REGION
    item = Dataset()
    item.AnatomicRegionSequence = [hd.sr.CodedConcept(value, scheme, meaning)]
    item.FrameLaterality = "U"  # the brain as one unpaired structure
    return item


def _store_frames_along_the_normal(pm) -> None:
    """Store the frames in increasing position along the row x column normal.

    highdicom sorts a volume's frames along the opposite direction (its index convention); dcmqi's
    paramap2itkimage, which Slicer's Parametric Map plugin runs, places frame n at slice n from the lowest position
    along row x column, so it would show such a map upside down.  Each frame keeps its functional groups (position,
    source instance, dimension index), so position-aware readers see the same object.
    """
    shared = pm.SharedFunctionalGroupsSequence[0]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    per_frame = pm.PerFrameFunctionalGroupsSequence
    along = [np.dot([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient], normal)
             for item in per_frame]
    order = np.argsort(along, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        return
    frames = np.frombuffer(pm.FloatPixelData, dtype="<f4").reshape(len(order), pm.Rows, pm.Columns)
    pm.FloatPixelData = np.ascontiguousarray(frames[order]).tobytes()
    pm.PerFrameFunctionalGroupsSequence = [per_frame[int(i)] for i in order]
