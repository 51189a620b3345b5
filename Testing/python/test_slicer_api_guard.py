"""Guard: every Slicer/MRML/VTK method the Slicer-side code calls is declared by Slicer 5.8.1 (and 5.6.2).

The slicer-core wheel the other tests run on starts at Slicer 5.11, so a method Slicer added later (as
``vtkSegment.SetTerminology`` in 5.10) passes every test there and fails in the application.  This test reads
the calls with ``ast`` (``slicer_api_calls``) and checks them against ``slicer_api_5_8.json``, which
``slicer_api_headers.py`` read from Slicer's headers at v5.8.1 and v5.6.2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vtk", reason="VTK (from the slicer-core wheel) checks the VTK classes' methods")

import slicer_api_calls as guard  # noqa: E402
from slicer_api_headers import decorated_methods, parse_class  # noqa: E402

RESULTS = "BrainTumorXAI/BrainTumorXAILib/slicer_bridge/results.py"


def test_every_slicer_call_of_the_module_is_declared_in_slicer_5_8_and_5_6():
    assert guard.problems(guard.slicer_side_sources()) == []


def test_the_guard_knows_the_class_of_most_slicer_calls():
    """It must see the receivers, or it would check little: the main classes are followed through the code."""
    calls, names, attributes = guard.collect(guard.slicer_side_sources())
    known = {c.receiver.lstrip("~") for c in calls if c.receiver}
    assert {"vtkSegment", "vtkSegmentation", "vtkMRMLScene", "vtkMRMLSubjectHierarchyNode", "vtkMRMLTableNode",
            "vtkMRMLSliceCompositeNode", "qMRMLTableView", "qSlicerApplication", "qSlicerLayoutManager"} <= known
    assert sum(1 for c in calls if c.receiver.lstrip("~") in guard.CLASSES) > 150
    assert {("slicer.util", "errorDisplay"), ("slicer.util", "confirmOkCancelDisplay")} <= {n[2:] for n in names}
    # Not called but passed on or read: slicer.app.processEvents (the self-test's pump), slicer.app.temporaryPath.
    assert {("qSlicerApplication", "processEvents"), ("qSlicerApplication", "temporaryPath")} <= {
        (a.receiver, a.method) for a in attributes}


def test_set_terminology_added_back_is_caught():
    """The 5.10-only call that lost every result on 5.6/5.8, put back where it was."""
    sources = guard.slicer_side_sources()
    original = sources[RESULTS]
    line = next(li for li in original.splitlines() if "segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName()" in li)
    sources[RESULTS] = original.replace(line, line.split("segment.")[0] + "segment.SetTerminology(terminologyEntry(className))")
    found = guard.problems(sources)
    assert len(found) == 1 and f"{RESULTS}:" in found[0] and "vtkSegment.SetTerminology" in found[0], found
    assert "Slicer 5.8.1 declares no SetTerminology in vtkSegment" in found[0]


@pytest.mark.parametrize("snippet, expected", [
    # on an object whose class is known only as the declared return type
    ("def f(segNode):\n    segNode.GetSegmentation().GetSegment('ET').SetTerminology('x')\n", "SetTerminology"),
    # on a receiver of unknown class: no class of the list declares it
    ("def f(node):\n    node.SetTerminology('x')\n", "declares SetTerminology"),
    # declared from 5.8 on only
    ("def f(segmentation):\n    segmentation.SetUUIDSegmentIDs(True)\n", "not in 5.6.2"),
    # a slicer.util function Slicer 5.8 does not have
    ("import slicer\nslicer.util.pip_ensure(['x'])\n", "slicer.util of Slicer 5.8.1 has no pip_ensure"),
    # a Slicer widget method that does not exist
    ("def f(self):\n    self.ui.reviewTableView.setMRMLTableNodes(None)\n", "qMRMLTableView"),
    # an application attribute that is neither a method nor a property
    ("import slicer\nwait = slicer.app.msleep\n", "no method or property msleep"),
])
def test_calls_slicer_5_8_lacks_are_caught(snippet, expected):
    found = guard.problems({"snippet.py": snippet})
    assert len(found) == 1 and expected in found[0], found


def test_declared_calls_pass():
    snippet = ("import slicer\n"
               "def f(scene):\n"
               "    node = scene.AddNewNodeByClass('vtkMRMLSegmentationNode', 'n')\n"
               "    node.CreateClosedSurfaceRepresentation()\n"
               "    node.GetDisplayNode().SetSegmentVisibility('ET', True)\n"
               "    slicer.vtkSegment().SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), 'x')\n"
               "    slicer.app.processEvents()\n")
    calls, _, _ = guard.collect({"snippet.py": snippet})
    assert [c.receiver for c in calls][:2] == ["vtkMRMLScene", "vtkMRMLSegmentationNode"]
    assert guard.problems({"snippet.py": snippet}) == []


def test_the_list_is_slicer_5_8_1_as_read_from_its_headers():
    api = json.loads((Path(guard.__file__).with_name("slicer_api_5_8.json")).read_text(encoding="utf-8"))
    assert api["tag"] == "v5.8.1"
    segment = api["classes"]["vtkSegment"]
    assert segment["header"] == "Libs/vtkSegmentationCore/vtkSegment.h" and segment["base"] == "vtkObject"
    assert {"SetTag", "GetTerminologyEntryTagName", "SetColor"} <= set(segment["methods"])
    assert "SetTerminology" not in segment["methods"] and segment["missing_in_5_6_2"] == []
    # PythonQt decorators: slicer.app.testingEnabled() and processEvents() exist in 5.6.2 and 5.8.1.
    core = api["classes"]["qSlicerCoreApplication"]
    assert {"testingEnabled", "processEvents"} <= set(core["decorated"]) and "testingEnabled" not in core["missing_in_5_6_2"]


def test_the_header_reader():
    header = """
    /// comment with Fake(
    class VTK_EXPORT vtkThing : public vtkObject
    {
    public:
      static vtkThing* New();
      vtkTypeMacro(vtkThing, vtkObject);
      vtkGetMacro(Size, int);
      vtkSetStringMacro(Name);
      vtkBooleanMacro(Visible, bool);
      virtual vtkMRMLNode* GetNode(const char* id = nullptr) const;
      void Inline() { this->Hidden(); }
      enum { A, B };
    public slots:
      void setValue(double v);
    protected:
      void Protected();
      vtkThing();
    signals:
      void changed();
    };
    """
    parsed = parse_class(header, "vtkThing")
    assert parsed["base"] == "vtkObject"
    assert parsed["methods"] == sorted(["New", "GetSize", "SetName", "VisibleOn", "VisibleOff", "GetNode", "Inline",
                                        "setValue"])
    assert parsed["returns"] == {"GetNode": "vtkMRMLNode", "New": "vtkThing"}
    decorators = "bool static_qSlicerCoreApplication_testingEnabled() {}\n void processEvents(qSlicerCoreApplication* app) {}"
    assert decorated_methods(decorators) == {("qSlicerCoreApplication", "testingEnabled"),
                                             ("qSlicerCoreApplication", "processEvents")}
