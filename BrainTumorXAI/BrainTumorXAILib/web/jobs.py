"""Background analyses for the web viewer, and the cache of finished ones.

Each analysis runs ``braintumorxai analyze --progress-json`` in a child process
started by the Slicer Logic (:class:`~BrainTumorXAILib.slicer_bridge.process.AnalysisProcess`,
the same command line as the Slicer module): a crash or an out-of-memory kill
cannot take the web server down, cancelling kills the child's process group,
and the server's event loop keeps rendering while the network runs.  Progress
lines are read by a thread into :class:`AnalysisJob` fields that the UI polls.

Results of a data folder's cases are cached under the results folder in one
sub-folder per (case files, weights, options) key, so a case is analysed once
and inputs are never written to.  ``analyze`` writes through a staging folder,
so a results folder exists only once it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..reporting.output_folder import remove_stale_staging


def default_results_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "braintumorxai" / "web-results"


@dataclass(frozen=True)
class JobOptions:
    weights: Path | None = None
    device: str = "auto"
    mc_samples: int = 20
    gradcam: str = "all"
    scene: bool = False  # also write results.mrb with analyze --scene
    preprocess: str = "auto"  # raw scans: the clinical preprocessing (analyze --preprocess)

    def key(self) -> dict:
        w = Path(self.weights).resolve() if self.weights else None
        stamp = None
        if w is not None and w.exists():
            st = w.stat()
            stamp = [st.st_size, int(st.st_mtime)]
        key = {"weights": str(w) if w else "demo", "weights_stamp": stamp, "mc_samples": self.mc_samples,
               "gradcam": self.gradcam}
        if self.preprocess != "auto":  # the default leaves the keys of cached analyses as they were
            key["preprocess"] = self.preprocess
        return key


def case_fingerprint(case_dir: Path) -> dict:
    from ..dicom.scan import looks_like_dicom_folder
    from ..preprocess.inputs import find_sequences
    from .uploads import OPTIONAL_SEQUENCES

    if looks_like_dicom_folder(case_dir):  # a DICOM study: every file counts
        listing = sorted((str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime))
                         for p in Path(case_dir).rglob("*") if p.is_file())
        return {"dicom": hashlib.sha256(json.dumps(listing).encode()).hexdigest()}
    files = find_sequences(case_dir, optional=OPTIONAL_SEQUENCES).files  # BraTS or common names, as uploads accept
    return {k: [str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)] for k, p in sorted(files.items())}


def cache_folder(results_dir: Path, case_dir: Path, options: JobOptions) -> Path:
    """Where the results of ``case_dir`` under ``options`` live in the cache."""
    key = json.dumps({"case": case_fingerprint(case_dir), "options": options.key()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(case_dir).name)[:80] or "case"
    return Path(results_dir) / f"{name}-{digest}"


def is_complete(out_dir: Path) -> bool:
    return (Path(out_dir) / "summary.json").is_file()


def _gradcam_classes(gradcam: str) -> tuple[str, ...]:
    from ..io.labels import TUMOUR_CLASSES

    value = (gradcam or "none").strip()
    if value.lower() == "all":
        return TUMOUR_CLASSES
    if value.lower() == "none":
        return ()
    return tuple(c.strip() for c in value.split(",") if c.strip())


@dataclass
class AnalysisJob:
    """One running (or finished) analysis; fields are read by the UI's poller.

    The child is the Slicer Logic's :class:`~BrainTumorXAILib.slicer_bridge.process.AnalysisProcess` (the same
    command line and the same cancel as in Slicer: SIGINT to the process group, SIGKILL after a grace
    period).  A cancelled job leaves neither a results folder nor a staging folder in the cache.
    """

    case_dir: Path
    out_dir: Path
    options: JobOptions = field(default_factory=JobOptions)
    stage: str = "queued"
    fraction: float = 0.0
    message: str = ""
    state: str = "pending"  # pending, running, done, failed, cancelled
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    _process: object = None  # slicer.process.AnalysisProcess
    _thread: threading.Thread | None = None
    _cancel_lock: threading.Lock = field(default_factory=threading.Lock)
    _request_lock: threading.Lock = field(default_factory=threading.Lock)
    _cancel_thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.state in ("pending", "running")

    @property
    def scene_path(self) -> Path:
        return self.out_dir / "scene.mrb"

    @property
    def pid(self) -> int | None:
        return self._process.process.pid if self._process is not None else None

    def command(self) -> list[str]:
        from ..slicer_bridge.logic import BrainTumorXAILogic

        o = self.options
        extra = ["--scene", str(self.scene_path)] if o.scene else []
        # analysisCommand needs no scene (only pythonExecutable, which ``python`` overrides)
        return BrainTumorXAILogic.analysisCommand(None, self.case_dir, self.out_dir, weights=o.weights,
                                                  device=o.device, mcSamples=o.mc_samples,
                                                  gradcamClasses=_gradcam_classes(o.gradcam),
                                                  python=sys.executable, extra=extra, preprocess=o.preprocess)

    def start(self) -> "AnalysisJob":
        from ..slicer_bridge.logic import BrainTumorXAILogic
        from ..slicer_bridge.process import AnalysisProcess

        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.state, self.started = "running", time.time()
        env = BrainTumorXAILogic.analysisEnvironment()
        env.setdefault("VTK_SMP_BACKEND_IN_USE", "STDThread")
        self._process = AnalysisProcess(self.command(), env)
        self._thread = threading.Thread(target=self._watch, name=f"analyze-{self.case_dir.name}", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while True:
            items, rc = self._process.poll()
            for msg in items:
                self.stage = str(msg.get("stage", self.stage))
                try:
                    self.fraction = max(self.fraction, min(1.0, float(msg.get("fraction", self.fraction))))
                except (TypeError, ValueError):
                    pass
                self.message = str(msg.get("message", ""))
            if rc is not None:
                break
            time.sleep(0.2)
        self.finished = time.time()
        if self.state == "cancelled":
            return
        if is_complete(self.out_dir):
            # rc != 0 with a complete folder: another viewer finished the same analysis (same cache key) first,
            # and this run refused to replace it.
            self.state, self.fraction, self.stage = "done", 1.0, "done"
        else:
            lines = [ln.strip() for ln in self._process.log.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("braintumorxai")]
            self.error = ((errors or lines)[-1] if lines else f"analysis exited with status {rc}")[:500]
            self.state = "failed"

    def cancel(self, grace: float = 5.0) -> None:
        """Stop the child (and its children) and remove whatever it left in the cache; blocks until done.

        Blocks for up to ``grace`` seconds (SIGINT, then SIGKILL): never call it on an event loop, use
        :meth:`request_cancel` there.
        """
        with self._cancel_lock:
            if self.running:
                self.state = "cancelled"
            if self._process is not None:
                self._process.cancel(grace)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._remove_partial()

    def request_cancel(self, grace: float = 5.0) -> bool:
        """Cancel without blocking: the job is marked cancelled at once and a thread signals the child,
        waits for it and removes the partial results.  :attr:`settled` turns True when all that is done.
        Returns False when the job had already ended (nothing to do)."""
        with self._request_lock:
            if not self.running or self._cancel_thread is not None:
                return False
            self.state = "cancelled"
            self._cancel_thread = threading.Thread(target=self.cancel, args=(grace,),
                                                   name=f"cancel-{self.case_dir.name}", daemon=True)
            self._cancel_thread.start()
            return True

    @property
    def settled(self) -> bool:
        """Finished and, when cancelled, the child gone and its leftovers removed (a new job may start)."""
        threads = [t for t in (self._thread, self._cancel_thread) if t is not None]
        return not self.running and not any(t.is_alive() for t in threads)

    def _remove_partial(self) -> None:
        # analyze writes into ".<name>.partial-PID@HOST-*" next to the results folder and renames it at the end;
        # SIGINT removes it, SIGKILL cannot.  Only the folders of dead processes go: another viewer analysing
        # the same case into the same cache keeps its live staging folder.  Only complete folders stay.
        remove_stale_staging(self.out_dir)
        if self.out_dir.exists() and not is_complete(self.out_dir):
            shutil.rmtree(self.out_dir, ignore_errors=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has settled (see :attr:`settled`) or ``timeout`` s passed; True if settled."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in (self._thread, self._cancel_thread):
            if t is not None:
                t.join(None if end is None else max(0.0, end - time.monotonic()))
        return self.settled


class JobRunner:
    """At most one analysis at a time (the machine has few cores); the UI polls :attr:`current`."""

    def __init__(self, results_dir: Path, options: JobOptions):
        self.results_dir = Path(results_dir)
        self.options = options
        self.current: AnalysisJob | None = None

    def results_for(self, case_dir: Path) -> Path:
        return cache_folder(self.results_dir, case_dir, self.options)

    def submit(self, case_dir: Path, out_dir: Path | None = None) -> AnalysisJob:
        """Start an analysis; raises :class:`JobBusy` while another one runs or is still being cancelled
        (its clean-up could otherwise race with the new job's staging folder)."""
        if self.busy:
            raise JobBusy(f"the analysis of {self.current.case_dir.name} is still "
                          f"{'running' if self.current.running else 'stopping'}; wait for it or cancel it first")
        out = Path(out_dir) if out_dir else self.results_for(case_dir)
        self.current = AnalysisJob(Path(case_dir), out, self.options).start()
        return self.current

    @property
    def busy(self) -> bool:
        return self.current is not None and not self.current.settled

    def cancel(self, wait: bool = False) -> bool:
        """Cancel the running analysis, if any; True when one was running.

        Returns at once (the child is signalled and reaped by a thread, see
        :meth:`AnalysisJob.request_cancel`) unless ``wait``.
        """
        job = self.current
        if job is None or not job.running:
            if wait and job is not None:
                job.wait(30)
            return False
        job.request_cancel()
        if wait:
            job.wait(30)
        return True

    def shutdown(self) -> None:
        """Cancel and wait (blocking: call it off the event loop, or when the loop has stopped)."""
        self.cancel(wait=True)


class JobBusy(RuntimeError):
    """An analysis is already running (the runner runs one at a time)."""
