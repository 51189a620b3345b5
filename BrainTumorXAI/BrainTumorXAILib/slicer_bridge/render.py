"""Off-screen rendering of a scene's views to PNG (``python -m BrainTumorXAILib.slicer_bridge.render``).

:func:`render_views` builds a 3D view and an axial slice view from Slicer's
own displayable managers, renders them once off-screen to PNG and tears
everything down again.  Displayable managers are never kept in Python
references beyond that call: left alive until interpreter exit they can be
finalised after the scene and crash.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .bootstrap import create_headless_scene, release_headless_scene


# -- off-screen rendering ----------------------------------------------------------
def _prepare_offscreen() -> None:
    """EGL (Mesa llvmpipe on a CPU-only machine) when no X display exists; threads via STDThread."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    os.environ.setdefault("VTK_SMP_BACKEND_IN_USE", "STDThread")


def _render_window(size):
    import vtk

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.ShowWindowOff()
    window.SetSize(*size)
    window.SetMultiSamples(0)
    renderer = vtk.vtkRenderer()
    # Translucent surfaces: depth peeling is unreliable on llvmpipe, plain alpha blending is enough here.
    renderer.SetUseDepthPeeling(False)
    window.AddRenderer(renderer)
    # Displayable managers (camera, widgets) expect an interactor on the window; the generic one needs no display.
    interactor = vtk.vtkGenericRenderWindowInteractor()
    interactor.SetRenderWindow(window)
    interactor.Initialize()
    return window, renderer


def _dm_group(factory_class, app, renderer, managers):
    import slicer

    factory = factory_class.GetInstance()
    factory.SetMRMLApplicationLogic(app)
    for name in managers:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.Initialize(factory, renderer)
    return group


def _save_png(window, path: Path) -> Path:
    import vtk

    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    return path


def _view_node(scene, layout_name: str):
    import slicer

    node = scene.GetSingletonNode(layout_name, "vtkMRMLViewNode")
    if node is None:
        node = slicer.vtkMRMLViewNode()
        node.SetSingletonTag(layout_name)
        node.SetLayoutName(layout_name)
        node.SetName(f"View{layout_name}")
        scene.AddNode(node)
    return node


def render_3d(scene, path, size=(800, 800), background=(0.0, 0.0, 0.0)) -> Path:
    """Render the scene's models and segmentation surfaces (Slicer's 3D displayable managers) to PNG."""
    import slicer

    _prepare_offscreen()
    _, logics = create_headless_scene(scene)
    window, renderer = _render_window(size)
    managers = ["vtkMRMLCameraDisplayableManager", "vtkMRMLViewDisplayableManager",
                "vtkMRMLModelDisplayableManager", "vtkMRMLSegmentationsDisplayableManager3D"]
    group = _dm_group(slicer.vtkMRMLThreeDViewDisplayableManagerFactory, logics.app, renderer, managers)
    try:
        view = _view_node(scene, "1")
        view.SetBackgroundColor(*background)
        view.SetBackgroundColor2(*background)
        view.SetBoxVisible(False)
        view.SetAxisLabelsVisible(False)
        group.SetMRMLDisplayableNode(view)
        group.RequestRender()
        renderer.ResetCamera()
        camera = renderer.GetActiveCamera()
        # Anterior-oblique view of the head (RAS: +y anterior, +z superior).
        focal = np.array(camera.GetFocalPoint())
        distance = camera.GetDistance()
        direction = np.array([0.45, 1.0, 0.55])
        direction /= np.linalg.norm(direction)
        camera.SetPosition(*(focal + distance * direction))
        camera.SetViewUp(0.0, 0.0, 1.0)
        renderer.ResetCamera()
        renderer.ResetCameraClippingRange()
        window.Render()
        return _save_png(window, Path(path))
    finally:
        group.SetMRMLDisplayableNode(None)
        renderer.RemoveAllViewProps()
        window.Finalize()
        del group


def render_slice(scene, path, background_volume=None, foreground_volume=None, foreground_opacity=0.5,
                 orientation: str = "Axial", offset: float | None = None, size=(800, 800),
                 segmentation_node=None) -> Path:
    """Render one slice view (volumes via the slice logic, segmentations via their 2D displayable manager).

    ``offset`` is the slice position in mm along the view normal; by default the
    slice through the centre of the segmentation (or of the background volume).
    """
    import slicer
    import vtk

    _prepare_offscreen()
    _, logics = create_headless_scene(scene)
    window, renderer = _render_window(size)
    renderer.GetActiveCamera().ParallelProjectionOn()
    managers = ["vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLModelSliceDisplayableManager"]
    group = _dm_group(slicer.vtkMRMLSliceViewDisplayableManagerFactory, logics.app, renderer, managers)
    slice_logic = slicer.vtkMRMLSliceLogic()
    slice_logic.SetMRMLApplicationLogic(logics.app)
    slice_logic.SetMRMLScene(scene)
    logics.app.GetSliceLogics().AddItem(slice_logic)
    actor = vtk.vtkActor2D()
    try:
        slice_node = slice_logic.AddSliceNode(f"BrainTumorXAIOffscreen{orientation}")
        slice_node.SetOrientation(orientation)
        composite = slice_logic.GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(background_volume.GetID() if background_volume else None)
        composite.SetForegroundVolumeID(foreground_volume.GetID() if foreground_volume else None)
        composite.SetForegroundOpacity(float(foreground_opacity))
        group.SetMRMLDisplayableNode(slice_node)
        slice_logic.ResizeSliceNode(*size)
        slice_logic.FitSliceToBackground()
        if offset is None:
            offset = _centre_offset(slice_node, segmentation_node, background_volume)
        if offset is not None:
            slice_logic.SetSliceOffset(float(offset))
        slice_logic.SnapSliceOffsetToIJK()
        # The blended RGBA slice image goes behind the displayable managers' actors, as in Slicer's views.
        mapper = vtk.vtkImageMapper()
        mapper.SetColorWindow(255)
        mapper.SetColorLevel(127.5)
        mapper.SetInputConnection(slice_logic.GetImageDataConnection())
        actor.SetMapper(mapper)
        actor.GetProperty().SetDisplayLocationToBackground()
        renderer.AddViewProp(actor)
        group.RequestRender()
        window.Render()
        return _save_png(window, Path(path))
    finally:
        group.SetMRMLDisplayableNode(None)
        renderer.RemoveAllViewProps()
        logics.app.GetSliceLogics().RemoveItem(slice_logic)
        slice_logic.SetMRMLScene(None)
        window.Finalize()
        del group


def _centre_offset(slice_node, segmentation_node, volume_node) -> float | None:
    """Offset along the slice normal through the segmentation's (else the volume's) bounding-box centre."""
    bounds = [0.0] * 6
    if segmentation_node is not None:
        segmentation_node.GetRASBounds(bounds)
    if (segmentation_node is None or bounds[0] > bounds[1]) and volume_node is not None:
        volume_node.GetRASBounds(bounds)
    if bounds[0] > bounds[1]:
        return None
    centre = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
    m = slice_node.GetSliceToRAS()
    normal = np.array([m.GetElement(i, 2) for i in range(3)])
    return float(centre @ normal)


def render_views(scene, out_dir, size=(800, 800), background_volume=None, segmentation_node=None,
                 foreground_volume=None, foreground_opacity=0.5) -> dict[str, Path]:
    """Render the 3D view and an axial slice view of ``scene`` to ``out_dir``/{3d_view,axial_view}.png.

    Without explicit nodes the slice view shows the first scalar volume (FLAIR when
    present) with the first segmentation's outline and fill.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if background_volume is None:
        background_volume = _pick_background(scene)
    if segmentation_node is None:
        segmentation_node = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    return {
        "3d": render_3d(scene, out_dir / "3d_view.png", size=size),
        "axial": render_slice(scene, out_dir / "axial_view.png", background_volume, foreground_volume,
                              foreground_opacity, "Axial", size=size, segmentation_node=segmentation_node),
    }


def _pick_background(scene):
    volumes = [scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
    volumes = [v for v in volumes if not v.IsA("vtkMRMLLabelMapVolumeNode")]
    for v in volumes:
        if v.GetAttribute("BrainTumorXAI.Sequence") == "flair":
            return v
    for v in volumes:
        if "flair" in (v.GetName() or "").lower():
            return v
    return volumes[0] if volumes else None


def main(argv=None) -> int:
    """``python -m BrainTumorXAILib.slicer_bridge.render RESULTS_DIR --screenshots DIR``: render a results
    folder (with its case inputs) to 3d_view.png and axial_view.png, e.g. into Resources/Screenshots."""
    import argparse

    from .scene import build_scene_from_results

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--screenshots", type=Path, required=True, help="output folder for the PNGs")
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--preset", default="all", help="view preset: tumour, NCR, ED, ET, all")
    args = parser.parse_args(argv)
    scene, logic, folder = build_scene_from_results(args.results)
    try:
        logic.showOnly(args.preset, folder)
        for path in render_views(scene, args.screenshots, size=(args.size, args.size)).values():
            print(path)
    finally:
        release_headless_scene(scene)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
