"""BrainTumorXAI core: pure-Python brain-tumour segmentation and explainability.

Imports neither Slicer nor Qt, and needs no GPU.  Submodules are imported on
demand so that ``import BrainTumorXAILib`` stays cheap (torch is heavy).
"""

__version__ = "0.1.0"
