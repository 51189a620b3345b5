"""The web viewer's MRML scene: an analyze results folder shown in trame-slicer's views.

The scene content (segmentation, overlays with colour tables, surfaces) is
meant to come from the Slicer module's own Logic (``slicer_logic.BrainTumorXAILogic``)
so that the browser shows the very nodes Slicer shows.  Until that Logic is in
the package, :class:`ResultsScene` fills the scene itself with plain MRML nodes
(read through trame-slicer's and Slicer's storage nodes), behind the small API
the UI uses: ``load``, ``set_overlay``, ``set_visibility``, ``legend``,
``tables``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..labels import CLASS_COLORS, TUMOUR_CLASSES

#: Overlays offered in the page: key -> (label, summary outputs path, colour node, fixed range or None)
OVERLAY_KINDS = {
    "prob": ("Probability", "probabilities", "vtkMRMLColorTableNodeIron", (0.0, 1.0)),
    "var": ("MC variance", "mc_variance", "vtkMRMLColorTableNodeRainbow", None),
    "gradcam": ("Grad-CAM", "gradcam", "vtkMRMLPETProceduralColorNodePET-Heat", (0.0, 1.0)),
}
SCALAR_OVERLAYS = {
    "entropy": ("Predictive entropy", "entropy", "vtkMRMLColorTableNodeRainbow", None),
    "mi": ("Mutual information", "mutual_information", "vtkMRMLColorTableNodeRainbow", None),
}
SURFACE_OPACITY = {"brain": 0.15, "NCR": 1.0, "ED": 0.45, "ET": 0.8}
BRAIN_COLOR = (0.85, 0.80, 0.75)
LABEL_VALUES = {"NCR": 1, "ED": 2, "ET": 4}  # brats2021 disk convention; brats2023 writes ET as 3


def overlay_items(summary: dict) -> list[dict]:
    """[{title, value}] of the overlays a results folder has, in page order."""
    outputs = summary.get("outputs", {})
    items = [{"title": "None", "value": "none"}]
    for kind, (label, key, _, _) in OVERLAY_KINDS.items():
        for cls in TUMOUR_CLASSES:
            if (outputs.get(key) or {}).get(cls):
                items.append({"title": f"{label} {cls}", "value": f"{kind}:{cls}"})
    for kind, (label, key, _, _) in SCALAR_OVERLAYS.items():
        if outputs.get(key):
            items.append({"title": label, "value": kind})
    return items


def _overlay_spec(summary: dict, value: str):
    outputs = summary.get("outputs", {})
    if ":" in value:
        kind, cls = value.split(":", 1)
        label, key, color, rng = OVERLAY_KINDS[kind]
        return f"{label} {cls}", (outputs.get(key) or {}).get(cls), color, rng
    label, key, color, rng = SCALAR_OVERLAYS[value]
    return label, outputs.get(key), color, rng


@dataclass
class Legend:
    title: str
    vmin: float
    vmax: float
    css_gradient: str

    def as_state(self) -> dict:
        return {"title": self.title, "min": f"{self.vmin:.3g}", "max": f"{self.vmax:.3g}",
                "gradient": self.css_gradient}


class ResultsScene:
    def __init__(self, slicer_app):
        self.app = slicer_app
        self.scene = slicer_app.scene
        self.out_dir: Path | None = None
        self.summary: dict = {}
        self._nodes: list = []
        self._overlays: dict[str, object] = {}
        self.models: dict[str, object] = {}
        self.background = None
        self.labelmap = None

    # -- loading ----------------------------------------------------------------------------------------------
    def clear(self) -> None:
        for node in self._nodes:
            if node is not None and self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)
        self._nodes, self._overlays, self.models = [], {}, {}
        self.background = self.labelmap = None
        self.out_dir, self.summary = None, {}

    def load(self, out_dir: Path, case_dir: Path | None = None) -> dict:
        """Show a results folder: anatomy + segmentation in the slices, surfaces in 3D."""
        out_dir = Path(out_dir)
        summary = json.loads((out_dir / "summary.json").read_text())
        self.clear()
        self.out_dir, self.summary = out_dir, summary
        files = summary.get("case", {}).get("files", {})
        anatomy = None
        for key in ("t1ce", "flair", "t2", "t1"):
            cand = Path(files.get(key, "")) if files.get(key) else None
            if case_dir is not None and cand is not None and not cand.exists():
                cand = Path(case_dir) / cand.name
            if cand is not None and cand.exists():
                anatomy = cand
                break
        if anatomy is not None:
            self.background = self._volume(anatomy, f"{summary['case'].get('id', 'case')} {key}")
        seg = out_dir / summary.get("outputs", {}).get("seg", "seg.nii.gz")
        if seg.exists():
            self.labelmap = self._volume(seg, "Segmentation", labelmap=True)
            self.labelmap.GetDisplayNode().SetAndObserveColorNodeID(self._label_colors(summary).GetID())
        for name, surf in (summary.get("outputs", {}).get("surfaces") or {}).items():
            path = out_dir / (surf.get("vtp") or surf.get("stl"))
            model = self.app.io_manager.load_model(path) if path.exists() else None
            if model is None:
                continue
            self._nodes.append(model)
            model.SetName(name)
            disp = model.GetDisplayNode()
            disp.SetColor(*(BRAIN_COLOR if name == "brain" else CLASS_COLORS.get(name, (0.7, 0.7, 0.7))))
            disp.SetOpacity(SURFACE_OPACITY.get(name, 1.0))
            disp.SetVisibility2D(name != "brain")
            disp.SetSliceIntersectionThickness(2)
            if name == "brain":
                disp.SetBackfaceCulling(1)
            self.models[name] = model
        for comp in self._composites():
            comp.SetBackgroundVolumeID(self.background.GetID() if self.background else None)
            comp.SetLabelVolumeID(self.labelmap.GetID() if self.labelmap else None)
            comp.SetLabelOpacity(0.6)
            comp.SetForegroundVolumeID(None)
        return summary

    def _volume(self, path: Path, name: str, labelmap: bool = False):
        logic = self.app.volumes_logic
        node = logic.AddArchetypeVolume(str(path), name, 1 if labelmap else 0)
        if node is None:
            raise RuntimeError(f"{path}: could not be read as a volume")
        self._nodes.append(node)
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        for i in range(node.GetNumberOfStorageNodes()):
            self._nodes.append(node.GetNthStorageNode(i))
        self._nodes.append(node.GetDisplayNode())
        return node

    def _label_colors(self, summary: dict):
        from slicer import vtkMRMLColorTableNode

        node = vtkMRMLColorTableNode()
        node.SetTypeToUser()
        node.SetNumberOfColors(5)
        node.SetName("BraTS labels")
        node.SetColor(0, "background", 0, 0, 0, 0)
        convention = summary.get("case", {}).get("label_convention", "brats2021")
        values = dict(LABEL_VALUES, ET=3 if convention == "brats2023" else 4)
        for i in range(1, 5):
            node.SetColor(i, "", 0, 0, 0, 0)
        for cls, value in values.items():
            node.SetColor(value, cls, *CLASS_COLORS[cls], 1.0)
        self.scene.AddNode(node)
        self._nodes.append(node)
        return node

    def _composites(self):
        nodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]

    # -- display ----------------------------------------------------------------------------------------------
    def set_overlay(self, value: str | None, opacity: float = 0.6) -> Legend | None:
        """Show an overlay ('prob:NCR', 'var:ET', 'gradcam:ED', 'entropy', 'mi' or 'none') over the anatomy."""
        if not value or value == "none" or self.out_dir is None:
            for comp in self._composites():
                comp.SetForegroundVolumeID(None)
            return None
        title, rel, color_id, rng = _overlay_spec(self.summary, value)
        if not rel:
            return None
        node = self._overlays.get(value)
        if node is None:
            node = self._volume(self.out_dir / rel, title)
            disp = node.GetDisplayNode()
            disp.SetAndObserveColorNodeID(color_id)
            lo, hi = rng if rng else (0.0, max(float(node.GetImageData().GetScalarRange()[1]), 1e-6))
            disp.SetAutoWindowLevel(0)
            disp.SetWindowLevelMinMax(lo, hi)
            disp.SetApplyThreshold(1)  # zero (outside the brain, certain voxels) stays transparent
            disp.SetLowerThreshold(lo + 0.02 * (hi - lo))
            disp.SetUpperThreshold(hi * 10 + 1)
            self._overlays[value] = node
        for comp in self._composites():
            comp.SetForegroundVolumeID(node.GetID())
            comp.SetForegroundOpacity(float(opacity))
        return self.legend(value)

    def set_opacity(self, opacity: float) -> None:
        for comp in self._composites():
            comp.SetForegroundOpacity(float(opacity))

    def set_segmentation_visible(self, visible: bool) -> None:
        for comp in self._composites():
            comp.SetLabelOpacity(0.6 if visible else 0.0)

    def legend(self, value: str) -> Legend | None:
        node = self._overlays.get(value)
        if node is None:
            return None
        disp = node.GetDisplayNode()
        w, lvl = disp.GetWindow(), disp.GetLevel()
        vmin, vmax = lvl - w / 2, lvl + w / 2
        stc = disp.GetColorNode().GetScalarsToColors()
        r0, r1 = stc.GetRange()
        stops = []
        for i in range(9):
            t = i / 8
            rgb = [0.0, 0.0, 0.0]
            stc.GetColor(r0 + t * (r1 - r0), rgb)
            stops.append(f"rgb({int(rgb[0] * 255)},{int(rgb[1] * 255)},{int(rgb[2] * 255)}) {int(t * 100)}%")
        return Legend(node.GetName(), vmin, vmax, f"linear-gradient(to right, {', '.join(stops)})")

    def set_visibility(self, brain: bool = True, regions: dict[str, bool] | None = None) -> None:
        regions = regions or {}
        for name, model in self.models.items():
            visible = brain if name == "brain" else regions.get(name, True)
            model.GetDisplayNode().SetVisibility(bool(visible))

    # -- tables -----------------------------------------------------------------------------------------------
    def tables(self) -> dict:
        s = self.summary
        vols = (s.get("volumes_cm3") or {})
        rows = [{"name": k, "volume": f"{v:.2f}"} for k, v in (vols.get("classes") or {}).items()]
        rows += [{"name": k, "volume": f"{v:.2f}"} for k, v in (vols.get("regions") or {}).items()]
        metrics = []
        for region, m in (((s.get("metrics") or {}).get("regions")) or {}).items():
            metrics.append({"region": region, "dice": _fmt(m.get("dice")), "hd95": _fmt(m.get("hd95")),
                            "sensitivity": _fmt(m.get("sensitivity")), "precision": _fmt(m.get("precision"))})
        return {"volumes": rows, "metrics": metrics}


def _fmt(v) -> str:
    if v is None:
        return "–"
    try:
        return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return str(v)
