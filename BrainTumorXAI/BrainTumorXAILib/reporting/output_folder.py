"""Write results into a temporary sibling folder and move it into place at the end.

An interrupted run therefore never leaves half-written results under the
requested name, and an existing non-empty folder is only replaced on request.

The staging folder (``.OUT.partial-PID@HOST-xxxxxxxx``) and the short-lived
trash folder used while replacing (``.OUT.old-PID@HOST-xxxxxxxx``) carry the
owning process id.  A run killed outright (SIGKILL, power loss) cannot remove
them; the next run for the same output folder on the same host removes those
whose process is gone.  Folders of live processes, of other hosts and in the
older naming without a process id are left alone (delete them by hand).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from ..errors import BrainTumorXAIError


class OutputExistsError(BrainTumorXAIError):
    pass


class OutputLocationError(BrainTumorXAIError):
    """The output folder would replace, or cannot be created at, the requested place."""


def check_output_dir(out_dir: Path, overwrite: bool) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: folder exists and is not empty (use --overwrite to replace it)")


def check_not_replacing_inputs(out_dir: str | Path, inputs) -> None:
    """Refuse an output folder that is an input, or holds one (replacing it would delete the input).

    ``inputs`` maps a description ('case folder', 'weights', ...) to a path, or
    is a list of (description, path) pairs.  Paths are compared resolved
    (symbolic links followed).  An output folder *inside* a case folder is fine.
    """
    out = Path(out_dir).expanduser().resolve()
    pairs = inputs.items() if isinstance(inputs, dict) else inputs
    for what, path in pairs:
        if path is None:
            continue
        p = Path(path).expanduser().resolve()
        if out == p:
            raise OutputLocationError(f"{out_dir}: the output folder is the {what} itself; choose another --out")
        if out in p.parents:
            raise OutputLocationError(f"{out_dir}: the output folder contains the {what} ({path}); "
                                      "replacing it would delete it; choose another --out")


def _owner_tag() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. owned by someone else, or unknown: keep the folder
        return True
    return True


def remove_stale_staging(out_dir: str | Path) -> list[Path]:
    """Remove ``.OUT.partial-*`` / ``.OUT.old-*`` siblings left by dead processes of this host."""
    out_dir = Path(out_dir).absolute()
    parent = out_dir.parent
    host = _owner_tag().split("@", 1)[1]
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:partial|old)-(\d+)@(.+)-[a-z0-9_]+$")
    removed = []
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return removed
    for entry in candidates:
        match = pattern.match(entry.name)
        if not match or match.group(2) != host or int(match.group(1)) == os.getpid():
            continue
        if _process_alive(int(match.group(1))) or entry.is_symlink() or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _make_staging(out_dir: Path) -> Path:
    """Create the parent and the staging folder, as one clear error when that is impossible."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{_owner_tag()}-", dir=out_dir.parent))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputLocationError(f"{out_dir}: cannot create the output folder there ({reason})") from exc


@contextlib.contextmanager
def staged_output(out_dir: str | Path, overwrite: bool = False, protect=None):
    """Yield a temporary folder; on success it becomes ``out_dir`` atomically (same filesystem).

    The staging folder is created on entry, so an unwritable location fails
    before the caller does any work inside the block.  ``protect`` (see
    ``check_not_replacing_inputs``) names inputs that must never be replaced.
    """
    out_dir = Path(out_dir).absolute()
    check_output_dir(out_dir, overwrite)
    if protect:
        check_not_replacing_inputs(out_dir, protect)
    remove_stale_staging(out_dir)
    staging = _make_staging(out_dir)
    try:
        yield staging
        check_output_dir(out_dir, overwrite)  # something may have appeared meanwhile
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-{_owner_tag()}-", dir=out_dir.parent))
            out_dir.rename(trash / "old")
            staging.rename(out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
