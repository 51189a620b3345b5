"""A headless MRML "application" on the slicer-core wheel, and off-screen rendering of its views.

Inside 3D Slicer the application creates the scene and the module logics; the
wheel has no application, so :func:`create_headless_scene` does the same
wiring by hand (the way qSlicerCoreApplication and trame-slicer do):
application logic, colour logic with the default colour nodes (and colour legends), Volumes,
Segmentations (registering it also registers the labelmap <-> closed surface
converter rules), Subject Hierarchy, Models, Tables, and the remote/data I/O
logics so storage nodes and ``.mrb`` bundles work.

:func:`render_views` builds a 3D view and an axial slice view from Slicer's
own displayable managers, renders them once off-screen to PNG and tears
everything down again.  Displayable managers are never kept in Python
references beyond that call: left alive until interpreter exit they can be
finalised after the scene and crash.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

#: Logics of each bootstrapped scene, keyed by the scene's address, so that a
#: second call on the same scene hands back the same objects (idempotent) and
#: the Python wrappers stay alive as long as the scene is in use.
_BOOTSTRAPPED: dict[str, SimpleNamespace] = {}


def _scene_key(scene) -> str:
    return scene.GetAddressAsString("vtkMRMLScene")


def logics_for(scene) -> SimpleNamespace | None:
    """The logics :func:`create_headless_scene` registered for ``scene`` (None if it did not)."""
    return _BOOTSTRAPPED.get(_scene_key(scene)) if scene is not None else None


@contextlib.contextmanager
def vtk_messages_collected():
    """Keep VTK/MRML chatter (``Zip: adding ...`` per file of an ``.mrb``, benign
    warnings) off the terminal; print it only if the block fails, where it helps."""
    import vtk

    previous_window = vtk.vtkOutputWindow.GetInstance()
    previous_cutoff = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    collected = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(collected)
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)
    try:
        yield
    except BaseException:
        sys.stderr.write(collected.GetOutput())
        raise
    finally:
        vtk.vtkOutputWindow.SetInstance(previous_window)
        vtk.vtkLogger.SetStderrVerbosity(previous_cutoff)


def create_headless_scene(scene=None):
    """``(scene, logics)``: an MRML scene wired like Slicer's, without Qt.

    ``logics`` has attributes ``app``, ``colors``, ``volumes``, ``segmentations``,
    ``subject_hierarchy``, ``models``, ``tables``, ``remote_io``, ``data_io``.
    Passing a scene that was bootstrapped already returns its existing logics.
    """
    import slicer
    import vtk

    if scene is not None and logics_for(scene) is not None:
        return scene, logics_for(scene)
    scene = scene or slicer.vtkMRMLScene()

    # Slicer's crosshair node is expected by views and some logics.
    if scene.GetFirstNodeByClass("vtkMRMLCrosshairNode") is None:
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        scene.AddNode(crosshair)

    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    colors = app.GetColorLogic()
    colors.SetMRMLScene(scene)
    if scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is None:
        colors.AddDefaultColorNodes()
    # The Colors module registers its legend node in Slicer; the wheel's bare colour logic does not.
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    app.SetSliceLogics(vtk.vtkCollection())
    app.SetViewLogics(vtk.vtkCollection())

    def register(logic, name):
        logic.SetMRMLScene(scene)  # also registers the logic's node classes (and converter rules)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        return logic

    logics = SimpleNamespace(app=app, colors=colors)
    logics.volumes = register(slicer.vtkSlicerVolumesLogic(), "Volumes")
    logics.segmentations = register(slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    logics.subject_hierarchy = register(slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy")
    logics.models = register(slicer.vtkSlicerModelsLogic(), "Models")
    logics.tables = register(slicer.vtkSlicerTablesLogic(), "Tables")

    # Remote/data I/O: the scene's cache and data I/O managers, as the Slicer core application sets them up.
    logics.remote_io = slicer.vtkMRMLRemoteIOLogic()
    logics.remote_io.SetMRMLScene(scene)
    logics.remote_io.AddDataIOToScene()
    logics.data_io = slicer.vtkDataIOManagerLogic()
    logics.data_io.SetMRMLScene(scene)
    logics.data_io.SetMRMLApplicationLogic(app)
    logics.data_io.SetAndObserveDataIOManager(scene.GetDataIOManager())
    cache = scene.GetCacheManager()
    if cache is not None and not cache.GetRemoteCacheDirectory():
        import tempfile

        cache.SetRemoteCacheDirectory(tempfile.gettempdir())  # also where .mrb files are staged

    patient_right_is_screen_left = True
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, patient_right_is_screen_left)
    _BOOTSTRAPPED[_scene_key(scene)] = logics
    return scene, logics


def release_headless_scene(scene) -> None:
    """Drop the logics kept for ``scene`` and clear it (call before letting the scene go)."""
    logics = _BOOTSTRAPPED.pop(_scene_key(scene), None)
    if logics is None:
        return
    scene.Clear(True)
    for name in ("data_io", "remote_io", "tables", "models", "subject_hierarchy", "segmentations", "volumes"):
        logic = getattr(logics, name)
        logic.SetMRMLScene(None)
    logics.app.SetMRMLScene(None)


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
    """``python -m BrainTumorXAILib.slicer_bootstrap RESULTS_DIR --screenshots DIR``: render a results
    folder (with its case inputs) to 3d_view.png and axial_view.png, e.g. into Resources/Screenshots."""
    import argparse

    from .slicer_scene import build_scene_from_results

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
