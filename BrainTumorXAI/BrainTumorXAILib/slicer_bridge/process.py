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

from ..errors import BrainTumorXAIError
from ..io.labels import TUMOUR_CLASSES
from .i18n import tr
from .preprocessing_view import ATTR_QC_FIGURE


_OPTIONAL_CACHE: dict = {}


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

    :meth:`poll` never blocks the GUI thread: PythonSlicer is a launcher (CTKAppLauncher) that
    starts the real interpreter as its child, and on SIGINT the launcher exits at once while the
    interpreter is still cleaning up and holding the output pipe; the exit code is reported only
    once the reader has seen the end of the output (or, if that never comes, the group is killed).
    Output is decoded as UTF-8 with replacement characters, so no byte sequence stops the reader.

    On Windows the process gets no console window (``CREATE_NO_WINDOW`` and a hidden-window
    ``STARTUPINFO``, as ``slicer.util.launchConsoleProcess`` does in Slicer 5.6.2-5.10.0), nor does
    the ``taskkill`` that ends it.
    """

    #: Seconds the reader may outlive the process before the rest of its group is killed.
    READER_GRACE = 5.0

    def __init__(self, argv: list[str], env: dict | None = None, cleanupPaths=()):
        self.argv = list(argv)
        self.cleanupPaths = [Path(p) for p in cleanupPaths]
        self.workFolder: Path | None = None  # set by ProcessMixin.startRun
        self._queue: queue.Queue = queue.Queue()
        self._log: list[str] = []
        self.cancelled = False
        self._killDeadline: float | None = None  # time.monotonic() after which a cancelled run is killed
        self._killed = False
        self._finished = False
        self._exitedAt: float | None = None
        kwargs = hiddenWindowOptions(newProcessGroup=True)
        if os.name != "nt":
            kwargs["start_new_session"] = True  # own process group: cancel reaches the children too
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        encoding="utf-8", errors="replace", bufsize=1, env=env, **kwargs)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                line = line.rstrip("\n")
                if line.lstrip().startswith("{"):
                    try:
                        item = json.loads(line)
                        if isinstance(item, dict):
                            self._queue.put(item)
                            continue
                    except ValueError:
                        pass
                self._log.append(line)
        except (OSError, ValueError) as exc:  # pipe closed under us; never let the thread die silently
            self._log.append(f"[output reader stopped: {exc}]")
        finally:
            try:
                self.process.stdout.close()
            except OSError:
                pass

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
        now = time.monotonic()
        if self.cancelled and not self._killed and self._killDeadline is not None and now >= self._killDeadline \
                and (code is None or self._reader.is_alive()):
            self._kill()  # the process, or what is left of its group holding the pipe
            code = self.process.poll()  # reaped by a later poll if SIGKILL has not landed yet
        if code is None:
            return items, None
        if self._exitedAt is None:
            self._exitedAt = now
        if self._reader.is_alive():
            # The launcher has exited; its interpreter may still be writing. Ask again later
            # rather than wait here; after READER_GRACE the stragglers are ended.
            if now - self._exitedAt < self.READER_GRACE:
                return items, None
            self._kill()
            self._reader.join(timeout=0.2)
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
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)], capture_output=True,
                               **hiddenWindowOptions())
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


def pollUntilDone(process, timeout: float, pump=lambda: None, interval: float = 0.1) -> tuple[list[dict], int]:
    """(every progress dict, exit code) of ``process``, polled until it exits: the self-test's loop.

    ``pump()`` runs between polls (``slicer.app.processEvents``: the application stays responsive) and
    ``time.sleep`` waits: ``qt.QThread.msleep`` is not wrapped by the PythonQt that Slicer 5.6/5.8 build through
    CTK (found by the review of issue 27; not re-read here), while ``time.sleep`` is there on every version.
    Past ``timeout`` seconds, or when anything raises, the process is cancelled and waited for (its
    folders removed) before the error goes on: no analysis is left running.
    """
    updates, code = [], None
    deadline = time.monotonic() + timeout
    try:
        while True:
            new, code = process.poll()
            updates += new
            if code is not None:
                return updates, code
            if time.monotonic() > deadline:
                raise BrainTumorXAIError(tr("The analysis did not finish within {seconds:g} s").format(seconds=timeout))
            pump()
            time.sleep(interval)
    finally:
        if code is None:
            process.cancel(grace=2.0, wait=True)


def hiddenWindowOptions(newProcessGroup: bool = False) -> dict:
    """``subprocess.Popen`` keyword arguments that open no console window on Windows ({} elsewhere).

    Slicer's ``launchConsoleProcess`` (Base/Python/slicer/util.py, 5.6.2-5.10.0) hides the window with
    ``STARTUPINFO`` (``STARTF_USESHOWWINDOW``, ``SW_HIDE``); ``CREATE_NO_WINDOW`` also keeps a console
    program (PythonSlicer, taskkill) from allocating a console at all.
    """
    if os.name != "nt":
        return {}
    info = subprocess.STARTUPINFO()
    info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    info.wShowWindow = 0  # SW_HIDE
    flags = subprocess.CREATE_NO_WINDOW
    if newProcessGroup:
        flags |= subprocess.CREATE_NEW_PROCESS_GROUP
    return {"startupinfo": info, "creationflags": flags}


class ProcessMixin:
    """BrainTumorXAILogic's part that builds the analysis command line and starts it."""

    @staticmethod
    def chosenWeights(modelPath, useBundled: bool = False) -> str | None:
        """The checkpoint the user chose (the parameter node's path), or None for the bundled demo weights.

        ``useBundled`` is the module's explicit "bundled demo weights" choice: a path line edit cannot
        be emptied through its parameter (ctkPathLineEdit emits no ``currentPathChanged`` for an empty
        text, CTK as bundled with Slicer 5.6.2-5.10.0), so the demo weights need their own switch.
        """
        if useBundled:
            return None
        return str(modelPath) if modelPath and str(modelPath) not in ("", ".") else None

    @classmethod
    def weightsProblem(cls, modelPath, useBundled: bool = False) -> str:
        """Why the chosen weights cannot be used ('' when they can)."""
        from ..resources import demo_weights_path

        weights = cls.chosenWeights(modelPath, useBundled)
        if weights is None:
            if useBundled and not demo_weights_path().is_file():
                return tr("The bundled demo weights are missing ({path})").format(path=demo_weights_path())
            if not useBundled:
                return tr("Choose a checkpoint file, or the bundled demo weights")
            return ""
        if not Path(weights).is_file():
            return tr("Model file not found: {path}").format(path=weights)
        return ""

    @staticmethod
    def optionalSequences(weights=None) -> tuple[str, ...]:
        """Inputs the checkpoint (None: the bundled demo weights) can do without; read without torch."""
        from ..resources import demo_weights_path
        from .checkpoint_info import checkpointOptionalSequences

        path = Path(weights) if weights else demo_weights_path()
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            return ()
        if key not in _OPTIONAL_CACHE:
            _OPTIONAL_CACHE.clear()
            _OPTIONAL_CACHE[key] = checkpointOptionalSequences(path)
        return _OPTIONAL_CACHE[key]

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
        env["PYTHONIOENCODING"] = "utf-8"  # the reader decodes UTF-8, whatever the system code page
        return env

    def analysisCommand(self, caseFolder, outDir, weights=None, device: str = "auto", mcSamples: int = 20,
                        gradcamClasses=TUMOUR_CLASSES, python: str | None = None, figures: bool = False,
                        extra=(), precision: str = "fp32", enhancementCheck: bool = True,
                        gradcamMethod: str | None = None, sequenceEvidence: str | None = None, preprocess: str = "auto",
                        brainExtraction: str = "auto", brainMask=None) -> list[str]:
        """argv of ``python -m BrainTumorXAILib.cli analyze`` with machine-readable progress.

        No result figures by default (``--no-figures``): the module shows the maps in the views (only the
        registration QC figure of raw scans is drawn)."""
        device = {"gpu": "cuda"}.get(str(device).lower(), str(device).lower())
        gradcam = ",".join(gradcamClasses) if gradcamClasses else "none"
        argv = [python or self.pythonExecutable(), "-m", "BrainTumorXAILib.cli", "analyze", str(caseFolder),
                "--out", str(outDir), "--device", device, "--precision", str(precision).lower(),
                "--mc-samples", str(int(mcSamples)),
                "--gradcam", gradcam, "--progress-json"]
        if weights:
            argv += ["--weights", str(weights)]
        if not figures:
            argv.append("--no-figures")
        if not enhancementCheck:
            argv.append("--no-enhancement-check")
        if gradcamMethod:
            argv += ["--gradcam-method", str(gradcamMethod)]
        if sequenceEvidence:
            argv += ["--sequence-evidence", str(sequenceEvidence)]
        # Clinical preprocessing (issue 26): raw series of any geometry are co-registered, brain-extracted and
        # analysed in atlas space; the results come back on the T1ce volume's grid.
        argv += ["--preprocess", str(preprocess).lower(), "--brain-extraction", str(brainExtraction).lower()]
        if brainMask:
            argv += ["--brain-mask", str(brainMask)]
        return argv + list(extra)

    def startRun(self, volumes: dict, tempRoot, groundTruth=None, optional=(), **analysisOptions) -> AnalysisProcess:
        """Export the inputs into a new work folder under ``tempRoot`` and start the analysis on them.

        The process's ``workFolder`` is removed by :meth:`finishRun` (or by a cancel); if the export
        or the start fails, it is removed here before the error is raised.
        """
        import tempfile

        from .inputs import safeCaseId

        work = Path(tempfile.mkdtemp(prefix="BrainTumorXAI-", dir=str(tempRoot)))
        try:
            caseId = safeCaseId(volumes["t1ce"].GetName()) if volumes.get("t1ce") is not None else "BrainTumorXAI"
            caseDir = self.exportInputs(volumes, work / "input" / caseId, caseId, groundTruth=groundTruth,
                                        optional=optional)
            maskSegmentation = analysisOptions.pop("brainMaskSegmentation", None)
            if maskSegmentation is not None:  # "use a segmentation as the brain mask": on the T1ce grid
                analysisOptions["brainMask"] = self.exportBrainMask(maskSegmentation, volumes["t1ce"],
                                                                    work / "input" / "brain_mask.nii")
            process = self.startAnalysis(caseDir, work / "output", cleanupPaths=[work], **analysisOptions)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        process.workFolder = work
        return process

    def finishRun(self, process: AnalysisProcess, code: int) -> int:
        """After the process exited with ``code``: its results as a new run folder (item id).

        Once the results are loaded the work folder goes: they live in the scene as in-memory nodes
        from then on.  A failed analysis raises one line (the last line it printed; its whole output
        is ``process.log``) and its work folder goes too.  Results that cannot be loaded are kept:
        the error names the folder that holds them.
        """
        work = getattr(process, "workFolder", None)
        if code != 0:
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
            lines = [line for line in process.log.splitlines() if line.strip()]
            raise BrainTumorXAIError(tr("The analysis failed (exit code {code}): {message}").format(
                code=code, message=lines[-1].strip() if lines else tr("no output")))
        output = Path(work) / "output"
        try:
            folder = self.loadResults(output)
        except Exception as exc:
            raise BrainTumorXAIError(tr("The results could not be loaded ({error}); they are kept in {folder}").format(
                error=exc, folder=output)) from exc
        self._keepQcFigure(folder, Path(work))
        shutil.rmtree(work, ignore_errors=True)
        return folder

    def _keepQcFigure(self, folder: int, work: Path) -> None:
        """The registration QC figure outlives the work folder (beside it): "Show registration QC" opens it."""
        figure = self.qcFigure(folder)
        if figure is not None:
            kept = work.parent / f"{work.name}-preprocessing_qc.png"
            shutil.copyfile(figure, kept)
            self.scene.GetSubjectHierarchyNode().SetItemAttribute(folder, ATTR_QC_FIGURE, str(kept))

    def startAnalysis(self, caseFolder, outDir, cleanupPaths=(), **kwargs) -> AnalysisProcess:
        """Start the analysis; if it cannot start, ``cleanupPaths`` are removed and one line says why."""
        try:
            return AnalysisProcess(self.analysisCommand(caseFolder, outDir, **kwargs), self.analysisEnvironment(),
                                   cleanupPaths=cleanupPaths)
        except OSError as exc:
            for path in cleanupPaths:
                shutil.rmtree(path, ignore_errors=True)
            raise BrainTumorXAIError(tr("{program}: cannot start the analysis ({error})").format(
                program=exc.filename or "PythonSlicer", error=exc.strerror or exc)) from exc
