"""A headless MRML "application" on the slicer-core wheel.

Inside 3D Slicer the application creates the scene and the module logics; the
wheel has no application, so :func:`create_headless_scene` does the same
wiring by hand (the way qSlicerCoreApplication and trame-slicer do):
application logic, colour logic with the default colour nodes (and colour legends), Volumes,
Segmentations (registering it also registers the labelmap <-> closed surface
converter rules), Subject Hierarchy, Models, Tables, and the remote/data I/O
logics so storage nodes and ``.mrb`` bundles work.  Off-screen rendering of the
views lives in :mod:`.render`.
"""

from __future__ import annotations

import contextlib
import sys
from types import SimpleNamespace


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
