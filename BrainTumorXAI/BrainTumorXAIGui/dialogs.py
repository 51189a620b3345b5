"""Dialogs and cursors: what the Qt-free Lib asks the application to show."""

import contextlib

import qt

import slicer

from BrainTumorXAILib.slicer_bridge import extension, session


def _reportError(panel, status: str, text: str, detail: str) -> None:
    panel.ui.statusLabel.text = status
    if not slicer.app.testingEnabled():
        slicer.util.errorDisplay(text, **session.errorDisplayOptions(detail))


def guarded(message: str):
    """Decorator for the panel's Qt slots: an exception becomes the status line and one error dialog
    (the traceback as details), and the slot returns None (:func:`session.slotGuard`)."""
    return session.slotGuard(message, _reportError)


@contextlib.contextmanager
def waitCursor():
    slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
    try:
        yield
    finally:
        slicer.app.restoreOverrideCursor()


def ensureAnalysisPackages(interactive: bool = True) -> str:
    """Install what the analysis process needs into Slicer's Python, asking first when ``interactive``;
    '' when ready, else why not (:func:`extension.ensureAnalysisPackages`)."""
    return extension.ensureAnalysisPackages(
        slicer.app.temporaryPath, confirm=slicer.util.confirmOkCancelDisplay if interactive else None, busy=waitCursor)
