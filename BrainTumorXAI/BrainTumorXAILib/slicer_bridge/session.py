"""The module panel's decisions and texts, without Qt: what Apply needs, the run in flight and the
run shown, the status line.  The panel (``BrainTumorXAIGui/panel.py``) only moves values between
these and the widgets; everything here runs on the slicer-core wheel.

``params`` is anything with the parameter node's fields (``t1Volume`` … ``flairVolume``,
``groundTruth``, ``useBundledWeights``, ``modelPath``, ``device``, ``mcSamples``, ``gradcamNCR`` …):
the module's ``parameterNodeWrapper`` in the application, a ``SimpleNamespace`` in the tests.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import traceback

from ..errors import BrainTumorXAIError
from ..io.labels import SEQUENCES, TUMOUR_CLASSES
from ..reporting.evidence_table import SEQUENCE_LABELS
from .i18n import tr
from .preprocessing_view import brainExtractionOptions, brainMaskProblem

#: The overlay menu: (kind, title); the kinds are :meth:`DisplayMixin.overlayNode`'s.
OVERLAY_KINDS = (("none", tr("None")), ("probability", tr("Probability")), ("variance", tr("MC variance")),
                 ("entropy", tr("Entropy")), ("mutual_information", tr("Mutual information")),
                 ("gradcam", tr("Grad-CAM")),
                 *((f"evidence_{s}", tr("Evidence from {sequence}").format(sequence=SEQUENCE_LABELS[s]))
                   for s in ("t1ce", "flair", "t1", "t2")))
#: Overlay kinds that exist once per tumour class (the class menu applies to them).
CLASS_OVERLAYS = ("probability", "variance", "gradcam", *(f"evidence_{s}" for s in SEQUENCES))

APPLY_TOOLTIP = tr("Segment the tumour and compute the explanation maps")
STARTING = tr("Starting…")
CANCELLING = tr("Cancelling…")
CANCELLED = tr("Cancelled; nothing was added to the scene.")
LOADING_RESULTS = tr("Loading the results…")
INSTALLING = tr("Installing the analysis packages…")
SCENE_CLOSED = tr("The scene was closed: the analysis is cancelled.")
#: The checkpoint file dialog: BrainTumorXAI checkpoints are torch.save files, whatever their suffix.
MODEL_FILE_FILTERS = (tr("PyTorch checkpoint (*.pt *.pth *.ckpt)"), tr("All files (*)"))


def volumeFields(volumes: dict) -> dict:
    """{parameter field: node} for a {sequence: node} choice (``t1`` -> ``t1Volume``)."""
    return {f"{seq}Volume": node for seq, node in volumes.items()}


def caseFields(nodes: dict) -> dict:
    """The parameter fields a loaded case sets: all four inputs (None for a missing one) and the ground
    truth, None when the case has no label file (the previous case's must not stay)."""
    return {**volumeFields({seq: nodes.get(seq) for seq in SEQUENCES}), "groundTruth": nodes.get("seg")}


def backgroundVolume(volumes: dict):
    """The volume the slice views show under the results: FLAIR, else T1ce (None when neither)."""
    return volumes.get("flair") or volumes.get("t1ce")


def loadedStatus(nodes: dict) -> str:
    return tr("Loaded {names}").format(names=", ".join(n.GetName() for n in nodes.values()))


def progressStatus(update: dict) -> tuple[int, str]:
    """(percent, status line) of one progress object of ``analyze --progress-json``."""
    return int(100 * float(update.get("fraction", 0.0))), f"{update.get('stage', '')}: {update.get('message', '')}"


def doneStatus(missing, unenhancedMl: float = 0.0) -> str:
    """The status line after a run was loaded; ``missing``: the sequences it ran without; ``unenhancedMl``:
    predicted enhancing tumour the enhancement check shows as necrotic core."""
    if missing:
        status = tr("Done; run without {names} (not given).").format(names=", ".join(m.upper() for m in missing))
    else:
        status = tr("Done.")
    if unenhancedMl > 0:
        status += " " + tr("{ml:.1f} mL called enhancing by the network is shown as necrotic core: not brighter on "
                           "T1ce than on T1.").format(ml=unenhancedMl)
    return status


def overlayUsesClass(kind) -> bool:
    return kind in CLASS_OVERLAYS


def refreshSetsOverlay(kind) -> bool:
    """Whether refreshing the outputs section (a run loaded, a scene opened) shows the overlay menu's choice:
    not for "none", which would clear the overlay the user set up in the slice views."""
    return kind not in (None, "", "none")


def errorDisplayOptions(detail: str) -> dict:
    """Keywords of ``slicer.util.errorDisplay`` for an error's details: none without details (given as None,
    "Show Details…" reads "None"; slicer.util.messageBox 5.6.2-5.10.0 sets every keyword it gets)."""
    return {"detailedText": detail} if detail else {}


def bundlePath(path: str) -> str:
    """A chosen scene-bundle path with the ``.mrb`` suffix."""
    return path if path.lower().endswith(".mrb") else path + ".mrb"


def savedStatus(path) -> str:
    return tr("Saved {path}").format(path=path)


def slotGuard(message: str, report):
    """Decorator for the panel's Qt slots: an exception becomes one ``report(owner, status, text, detail)``
    (status: the message and the error; text: the same on two lines; detail: the traceback, empty for a
    :class:`BrainTumorXAIError`, whose one line says it all) and the slot returns None, so no exception
    escapes a Qt slot (``slicer.util.tryWithErrorDisplay`` re-raises after its dialog, 5.6.2-5.10.0)."""

    def decorate(slot):
        code = slot.__code__
        # PythonQt passes a slot only as many of the signal's arguments as its code takes, all of them to
        # a ``*args`` function (PythonQtSignalTarget::call, as bundled with Slicer 5.6.2-5.10.0): the
        # wrapper takes ``*args`` and so drops the extra ones itself (``clicked(bool)`` -> ``onApply()``).
        taken = None if code.co_flags & inspect.CO_VARARGS else code.co_argcount - 1

        @functools.wraps(slot)
        def wrapper(owner, *args):
            try:
                return slot(owner, *args[:taken])
            except Exception as exc:
                logging.error(traceback.format_exc())
                detail = traceback.format_exc() if not isinstance(exc, BrainTumorXAIError) else ""
                report(owner, f"{message} {exc}", f"{message}\n\n{exc}", detail)
                return None

        return wrapper

    return decorate


class RunSession:
    """The panel's state: the analysis in flight (``process``) and the run folder shown (``runFolder``)."""

    def __init__(self, logic) -> None:
        self.logic = logic
        self.process = None
        self.runFolder = None
        self.installing = False

    @property
    def running(self) -> bool:
        return self.process is not None

    # -- before a run
    @staticmethod
    def volumes(params) -> dict:
        return {s: getattr(params, f"{s}Volume") for s in SEQUENCES}

    def weights(self, params):
        return self.logic.chosenWeights(params.modelPath, useBundled=params.useBundledWeights)

    def applyProblem(self, params) -> str:
        """Why Apply is not possible right now ('' when it is); the checks themselves are the Logic's."""
        if params is None:
            return tr("No parameter node")
        if self.installing:
            return INSTALLING  # Slicer's pip helpers process events: Apply must not start a second install
        if self.process is not None:
            return tr("An analysis is running")
        problem = self.logic.weightsProblem(params.modelPath, useBundled=params.useBundledWeights)
        if problem:
            return problem
        maskProblem = brainMaskProblem(getattr(params, "brainExtraction", "auto"),
                                       getattr(params, "brainMaskSegmentation", None))
        return (maskProblem
                or self.logic.inputProblem(self.volumes(params), params.groundTruth,
                                           optional=self.logic.optionalSequences(self.weights(params))))

    @staticmethod
    def applyToolTip(problem: str) -> str:
        return problem or APPLY_TOOLTIP

    def autoFillFields(self, params, scene, overwrite: bool) -> dict:
        """{parameter field: node} that auto-fill changes (:meth:`InputsMixin.autoFillChoice`)."""
        return volumeFields(self.logic.autoFillChoice(self.volumes(params), scene, overwrite=overwrite))

    def runOptions(self, params) -> dict:
        """``startRun`` keywords from the parameters (besides the volumes and the temporary folder)."""
        weights = self.weights(params)
        return dict(groundTruth=params.groundTruth, optional=self.logic.optionalSequences(weights), weights=weights,
                    device=params.device, precision=params.precision, mcSamples=params.mcSamples,
                    gradcamClasses=[c for c in TUMOUR_CLASSES if getattr(params, f"gradcam{c}")],
                    enhancementCheck=bool(getattr(params, "enhancementCheck", True)),
                    gradcamMethod=getattr(params, "gradcamMethod", None),
                    sequenceEvidence=getattr(params, "sequenceEvidence", None),
                    preprocess=getattr(params, "preprocess", "auto"),
                    **brainExtractionOptions(getattr(params, "brainExtraction", "auto"),
                                             getattr(params, "brainMaskSegmentation", None)))

    @contextlib.contextmanager
    def installingPackages(self):
        """While the analysis packages install: :meth:`applyProblem` says so (Apply disabled)."""
        self.installing = True
        try:
            yield
        finally:
            self.installing = False

    # -- the run
    def start(self, params, tempRoot):
        self.process = self.logic.startRun(self.volumes(params), tempRoot, **self.runOptions(params))
        return self.process

    def cancel(self) -> bool:
        """Ask the run to stop (returns at once; later polls see it end, kill it after the grace period and
        delete its folder).  False when there is nothing left to cancel."""
        if self.process is None or self.process.cancelled:
            return False
        self.process.cancel(grace=5.0)
        return True

    def poll(self):
        """One look at the run: ([(percent, status)], ended), ``ended`` None while it runs, else
        (process, exit code), the run forgotten.  While cancelling no progress is shown: the status line
        says so until the process is gone."""
        process = self.process
        if process is None:
            return [], None
        updates, code = process.poll()
        shown = [] if process.cancelled else [progressStatus(u) for u in updates]
        if code is None:
            return shown, None
        self.process = None
        return shown, (process, code)

    def finish(self, process, code: int) -> str:
        """The ended run's results into the scene as the run shown; returns the status line.  The work
        folder is gone afterwards, whatever happens (:meth:`ProcessMixin.finishRun`)."""
        if code != 0:
            logging.error(process.log)
        self.runFolder = self.logic.finishRun(process, code)
        done = doneStatus(self.logic.missingSequences(self.runFolder), self.logic.unenhancedEtMl(self.runFolder))
        note = self.logic.preprocessingNote(self.runFolder)  # an implausible registration is not hidden
        return f"{done} {note}" if note else done

    def sceneClosing(self) -> bool:
        """The scene closes under a running analysis: its inputs are gone, so it is cancelled (its results
        would land in the empty scene).  True when a run was cancelled."""
        self.forgetRunFolder()
        return self.cancel()

    def close(self) -> None:
        """Slicer is closing (or the module reloads): end the run and its clean-up."""
        if self.process is not None:
            self.process.cancel(grace=2.0, wait=True)
            self.process = None

    # -- the run shown
    def currentRunFolder(self):
        """The run the outputs section shows: the one just loaded, else the latest (also of a restored scene)."""
        if self.runFolder is None:
            self.runFolder = self.logic.latestRunFolder()
        return self.runFolder

    def forgetRunFolder(self) -> None:
        self.runFolder = None
