"""BrainTumorXAILogic: everything the Slicer module does, without Qt.

It imports with the slicer-core wheel alone (tests, ``analyze --scene``, the
web viewer) and inside the Slicer application, where it derives from
``ScriptedLoadableModuleLogic``.  The scene is passed explicitly; by default
it is ``slicer.mrmlScene`` when that exists.

Geometry rule used everywhere (one helper, :func:`.nodes.volumeNodeFromNifti`): the
node's IJKToRAS matrix is the NIfTI affine unchanged, and the node's array
(k, j, i) is the nibabel array (i, j, k) transposed.
"""

from __future__ import annotations

import logging

import slicer

from ..errors import BrainTumorXAIError
from .bundle import BundleMixin
from .display import DisplayMixin
from .i18n import tr
from .inputs import InputsMixin
from .process import ProcessMixin
from .results import ResultsMixin

try:  # inside the Slicer application
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as _LogicBase
except ImportError:  # slicer-core wheel: no Qt, no ScriptedLoadableModule

    class _LogicBase:
        def __init__(self, parent=None):
            self.moduleName = self.__class__.__name__.removesuffix("Logic")
            self.isSingletonParameterNode = True


class BrainTumorXAILogic(InputsMixin, ProcessMixin, ResultsMixin, DisplayMixin, BundleMixin, _LogicBase):
    """Load BraTS cases and analysis results as MRML nodes, drive the background analysis.

    One public class composed from one mixin per job: :class:`InputsMixin` (cases, input checks, export),
    :class:`ProcessMixin` (the analysis process), :class:`ResultsMixin` (results into the scene),
    :class:`DisplayMixin` (colour tables, overlays, legends, presets) and :class:`BundleMixin` (.mrb).
    """

    def __init__(self, scene=None) -> None:
        _LogicBase.__init__(self)
        self.scene = scene if scene is not None else getattr(slicer, "mrmlScene", None)
        if self.scene is None:
            raise BrainTumorXAIError(tr("no MRML scene: pass one (slicer.bootstrap.create_headless_scene())"))


logging.getLogger(__name__).addHandler(logging.NullHandler())
