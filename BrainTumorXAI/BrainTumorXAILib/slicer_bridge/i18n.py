"""``tr()`` for the Logic's user-facing messages: Slicer's translation inside the application, the text
itself on the slicer-core wheel (no ``slicer.i18n`` there) and in the analysis process.

Like ``slicer.i18n.tr`` (Slicer 5.6.2-5.10.0) the translation context comes from the *calling*
file (``slicer.i18n.getContext``: "slicer.inputs" for ``BrainTumorXAILib/slicer_bridge/inputs.py``), so
Qt's lupdate, which sees ``tr("...")`` calls in those files, finds the strings under the same context.
"""

from __future__ import annotations

import string
import sys

try:  # inside the Slicer application
    from slicer.i18n import getContext as _getContext
    from slicer.i18n import translate as _translate
except ImportError:  # slicer-core wheel, plain Python
    _getContext = _translate = None


def placeholders(text: str) -> list[str] | None:
    """The ``str.format`` fields of ``text``, sorted (None when it is not a valid format string)."""
    try:
        return sorted(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)
    except ValueError:
        return None


def tr(text: str) -> str:
    """``text`` translated to the application language (unchanged outside Slicer's application).

    A translation whose ``{placeholders}`` differ from the source text's (a field renamed, dropped or
    mistyped by a translator) is not used: ``.format`` would raise inside an error message or status line.
    """
    if _translate is None:
        return text
    try:
        translated = _translate(_getContext(sys._getframe(1).f_code.co_filename), text)
    except Exception:  # no application object yet (imported at start-up), or a scripted test harness
        return text
    return translated if placeholders(translated) == placeholders(text) else text
