"""The sequence-evidence table as rows and text (no torch, no matplotlib: the CLI and the Slicer GUI use it)."""

from __future__ import annotations

from ..io.labels import SEQUENCES

SEQUENCE_LABELS = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}


def evidence_file_name(class_name: str, sequence: str) -> str:
    return f"evidence_{class_name}_{sequence}.nii.gz"


def evidence_rows(table: dict | None) -> list[list[str]]:
    """Rows (class, one cell per sequence) of the evidence table, as shown in the CLI and in Slicer."""
    if not table:
        return []
    seqs = table.get("sequences", {})
    rows = []
    for name, entry in table.get("classes", {}).items():
        cells = [name]
        for s in SEQUENCES:
            share = (entry.get("share") or {}).get(s)
            if not seqs.get(s, {}).get("read", False):
                cells.append("not read")
            elif not seqs.get(s, {}).get("acquired", True):
                cells.append("missing")
            elif share is None:
                cells.append("-")
            else:
                cells.append(f"{100 * share:.0f} %")
        rows.append(cells)
    return rows


def evidence_text(table: dict | None) -> str:
    rows = evidence_rows(table)
    if not rows:
        return ""
    head = ["class"] + [SEQUENCE_LABELS[s] for s in SEQUENCES]
    lines = ["  ".join(f"{c:>9}" for c in head)] + ["  ".join(f"{c:>9}" for c in r) for r in rows]
    return "\n".join(lines)
