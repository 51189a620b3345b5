"""BrainTumorXAI: pure-Python brain-tumour segmentation and explainability.

The core imports neither Slicer nor Qt and needs no GPU; ``slicer_bridge`` (the Slicer module's Qt-free Logic) and
``web`` (the web viewer) sit above it, and ``cli`` is the command line.  Submodules are imported on
demand so that ``import BrainTumorXAILib`` stays cheap (torch is heavy).
"""

__version__ = "0.1.0"
