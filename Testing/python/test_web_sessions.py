"""``braintumorxai view``: every browser session gets a viewer process (scene and state) of its own, at most
``--max-sessions`` at once with a clear page past the cap; a session's process ends once its page is closed.
The viewer prints the address to open and none of VTK's known-harmless warnings."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer", reason="web extra not installed (pip install 'braintumorxai[web]')")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web_e2e"))
import driver  # noqa: E402
import protocols  # noqa: E402

from BrainTumorXAILib.web.vtk_messages import is_harmless, quiet_harmless_vtk_messages  # noqa: E402


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _open_session(base: str, timeout: float = 150) -> str:
    """What the front page's script does: start a session, wait for its address."""
    import json

    status, page = _get(base + "/")
    assert status == 200, page
    token = re.search(r"btx/sessions/([\w-]+)", page).group(1)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        answer = json.loads(_get(f"{base}/btx/sessions/{token}")[1])
        assert "error" not in answer, answer
        if answer.get("url"):
            return answer["url"].rstrip("/")
        time.sleep(0.5)
    raise TimeoutError("the session's viewer did not start")


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def test_two_sessions_are_independent_and_capped(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    port = driver.free_port()
    log = open(tmp_path / "launcher.log", "wb")
    cmd = [sys.executable, "-m", "BrainTumorXAILib.cli", "view", str(data), "--port", str(port), "--max-sessions",
           "2", "--session-idle", "3", "--results", str(tmp_path / "results")]
    front = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    a = b = None
    try:
        with driver.alarm_deadline("two sessions", 400):
            driver.wait_http(base + "/btx/health", 30)
            url_a, url_b = _open_session(base), _open_session(base)
            assert url_a != url_b  # two processes, two ports
            status, page = _get(base + "/")  # a third while two run: told so, nothing started
            assert status == 503 and "All 2 viewer sessions" in page
            a, b = protocols.TrameConnection(url_a), protocols.TrameConnection(url_b)
            assert a.state["show_seg"] is True and b.state["show_seg"] is True
            a.call("trame.state.update", [{"key": "show_seg", "value": False}, {"key": "opacity", "value": 0.2}])
            assert a.call("trame.state.get")["state"]["show_seg"] is False  # A's own server took it ...
            b_state = b.call("trame.state.get")["state"]
            assert b_state["show_seg"] is True and b_state["opacity"] == 0.6  # ... B's never saw it
            a.close()
            a = None
            # A's page closed: its process stops after --session-idle, and its slot is free again.
            _wait(lambda: len(_sessions(base)) == 1, 60, "the closed session's process to stop")
            assert _open_session(base) not in (url_b,)
    finally:
        for conn in (a, b):
            if conn is not None:
                conn.close()
        rc = driver.stop(front, timeout=40)
        log.close()
    printed = (tmp_path / "launcher.log").read_text(errors="replace")
    assert rc == 0, printed[-2000:]
    assert f"open http://127.0.0.1:{port}/ in a browser" in printed


def _sessions(base: str) -> list:
    import json

    return json.loads(_get(base + "/btx/sessions")[1])["sessions"]


def test_viewer_prints_its_address_and_no_harmless_vtk_warning(tmp_path):
    port = driver.free_port()
    log = open(tmp_path / "viewer.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "BrainTumorXAILib.web.app", "--port", str(port), "--results",
                             str(tmp_path / "r"), "--exit-when-idle", "2"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        driver.wait_http(f"http://127.0.0.1:{port}/btx/health", 120)
        page = protocols.TrameConnection(f"http://127.0.0.1:{port}")
        time.sleep(1.5)  # the idle watch looks twice a second
        page.close()  # one page came and went: idle from now on
        rc = proc.wait(timeout=60)
    finally:
        driver.stop(proc)
        log.close()
    out = (tmp_path / "viewer.log").read_text(errors="replace")
    assert rc == 0, out[-2000:]
    assert f"braintumorxai view: open http://127.0.0.1:{port}/ in a browser" in out
    assert "bad X server connection" not in out and "will not be generated" not in out, out[-2000:]


def test_only_known_harmless_vtk_messages_are_dropped():
    from vtkmodules.vtkCommonCore import vtkOutputWindow

    assert is_harmless("Generic Warning: In vtkXOpenGLRenderWindow.cxx, line 1460\nbad X server connection. DISPLAY=")
    assert is_harmless("vtkXRenderWindowInteractor (0x55): WindowResizeEvent will not be generated by "
                       "vtkRenderWindowInteractor after VTK 9.6.")
    assert not is_harmless("ERROR: In vtkNIFTIImageReader.cxx, line 900\nCould not read file")
    stream = io.StringIO()
    quiet_harmless_vtk_messages(stream)
    vtkOutputWindow.GetInstance().DisplayWarningText("bad X server connection. DISPLAY=\n")
    vtkOutputWindow.GetInstance().DisplayWarningText("a warning somebody must read\n")
    assert stream.getvalue() == "a warning somebody must read\n"
