"""Background analyses for the web viewer, and the cache of finished ones.

Each analysis runs ``braintumorxai analyze --progress-json`` in a child process
(the same command line as everywhere else): a crash or an out-of-memory kill
cannot take the web server down, cancelling is a process kill, and the server's
event loop keeps rendering while the network runs.  Progress lines are read by
a thread into :class:`AnalysisJob` fields that the UI polls.

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
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


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

    def key(self) -> dict:
        w = Path(self.weights).resolve() if self.weights else None
        stamp = None
        if w is not None and w.exists():
            st = w.stat()
            stamp = [st.st_size, int(st.st_mtime)]
        return {"weights": str(w) if w else "demo", "weights_stamp": stamp, "mc_samples": self.mc_samples,
                "gradcam": self.gradcam}


def case_fingerprint(case_dir: Path) -> dict:
    from ..case_io import find_case_files

    _, files = find_case_files(case_dir)
    return {k: [str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)] for k, p in sorted(files.items())}


def cache_folder(results_dir: Path, case_dir: Path, options: JobOptions) -> Path:
    """Where the results of ``case_dir`` under ``options`` live in the cache."""
    key = json.dumps({"case": case_fingerprint(case_dir), "options": options.key()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(case_dir).name)[:80] or "case"
    return Path(results_dir) / f"{name}-{digest}"


def is_complete(out_dir: Path) -> bool:
    return (Path(out_dir) / "summary.json").is_file()


@dataclass
class AnalysisJob:
    """One running (or finished) analysis; fields are read by the UI's poller."""

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
    _proc: subprocess.Popen | None = None
    _thread: threading.Thread | None = None
    _stderr_tail: list = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state in ("pending", "running")

    @property
    def scene_path(self) -> Path:
        return self.out_dir / "scene.mrb"

    def command(self) -> list[str]:
        o = self.options
        cmd = [sys.executable, "-c", "import sys; from BrainTumorXAILib.cli import main; sys.exit(main())",
               "analyze", str(self.case_dir), "--out", str(self.out_dir), "--progress-json",
               "--device", o.device, "--mc-samples", str(o.mc_samples), "--gradcam", o.gradcam]
        if o.weights:
            cmd += ["--weights", str(o.weights)]
        if o.scene:
            cmd += ["--scene", str(self.scene_path)]
        return cmd

    def start(self) -> "AnalysisJob":
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.state, self.started = "running", time.time()
        env = dict(os.environ)
        env.setdefault("VTK_SMP_BACKEND_IN_USE", "STDThread")
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=env, start_new_session=True)
        self._thread = threading.Thread(target=self._watch, name=f"analyze-{self.case_dir.name}", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        proc = self._proc
        err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        err_thread.start()
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            self.stage = str(msg.get("stage", self.stage))
            self.fraction = max(self.fraction, min(1.0, float(msg.get("fraction", self.fraction))))
            self.message = str(msg.get("message", ""))
        rc = proc.wait()
        err_thread.join(timeout=5)
        self.finished = time.time()
        if self.state == "cancelled":
            return
        if rc == 0 and is_complete(self.out_dir):
            self.state, self.fraction, self.stage = "done", 1.0, "done"
        else:
            self.state = "failed"
            lines = [ln for ln in self._stderr_tail if ln.strip()]
            self.error = (lines[-1].strip() if lines else f"analysis exited with status {rc}")[:500]

    def _read_stderr(self) -> None:
        for line in self._proc.stderr:
            self._stderr_tail.append(line)
            del self._stderr_tail[:-20]

    def cancel(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.state = "cancelled"
            try:
                os.killpg(self._proc.pid, 15)
            except (ProcessLookupError, PermissionError):
                self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        # analyze stages into a sibling folder; a cancelled run leaves no results folder behind
        if not is_complete(self.out_dir):
            shutil.rmtree(self.out_dir, ignore_errors=True)

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


class JobRunner:
    """At most one analysis at a time (the machine has few cores); the UI polls :attr:`current`."""

    def __init__(self, results_dir: Path, options: JobOptions):
        self.results_dir = Path(results_dir)
        self.options = options
        self.current: AnalysisJob | None = None

    def results_for(self, case_dir: Path) -> Path:
        return cache_folder(self.results_dir, case_dir, self.options)

    def submit(self, case_dir: Path, out_dir: Path | None = None) -> AnalysisJob:
        if self.current is not None and self.current.running:
            self.current.cancel()
        out = Path(out_dir) if out_dir else self.results_for(case_dir)
        self.current = AnalysisJob(Path(case_dir), out, self.options).start()
        return self.current

    def shutdown(self) -> None:
        if self.current is not None and self.current.running:
            self.current.cancel()
