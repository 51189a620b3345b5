"""Device selection, progress reporting and cancellation shared by long jobs."""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # torch is imported where a device is resolved: reading this module stays light
    import torch

from .errors import BrainTumorXAIError


class Cancelled(Exception):
    """Raised inside a long job when the user asked to stop it."""


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. a container's share), not the host's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; asking for CUDA without one is an error, not a silent fallback."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise BrainTumorXAIError(f"device {name!r} requested but no CUDA GPU is available (use --device cpu or auto)")
        return torch.device("cuda" if name == "gpu" else name)
    if name == "cpu":
        return torch.device("cpu")
    raise BrainTumorXAIError(f"unknown device {name!r}; expected auto, cpu or cuda")


class JobControl:
    """Progress sink plus a cancel flag, passed down through every stage.

    Stages report a fraction of their own work; the job maps it onto the overall bar using
    stage weights.  Stages may report out of order (output jobs run in parallel threads) or
    repeat (test-time flips, ensemble members): the overall fraction never moves back.
    """

    def __init__(self, callback: Callable[[str, float, str], None] | None = None,
                 stage_weights: dict[str, float] | None = None,
                 cancel_event: threading.Event | None = None):
        self.callback = callback
        self.cancel_event = cancel_event or threading.Event()
        weights = stage_weights or {}
        total = sum(weights.values()) or 1.0
        self._offsets: dict[str, tuple[float, float]] = {}
        acc = 0.0
        for stage, w in weights.items():
            self._offsets[stage] = (acc / total, w / total)
            acc += w
        self._lock = threading.Lock()  # output jobs report from their own threads
        self._reached = 0.0

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("cancelled by the user")

    def cancel(self) -> None:
        self.cancel_event.set()

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        self.check()
        if self.callback is None:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        start, width = self._offsets.get(stage, (None, None))
        overall = fraction if start is None else start + width * fraction
        with self._lock:
            self._reached = overall = max(self._reached, overall)
            self.callback(stage, float(overall), message)

    def share(self, stage: str, index: int, count: int) -> StageShare:
        """This control for pass ``index`` of ``count`` repeats of ``stage`` (e.g. one test-time flip)."""
        return StageShare(self, stage, index, count)


class StageShare:
    """A JobControl seen by one of ``count`` passes of a stage: its 0..1 covers the pass's share of the stage."""

    def __init__(self, control: JobControl, stage: str, index: int, count: int):
        self._control, self._stage, self._index, self._count = control, stage, index, max(int(count), 1)
        self.cancel_event = control.cancel_event

    def check(self) -> None:
        self._control.check()

    def cancel(self) -> None:
        self._control.cancel()

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        if stage == self._stage:
            fraction = (self._index + min(max(float(fraction), 0.0), 1.0)) / self._count
            message = f"pass {self._index + 1}/{self._count}: {message}" if self._count > 1 else message
        self._control.report(stage, fraction, message)

    def share(self, stage: str, index: int, count: int) -> StageShare:
        return StageShare(self, stage, index, count)


def json_progress_printer(stream=None) -> Callable[[str, float, str], None]:
    """Machine-readable progress: one JSON object per line (read by the Slicer module)."""
    out = stream or sys.stdout

    def emit(stage: str, fraction: float, message: str = "") -> None:
        out.write(json.dumps({"stage": stage, "fraction": round(fraction, 4), "message": message}) + "\n")
        out.flush()

    return emit
