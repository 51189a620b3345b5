"""The module's parameter node: one field per widget with a ``SlicerParameterName`` in the .ui."""

from pathlib import Path
from typing import Annotated, Optional, Union

from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from BrainTumorXAILib.inference.explanation_options import (DEFAULT_EVIDENCE_METHOD, DEFAULT_GRADCAM_METHOD,
                                                          EVIDENCE_METHODS, GRADCAM_METHODS)
from BrainTumorXAILib.resources import demo_weights_path
from BrainTumorXAILib.slicer_bridge.preprocessing_view import BRAIN_EXTRACTION_CHOICES, PREPROCESS_CHOICES


@parameterNodeWrapper
class BrainTumorXAIParameterNode:
    """
    t1Volume, t1ceVolume, t2Volume, flairVolume - the BraTS inputs (T1/T2 may be empty if the model allows it).
    groundTruth - optional reference segmentation (segments named NCR/ED/ET) or BraTS label map.
    useBundledWeights - the bundled demo weights; else modelPath, a checkpoint file.
    device - auto, CPU or GPU.  precision - the network's compute precision: fp32 (exact), bf16, auto.  mcSamples - Monte Carlo Dropout samples (0: deterministic only).
    gradcamNCR/ED/ET - classes to compute Grad-CAM for.  overlayOpacity - opacity of the slice overlay.
    enhancementCheck - predicted enhancing tumour not brighter on T1ce than on T1 is shown as necrotic core.
    gradcamMethod, sequenceEvidence - ``analyze --gradcam-method`` / ``--sequence-evidence``.
    preprocess, brainExtraction - ``analyze --preprocess`` / ``--brain-extraction``; brainExtraction "segmentation":
    brainMaskSegmentation's visible segments are the brain mask (``--brain-mask``).
    """

    t1Volume: Optional[vtkMRMLScalarVolumeNode]
    t1ceVolume: Optional[vtkMRMLScalarVolumeNode]
    t2Volume: Optional[vtkMRMLScalarVolumeNode]
    flairVolume: Optional[vtkMRMLScalarVolumeNode]
    groundTruth: Optional[Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]]
    useBundledWeights: bool = True
    # The path connector takes a Path only (no Optional; parameterNodeWrapper 5.6.2-5.10.0), whose default "."
    # the line edit would show: the bundled weights' file is the default, used only when the box is unticked.
    modelPath: Path = demo_weights_path()
    device: Annotated[str, Choice(["auto", "CPU", "GPU"])] = "auto"
    precision: Annotated[str, Choice(["fp32", "bf16", "auto"])] = "fp32"
    mcSamples: Annotated[int, WithinRange(0, 200)] = 20
    gradcamNCR: bool = True
    gradcamED: bool = True
    gradcamET: bool = True
    overlayOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    enhancementCheck: bool = True
    gradcamMethod: Annotated[str, Choice(list(GRADCAM_METHODS))] = DEFAULT_GRADCAM_METHOD
    sequenceEvidence: Annotated[str, Choice(list(EVIDENCE_METHODS))] = DEFAULT_EVIDENCE_METHOD
    preprocess: Annotated[str, Choice(list(PREPROCESS_CHOICES))] = "auto"
    brainExtraction: Annotated[str, Choice(list(BRAIN_EXTRACTION_CHOICES))] = "auto"
    brainMaskSegmentation: Optional[vtkMRMLSegmentationNode]
