"""The web viewer's MRML scene: an analyze results folder shown in trame-slicer's views.

All scene content comes from the Slicer module's own Logic
(:class:`~BrainTumorXAILib.slicer_bridge.logic.BrainTumorXAILogic`): the case's input
volumes (``loadSequenceVolume``), the results (``loadResults``: segmentation
with NCR/ED/ET segments and closed surfaces, label map, probability / variance /
entropy / MI / Grad-CAM volumes with their colour tables, the translucent brain
model, the results table), the overlays (``setOverlay``), the view presets
(``showOnly``) and the .mrb download (``saveSceneBundle``).  The browser thus
shows the very nodes Slicer shows.

What is left here is web-specific: which slice views show what, the overlay
list and legend of the page, and the page's tables (read from the Logic's
table node).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..io.labels import SEQUENCES, TUMOUR_CLASSES
from ..reporting.evidence_table import evidence_rows
from ..reporting.locality_text import LOCALITY_COLUMN, LOCALITY_FLOOR
from ..reporting.review_regions import boundary_words
from ..slicer_bridge.constants import OVERLAY_TITLES
from ..slicer_bridge.logic import BrainTumorXAILogic

#: Anatomy shown behind the overlays, in order of preference.
BACKGROUND_SEQUENCES = ("t1ce", "flair", "t2", "t1")
#: View presets of the page (the Slicer module's buttons): value -> label.
VIEW_PRESETS = {"all": "All + brain", "tumour": "Tumour", "NCR": "NCR", "ED": "ED", "ET": "ET", "WT": "WT",
                "TC": "TC"}
#: Slicer's slice view names -> the view they show by default.
_VIEW_OF_LAYOUT = {"Red": "axial", "Green": "coronal", "Yellow": "sagittal"}
#: Page order of the Logic's overlay kinds (runNodes()["overlays"] keys are "kind:class" or "kind").
OVERLAY_ORDER = ("probability", "variance", "gradcam", "evidence_t1ce", "evidence_flair", "evidence_t1", "evidence_t2",
                 "entropy", "mutual_information")


def _overlay_title(key: str) -> str:
    kind, _, cls = key.partition(":")
    title = OVERLAY_TITLES.get(kind, kind)
    title = title[:1].upper() + title[1:]
    return f"{title} {cls}" if cls else title


def _overlay_sort_key(key: str):
    kind, _, cls = key.partition(":")
    order = OVERLAY_ORDER.index(kind) if kind in OVERLAY_ORDER else len(OVERLAY_ORDER)
    return order, TUMOUR_CLASSES.index(cls) if cls in TUMOUR_CLASSES else len(TUMOUR_CLASSES), cls


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
    """One results folder at a time in trame-slicer's scene, loaded and displayed by the Logic."""

    def __init__(self, slicer_app):
        self.app = slicer_app
        self.scene = slicer_app.scene
        self._register_missing_logics()
        self.logic = BrainTumorXAILogic(self.scene)
        self.out_dir: Path | None = None
        self.summary: dict = {}
        self.folder: int | None = None
        self.nodes: dict = {"overlays": {}}
        self.inputs: dict = {}
        self.background = None
        self.overlay_node = None

    def _register_missing_logics(self) -> None:
        """trame-slicer's SlicerApp registers no Models/Tables logic; add them as Slicer's application does."""
        import slicer

        app_logic = self.app.app_logic
        for name, cls in (("Models", "vtkSlicerModelsLogic"), ("Tables", "vtkSlicerTablesLogic")):
            if app_logic.GetModuleLogic(name) is None and hasattr(slicer, cls):
                self.app.register_module_logic(getattr(slicer, cls)(), logic_name=name)

    # -- loading ----------------------------------------------------------------------------------------------
    def _with_related(self, node) -> list:
        """``node`` and its display and storage nodes."""
        nodes = [node]
        for get_n, get_i in (("GetNumberOfDisplayNodes", "GetNthDisplayNode"),
                             ("GetNumberOfStorageNodes", "GetNthStorageNode")):
            if hasattr(node, get_n):
                nodes += [getattr(node, get_i)(i) for i in range(getattr(node, get_n)())]
        return [n for n in nodes if n is not None]

    def clear(self) -> None:
        """Remove the shown run (its subject-hierarchy folder and nodes) and the case's input volumes."""
        self.logic.setOverlay(None, 0.0)
        for composite in self._composites():
            composite.SetBackgroundVolumeID(None)
            composite.SetLabelVolumeID(None)
        data = [n for k, n in self.nodes.items() if k != "overlays"] + list(self.nodes["overlays"].values())
        # Nodes first (storage and display nodes before their owner; the subject hierarchy drops their items),
        # then the emptied folder: removing the folder with its data nodes leaves stale entries in the
        # hierarchy's node cache ("DataNodeCache inconsistency" on the next load).
        for node in data + list(self.inputs.values()):
            for related in reversed(self._with_related(node)):
                if self.scene.IsNodePresent(related):
                    self.scene.RemoveNode(related)
        if self.folder is not None:
            shNode = self.scene.GetSubjectHierarchyNode()
            if shNode.GetItemName(self.folder):
                shNode.RemoveItem(self.folder, False, False)
        self.folder, self.nodes, self.inputs = None, {"overlays": {}}, {}
        self.background = self.overlay_node = None
        self.out_dir, self.summary = None, {}

    def load(self, out_dir: Path, case_dir: Path | None = None) -> dict:
        """Show a results folder: anatomy + segmentation (fill and outline) in the slices, closed surfaces and
        the translucent brain in 3D.  Returns the summary."""
        out_dir = Path(out_dir)
        summary = self.logic.readSummary(out_dir)
        self.clear()
        case = summary.get("case", {})
        case_id = str(case.get("id", out_dir.name))
        for seq in SEQUENCES:  # the inputs too, so the .mrb is the whole case as in Slicer
            path = self._input_path((case.get("files") or {}).get(seq), case_dir)
            if path is not None:
                self.inputs[seq] = self.logic.loadSequenceVolume(path, seq, case_id)
        self.folder = self.logic.loadResults(out_dir, includeBackground=False)
        self.nodes = self.logic.runNodes(self.folder)
        self.out_dir, self.summary = out_dir, summary
        self.background = next((self.inputs[s] for s in BACKGROUND_SEQUENCES if s in self.inputs), None)
        if self.background is None:  # no inputs at hand: the label map at least gives the slices a geometry
            self.background = self.nodes.get("labelmap")
        self.logic.setOverlay(None, 0.0, backgroundNode=self.background)
        for composite in self._composites():
            composite.SetLabelVolumeID(None)  # the segmentation draws the classes (fill and outline)
        return summary

    @staticmethod
    def _input_path(listed, case_dir: Path | None) -> Path | None:
        if not listed:
            return None
        path = Path(listed)
        if not path.is_file() and case_dir is not None:
            path = Path(case_dir) / path.name  # the case folder moved (e.g. an upload session)
        return path if path.is_file() else None

    def _composites(self):
        nodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]

    # -- display ----------------------------------------------------------------------------------------------
    def overlay_items(self) -> list[dict]:
        """[{title, value}] of the overlays the shown run has, in page order."""
        keys = sorted(self.nodes.get("overlays", {}), key=_overlay_sort_key)
        return [{"title": "None", "value": "none"}] + [{"title": _overlay_title(k), "value": k} for k in keys]

    def set_overlay(self, value: str | None, opacity: float = 0.6) -> Legend | None:
        """Show an overlay ('probability:NCR', 'variance:ET', 'gradcam:ED', 'entropy', 'mutual_information'
        or 'none') over the anatomy in every slice view."""
        node = self.nodes.get("overlays", {}).get(value) if value and value != "none" else None
        self.overlay_node = node
        if self.folder is not None:
            self.logic.setOverlay(node, opacity, backgroundNode=self.background)
        return self.legend(value) if node is not None else None

    def set_opacity(self, opacity: float) -> None:
        if self.folder is not None:
            self.logic.setOverlay(self.overlay_node, opacity)

    def set_segmentation_visible(self, visible: bool) -> None:
        """Segmentation fill and outline in the slice views (the 3D surfaces follow the view preset)."""
        seg = self.nodes.get("segmentation")
        if seg is not None:
            seg.GetDisplayNode().SetVisibility2D(bool(visible))

    def show_preset(self, preset: str) -> None:
        """The Slicer module's view presets: tumour, NCR, ED, ET, WT, TC, all (segments + translucent brain)."""
        if self.folder is not None:
            self.logic.showOnly(preset, self.folder)

    def legend(self, value: str) -> Legend | None:
        node = self.nodes.get("overlays", {}).get(value)
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
        return Legend(_overlay_title(value), vmin, vmax, f"linear-gradient(to right, {', '.join(stops)})")

    def save_bundle(self, path) -> Path:
        """The scene shown, as a Slicer .mrb (the Logic's saveSceneBundle)."""
        return self.logic.saveSceneBundle(path)

    # -- tables -----------------------------------------------------------------------------------------------
    def tables(self) -> dict:
        """Page tables from the Logic's results table node: volumes per class and region, metrics per region."""
        table_node = self.nodes.get("table")
        evidence = [{"name": r[0], "cells": r[1:]} for r in evidence_rows((self.summary or {}).get("sequence_evidence"))]
        if table_node is None:
            return {"volumes": [], "metrics": [], "evidence": evidence}
        table = table_node.GetTable()

        def column(name):
            array = table.GetColumnByName(name)
            return [array.GetValue(i) for i in range(table.GetNumberOfRows())] if array is not None else None

        structures, kinds, volumes = column("Structure"), column("Kind"), column("Volume [cm3]")
        locality = column(LOCALITY_COLUMN)
        metric_columns = {"dice": column("Dice"), "hd95": column("HD95 [mm]"),
                          "sensitivity": column("Sensitivity"), "precision": column("Precision")}
        rows, metrics, seen = [], [], set()
        for i, (name, kind) in enumerate(zip(structures, kinds)):
            if name not in seen:  # region ET is class ET
                share = locality[i] if locality is not None and kind == "class" else None
                rows.append({"name": name, "volume": _fmt(volumes[i], 2),
                             "gradcam": f"{_fmt(share, 0)} %" if _finite(share) else "",
                             "gradcam_away": bool(_finite(share) and share < 100 * LOCALITY_FLOOR)})
                seen.add(name)
            values = {k: (v[i] if v is not None else None) for k, v in metric_columns.items()}
            if kind == "region" and any(_finite(v) for v in values.values()):
                digits = {"dice": 3, "hd95": 1, "sensitivity": 2, "precision": 2}  # what fits the page's table
                metrics.append({"region": name, **{k: _fmt(v, digits[k]) for k, v in values.items()}})
        return {"volumes": rows, "metrics": metrics, "evidence": evidence}


    # -- where to look, checkpoint trust --------------------------------------------------------------------
    def review_rows(self) -> list[dict]:
        """The trust report's review regions for the page: [{row, rank, boundary, volume, entropy, ras}]."""
        from ..slicer_bridge.review import ReviewLogic

        rows = []
        for i, r in enumerate(ReviewLogic.reviewRegions(self.summary)):
            ras = [float(v) for v in r["peak_ras"]]
            rows.append({"row": i, "rank": int(r["rank"]), "boundary": str(r.get("boundary", "")),
                         "between": boundary_words(str(r.get("boundary", ""))),
                         "volume": _fmt(r.get("volume_ml"), 2), "entropy": _fmt(r.get("mean_entropy"), 3),
                         "ras": ", ".join(f"{v:.1f}" for v in ras)})
        return rows

    def jump_to_region(self, row: int) -> dict | None:
        """Centre every slice view on review region ``row`` (the Logic's jumpToRegion on the run's review table);
        {rank, ras, slices: {view: centre RAS}} read back from the slice nodes, None when there is no such row."""
        from ..slicer_bridge.review import ReviewLogic

        node = self.nodes.get("review")
        if node is None or not 0 <= int(row) < node.GetNumberOfRows():
            return None
        ras = ReviewLogic(self.scene).jumpToRegion(node, int(row))
        rank = int(node.GetTable().GetValue(int(row), 0).ToInt())
        return {"rank": rank, "ras": [round(v, 3) for v in ras], "slices": self.slice_centres()}

    def centre_on_tumour(self) -> list[float] | None:
        """Centre every slice view on the predicted tumour (the centroid of seg.nii.gz, in RAS); None without one."""
        import nibabel as nib
        import numpy as np
        import slicer

        path = self.out_dir / "seg.nii.gz" if self.out_dir is not None else None
        if path is None or not path.is_file():
            return None
        img = nib.load(str(path))
        voxels = np.argwhere(np.asarray(img.dataobj) > 0)
        if voxels.size == 0:
            return None
        r, a, s = (img.affine @ np.r_[voxels.mean(axis=0), 1.0])[:3]  # NIfTI world = RAS, as Slicer's
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, r, a, s, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return [round(float(v), 3) for v in (r, a, s)]

    def slice_labels(self) -> dict:
        """{axial|coronal|sagittal: "S 12.0 mm"} of the three slice views: the axis closest to the plane's normal
        and the plane's offset along it, as Slicer's slice offset reads ("(oblique)" when the plane is turned to
        an oblique volume's axes)."""
        out = {}
        for node in self.slice_nodes():
            view = _VIEW_OF_LAYOUT.get(node.GetLayoutName()) or node.GetOrientationString().lower()
            if view not in ("axial", "coronal", "sagittal"):
                continue
            m = node.GetSliceToRAS()
            normal = [m.GetElement(k, 2) for k in range(3)]
            axis = max(range(3), key=lambda k: abs(normal[k]))
            oblique = abs(normal[axis]) < 0.999
            out[view] = f"{'RAS'[axis]} {node.GetSliceOffset():.1f} mm" + (" (oblique)" if oblique else "")
        return out

    def slice_nodes(self) -> list:
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
                for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode"))]

    def slice_centres(self) -> dict:
        """{layout name: RAS of the slice centre} of every slice view."""
        out = {}
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
            node = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
            m = node.GetSliceToRAS()
            out[node.GetLayoutName() or node.GetName()] = [round(m.GetElement(k, 3), 3) for k in range(3)]
        return out

    def checkpoint_trust(self) -> dict:
        """The checkpoint's uncertainty-quality figures for the page: {measured, source, rows: [{region, text}]}."""
        from ..reporting.checkpoint_trust import NOT_MEASURED, REGION_NAMES, card_source, region_text, summary_trust

        card = summary_trust(self.summary)
        if card is None:
            return {"measured": False, "source": NOT_MEASURED, "rows": []}
        return {"measured": True, "source": card_source(card),
                "rows": [{"region": r, "text": region_text(card, r)} for r in REGION_NAMES]}


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _fmt(v, digits: int) -> str:
    return f"{float(v):.{digits}f}" if _finite(v) else "–"
