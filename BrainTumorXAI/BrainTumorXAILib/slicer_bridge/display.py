"""BrainTumorXAILogic's display: colour tables, overlay styling, the slice-view overlay, legends, view presets."""

from __future__ import annotations

import slicer

from ..io.labels import CLASS_COLORS, CLASS_NAMES, CONVENTIONS, TUMOUR_CLASSES
from .constants import ATTR_CLASS, ATTR_KIND, LEGEND_TITLES, OVERLAY_COLORS, OVERLAY_TITLES, PRESETS, UNIT_OVERLAYS


class DisplayMixin:
    """How results look: colour nodes, window/level and thresholds, foreground overlay, legends, presets."""

    def _labelColorTable(self, convention: str):
        name = f"BrainTumorXAI {convention} labels"
        existing = self.scene.GetFirstNodeByName(name)
        if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
            return existing
        values = CONVENTIONS[convention]
        table = self.scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
        table.SetTypeToUser()
        table.SetNumberOfColors(max(values) + 1)
        for v in range(max(values) + 1):
            table.SetColor(v, "", 0.0, 0.0, 0.0, 0.0)
        table.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for index, value in enumerate(values):
            if index:
                className = CLASS_NAMES[index]
                table.SetColor(value, className, *CLASS_COLORS[className], 1.0)
        table.SetAttribute("Category", "BrainTumorXAI")
        return table

    def _colorNodeId(self, kind: str) -> str:
        for candidate in OVERLAY_COLORS[kind]:
            node = self.scene.GetNodeByID(candidate) or self.scene.GetFirstNodeByName(candidate)
            if node is not None and node.IsA("vtkMRMLColorNode"):
                return node.GetID()
        return "vtkMRMLColorTableNodeGrey"

    def _styleOverlay(self, node, kind: str) -> None:
        """Colour table, window/level on the map's meaningful range, near-zero voxels transparent."""
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self._colorNodeId(kind))
        display.SetAutoWindowLevel(False)
        lo, hi = node.GetImageData().GetScalarRange()
        if kind in UNIT_OVERLAYS:
            lo, hi = 0.0, 1.0
        else:
            lo, hi = 0.0, max(float(hi), 1e-6)
        display.SetWindowLevelMinMax(lo, hi)
        # As a foreground layer only voxels carrying signal are drawn over the anatomy.
        display.SetLowerThreshold(lo + 0.02 * (hi - lo))
        display.SetUpperThreshold(hi + 1e6)
        display.ApplyThresholdOn()
        display.SetInterpolate(True)
        node.SetAttribute("BrainTumorXAI.Range", f"{lo:g} {hi:g}")

    def overlayNode(self, kind: str | None, className: str | None = None, folderItem: int | None = None):
        """The overlay volume of a run (default: latest) for an overlay kind ('none': None); per-class kinds
        (probability, variance, gradcam) take ``className``, entropy and mutual information have one map."""
        if not kind or kind == "none":
            return None
        overlays = self.runNodes(folderItem)["overlays"]
        return overlays.get(f"{kind}:{className}") or overlays.get(kind)

    def setOverlay(self, volumeNode, opacity: float = 0.5, backgroundNode=None, colorLegend: bool = False) -> None:
        """Show ``volumeNode`` (or nothing) as the foreground layer of every slice view.

        With ``colorLegend`` the overlay gets a colour legend (title and value range of its
        colour table); the legends of all other BrainTumorXAI overlays are hidden either way.
        """
        for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = self.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
            if backgroundNode is not None:
                composite.SetBackgroundVolumeID(backgroundNode.GetID())
            composite.SetForegroundVolumeID(volumeNode.GetID() if volumeNode is not None else None)
            composite.SetForegroundOpacity(float(opacity))
        for node in self._overlayNodes():
            if node is volumeNode:
                continue
            legend = self.colorLegend(node, create=False)
            if legend is not None:
                legend.SetVisibility(False)
        if volumeNode is not None:
            legend = self.colorLegend(volumeNode, create=colorLegend)
            if legend is not None:
                legend.SetVisibility(bool(colorLegend))

    def _overlayNodes(self) -> list:
        volumes = self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        found = [volumes.GetItemAsObject(i) for i in range(volumes.GetNumberOfItems())]
        return [n for n in found if n.GetAttribute(ATTR_KIND) in OVERLAY_TITLES]

    def colorLegend(self, volumeNode, create: bool = True):
        """The colour legend display node of an overlay volume (made on first use when ``create``), or None."""
        colorLogic = slicer.vtkSlicerColorLogic
        legend = colorLogic.GetColorLegendDisplayNode(volumeNode)
        if legend is not None or not create or volumeNode.GetDisplayNode() is None:
            return legend
        if not self.scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
            self.scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # bare scenes (slicer-core wheel)
        legend = colorLogic.AddDefaultColorLegendDisplayNode(volumeNode)
        if legend is None:
            return None
        kind = volumeNode.GetAttribute(ATTR_KIND)
        className = volumeNode.GetAttribute(ATTR_CLASS)
        title = LEGEND_TITLES.get(kind, volumeNode.GetName()) + (f" {className}" if className else "")
        legend.SetName(f"{volumeNode.GetName()} legend")
        legend.SetTitleText(title)
        # Probabilities and Grad-CAM run 0..1; variance, entropy and MI can be small numbers.
        legend.SetLabelFormat("%.1f" if kind in UNIT_OVERLAYS else "%.3g")
        legend.SetUseColorNamesForLabels(False)
        return legend

    def showOnly(self, preset: str, folderItem: int | None = None) -> None:
        """View presets: 'tumour' (all segments, no brain), 'NCR'/'ED'/'ET' (one segment), 'WT'/'TC'
        (the region's segments), 'all' (segments and the translucent brain)."""
        key = preset.strip().lower().replace(" + brain", "").replace(" only", "")
        if key not in PRESETS:
            raise ValueError(f"unknown view preset {preset!r}; expected tumour, NCR, ED, ET, WT, TC or all")
        nodes = self.runNodes(folderItem)
        visible = set(PRESETS[key])
        segNode = nodes.get("segmentation")
        if segNode is not None:
            display = segNode.GetDisplayNode()
            display.SetVisibility(True)
            for className in TUMOUR_CLASSES:
                display.SetSegmentVisibility(className, className in visible)
        brain = nodes.get("brain")
        if brain is not None:
            brain.GetDisplayNode().SetVisibility(key == "all")
        # A preset shows the prediction: ground-truth surfaces (same colours) would hide or mimic it.
        for groundTruth in self.groundTruthNodes():
            if groundTruth.GetDisplayNode() is not None:
                groundTruth.GetDisplayNode().SetVisibility3D(False)
