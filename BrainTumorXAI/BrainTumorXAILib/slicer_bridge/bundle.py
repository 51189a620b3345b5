"""BrainTumorXAILogic's scene bundles: the whole scene as a Slicer data bundle (.mrb)."""

from __future__ import annotations

from pathlib import Path

import slicer

from ..errors import BrainTumorXAIError
from .i18n import tr


class BundleMixin:
    """Write the scene as one .mrb file."""

    def saveSceneBundle(self, path) -> Path:
        """Write the whole scene as a Slicer data bundle (.mrb).

        In the Slicer application the application's own scene saving is used
        (``slicer.util.saveScene``: the core IO manager, which adds the screenshot thumbnail and
        writes each node through its registered writer; Slicer 5.6.2-5.10.0); ``WriteToMRB`` is
        used only headless (slicer-core wheel, ``analyze --scene``) or for a scene other than
        the application's.
        """
        path = Path(path).resolve()
        if path.suffix.lower() != ".mrb":
            raise BrainTumorXAIError(tr("{path}: scene bundles must end in .mrb").format(path=path))
        path.parent.mkdir(parents=True, exist_ok=True)
        if _applicationScene() is self.scene:
            if not slicer.util.saveScene(str(path)) or not path.is_file():
                raise BrainTumorXAIError(tr("{path}: could not write the scene bundle (see the application log)").format(
                    path=path))
            return path
        messages = slicer.vtkMRMLMessageCollection()
        cache = self.scene.GetCacheManager()
        if cache is not None and not cache.GetRemoteCacheDirectory():
            # Without a cache folder Slicer stages the bundle next to the file system root.
            import tempfile

            cache.SetRemoteCacheDirectory(tempfile.gettempdir())
        if not self.scene.WriteToMRB(str(path), None, messages) or not path.is_file():
            raise BrainTumorXAIError(tr("{path}: could not write the scene bundle: {messages}").format(
                path=path, messages=" ".join(messages.GetAllMessagesAsString().split())))
        return path


def _applicationScene():
    """The Slicer application's scene when running inside the application (with its IO manager), else None."""
    app = getattr(slicer, "app", None)
    if app is None or not hasattr(app, "coreIOManager") or not hasattr(getattr(slicer, "util", None), "saveScene"):
        return None
    return getattr(slicer, "mrmlScene", None)
