"""``analyze --scene``: an analyze results folder (plus the case's input volumes) as a Slicer .mrb bundle."""

from __future__ import annotations

from pathlib import Path

from ..errors import BrainTumorXAIError
from .i18n import tr

#: The slice views of Slicer's standard layouts (their composite nodes are singletons tagged so).
SLICE_VIEWS = ("Red", "Yellow", "Green")


def ensure_slice_views(scene) -> list:
    """The composite nodes of the standard slice views (Red, Yellow, Green), added where missing.

    Inside Slicer the layout creates them; a headless scene has none.  Saved in a bundle they
    say which volumes each view shows: when Slicer opens the bundle it updates its own
    singleton composite nodes of the same tag from the file.
    """
    import slicer

    composites = []
    for name in SLICE_VIEWS:
        node = scene.GetSingletonNode(name, "vtkMRMLSliceCompositeNode")
        if node is None:
            node = slicer.vtkMRMLSliceCompositeNode()
            node.SetLayoutName(name)
            node.SetSingletonTag(name)
            node = scene.AddNode(node)
        composites.append(node)
    return composites


def build_scene_from_results(out_dir, scene=None):
    """(scene, logic, run folder item): a headless scene with the case inputs and the results loaded,
    FLAIR (else the first input found) as the background of the standard slice views."""
    from ..io.labels import SEQUENCES
    from .bootstrap import create_headless_scene
    from .logic import BrainTumorXAILogic

    scene, _ = create_headless_scene(scene)
    logic = BrainTumorXAILogic(scene)
    summary = logic.readSummary(out_dir)
    case = summary["case"]
    files = case.get("files") or {}
    inputs = {}
    for seq in [s for s in SEQUENCES if s in files] + [s for s in files if s not in SEQUENCES and s != "seg"]:
        path = Path(files[seq])
        if not path.is_file():
            raise BrainTumorXAIError(tr("{path}: input volume listed in {summary} not found").format(
                path=path, summary=Path(out_dir) / "summary.json"))
        inputs[seq] = logic.loadSequenceVolume(path, seq, case.get("id", "case"))
    folder = logic.loadResults(out_dir)
    background = inputs.get("flair")
    if background is None:
        background = next(iter(inputs.values()), None)
    if background is None:  # no inputs listed: the label map at least gives the views a geometry
        background = logic.runNodes(folder).get("labelmap")
    ensure_slice_views(scene)
    logic.setOverlay(None, 0.5, backgroundNode=background)
    return scene, logic, folder


def write_scene_from_results(out_dir, mrb_path) -> Path:
    """Bootstrap a scene, load the case's inputs and the results through the Logic, save ``mrb_path``."""
    from .bootstrap import release_headless_scene, vtk_messages_collected

    with vtk_messages_collected():
        scene, logic, _ = build_scene_from_results(out_dir)
        try:
            return logic.saveSceneBundle(mrb_path)
        finally:
            release_headless_scene(scene)
