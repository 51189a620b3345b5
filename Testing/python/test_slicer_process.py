"""The analysis runs in a background process: progress, cancel of the whole process group, and the grace period."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from BrainTumorXAILib.slicer_bridge.process import AnalysisProcess


def _gone(pid: int) -> bool:
    """No such process (a zombie counts as gone: it no longer runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _poll_until_exit(process, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, code = process.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    raise AssertionError("the process did not stop")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_background_process_progress_and_cancel_kills_the_group(tmp_path):
    """Progress lines are parsed; Cancel returns at once (the GUI thread never waits), and the
    polls that follow see the child and its children stop and the work folder removed."""
    work = tmp_path / "work"
    (work / "output").mkdir(parents=True)
    pidfile = tmp_path / "grandchild.pid"
    child = ("import json, subprocess, sys, time\n"
             f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
             f"open({str(pidfile)!r}, 'w').write(str(g.pid))\n"
             "print('plain log line', flush=True)\n"
             "print(json.dumps({'stage': 'inference', 'fraction': 0.25, 'message': 'window 1/4'}), flush=True)\n"
             "time.sleep(60)\n")
    process = AnalysisProcess([sys.executable, "-c", child], cleanupPaths=[work])
    updates, deadline = [], time.time() + 20
    while not updates and time.time() < deadline:
        updates += process.poll()[0]
        time.sleep(0.05)
    assert updates == [{"stage": "inference", "fraction": 0.25, "message": "window 1/4"}]
    grandchild = int(pidfile.read_text())
    started = time.monotonic()
    process.cancel(grace=5.0)
    assert time.monotonic() - started < 0.5, "cancel blocked"
    assert process.cancelled
    code = _poll_until_exit(process)
    assert code != 0 and process.process.returncode is not None
    assert time.monotonic() - started < 5.0, "SIGINT alone should have stopped it, before the grace period"
    assert not work.exists()
    assert "plain log line" in process.log
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild), "the child's own child survived the cancel"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cancel_escalates_to_kill_after_the_grace_period(tmp_path):
    """A child that ignores SIGINT is killed by a later poll once the grace period has passed."""
    work = tmp_path / "work"
    work.mkdir()
    child = ("import signal, time\n"
             "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    process = AnalysisProcess([sys.executable, "-c", child], cleanupPaths=[work])
    deadline = time.monotonic() + 20
    while "ready" not in process.log and time.monotonic() < deadline:
        process.poll()
        time.sleep(0.05)
    assert "ready" in process.log
    started = time.monotonic()
    process.cancel(grace=0.6)
    assert time.monotonic() - started < 0.5, "cancel blocked"
    time.sleep(0.3)
    assert process.poll()[1] is None and work.exists(), "killed before the grace period was over"
    code = _poll_until_exit(process)
    assert code < 0 and time.monotonic() - started >= 0.6  # ended by a signal (SIGKILL), not before the deadline
    assert not work.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cancel_can_wait(tmp_path):
    """``cancel(wait=True)`` (module cleanup, scripts) returns only when the process is gone."""
    work = tmp_path / "work"
    work.mkdir()
    child = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    process = AnalysisProcess([sys.executable, "-c", child], cleanupPaths=[work])
    process.cancel(grace=0.3, wait=True)
    assert process.process.returncode is not None and not work.exists()
