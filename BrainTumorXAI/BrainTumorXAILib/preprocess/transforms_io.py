"""The preprocessing's transforms as ITK transform files (3D Slicer and ANTs read them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_transform(transform: sitk.Transform, path) -> Path:
    """Write ``transform`` (ITK convention: it maps points of the fixed image to the moving image, LPS mm)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteTransform(transform, str(path))
    return path


def read_transform(path) -> sitk.Transform:
    return sitk.ReadTransform(str(path))


def rigid_parameters(transform: sitk.Transform) -> dict:
    """Rotation angle (degrees) and translation (mm) of a rigid transform, for the summary and plausibility checks."""
    matrix = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0))))
    # The displacement of the rotation centre is what a reader pictures as "how far it moved".
    centre = np.asarray(transform.GetCenter(), dtype=np.float64)
    shift = np.asarray(transform.TransformPoint(centre.tolist())) - centre
    return {"rotation_deg": round(angle, 3), "translation_mm": round(float(np.linalg.norm(shift)), 3),
            "matrix": matrix.round(6).tolist(), "translation": list(np.round(transform.GetTranslation(), 4)),
            "center": centre.round(4).tolist()}
