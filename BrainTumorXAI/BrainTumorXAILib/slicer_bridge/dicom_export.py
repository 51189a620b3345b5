"""*Export DICOM SEG* for a run on DICOM-loaded volumes: through Slicer's own DICOM SEG export where the running
Slicer has it, else through the Lib's writer (``BrainTumorXAILib.dicom``).

Slicer versions (their source read at the tags): ``DICOMSegmentationPlugin`` (with ``DICOMSegmentationExporter``)
is not in Slicer's core at v5.6.2, v5.8.1 or v5.10.0 (Modules/Scripted/DICOMPlugins has no such file there); those
versions get it from the QuantitativeReporting extension, later ones from the core (the file is in Slicer's main
branch).  The exporter needs the segmentation's reference geometry volume and the subject-hierarchy attribute
``DICOM.ReferencedInstanceUIDs``; a volume loaded from Slicer's DICOM browser has ``DICOM.instanceUIDs``.
The Lib's writer needs highdicom, which needs pydicom 3; Slicer 5.6-5.10 bundle pydicom 2.4, so there it
is available only where the user installed both.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from pathlib import Path

from ..errors import BrainTumorXAIError
from .i18n import tr

INSTANCE_UIDS = "DICOM.instanceUIDs"  # set by Slicer's DICOM scalar volume plugin on the loaded volume
REFERENCED_UIDS = "DICOM.ReferencedInstanceUIDs"  # what DICOMSegmentationPlugin's exporter reads
SLICER_SEG_MODULE = "DICOMSegmentationPlugin"


def dicomSourceFiles(volumeNode, database) -> list[str]:
    """The files a volume was loaded from through Slicer's DICOM database ([] when it was not)."""
    uids = (volumeNode.GetAttribute(INSTANCE_UIDS) or "").split() if volumeNode is not None else []
    files = [database.fileForInstance(uid) for uid in uids] if database is not None else []
    return files if files and all(files) else []


def slicerSegExporter():
    """Slicer's DICOMSegmentationExporter class (core >= 5.12, or QuantitativeReporting), else None."""
    if importlib.util.find_spec(SLICER_SEG_MODULE) is None:
        return None
    return getattr(importlib.import_module(SLICER_SEG_MODULE), "DICOMSegmentationExporter", None)


def libWriterProblem() -> str:
    """Why the Lib's DICOM writer cannot run in this Python ('' when it can)."""
    if importlib.util.find_spec("highdicom") is None:
        return tr("highdicom is not installed")
    import pydicom

    if int(pydicom.__version__.split(".")[0]) < 3:
        return tr("highdicom needs pydicom 3; this Slicer bundles pydicom {version}").format(
            version=pydicom.__version__)
    return ""


def newExportFolder(parent) -> Path:
    """A folder that does not exist yet inside the folder the user chose (whose contents are never touched)."""
    parent = Path(parent)
    stem = time.strftime("BrainTumorXAI-DICOM-%Y%m%d-%H%M%S")
    candidate, number = parent / stem, 1
    while candidate.exists():
        number += 1
        candidate = parent / f"{stem}-{number}"
    return candidate


def exportDicomSeg(scene, segmentationNode, referenceVolume, resultsFolder, parentDir, database) -> dict:
    """Write the run's DICOM SEG and parametric maps referencing the DICOM series ``referenceVolume`` was loaded
    from, into a new folder inside ``parentDir``.  Returns ``exporter`` (which wrote the SEG), ``folder`` and
    ``mapsSkipped`` (why no maps were written: Slicer's exporter writes only the SEG, and the Lib's writer cannot
    run in this Python; '' when they were)."""
    files = dicomSourceFiles(referenceVolume, database)
    if not files:
        raise BrainTumorXAIError(tr("{name} was not loaded from DICOM (no source instances in the DICOM database): "
                                    "export DICOM SEG needs the T1ce series loaded through the DICOM module")
                                 .format(name=referenceVolume.GetName() if referenceVolume else tr("no T1ce volume")))
    exporter = slicerSegExporter()
    problem = libWriterProblem()
    if exporter is None and problem:
        raise BrainTumorXAIError(tr("no DICOM SEG exporter: install the QuantitativeReporting extension "
                                    "(Slicer 5.10 and older) or use Slicer 5.12 or later ({problem})")
                                 .format(problem=problem))
    targetDir = newExportFolder(parentDir)
    if not problem:  # the maps (and, without Slicer's exporter, the SEG) through the Lib's writer
        from ..dicom.export import write_dicom_results
        from ..dicom.scan import read_series

        write_dicom_results(resultsFolder, read_series(files), targetDir, segmentation=exporter is None)
    if exporter is None:
        return {"exporter": "BrainTumorXAI", "folder": targetDir, "mapsSkipped": ""}
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
    shNode = scene.GetSubjectHierarchyNode()
    item = shNode.GetItemByDataNode(segmentationNode)
    shNode.SetItemAttribute(item, REFERENCED_UIDS, referenceVolume.GetAttribute(INSTANCE_UIDS))
    targetDir.mkdir(parents=True, exist_ok=True)
    seg = exporter(segmentationNode)
    try:  # empty segments (no ET, say) are left out rather than asked about
        seg.export(str(targetDir), "seg.dcm", {"SeriesDescription": "Tumour segmentation NCR/ED/ET (research)"},
                   skipEmpty=True)
    finally:
        seg.cleanup()
    return {"exporter": "Slicer", "folder": targetDir, "mapsSkipped": problem}
