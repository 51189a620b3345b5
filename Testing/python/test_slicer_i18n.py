"""Translations of the Slicer-side code: every user-facing text goes through ``tr``, every ``tr(...).format``
names exactly the text's placeholders, and a translation that changes the placeholders is not used."""

from __future__ import annotations

import ast
from pathlib import Path

from BrainTumorXAILib.slicer_bridge import i18n

MODULE_DIR = Path(__file__).resolve().parents[2] / "BrainTumorXAI"
#: The self-test's messages stay untranslated (as Slicer's own self-tests); everything else is the module's.
FILES = [p for p in [MODULE_DIR / "BrainTumorXAI.py", *sorted((MODULE_DIR / "BrainTumorXAIGui").glob("*.py")),
                     *sorted((MODULE_DIR / "BrainTumorXAILib" / "slicer_bridge").glob("*.py"))] if p.name != "selftest.py"]
TREES = {p: ast.parse(p.read_text(encoding="utf-8")) for p in FILES}
#: Calls whose text arguments reach the user: errors the panel shows, dialogs, legend titles, table tooltips.
SINKS = {"BrainTumorXAIError", "CaseError", "errorDisplay", "confirmOkCancelDisplay", "SetTitleText"}


def _is_tr(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("tr", "_")


def _text(node) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _untranslated(tree) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = node.args[1:] if name == "SetColumnDescription" else node.args  # the first is the column's name
            if name in SINKS | {"SetColumnDescription"}:
                found += [f"{node.lineno}: {name}({ast.unparse(a)[:60]})" for a in args if _text(a)]
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) \
                and node.targets[0].attr in ("text", "toolTip") and _text(node.value):
            found.append(f"{node.lineno}: .{node.targets[0].attr} = {ast.unparse(node.value)[:60]}")
    return found


def test_every_user_facing_text_is_translated():
    problems = {str(p.name): _untranslated(t) for p, t in TREES.items() if _untranslated(t)}
    assert problems == {}


def test_the_untranslated_text_check_sees_a_bare_message():
    tree = ast.parse("raise CaseError(path, f'not a volume {x}')\nself.ui.statusLabel.text = 'Done'\n"
                     "raise CaseError(path, tr('ok {x}').format(x=1))\n")
    assert sorted(line.split(":")[0] for line in _untranslated(tree)) == ["1", "2"]


def _format_calls(tree):
    """(line, text placeholders, keyword names) of every ``tr("...").format(...)``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
                and _is_tr(node.func.value) and node.func.value.args and _text(node.func.value.args[0]):
            text = node.func.value.args[0].value
            yield node.lineno, i18n.placeholders(text), sorted({k.arg for k in node.keywords}), bool(node.args)


def test_every_translated_format_names_exactly_its_placeholders():
    checked = 0
    for path, tree in TREES.items():
        for line, fields, keywords, positional in _format_calls(tree):
            assert not positional and fields is not None, f"{path.name}:{line}: use named fields"
            assert sorted(set(fields)) == keywords, f"{path.name}:{line}: text has {fields}, format gets {keywords}"
            checked += 1
    assert checked > 40


def test_a_translation_with_other_placeholders_is_not_used(monkeypatch):
    translations = {"{n} regions": "{n} Regionen", "{path}: not found": "{pfad}: nicht gefunden",
                    "Done.": "Fertig.", "{a}{b}": "{b}{a}", "{n} files": "{n Dateien"}
    monkeypatch.setattr(i18n, "_getContext", lambda filename: "slicer.test")
    monkeypatch.setattr(i18n, "_translate", lambda context, text: translations[text])
    assert i18n.tr("{n} regions") == "{n} Regionen" and i18n.tr("Done.") == "Fertig."
    assert i18n.tr("{a}{b}") == "{b}{a}"  # the same fields in another order
    assert i18n.tr("{path}: not found") == "{path}: not found"  # a renamed field: the source text
    assert i18n.tr("{n} files") == "{n} files"  # a broken field
    monkeypatch.setattr(i18n, "_translate", None)
    assert i18n.tr("{path}: not found") == "{path}: not found"
