"""Static checks of the module's GUI code against its .ui (the Slicer application cannot run here).

The GUI code is the module file and the GUI-only package ``BrainTumorXAIGui/``.  Every ``self.ui.NAME``
and every widget name it looks up exists in the .ui; every ``SlicerParameterName`` in the .ui is a field
of the parameter node, bound by one widget whose kind can represent the field's type (checked against
Slicer's parameterNodeWrapper GUI connectors, 5.6.2-5.10.0); every button in the .ui is wired.  The
module file stays thin, CMake installs every GUI file, and the Qt-free Lib never imports the GUI.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "BrainTumorXAI"
UI = ET.parse(MODULE_DIR / "Resources" / "UI" / "BrainTumorXAI.ui")
MODULE_FILE = MODULE_DIR / "BrainTumorXAI.py"
GUI_FILES = [MODULE_FILE, *sorted((MODULE_DIR / "BrainTumorXAIGui").glob("*.py"))]
SOURCES = {path: path.read_text(encoding="utf-8") for path in GUI_FILES}
TREES = {path: ast.parse(source) for path, source in SOURCES.items()}
WIDGETS = {w.get("name"): w for w in UI.iter("widget")}


def _nodes():
    """(path, AST node) of every node of the GUI code."""
    return ((path, node) for path, tree in TREES.items() for node in ast.walk(tree))


def _property(widget, name):
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            child = list(prop)[0]
            return child.text
    return None


def _parameter_fields() -> dict[str, str]:
    """{field: annotation source} of the class decorated with @parameterNodeWrapper (exactly one)."""
    found = [(path, node) for path, node in _nodes() if isinstance(node, ast.ClassDef) and any(
        (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list)]
    assert len(found) == 1, f"one @parameterNodeWrapper class in the GUI code, found {len(found)}"
    path, node = found[0]
    return {stmt.target.id: ast.get_source_segment(SOURCES[path], stmt.annotation)
            for stmt in node.body if isinstance(stmt, ast.AnnAssign)}


def _ui_attributes() -> set[str]:
    return {node.attr for _, node in _nodes()
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}


def _widget_like_strings() -> set[str]:
    """String constants that name widgets (getattr(self.ui, name) lookups, tables of buttons)."""
    suffixes = ("Button", "Selector", "ComboBox", "CheckBox", "LineEdit", "Slider", "Label", "View", "SpinBox")
    return {node.value for _, node in _nodes() if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[a-z][A-Za-z0-9]*", node.value) and node.value.endswith(suffixes)}


def test_every_ui_name_the_module_uses_exists():
    used = _ui_attributes() | _widget_like_strings()
    assert len(used) > 20, sorted(used)
    missing = used - set(WIDGETS)
    assert not missing, f"missing in BrainTumorXAI.ui: {sorted(missing)}"


def test_every_parameter_name_in_the_ui_is_a_field_bound_once_by_a_fitting_widget():
    fields = _parameter_fields()
    bound = {}
    for name, widget in WIDGETS.items():
        parameter = _property(widget, "SlicerParameterName")
        if parameter is not None:
            assert parameter in fields, f"{name}: SlicerParameterName {parameter!r} is not a parameter node field"
            assert parameter not in bound, f"{parameter} bound by {bound[parameter]} and {name}"
            bound[parameter] = name
    assert set(bound) == set(fields), f"fields without a widget: {sorted(set(fields) - set(bound))}"
    for parameter, name in bound.items():
        widget, annotation = WIDGETS[name], fields[parameter]
        cls = widget.get("class")
        if cls == "qMRMLNodeComboBox":
            assert "vtkMRML" in annotation, (parameter, annotation)
            # A selector that offers "None" must have an Optional field, and the other way round.
            assert (_property(widget, "noneEnabled") == "true") == annotation.startswith("Optional["), parameter
            ui_types = {s.text for s in widget.iter("string") if s.text and s.text.startswith("vtkMRML")}
            assert ui_types and all(t in annotation for t in ui_types), (parameter, ui_types, annotation)
        elif cls == "QCheckBox":
            assert annotation == "bool", (parameter, annotation)
        elif cls == "ctkPathLineEdit":
            assert annotation == "Path", (parameter, annotation)  # the only type its connector takes
        elif cls == "QComboBox":
            assert "Choice(" in annotation, (parameter, annotation)  # QComboBoxToStringableConnector needs it
        elif cls == "QSpinBox":
            assert "int" in annotation, (parameter, annotation)
        elif cls == "ctkSliderWidget":
            assert "float" in annotation, (parameter, annotation)
        else:
            raise AssertionError(f"{name}: no parameterNodeWrapper connector for a {cls}")


def test_the_four_input_selectors_offer_none_and_scalar_volumes_only():
    for seq in ("t1", "t1ce", "t2", "flair"):
        widget = WIDGETS[f"{seq}Selector"]
        assert _property(widget, "noneEnabled") == "true", seq
        assert _property(widget, "showChildNodeTypes") == "false", seq  # no label maps among the inputs


def test_every_button_is_wired_and_every_connection_target_exists():
    buttons = {name for name, w in WIDGETS.items() if w.get("class") == "QPushButton"}
    used = _ui_attributes() | _widget_like_strings()
    assert not buttons - used, f"buttons the module never connects: {sorted(buttons - used)}"
    for connection in UI.iter("connection"):
        assert connection.find("sender").text in WIDGETS and connection.find("receiver").text in WIDGETS


def test_the_gui_code_keeps_to_the_gui():
    """No nibabel, torch or file parsing in the GUI code; the Logic does that."""
    for path, tree in TREES.items():
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not imported & {"nibabel", "torch", "numpy", "scipy", "skimage", "shutil", "subprocess"}, (path, imported)
        calls = {node.func.attr for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert "tryWithErrorDisplay" not in calls, path  # it re-raises inside Qt slots (Slicer 5.6.2-5.10.0)


def test_the_module_file_is_thin_and_has_what_slicer_looks_up():
    """Slicer finds <Module>, <Module>Widget and <Module>Test in the module file (ScriptedLoadableModule,
    slicer.testing.runUnitTest 5.6.2-5.10.0); the panel itself lives in BrainTumorXAIGui."""
    tree = TREES[MODULE_FILE]
    assert len(SOURCES[MODULE_FILE].splitlines()) <= 150
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert classes == {"BrainTumorXAI", "BrainTumorXAIWidget"}, classes
    imported = {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert {"BrainTumorXAITest", "BrainTumorXAIParameterNode"} <= imported


def test_cmake_installs_every_gui_file():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    for path in GUI_FILES[1:]:
        assert f"${{MODULE_NAME}}Gui/{path.name}" in cmake, f"{path.name} missing from MODULE_GUI_SCRIPTS"


def test_the_lib_never_imports_the_gui():
    """The Lib imports without the application (tests, ``analyze --scene``, the web viewer)."""
    gui_only = {"qt", "ctk", "BrainTumorXAIGui", "slicer.parameterNodeWrapper", "slicer.util"}
    for path in sorted((MODULE_DIR / "BrainTumorXAILib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not any(name == g or name.startswith(g + ".") for g in gui_only), (path, name)


def test_the_self_test_waits_the_way_slicer_5_6_and_5_8_can():
    """``qt.QThread.msleep`` is not wrapped by the PythonQt of Slicer 5.6/5.8 (issue 27): the self-test waits with
    ``pollUntilDone`` (time.sleep and slicer.app.processEvents, a deadline, the run cancelled on any error)."""
    source = SOURCES[MODULE_DIR / "BrainTumorXAIGui" / "selftest.py"]
    assert "QThread" not in source and "msleep" not in source
    assert "pollUntilDone(process, END_TO_END_TIMEOUT_S, pump=slicer.app.processEvents)" in source
    # The Test button reports a skipped part as skipped, not as "Test failed".
    run_test = next(n for n in ast.walk(TREES[MODULE_DIR / "BrainTumorXAIGui" / "selftest.py"])
                    if isinstance(n, ast.FunctionDef) and n.name == "runTest")
    handlers = [h for n in ast.walk(run_test) if isinstance(n, ast.Try) for h in n.handlers]
    assert [ast.unparse(h.type) for h in handlers] == ["unittest.SkipTest"]


def _function(path, name):
    return next(n for n in ast.walk(TREES[path]) if isinstance(n, ast.FunctionDef) and n.name == name)


def test_the_widget_keeps_what_setup_made_and_stops_following_the_scene_when_hidden():
    """Without a parent ScriptedLoadableModuleWidget.__init__ calls setup() (5.6.2-5.10.0): the widget's own
    attributes are set before it.  exit() hands over to the panel, which observes added nodes only while shown."""
    widget = next(c for c in TREES[MODULE_FILE].body if isinstance(c, ast.ClassDef) and c.name == "BrainTumorXAIWidget")
    methods = {f.name: f for f in widget.body if isinstance(f, ast.FunctionDef)}
    lines = [ast.unparse(s) for s in methods["__init__"].body if not isinstance(s, ast.Expr) or "__init__" in ast.unparse(s)]
    assert lines[-1] == "ScriptedLoadableModuleWidget.__init__(self, parent)", lines
    assert {"self.logic = logic", "self.panel = None", "self.ui = None"} <= set(lines)
    methods = {name: ast.unparse(f) for name, f in methods.items()}
    assert "self.panel.exit()" in methods["exit"] and "self.panel.enter()" in methods["enter"]
    panel = MODULE_DIR / "BrainTumorXAIGui" / "panel.py"
    observed = {fn: [ast.unparse(n) for n in ast.walk(_function(panel, fn)) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and n.func.attr in ("addObserver", "removeObserver")]
                for fn in ("__init__", "enter", "exit")}
    assert not any("NodeAddedEvent" in c for c in observed["__init__"])
    assert any("NodeAddedEvent" in c for c in observed["enter"]) and any("NodeAddedEvent" in c for c in observed["exit"])


def test_apply_is_locked_while_packages_install_and_a_case_loads_without_auto_fill():
    panel = MODULE_DIR / "BrainTumorXAIGui" / "panel.py"
    apply_source = ast.unparse(_function(panel, "onApplyButton"))
    assert "with self.session.installingPackages():" in apply_source and "self._setBusy(True)" in apply_source
    assert apply_source.index("installingPackages") < apply_source.index("ensureAnalysisPackages()")
    # Unlocked in a finally around the with-block: after the session's installing flag is down.
    tries = [n for n in ast.walk(_function(panel, "onApplyButton")) if isinstance(n, ast.Try)]
    assert any("installingPackages" in ast.unparse(t.body[0]) and ast.unparse(t.finalbody) == "self._setBusy(False)"
               for t in tries)
    load = ast.unparse(_function(panel, "onLoadCase"))
    assert load.index("self._loadingCase = True") < load.index("self.logic.loadCase(folder)") < load.index(
        "self._loadingCase = False")
    assert "not self._loadingCase" in ast.unparse(_function(panel, "onNodeAdded"))
    assert "not self._loadingCase" in ast.unparse(_function(panel, "_deferredAutoFill"))
    assert "groundTruthSelector" in ast.unparse(_function(panel, "_hideResultsFromSelectors"))
    assert "self.session.sceneClosing()" in ast.unparse(_function(panel, "onSceneStartClose"))  # cancels a run


def test_no_error_dialog_gets_none_details_and_the_model_path_has_a_real_default():
    dialogs = SOURCES[MODULE_DIR / "BrainTumorXAIGui" / "dialogs.py"]
    assert "detailedText=detail or None" not in dialogs and "errorDisplayOptions(detail)" in dialogs
    fields = _parameter_fields()
    assert fields["modelPath"] == "Path"
    parameters = TREES[MODULE_DIR / "BrainTumorXAIGui" / "parameters.py"]
    default = next(s.value for s in ast.walk(parameters) if isinstance(s, ast.AnnAssign) and s.target.id == "modelPath")
    assert ast.unparse(default) == "demo_weights_path()"  # not Path() ("." in the line edit)
