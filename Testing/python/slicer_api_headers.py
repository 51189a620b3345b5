"""Write ``slicer_api_5_8.json``: the methods Slicer 5.8.1's headers declare for the Slicer classes the module uses.

Run once against a clone of Slicer's source (it needs the tags v5.8.1 and v5.6.2)::

    python Testing/python/slicer_api_headers.py /path/to/Slicer.git [--out Testing/python/slicer_api_5_8.json]

For each class of :data:`CLASSES` (and each of its bases that Slicer declares) the header is found at v5.8.1 and
read: its public methods (declarations, ``vtkSet/Get...Macro``, ``vtkBooleanMacro``, public slots, and what the
PythonQt decorators of ``Base/`` add), its Qt properties, its first public base, and the class each method returns by pointer (so ``a.GetB().C()`` can be followed).  The same
header at v5.6.2 gives ``missing_in_5_6_2``: methods 5.8.1 declares and 5.6.2 does not.  ``slicer.util`` and
``slicer.i18n`` get their top-level names at both tags.  ``test_slicer_api_guard.py`` checks the module's calls
against the file; nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from pathlib import Path

TAG, OLDER_TAG = "v5.8.1", "v5.6.2"

#: Slicer classes whose methods the Slicer-side code calls (receivers, constructors, returned objects).
CLASSES = (
    # MRML scene and nodes
    "vtkMRMLScene", "vtkMRMLSubjectHierarchyNode", "vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode",
    "vtkMRMLSegmentationNode", "vtkMRMLSegmentationDisplayNode", "vtkMRMLScalarVolumeDisplayNode",
    "vtkMRMLLabelMapVolumeDisplayNode", "vtkMRMLModelNode", "vtkMRMLModelDisplayNode", "vtkMRMLTableNode",
    "vtkMRMLColorTableNode", "vtkMRMLColorLegendDisplayNode", "vtkMRMLSliceCompositeNode", "vtkMRMLSliceNode",
    "vtkMRMLViewNode", "vtkMRMLCrosshairNode", "vtkMRMLVolumeArchetypeStorageNode", "vtkMRMLMessageCollection",
    "vtkCacheManager", "vtkDataIOManager",
    # segmentation core
    "vtkSegmentation", "vtkSegment", "vtkSegmentationConverter", "vtkOrientedImageData",
    # logics and displayable managers (the headless bootstrap and off-screen rendering)
    "vtkSlicerApplicationLogic", "vtkSlicerColorLogic", "vtkSlicerVolumesLogic", "vtkSlicerSegmentationsModuleLogic",
    "vtkSlicerSubjectHierarchyModuleLogic", "vtkSlicerModelsLogic", "vtkSlicerTablesLogic", "vtkMRMLRemoteIOLogic",
    "vtkDataIOManagerLogic", "vtkMRMLSliceLogic", "vtkMRMLDisplayableManagerGroup",
    "vtkMRMLThreeDViewDisplayableManagerFactory", "vtkMRMLSliceViewDisplayableManagerFactory",
    # application and widgets (PythonQt wraps their public methods and slots)
    "qSlicerApplication", "qSlicerLayoutManager", "qMRMLSliceWidget", "qMRMLThreeDWidget", "qMRMLThreeDView",
    "qMRMLTableView", "qMRMLNodeComboBox", "qMRMLWidget",
)
PYTHON_MODULES = {"slicer.util": "Base/Python/slicer/util.py", "slicer.i18n": "Base/Python/slicer/i18n.py"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def header_paths(repo: Path, tag: str) -> dict[str, str]:
    """{class name: header path} of every .h at ``tag``."""
    return {Path(p).stem: p for p in git(repo, "ls-tree", "-r", "--name-only", tag).splitlines() if p.endswith(".h")}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _class_body(text: str, name: str) -> tuple[str, str | None]:
    """(the class body at brace depth 1 with nested braces removed, first public base or None)."""
    match = re.search(r"\bclass\s+(?:\w+\s+)*" + name + r"\s*(?::\s*([^{]*))?\{", text)
    if match is None:
        raise ValueError(f"class {name} not found")
    bases = re.findall(r"public\s+([\w:]+)", match.group(1) or "")
    depth, out = 1, []
    for ch in text[match.end():]:
        if ch == "{":
            depth += 1
            if depth == 2:
                out.append("{}")  # an inline body or nested type ends a statement
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                break
            continue
        if depth == 1:
            out.append(ch)
    return "".join(out), (bases[0] if bases else None)


_ACCESS = re.compile(r"\b(public|protected|private)\s*(?:slots|Q_SLOTS)?\s*:|\b(signals|Q_SIGNALS)\s*:")
_MACRO_CALL = re.compile(r"\b(vtk(Set|Get)\w*Macro|vtkBooleanMacro)\s*\(\s*(\w+)")
_NOT_METHODS = {"if", "for", "while", "switch", "return", "sizeof", "operator", "decltype", "static_assert"}


def parse_class(text: str, name: str) -> dict:
    """{'base', 'methods', 'returns'} of class ``name`` in a header's text (public members only)."""
    body, base = _class_body(_strip_comments(text), name)
    public, access, pos = [], "private", 0
    for match in _ACCESS.finditer(body):
        if access == "public":
            public.append(body[pos:match.start()])
        access = "signals" if match.group(2) else match.group(1)
        pos = match.end()
    if access == "public":
        public.append(body[pos:])
    methods, returns = set(), {}
    properties = sorted(set(re.findall(r"Q_PROPERTY\s*\(\s*[\w:<>*& ]+?\s*\*?\s*(\w+)\s+READ", body)))
    for section in public:
        for macro, kind, member in _MACRO_CALL.findall(section):
            if macro == "vtkBooleanMacro":
                methods.update({member + "On", member + "Off"})
            else:
                methods.add(kind + member)
            if macro == "vtkTypeMacro" and base is None:
                base = member
        section = re.sub(r"\b\w+Macro\s*\((?:[^()]|\([^()]*\))*\)", ";", section)
        section = re.sub(r"\b(Q_\w+|VTK_\w+)\s*(\((?:[^()]|\([^()]*\))*\))?", " ", section)
        for statement in re.split(r"[;}]", section):
            found = re.search(r"(~?\w+)\s*\(", statement)
            if found is None or found.group(1) in _NOT_METHODS or found.group(1).startswith("~"):
                continue
            method = found.group(1)
            if method == name:
                continue  # a constructor
            methods.add(method)
            pointer = re.search(r"(\w+)\s*\*\s*$", statement[:found.start()])
            if pointer and re.match(r"(vtk|q|Q|ctk)[A-Z]\w+$", pointer.group(1)):
                returns[method] = pointer.group(1)
    parsed = {"base": base, "methods": sorted(methods), "returns": dict(sorted(returns.items()))}
    if properties:  # Qt properties: attributes in Python (PythonQt)
        parsed["properties"] = properties
    return parsed


def decorated_methods(text: str) -> set[tuple[str, str]]:
    """(class, method) pairs a PythonQt decorator header adds: ``static_<class>_<method>(`` and instance
    methods ``<method>(<class>* self, ...)``."""
    text = _strip_comments(text)
    pairs = set(re.findall(r"\bstatic_((?:q|vtk|ctk)[A-Z][A-Za-z0-9]*)_(\w+)\s*\(", text))
    pairs |= {(cls, method) for method, cls in re.findall(r"\b(\w+)\s*\(\s*((?:q|vtk|ctk)[A-Z]\w*)\s*\*", text)
              if not method.startswith(("static_", "new_", "delete_"))}
    return pairs


def decorations(repo: Path, tag: str) -> set[tuple[str, str]]:
    files = [p for p in git(repo, "ls-tree", "-r", "--name-only", tag).splitlines()
             if p.startswith("Base/") and p.endswith("PythonQtDecorators.h")]
    return {pair for path in files for pair in decorated_methods(git(repo, "show", f"{tag}:{path}"))}


def python_names(source: str) -> set[str]:
    """Top-level functions, classes and assigned names of a Python module."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def build(repo: Path) -> dict:
    paths, older_paths = header_paths(repo, TAG), header_paths(repo, OLDER_TAG)
    classes, queue = {}, list(CLASSES)
    while queue:
        name = queue.pop(0)
        if name in classes:
            continue
        parsed = parse_class(git(repo, "show", f"{TAG}:{paths[name]}"), name)
        older = set()
        if name in older_paths:
            older = set(parse_class(git(repo, "show", f"{OLDER_TAG}:{older_paths[name]}"), name)["methods"])
        classes[name] = {"header": paths[name], **parsed,
                         "missing_in_5_6_2": sorted(set(parsed["methods"]) - older) if name in older_paths else ["*"]}
        if parsed["base"] in paths:
            queue.append(parsed["base"])  # a Slicer base class; VTK, Qt and CTK bases are outside Slicer's source
    # PythonQt decorators (Base/*PythonQtDecorators.h) add methods to some classes (qSlicerCoreApplication.testingEnabled).
    older_decorated = decorations(repo, OLDER_TAG)
    for cls, method in sorted(decorations(repo, TAG)):
        if cls in classes and method not in classes[cls]["methods"]:
            classes[cls]["methods"] = sorted({*classes[cls]["methods"], method})
            classes[cls].setdefault("decorated", []).append(method)
            if (cls, method) not in older_decorated:
                classes[cls]["missing_in_5_6_2"] = sorted({*classes[cls]["missing_in_5_6_2"], method})
    modules = {}
    for module, path in PYTHON_MODULES.items():
        modules[module] = {"file": path, "names": sorted(python_names(git(repo, "show", f"{TAG}:{path}"))),
                           "missing_in_5_6_2": sorted(python_names(git(repo, "show", f"{TAG}:{path}"))
                                                      - python_names(git(repo, "show", f"{OLDER_TAG}:{path}")))}
    commit = git(repo, "rev-parse", f"{TAG}^{{commit}}").strip()
    return {"_about": f"Public methods Slicer {TAG} (commit {commit}) declares for the classes the module uses, "
                      f"read from the headers by Testing/python/slicer_api_headers.py; missing_in_5_6_2: declared "
                      f"in {TAG} but not in {OLDER_TAG}.",
            "tag": TAG, "classes": dict(sorted(classes.items())), "python_modules": modules}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a git clone of Slicer (github.com/Slicer/Slicer) with its tags")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("slicer_api_5_8.json"))
    args = parser.parse_args(argv)
    text = json.dumps(build(args.repo), indent=1)
    # One line per list of names: the file stays short and a changed method shows as one changed line.
    text = re.sub(r"\[\s+(\"[^\]]*?\")\s+\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
