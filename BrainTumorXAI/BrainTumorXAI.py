"""Brain Tumor XAI: the 3D Slicer module.

The module, its widget and the developer Reload.  The panel's wiring and dialogs are in the GUI-only
``BrainTumorXAIGui/`` (the parameter node, the panel, the self-test); its decisions, texts and the
run bookkeeping, like everything else that can be tested without Qt, are in the Logic,
``BrainTumorXAILib/slicer_bridge/`` (``BrainTumorXAILogic``, ``RunSession``), which the test suite runs on
the slicer-core wheel.  Slicer APIs used here were checked against Slicer's source at v5.6.2, v5.8.1
and v5.10.0 (notes at each use).
"""

import os
import sys

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget

from BrainTumorXAIGui.panel import BrainTumorXAIPanel
from BrainTumorXAIGui.parameters import BrainTumorXAIParameterNode  # noqa: F401 (the template's place for it)
from BrainTumorXAIGui.selftest import BrainTumorXAITest  # noqa: F401 (Slicer finds <Module>Test here)
from BrainTumorXAILib.slicer_bridge import extension
from BrainTumorXAILib.slicer_bridge.logic import BrainTumorXAILogic

#: The packages next to this file that Reload imports anew.
RELOADED_PACKAGES = ("BrainTumorXAILib", "BrainTumorXAIGui")


class BrainTumorXAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Brain Tumor XAI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["BrainTumorXAI developers"]
        self.parent.helpText = _("""
Segments gliomas in BraTS-style MRI (T1, T1ce, T2, FLAIR) with a 3D U-Net and explains the result:
per-class softmax probabilities, Monte Carlo Dropout variance, predictive entropy and mutual information,
Grad-CAM 3D heatmaps, and closed surfaces of the tumour subregions (NCR red, ED green, ET yellow)
inside a translucent brain. The analysis runs in a separate process; Slicer stays responsive and the run
can be cancelled. Each run gets its own subject-hierarchy folder with a results table (volumes, and
Dice/HD95 when a ground truth is given). T1 and T2 may be left empty when the chosen model allows it.
<p><b>Research use only: not for diagnosis.</b> The bundled demo weights are for trying the module.</p>
See the <a href="https://github.com/braintumorxai/SlicerBrainTumorXAI#readme">documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Input layout and label conventions follow the BraTS challenge (Menze et al. 2015, Baid et al. 2021).
Uncertainty by Monte Carlo Dropout (Gal and Ghahramani 2016); Grad-CAM after Selvaraju et al. 2017.
""")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the bundled synthetic BraTS case in Sample Data (file names and checksums only: no scipy at start-up)."""
    import SampleData

    register = SampleData.SampleDataLogic.registerCustomSampleDataSource
    source = extension.sampleDataSource(os.path.join(os.path.dirname(__file__), "Resources", "Icons"),
                                        extension.sampleDataFileTypesKeyword(register))
    if source is not None:
        register(**source)


class BrainTumorXAIWidget(ScriptedLoadableModuleWidget):
    """The module panel (``BrainTumorXAIGui.panel``) over an injectable Logic."""

    def __init__(self, parent=None, logic=None) -> None:
        # Set before the base __init__: without a parent it calls setup() itself (ScriptedLoadableModule
        # 5.6.2-5.10.0), whose results must not be overwritten afterwards.
        self.logic = logic
        self.panel = None
        self.ui = None
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = self.logic or BrainTumorXAILogic()
        self.panel = BrainTumorXAIPanel(self.layout, self.resourcePath("UI/BrainTumorXAI.ui"), self.logic)
        self.ui = self.panel.ui

    def enter(self) -> None:
        self.panel.enter()

    def exit(self) -> None:
        self.panel.exit()

    def cleanup(self) -> None:
        if self.panel is not None:
            self.panel.cleanup()

    def onReload(self) -> None:
        """Developer Reload: also drop the BrainTumorXAILib and BrainTumorXAIGui modules, so the edited packages
        are imported anew (``reloadScriptedModule`` reloads only the module file; Slicer 5.6.2-5.10.0)."""
        for name in sorted(n for n in sys.modules if n.split(".")[0] in RELOADED_PACKAGES):
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)
