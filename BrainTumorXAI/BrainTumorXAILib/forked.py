"""Pure-Python work (matplotlib figures, DICOM encoding) in forked child processes, beside the parent's threads.

Such work holds the GIL, so threads cannot run two of these jobs at once; a forked child can, and it inherits the
parent's arrays without copying or pickling them (only its result comes back, pickled).  Forking is used only
where it is safe and pays: on Linux, with two or more usable CPUs, and not inside Slicer's application process
(a Qt application must not be forked).  Callers fork before they start their own threads.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable

from .errors import BrainTumorXAIError
from .runtime import usable_cpus


def fork_available() -> bool:
    return sys.platform.startswith("linux") and "slicer" not in sys.modules and usable_cpus() >= 2


def make_fork_safe() -> None:
    """Run first in every forked child: torch's OpenMP pool does not survive a fork, and the child's first
    multi-threaded torch operation would wait forever for the parent's threads; one thread never uses the pool."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class ForkedCall:
    """``fn()`` running in a forked child; ``result()`` is its return value (and the seconds it took), or its
    exception raised here; ``kill()`` ends it (a cancelled or failed analysis)."""

    def __init__(self, fn: Callable[[], object], what: str):
        context = multiprocessing.get_context("fork")
        self._what = what
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_child, args=(fn, send), name=what, daemon=True)
        self._process.start()
        send.close()  # the child holds the only sending end: a child that dies gives EOFError, not a hang

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the child's answer (or its death) has arrived, waiting at most ``timeout`` seconds."""
        return self._receive.poll(timeout)

    def result(self, timeout: float | None = None) -> tuple[object, float]:
        """Waits for the child (at most ``timeout`` seconds, then it is killed and this raises)."""
        if timeout is not None and not self._receive.poll(timeout):
            self.kill()
            raise BrainTumorXAIError(f"{self._what}: the worker process gave no result within {timeout:g} s")
        try:
            ok, value, seconds = self._receive.recv()
        except EOFError:
            self._process.join()
            raise BrainTumorXAIError(f"{self._what}: the worker process ended without a result "
                                     f"(exit code {self._process.exitcode})") from None
        finally:
            self._receive.close()
        self._process.join()
        if not ok:
            raise value
        return value, seconds

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receive.close()


def _run_child(fn, send) -> None:
    t0 = time.perf_counter()
    try:
        make_fork_safe()
        message = (True, fn(), time.perf_counter() - t0)
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        message = (False, exc, time.perf_counter() - t0)
    try:
        send.send(message)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception: its text at least
        what = message[1] if not message[0] else exc
        send.send((False, BrainTumorXAIError(f"{type(what).__name__}: {what}"), message[2]))
    finally:
        send.close()
