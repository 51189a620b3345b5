"""DICOM in, DICOM out: a study folder from PACS to the ordinary NIfTI analysis and back to DICOM SEG / Parametric Maps.

- ``scan``: walk a folder, group image files by series, skip and list what is not an MR image series;
- ``geometry``: order a series' slices by position along the slice normal, check spacing and orientation;
- ``assign``: which series is T1 / T1ce / T2 / FLAIR, from the headers or the user's overrides;
- ``convert``: a series -> NIfTI on its exact scanner geometry;
- ``seg_writer`` / ``pmap_writer``: DICOM Segmentation and Parametric Maps from the written NIfTI outputs;
- ``study``: the table ``info`` prints; ``run``: the ``analyze`` flow for a DICOM folder.
"""

from __future__ import annotations

from ..errors import CaseError


class DicomError(CaseError):
    """A DICOM folder, series or file is unusable: ``"<path>: <problem>"`` on one line."""
