"""The package's layering, read from the source with ``ast`` (nothing is imported):

- no import circle between the modules of ``BrainTumorXAILib`` (imports inside functions count too: they are
  the same dependency, only later);
- the core (everything but the Slicer bridge, the web viewer and the command line) imports neither of them;
- the Slicer GUI process starts without the analysis packages (torch, nibabel, scipy, ...): what the module file
  and its GUI package import at module level, followed through the package, imports at module level only the
  standard library and what Slicer's own Python has;
- the command line imports torch only in the subcommands that run the network.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "BrainTumorXAI"
PACKAGE = "BrainTumorXAILib"
#: The packages (and module) above the core: they may import the core, never the other way round.
OUTER = ("BrainTumorXAILib.slicer_bridge", "BrainTumorXAILib.web", "BrainTumorXAILib.cli")
#: Third-party packages the Slicer application's Python has before any install.
IN_SLICER = {"numpy", "vtk", "vtkmodules", "slicer", "qt", "ctk", "SimpleITK", "PythonQt"}


def _module_name(path: Path, source: Path = SOURCE) -> str:
    parts = list(path.relative_to(source).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(source: Path = SOURCE) -> dict[str, Path]:
    return {_module_name(p, source): p for p in sorted((source / PACKAGE).rglob("*.py")) if "__pycache__" not in p.parts}


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path, name: str, top_level_only: bool = False) -> set[str]:
    """Absolute names of what ``path`` imports (``from X import y`` gives ``X.y`` and ``X``: y may be a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def import_graph(modules: dict[str, Path], top_level_only: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (a name that is not a module of ours is left out)."""
    return {name: {m for m in _imports(path, name, top_level_only) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _outer(name: str) -> bool:
    return any(name == o or name.startswith(o + ".") for o in OUTER)


@pytest.fixture(scope="module")
def modules():
    found = _modules()
    assert f"{PACKAGE}.analyze" in found and f"{PACKAGE}.slicer_bridge.logic" in found
    return found


def test_no_import_circle(modules):
    cycle = find_cycle(import_graph(modules))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_core_imports_neither_the_slicer_bridge_nor_the_web_viewer(modules):
    graph = import_graph(modules)
    upward = {name: sorted(m for m in targets if _outer(m)) for name, targets in graph.items() if not _outer(name)}
    assert {name: found for name, found in upward.items() if found} == {}


def _module_level_closure(modules, start) -> set[str]:
    """The package's modules imported at module level from ``start``, followed through the package."""
    graph = import_graph(modules, top_level_only=True)
    todo, seen = sorted(start), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        todo += [m for m in graph[name] | ({parent} if parent in modules else set()) if m not in seen]
    return seen


def _third_party(modules, names) -> dict[str, list[str]]:
    """Module -> the third-party packages it imports at module level (the standard library left out)."""
    found = {n: sorted({m.split(".")[0] for m in _imports(modules[n], n, top_level_only=True)}
                       - set(sys.stdlib_module_names) - {PACKAGE, ""}) for n in names}
    return {n: f for n, f in found.items() if f}


def test_the_slicer_gui_starts_without_the_analysis_packages(modules):
    """Module-level imports only: a function-local import runs when the analysis does, not at start-up."""
    gui = [SOURCE / "BrainTumorXAI.py", *sorted((SOURCE / "BrainTumorXAIGui").glob("*.py"))]
    start = {m for p in gui for m in _imports(p, _module_name(p), top_level_only=True) if m in modules}
    assert start, "the module file imports nothing from the package?"
    external = {n: [m for m in found if m not in IN_SLICER]
                for n, found in _third_party(modules, _module_level_closure(modules, start)).items()}
    assert {n: found for n, found in external.items() if found} == {}


def test_the_command_line_starts_without_torch(modules):
    """``braintumorxai view`` serves pages, ``info`` reads a case: torch is imported by the subcommands that run it."""
    found = _third_party(modules, _module_level_closure(modules, {f"{PACKAGE}.cli"}))
    assert {n: f for n, f in found.items() if "torch" in f} == {}


# -- the checks themselves catch what they are for ----------------------------------------------------------
def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_resolve_relative_names(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "reporting").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "reporting" / "__init__.py").write_text("")
    (pkg / "reporting" / "trust.py").write_text("def f():\n    from ..analyze import network_input\n")
    (pkg / "analyze.py").write_text("from .reporting import trust\nfrom .slicer_bridge.scene import write\n")
    found = _modules(tmp_path)
    graph = import_graph(found)
    assert graph[f"{PACKAGE}.analyze"] == {f"{PACKAGE}.reporting", f"{PACKAGE}.reporting.trust"}
    assert find_cycle(graph) == [f"{PACKAGE}.analyze", f"{PACKAGE}.reporting.trust", f"{PACKAGE}.analyze"]
    assert f"{PACKAGE}.slicer_bridge.scene" in _imports(found[f"{PACKAGE}.analyze"], f"{PACKAGE}.analyze")
