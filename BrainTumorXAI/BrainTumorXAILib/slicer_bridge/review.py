"""Qt-free review table: the trust report's high-uncertainty regions as a table node, and where to jump.

``loadResults`` builds the table while the results folder still exists (``addRunReviewTable``: one
``vtkMRMLTableNode`` of kind "review" in the run's folder, so ``runNodes()["review"]`` finds it, also in a
restored .mrb).  The panel shows it in a qMRMLTableView; a selected row goes through ``tableRow`` (the view's
row -> the table's row) to ``showUncertaintyAt``: every slice view centred on the region's peak (RAS) and the
entropy map as the slice overlay.  The checkpoint's own uncertainty-quality figures (``checkpoint_trust``) become a
column of the run's results table (``addCheckpointTrustColumn``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .i18n import tr

COLUMNS = ("rank", "boundary", "volume_ml", "mean_entropy", "peak_R", "peak_A", "peak_S")
TITLES = {"rank": "#", "boundary": tr("Boundary"), "volume_ml": tr("Volume [mL]"), "mean_entropy": tr("Mean entropy"),
          "peak_R": "R", "peak_A": "A", "peak_S": "S"}
#: Subject-hierarchy kind of the review table node (``runNodes()["review"]``).
REVIEW_KIND = "review"
TRUST_COLUMN = "Checkpoint uncertainty quality"


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

    @staticmethod
    def hasReview(summary: dict) -> bool:
        """Whether the summary has a review block at all (results from before the trust report have none)."""
        return isinstance(((summary or {}).get("trust_report") or {}).get("review"), dict)

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
        for col in COLUMNS:
            node.SetColumnTitle(col, TITLES[col])
        node.SetColumnDescription("mean_entropy", tr("Mean predictive entropy of the region [nats]"))
        node.SetColumnDescription("peak_R", tr("Most uncertain voxel, RAS [mm]"))
        node.SetColumnUnitLabel("volume_ml", "mL")
        # View row = table row (qMRMLTableModel::mrmlTableRowIndex, Slicer v5.6.2-v5.10.0); read-only.
        node.SetUseColumnTitleAsColumnHeader(True)
        node.SetLocked(True)
        node.Modified()
        return node

    def addRunReviewTable(self, summary: dict, folderItem: int, runName: str, place) -> object | None:
        """The review table of a run being loaded, placed in its folder by ``place(node, folder, run, kind)``
        (``ResultsMixin._placeInFolder``); None when the summary has no review block."""
        if not self.hasReview(summary):
            return None
        node = self.reviewTableFromSummary(summary, f"{runName} review regions")
        place(node, folderItem, runName, REVIEW_KIND)
        return node

    @staticmethod
    def tableRow(node, viewRow: int) -> int:
        """The table row shown in model row ``viewRow`` of a qMRMLTableView (not transposed): the row itself
        when column titles are the header, else one less (the first model row holds the titles) —
        qMRMLTableModel::mrmlTableRowIndex, Slicer v5.6.2/v5.8.1/v5.10.0.  -1 when outside the table."""
        row = int(viewRow) if node.GetUseColumnTitleAsColumnHeader() else int(viewRow) - 1
        return row if 0 <= row < node.GetNumberOfRows() else -1

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

    def showUncertaintyAt(self, logic, node, row: int, folderItem=None, opacity: float = 0.5):
        """The review preset: centre the slice views on region ``row`` and show the run's entropy map there.

        ``logic`` is the module Logic (``overlayNode``/``setOverlay``); returns (RAS, entropy node or None)."""
        position = self.jumpToRegion(node, row)
        entropy = logic.overlayNode("entropy", None, folderItem)
        if entropy is not None:
            logic.setOverlay(entropy, opacity, colorLegend=True)
        return position, entropy

    @staticmethod
    def addCheckpointTrustColumn(table, summary: dict) -> dict | None:
        """A text column on the results table: the checkpoint's figures per region (WT/TC/ET rows), or
        "not measured for this checkpoint"; the card's source as the column description.  Returns the card."""
        import vtk

        from ..reporting.checkpoint_trust import NOT_MEASURED, card_source, region_text, summary_trust

        card = summary_trust(summary)
        t = table.GetTable()
        names = [t.GetColumnName(i) for i in range(t.GetNumberOfColumns())]
        structures = names.index("Structure") if "Structure" in names else 0
        kinds = names.index("Kind") if "Kind" in names else None
        column = vtk.vtkStringArray()
        column.SetName(TRUST_COLUMN)
        for r in range(t.GetNumberOfRows()):
            structure = t.GetValue(r, structures).ToString()
            isRegion = kinds is None or t.GetValue(r, kinds).ToString() == "region"
            column.InsertNextValue(region_text(card, structure) if isRegion else "")
        t.AddColumn(column)
        table.SetColumnDescription(TRUST_COLUMN, f"Measured on validation: {card_source(card)}" if card
                                   else NOT_MEASURED)
        table.Modified()
        return card
