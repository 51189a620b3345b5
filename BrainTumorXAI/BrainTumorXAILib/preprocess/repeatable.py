"""Registrations that repeat exactly: ITK sums its randomly sampled metric over threads in an order that varies from
run to run, and the optimiser carries the rounding into the result (on the raw scans of TCGA-FG-6692 the atlas
rotation moved by more than a degree between two runs, and the segmentation with it).  One ITK thread per
registration makes a run repeat bit for bit; independent registrations then run side by side in Python threads
(ITK releases the GIL), which gives the cores back."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import SimpleITK as sitk

from ..runtime import usable_cpus

_lock = threading.Lock()
_depth = 0
_saved = 0


@contextlib.contextmanager
def one_itk_thread():
    """ITK's default thread count is 1 inside (process-wide, as ITK has it; nested and concurrent uses share one
    setting, restored when the last one ends)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_saved)


def run_side_by_side(jobs: dict) -> dict:
    """{name: callable} -> {name: result}, each job with one ITK thread, up to one job per usable CPU at once; the
    first failure is raised (in ``jobs`` order)."""
    with one_itk_thread(), ThreadPoolExecutor(max_workers=max(1, min(len(jobs), usable_cpus()))) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}
