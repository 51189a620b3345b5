"""Errors that reach the user as one clear line."""

from __future__ import annotations

from pathlib import Path


class BrainTumorXAIError(Exception):
    """Base class of every error the project raises on purpose."""


class CaseError(BrainTumorXAIError):
    """A case folder or one of its files is unusable.

    The message always names the offending file (or folder) and the problem, so
    that command-line tools can print ``str(error)`` as the whole diagnosis.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class CheckpointError(BrainTumorXAIError):
    """A checkpoint file is missing, corrupt, unsafe or not ours."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
