"""Write results into a temporary sibling folder and move it into place at the end.

An interrupted run therefore never leaves half-written results under the
requested name, and an existing non-empty folder is only replaced on request.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from .errors import BrainTumorXAIError


class OutputExistsError(BrainTumorXAIError):
    pass


def check_output_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: folder exists and is not empty (use --overwrite to replace it)")


@contextlib.contextmanager
def staged_output(out_dir: str | Path, overwrite: bool = False):
    """Yield a temporary folder; on success it becomes ``out_dir`` atomically (same filesystem)."""
    out_dir = Path(out_dir).absolute()
    check_output_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield staging
        check_output_dir(out_dir, overwrite)  # something may have appeared meanwhile
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            out_dir.rename(trash / "old")
            staging.rename(out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
