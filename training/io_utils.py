"""Atomic writes for run-folder files: a crash never leaves a half-written log."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def refuse_in_place(parser, out: Path, original: Path) -> None:
    """Tools that write a changed copy of a checkpoint never replace the original."""
    if Path(out).resolve() == Path(original).resolve():
        parser.error("--out must differ from --checkpoint (the original stays as it was)")


def atomic_write_text(path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_savefig(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path
