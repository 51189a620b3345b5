"""``analyze --scene``: an analyze results folder (plus the case's input volumes) as a Slicer .mrb bundle."""

from __future__ import annotations

from pathlib import Path

from .errors import BrainTumorXAIError


def build_scene_from_results(out_dir, scene=None):
    """(scene, logic, run folder item): a headless scene with the case inputs and the results loaded."""
    from .slicer_bootstrap import create_headless_scene
    from .slicer_logic import BrainTumorXAILogic

    scene, _ = create_headless_scene(scene)
    logic = BrainTumorXAILogic(scene)
    summary = logic.readSummary(out_dir)
    case = summary["case"]
    background = None
    for seq, file in (case.get("files") or {}).items():
        if seq == "seg":
            continue
        path = Path(file)
        if not path.is_file():
            raise BrainTumorXAIError(f"{path}: input volume listed in {Path(out_dir) / 'summary.json'} not found")
        node = logic.loadSequenceVolume(path, seq, case.get("id", "case"))
        if seq == "flair" or background is None:
            background = node
    folder = logic.loadResults(out_dir)
    if background is not None:
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode").SetBackgroundVolumeID(background.GetID())
    return scene, logic, folder


def write_scene_from_results(out_dir, mrb_path) -> Path:
    """Bootstrap a scene, load the case's inputs and the results through the Logic, save ``mrb_path``."""
    from .slicer_bootstrap import release_headless_scene, vtk_messages_collected

    with vtk_messages_collected():
        scene, logic, _ = build_scene_from_results(out_dir)
        try:
            return logic.saveSceneBundle(mrb_path)
        finally:
            release_headless_scene(scene)
