"""The analysis as a separate process: ``braintumorxai analyze --progress-json`` launched, polled, cancelled."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..io.labels import TUMOUR_CLASSES


class AnalysisProcess:
    """``braintumorxai analyze`` in a separate process, read without blocking.

    A reader thread turns stdout lines starting with "{" into progress dicts
    ({"stage", "fraction", "message"}); :meth:`poll` hands them over (call it
    from a GUI timer).  :meth:`cancel` never blocks by default: it sends SIGINT
    to the whole process group (so the CLI removes its staging folder) and
    returns; later :meth:`poll` calls escalate to SIGKILL once ``grace`` seconds
    have passed, and when the process has exited they kill any stragglers of its
    group and delete ``cleanupPaths``, so a cancelled run leaves nothing behind.
    ``cancel(wait=True)`` does all of that before returning (shutdown, scripts).
    """

    def __init__(self, argv: list[str], env: dict | None = None, cleanupPaths=()):
        self.argv = list(argv)
        self.cleanupPaths = [Path(p) for p in cleanupPaths]
        self._queue: queue.Queue = queue.Queue()
        self._log: list[str] = []
        self.cancelled = False
        self._killDeadline: float | None = None  # time.monotonic() after which a cancelled run is killed
        self._killed = False
        self._finished = False
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # own process group: cancel reaches the children too
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        bufsize=1, env=env, **kwargs)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line.lstrip().startswith("{"):
                try:
                    self._queue.put(json.loads(line))
                    continue
                except ValueError:
                    pass
            self._log.append(line)
        self.process.stdout.close()

    def poll(self) -> tuple[list[dict], int | None]:
        """(new progress dicts, return code or None while running).

        After :meth:`cancel` this also kills the process group once the grace period is
        over, and cleans up (stragglers, ``cleanupPaths``) as soon as the process has exited.
        """
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        code = self.process.poll()
        if code is None and self.cancelled and not self._killed and self._killDeadline is not None \
                and time.monotonic() >= self._killDeadline:
            self._kill()
            try:
                code = self.process.wait(0.5)  # SIGKILL takes effect at once; reap it now if we can
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:
            self._reader.join(timeout=5)
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            if self.cancelled:
                self._finish()
        return items, code

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def log(self) -> str:
        """Everything the process printed that was not a progress line (errors end up here)."""
        return "\n".join(self._log)

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        if self.cancelled:
            self._finish()
        return code

    def cancel(self, grace: float = 5.0, wait: bool = False) -> None:
        """Interrupt the run: SIGINT to its process group now, SIGKILL from :meth:`poll` after ``grace`` s.

        Returns at once unless ``wait``; then it blocks until the process is gone and cleaned up.
        """
        if not self.cancelled:
            self.cancelled = True
            self._killDeadline = time.monotonic() + max(0.0, float(grace))
            if self.process.poll() is None:
                self._signal(None)
        if wait:
            try:
                self.process.wait(max(0.0, self._killDeadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill()
                self.process.wait()
            self.wait()

    def _signal(self, sig) -> None:
        try:
            if os.name == "nt":  # no process-group SIGINT on Windows: end the tree at once
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)], capture_output=True)
            else:
                os.killpg(self.process.pid, signal.SIGINT if sig is None else sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone

    def _kill(self) -> None:
        self._killed = True
        self._signal(signal.SIGKILL if os.name != "nt" else None)

    def _finish(self) -> None:
        """After a cancelled run exited: end what is left of its process group, delete ``cleanupPaths``."""
        if self._finished:
            return
        self._finished = True
        if os.name != "nt":
            self._signal(signal.SIGKILL)  # children that outlived the interrupted CLI
        for path in self.cleanupPaths:
            shutil.rmtree(path, ignore_errors=True)


class ProcessMixin:
    """BrainTumorXAILogic's part that builds the analysis command line and starts it."""

    @staticmethod
    def chosenWeights(modelPath) -> str | None:
        """The checkpoint the user chose (the parameter node's path), or None for the bundled demo weights."""
        return str(modelPath) if modelPath and str(modelPath) not in ("", ".") else None

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's console Python (PythonSlicer) when running inside Slicer, else this interpreter."""
        exe_dir = Path(sys.executable).parent
        for name in ("PythonSlicer", "PythonSlicer.exe"):
            for candidate in (exe_dir / name, exe_dir.parent / "bin" / name):
                if candidate.is_file():
                    return str(candidate)
        found = shutil.which("PythonSlicer")
        return found or sys.executable

    @staticmethod
    def analysisEnvironment() -> dict:
        """Environment for the child: this package importable, unbuffered output."""
        env = dict(os.environ)
        libParent = str(Path(__file__).resolve().parents[2])  # the folder holding BrainTumorXAILib
        env["PYTHONPATH"] = os.pathsep.join(p for p in (libParent, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def analysisCommand(self, caseFolder, outDir, weights=None, device: str = "auto", mcSamples: int = 20,
                        gradcamClasses=TUMOUR_CLASSES, python: str | None = None, extra=()) -> list[str]:
        """argv of ``python -m BrainTumorXAILib.cli analyze`` with machine-readable progress."""
        device = {"gpu": "cuda"}.get(str(device).lower(), str(device).lower())
        gradcam = ",".join(gradcamClasses) if gradcamClasses else "none"
        argv = [python or self.pythonExecutable(), "-m", "BrainTumorXAILib.cli", "analyze", str(caseFolder),
                "--out", str(outDir), "--device", device, "--mc-samples", str(int(mcSamples)),
                "--gradcam", gradcam, "--progress-json"]
        if weights:
            argv += ["--weights", str(weights)]
        return argv + list(extra)

    def startAnalysis(self, caseFolder, outDir, cleanupPaths=(), **kwargs) -> AnalysisProcess:
        return AnalysisProcess(self.analysisCommand(caseFolder, outDir, **kwargs), self.analysisEnvironment(),
                               cleanupPaths=cleanupPaths)
