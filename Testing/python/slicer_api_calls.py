"""Which Slicer, MRML and VTK methods the Slicer-side code calls, on which class, and whether Slicer 5.8 declares them.

The Slicer-side code is the module file, ``BrainTumorXAIGui/`` and ``BrainTumorXAILib/slicer_bridge/``.  Calls are read
with ``ast``; the class of a receiver is followed where the code says it: a constructor (``slicer.vtkSegment()``),
``AddNewNodeByClass("vtkMRML...")`` and its kin, a method whose declared return type is known
(``shNode = scene.GetSubjectHierarchyNode()``), a widget of the ``.ui`` (``self.ui.reviewTableView``), or the
name conventions of :data:`NAME_HINTS`.  A call on a known Slicer class must be declared by that class or its
bases in ``slicer_api_5_8.json`` (headers of Slicer 5.8.1) and not be new since 5.6.2; on a VTK class, by
the VTK of this environment (Slicer 5.6-5.10 bundle VTK 9.2/9.4, whose API these calls predate); a
VTK/MRML-style call (``UpperCamelCase``) on a receiver of unknown class must be declared by at least one class
in the list or by VTK.  Attributes of Slicer's Qt classes that are not called (``slicer.app.temporaryPath``,
``pump=slicer.app.processEvents``) must be a declared method or Qt property.  Qt's own methods and properties
on Slicer's widgets are listed in :data:`QT_INHERITED` and :data:`QT_PROPERTIES` (Qt 5.15 in all three Slicer
versions; not in Slicer's headers).
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "BrainTumorXAI"
API = json.loads(Path(__file__).with_name("slicer_api_5_8.json").read_text(encoding="utf-8"))
CLASSES = API["classes"]
UI_CLASSES = {w.get("name"): w.get("class")
              for w in ET.parse(MODULE_DIR / "Resources" / "UI" / "BrainTumorXAI.ui").iter("widget")}

#: Variable names the Slicer-side code uses for one kind of object only.
NAME_HINTS = {"scene": "vtkMRMLScene", "shNode": "vtkMRMLSubjectHierarchyNode", "segNode": "vtkMRMLSegmentationNode",
              "segmentation": "vtkSegmentation", "segment": "vtkSegment", "composite": "vtkMRMLSliceCompositeNode",
              "labelmap": "vtkMRMLLabelMapVolumeNode", "volumeNode": "vtkMRMLVolumeNode",
              "legend": "vtkMRMLColorLegendDisplayNode", "storage": "vtkMRMLVolumeArchetypeStorageNode",
              "slice_logic": "vtkMRMLSliceLogic", "slice_node": "vtkMRMLSliceNode", "children": "vtkIdList",
              "layoutManager": "qSlicerLayoutManager"}
#: Dotted names that always hold one class.
FIXED = {"slicer.mrmlScene": "vtkMRMLScene", "self.scene": "vtkMRMLScene", "slicer.app": "qSlicerApplication"}
#: Scene methods whose class-name argument (at this position) is the class of what they return.
BY_CLASS_NAME = {"AddNewNodeByClass": 0, "GetFirstNodeByClass": 0, "GetNthNodeByClass": 1, "GetSingletonNode": 1,
                 "CreateNodeByClass": 0}
#: Qt 5.15 methods called on Slicer's widgets and application (inherited from QWidget, QTableView, QApplication).
QT_INHERITED = {"connect", "selectionModel", "processEvents", "setOverrideCursor", "restoreOverrideCursor",
                "setVisible", "hide", "show", "blockSignals"}
#: Qt 5.15 properties read or set on Slicer's widgets (QWidget's).
QT_PROPERTIES = {"enabled", "toolTip", "visible"}
#: VTK classes whose methods a receiver of unknown class may be calling.
VTK_FALLBACK = ("vtkObject", "vtkImageData", "vtkPolyData", "vtkPointData", "vtkTable", "vtkVariant", "vtkIdList",
                "vtkCollection", "vtkMatrix4x4", "vtkStringArray", "vtkDoubleArray", "vtkRenderer", "vtkRenderWindow",
                "vtkCamera", "vtkLogger", "vtkProperty2D", "vtkActor2D", "vtkAlgorithm")
#: Modules whose functions are not Slicer's (receivers named so are skipped).
SLICER_MODULES = {"slicer", "vtk"}


@dataclass(frozen=True)
class Call:
    path: str
    line: int
    receiver: str  # the class, or "" when unknown
    method: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.receiver.lstrip('~') or '<unknown>'}.{self.method}"


def slicer_side_files() -> list[Path]:
    return [MODULE_DIR / "BrainTumorXAI.py", *sorted((MODULE_DIR / "BrainTumorXAIGui").glob("*.py")),
            *sorted((MODULE_DIR / "BrainTumorXAILib" / "slicer_bridge").glob("*.py"))]


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def chain(cls: str):
    """``cls`` and its bases that Slicer declares, then the first base outside Slicer (or None)."""
    seen = []
    while cls in CLASSES:
        seen.append(cls)
        cls = CLASSES[cls]["base"]
    return seen, cls


def returns(cls: str, method: str) -> str | None:
    for name in chain(cls)[0]:
        if method in CLASSES[name]["returns"]:
            return CLASSES[name]["returns"][method]
    return None


def _vtk_has(cls: str | None, method: str) -> bool:
    import vtk

    return bool(cls) and hasattr(getattr(vtk, cls, None), method)


def _declared_by(cls: str, method: str) -> bool:
    declared, outside = chain(cls)
    return any(method in CLASSES[name]["methods"] for name in declared) or _vtk_has(outside, method)


def problem(call: Call) -> str:
    """Why ``call`` would fail on Slicer 5.6/5.8 ('' when it would not)."""
    cls, method = call.receiver.lstrip("~"), call.method
    if call.receiver.startswith("~") and cls in CLASSES and not _declared_by(cls, method):
        cls = ""  # a subclass of the declared return type may declare it: checked as for an unknown receiver
    if cls in CLASSES:
        declared, outside = chain(cls)
        for name in declared:
            if method in CLASSES[name]["methods"]:
                if method in CLASSES[name]["missing_in_5_6_2"]:
                    return f"{call}: {name}.{method} is declared from Slicer 5.8 on, not in 5.6.2"
                return ""
        if outside and outside.startswith("vtk") and _vtk_has(outside, method):
            return ""
        if outside and not outside.startswith("vtk") and method in QT_INHERITED:
            return ""
        return f"{call}: Slicer 5.8.1 declares no {method} in {' / '.join(declared)} (nor in its base {outside})"
    if cls.startswith("vtk"):
        return "" if _vtk_has(cls, method) else f"{call}: VTK's {cls} has no {method}"
    if cls:  # Qt and CTK classes: the same Qt 5.15 in Slicer 5.6-5.10
        return ""
    if not re.fullmatch(r"[A-Z]\w*[a-z]\w*", method):
        return ""
    if any(method in entry["methods"] for entry in CLASSES.values()):
        return ""
    if any(_vtk_has(name, method) for name in VTK_FALLBACK):
        return ""
    return f"{call}: no class of Slicer 5.8.1's list (nor VTK) declares {method}"


class _Collector(ast.NodeVisitor):
    """Attribute calls with their receiver's class, function by function."""

    def __init__(self, path: str, modules: set[str]):
        self.path, self.modules, self.calls, self.envs = path, modules, [], [{}]
        self.python_names: list[tuple[int, str, str]] = []  # (line, module, name) of slicer.util/i18n uses
        self.attributes: list[Call] = []  # attributes of Slicer's Qt classes that are not called
        self.called: set[int] = set()  # the func nodes of calls

    def infer(self, node) -> str:
        env = self.envs[-1]
        if isinstance(node, ast.Name):
            return env.get(node.id, "")
        dotted = _dotted(node)
        if dotted in FIXED:
            return FIXED[dotted]
        if dotted.startswith("self.ui.") and dotted.count(".") == 2:
            return UI_CLASSES.get(node.attr, "")
        if dotted.count(".") == 1 and dotted.split(".")[0] in SLICER_MODULES and re.match(r"(vtk|q)[A-Z]", node.attr):
            return node.attr  # a class itself (static methods)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            constructed = self.infer(node.func) if _dotted(node.func).split(".")[0] in SLICER_MODULES else ""
            if constructed and _dotted(node.func).count(".") == 1:
                return constructed
            position = BY_CLASS_NAME.get(node.func.attr)
            if position is not None and len(node.args) > position and isinstance(node.args[position], ast.Constant):
                return str(node.args[position].value)
            receiver = self.infer(node.func.value).lstrip("~")
            declared = returns(receiver, node.func.attr) if receiver else None
            return f"~{declared}" if declared else ""  # the declared type: the object may be a subclass
        return ""

    def _function(self, node) -> None:
        env = dict(self.envs[-1])
        arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        for arg in arguments:
            env.pop(arg.arg, None)
            if arg.arg in NAME_HINTS:
                env[arg.arg] = NAME_HINTS[arg.arg]
        self.envs.append(env)
        body = [n for stmt in node.body for n in _walk_local(stmt)]
        for _ in range(2):  # twice, so an assignment may use a name assigned further down
            found: dict[str, set[str]] = {}
            for n in body:
                targets = []
                if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                    targets = [(n.targets[0].id, self.infer(n.value))]
                elif isinstance(n, (ast.For, ast.comprehension)) and isinstance(n.target, ast.Name):
                    targets = [(n.target.id, "")]
                for name, cls in targets:
                    found.setdefault(name, set()).add(cls)
            for name, classes in found.items():
                known = classes - {""}
                if len(known) == 1:
                    env[name] = known.pop()
                elif known or name not in NAME_HINTS:
                    env.pop(name, None)
                else:
                    env[name] = NAME_HINTS[name]
        self.called |= {id(n.func) for n in body if isinstance(n, ast.Call)}
        for n in body:
            self._call(n)
        nested = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for inner in nested:
            self._function(inner)
        self.envs.pop()

    def _call(self, node) -> None:
        if isinstance(node, ast.ImportFrom) and node.module in API["python_modules"]:
            self.python_names += [(node.lineno, node.module, alias.name) for alias in node.names]
        if isinstance(node, ast.Attribute) and _dotted(node.value) in API["python_modules"]:
            self.python_names.append((node.lineno, _dotted(node.value), node.attr))  # called or passed on
        if isinstance(node, ast.Attribute) and id(node) not in self.called:
            cls = self.infer(node.value).lstrip("~")
            if cls.startswith("q") and cls in CLASSES:  # a Qt property read or set, or a method passed on
                self.attributes.append(Call(self.path, node.lineno, cls, node.attr))
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return
        receiver = node.func.value
        dotted = _dotted(receiver)
        if dotted in API["python_modules"]:
            return
        head = dotted.split(".")[0] if dotted else ""
        if head in self.modules and head not in SLICER_MODULES and dotted == head:
            return  # a Python module's function (np.asarray, shutil.rmtree, qt.QTimer ...)
        if dotted in SLICER_MODULES:
            return  # constructors: their classes are checked where their methods are called
        self.calls.append(Call(self.path, node.lineno, self.infer(receiver), node.func.attr))

    def module(self, tree) -> None:
        top = ast.FunctionDef(name="<module>", args=ast.arguments([], [], None, [], [], None, []), body=tree.body,
                              decorator_list=[])
        self._function(top)


def _walk_local(node):
    """``ast.walk`` that does not enter nested functions or classes' methods (they get their own scope)."""
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            for stmt in child.body:
                yield from _walk_local(stmt)
            continue
        yield from _walk_local(child)


def collect(sources: dict[str, str]):
    """(calls, python-module names, attributes of Slicer's Qt classes) of ``{path: source}``."""
    calls, names, attributes = [], [], []
    for path, source in sources.items():
        tree = ast.parse(source)
        modules = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        modules |= {"np", "os", "sys", "json", "re", "time", "shutil", "subprocess", "logging", "qt", "ctk"}
        collector = _Collector(path, modules)
        collector.module(tree)
        calls += collector.calls
        attributes += collector.attributes
        names += [(path, *entry) for entry in collector.python_names]
    return calls, names, attributes


def attribute_problem(attribute: Call) -> str:
    """Why an attribute of a Slicer Qt class (a property, or a method passed on) is not there in 5.6/5.8."""
    declared, _ = chain(attribute.receiver)
    for name in declared:
        if attribute.method in CLASSES[name].get("properties", []):
            return ""
        if attribute.method in CLASSES[name]["methods"]:
            return problem(attribute)  # a method passed on (slicer.app.processEvents): as if called
    if attribute.method in QT_INHERITED | QT_PROPERTIES:
        return ""
    return f"{attribute}: Slicer 5.8.1 declares no method or property {attribute.method} in {' / '.join(declared)}"


def problems(sources: dict[str, str]) -> list[str]:
    """Every call of ``sources`` that Slicer 5.6.2/5.8.1 would not have, one line each."""
    calls, names, attributes = collect(sources)
    found = [p for p in map(problem, calls) if p] + [p for p in map(attribute_problem, attributes) if p]
    for path, line, module, name in names:
        entry = API["python_modules"][module]
        if name not in entry["names"]:
            found.append(f"{path}:{line}: {module} of Slicer 5.8.1 has no {name}")
        elif name in entry["missing_in_5_6_2"]:
            found.append(f"{path}:{line}: {module}.{name} is new in 5.8, not in 5.6.2")
    return found


def slicer_side_sources() -> dict[str, str]:
    root = MODULE_DIR.parent
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in slicer_side_files()}
