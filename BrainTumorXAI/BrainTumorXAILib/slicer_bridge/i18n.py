"""``tr()`` for the Logic's user-facing messages: Slicer's translation inside the application, the text
itself on the slicer-core wheel (no ``slicer.i18n`` there) and in the analysis process.

Like ``slicer.i18n.tr`` (Slicer 5.6.2-5.10.0) the translation context comes from the *calling*
file (``slicer.i18n.getContext``: "slicer.inputs" for ``BrainTumorXAILib/slicer_bridge/inputs.py``), so
Qt's lupdate, which sees ``tr("...")`` calls in those files, finds the strings under the same context.
"""

from __future__ import annotations

import sys

try:  # inside the Slicer application
    from slicer.i18n import getContext as _getContext
    from slicer.i18n import translate as _translate
except ImportError:  # slicer-core wheel, plain Python
    _getContext = _translate = None


def tr(text: str) -> str:
    """``text`` translated to the application language (unchanged outside Slicer's application)."""
    if _translate is None:
        return text
    try:
        return _translate(_getContext(sys._getframe(1).f_code.co_filename), text)
    except Exception:  # no application object yet (imported at start-up), or a scripted test harness
        return text
