"""Qt-free review table: the trust report's high-uncertainty regions as a table node, and where to jump.

Hook (widget): ``node = ReviewLogic(scene).reviewTableFromSummary(results_folder)``; show it in a
qMRMLTableView; on row selection call ``ReviewLogic(scene).jumpToRegion(node, row)``, which centres every
slice view on the region's peak (RAS) and returns that position.
"""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("rank", "boundary", "volume_ml", "mean_entropy", "peak_R", "peak_A", "peak_S")


class ReviewLogic:
    def __init__(self, scene):
        self.scene = scene

    @staticmethod
    def reviewRegions(summary) -> list[dict]:
        """The ranked regions of a summary dict, a summary.json path or a results folder ([] when absent)."""
        if not isinstance(summary, dict):
            path = Path(summary)
            summary = json.loads((path / "summary.json" if path.is_dir() else path).read_text())
        return ((summary.get("trust_report") or {}).get("review") or {}).get("regions") or []

    def reviewTableFromSummary(self, summary, name: str = "Review regions"):
        """A vtkMRMLTableNode, one row per region (columns ``COLUMNS``), added to the scene."""
        import vtk

        node = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        table = node.GetTable()

        kinds = {"rank": vtk.vtkIntArray, "boundary": vtk.vtkStringArray}
        for col in COLUMNS:
            arr = kinds.get(col, vtk.vtkDoubleArray)()
            arr.SetName(col)
            table.AddColumn(arr)
        for r in self.reviewRegions(summary):
            row = table.InsertNextBlankRow()
            values = [r["rank"], r["boundary"], r["volume_ml"], r["mean_entropy"], *r["peak_ras"]]
            for col, v in enumerate(values):
                table.SetValue(row, col, vtk.vtkVariant(v))
        node.Modified()
        return node

    @staticmethod
    def regionPosition(node, row: int) -> tuple[float, float, float]:
        """RAS peak of the region in ``row`` of a table made by ``reviewTableFromSummary``."""
        table = node.GetTable()
        names = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
        return tuple(float(table.GetValue(row, names.index(c)).ToDouble()) for c in ("peak_R", "peak_A", "peak_S"))

    def jumpToRegion(self, node, row: int) -> tuple[float, float, float]:
        """Centre every slice view of the scene on the region's peak; returns the RAS position."""
        import slicer

        r, a, s = self.regionPosition(node, row)
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, r, a, s, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return r, a, s
