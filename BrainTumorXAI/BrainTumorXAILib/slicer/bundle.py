"""BrainTumorXAILogic's scene bundles: the whole scene as a Slicer data bundle (.mrb)."""

from __future__ import annotations

from pathlib import Path

import slicer

from ..errors import BrainTumorXAIError


class BundleMixin:
    """Write the scene as one .mrb file."""

    def saveSceneBundle(self, path) -> Path:
        """Write the whole scene as a Slicer data bundle (.mrb)."""
        path = Path(path).resolve()
        if path.suffix.lower() != ".mrb":
            raise BrainTumorXAIError(f"{path}: scene bundles must end in .mrb")
        path.parent.mkdir(parents=True, exist_ok=True)
        messages = slicer.vtkMRMLMessageCollection()
        cache = self.scene.GetCacheManager()
        if cache is not None and not cache.GetRemoteCacheDirectory():
            # Without a cache folder Slicer stages the bundle next to the file system root.
            import tempfile

            cache.SetRemoteCacheDirectory(tempfile.gettempdir())
        if not self.scene.WriteToMRB(str(path), None, messages) or not path.is_file():
            raise BrainTumorXAIError(f"{path}: could not write the scene bundle: {messages.GetAllMessagesAsString()}")
        return path
