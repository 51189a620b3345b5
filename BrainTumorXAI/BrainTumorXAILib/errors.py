"""Errors that reach the user as one clear line, and how command-line tools report them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class BrainTumorXAIError(Exception):
    """Base class of every error the project raises on purpose."""


class _PathError(BrainTumorXAIError):
    """An error about one file or folder: the message is ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self):  # rebuilt from (path, problem), so it crosses a process boundary intact
        return type(self), (self.path, self.problem)


class CaseError(_PathError):
    """A case folder or one of its files is unusable.

    The message always names the offending file (or folder) and the problem, so
    that command-line tools can print ``str(error)`` as the whole diagnosis.
    """


class CheckpointError(_PathError):
    """A checkpoint file is missing, corrupt, unsafe or not ours."""


def exit_code(prog: str, action: Callable[[], object]) -> int:
    """Run ``action``: its result is the exit code when it is an int, else 0.  A deliberate
    error or a path the system refused becomes one line ``"<prog>: error: ..."`` on stderr
    and exit code 2, never a traceback."""
    try:
        result = action()
        return result if isinstance(result, int) else 0
    except (BrainTumorXAIError, FileExistsError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    return 2
