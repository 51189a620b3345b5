"""What every DICOM object written here shares: the equipment that made it and the research-use wording."""

from __future__ import annotations

import highdicom as hd
from pydicom.sr.codedict import codes

from .. import __version__
from ..io.labels import ALGORITHM_NAME

MANUFACTURER = ALGORITHM_NAME
MODEL_NAME = "BrainTumorXAI 3D U-Net"
RESEARCH = "research only, not for diagnosis"
#: Series numbers of the written objects start here (above the usual scanner series numbers).
FIRST_SERIES_NUMBER = 9001


def equipment() -> dict:
    """highdicom keyword arguments naming the software that wrote the object (ContentCreatorName is type 2:
    DCMTK-based readers such as dcmqi, which Slicer's DICOM plugins run, warn when it is absent)."""
    return {"manufacturer": MANUFACTURER, "manufacturer_model_name": MODEL_NAME,
            "software_versions": __version__, "device_serial_number": "none",
            "content_creator_name": f"{MANUFACTURER}^"}  # a person name of one component


def date_the_series(dataset) -> None:
    """SeriesDate/Time (which viewers sort and list series by) from the object's content date and time."""
    dataset.SeriesDate, dataset.SeriesTime = dataset.ContentDate, dataset.ContentTime


def algorithm() -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(name=ALGORITHM_NAME, version=__version__,
                                              family=codes.cid7162.ArtificialIntelligence)


def description(what: str) -> str:
    """A SeriesDescription (LO: at most 64 characters) that says what the series is and that it is research."""
    text = f"{what} - {RESEARCH}"
    return text if len(text) <= 64 else f"{what} (research)"[:64]
