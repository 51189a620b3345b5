"""The web viewer: the server starts and serves the trame page; uploads over HTTP; it stops cleanly on SIGTERM;
cancelling an analysis leaves nothing in the results cache; end to end in headless Chromium.

The end-to-end test needs Chromium (``apt-get install -y chromium``) and the
``websocket-client`` package; it skips, saying so, only when Chromium is absent.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer", reason="web extra not installed (pip install 'braintumorxai[web]')")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web_e2e"))
import driver  # noqa: E402
import protocols  # noqa: E402


#: No test here may hang: every network wait has its own deadline (driver, urlopen, _wait); this is the last
#: guard, per test, with a clear failure instead of a CI job killed from outside.
TEST_DEADLINE_S = {"test_end_to_end_in_headless_chromium": 480}
DEFAULT_DEADLINE_S = 300


@pytest.fixture(autouse=True)
def _deadline(request):
    with driver.alarm_deadline(request.node.name, TEST_DEADLINE_S.get(request.node.originalname, DEFAULT_DEADLINE_S)):
        yield


@pytest.fixture(scope="module")
def web_case(tmp_path_factory):
    """A small synthetic case (64x64x48 at 3 mm) in a data folder, and a tiny untrained checkpoint."""
    from BrainTumorXAILib.models.checkpoint import save_checkpoint
    from BrainTumorXAILib.models.factory import build_model
    from BrainTumorXAILib.synth import generate_case

    root = tmp_path_factory.mktemp("web")
    data = root / "data"
    case = generate_case(data, "BraTS2021_00042", seed=42, shape=(64, 64, 48), spacing=3.0)
    weights = root / "tiny.pt"
    save_checkpoint(weights, build_model("unet", base_channels=4, depth=2),
                    normalisation={"method": "zscore", "crop": "brain", "spacing": None, "window": 32,
                                   "multiple_of": 16}, provenance={})
    return data, case, weights


@pytest.fixture(scope="module")
def server(web_case, tmp_path_factory):
    """The viewer on a free port; its temporary folders (upload sessions among them) under its own TMPDIR."""
    data, _, weights = web_case
    tmp_path = tmp_path_factory.mktemp("server")
    port = driver.free_port()
    log = open(tmp_path / "server.log", "wb")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = driver.start_server(data, tmp_path / "results", port,
                               ["--weights", str(weights), "--mc-samples", "2", "--gradcam", "NCR",
                                "--max-upload-mb", "1"], log, env={**os.environ, "TMPDIR": str(tmpdir)})
    try:
        driver.wait_http(f"http://127.0.0.1:{port}/btx/health", 90)
        yield f"http://127.0.0.1:{port}", proc, tmp_path / "server.log", tmpdir
    finally:
        driver.stop(proc)
        log.close()


@pytest.fixture()
def connect(server):
    """Open websocket connections as browser pages do (closed at the end of the test)."""
    pytest.importorskip("websocket", reason="websocket-client not installed")
    opened = []

    def open_one():
        conn = protocols.TrameConnection(server[0])
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


def _upload_folders(tmpdir: Path) -> set[Path]:
    return set(tmpdir.glob("braintumorxai-upload-*"))


def _wait(predicate, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _post_files(url: str, files: list[tuple[str, bytes]], token: str | None = None) -> tuple[int, dict]:
    if token is not None:
        url += "?token=" + urllib.parse.quote(token)
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, data in files:
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                   f"Content-Type: application/octet-stream\r\n\r\n".encode())
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(url, data=body.getvalue(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_server_serves_the_trame_page(server):
    base = server[0]
    with urllib.request.urlopen(base + "/index.html", timeout=10) as r:
        assert r.status == 200
        page = r.read().decode()
    assert "trame" in page.lower()


def test_results_zip_is_404_before_a_case(server):
    base, _, _, _ = server
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/btx/results.zip", timeout=10)
    assert err.value.code == 404


def test_uploads_over_http(server, web_case, connect):
    """Bad uploads are refused with a one-line message, in the HTTP answer and in the page (the shared state
    every connected page shows in its error box)."""
    base, proc, _, tmpdir = server
    _, case, _ = web_case
    page = connect()
    token = page.trigger("btx_upload_token")
    assert token and page.trigger("btx_upload_token") == token  # one token per connection
    upload = base + "/btx/upload"
    code, reply = _post_files(upload, [("evil.exe", b"MZ")])  # no token: no connection's upload
    assert code == 403 and "reload the page" in reply["error"]
    code, reply = _post_files(upload, [("evil.exe", b"MZ")], "forged")
    assert code == 403
    code, reply = _post_files(upload, [("evil.exe", b"MZ")], token)
    assert code == 400 and "unsupported file type" in reply["error"]
    state = page.wait_state(lambda st: "unsupported file type" in (st.get("error") or ""))
    assert state["error"] == reply["error"]  # shown in the page as is
    code, reply = _post_files(upload, [("big.nii.gz", b"\0" * 2_000_000)], token)
    assert code == 400 and "larger than the limit" in reply["error"]
    page.wait_state(lambda st: "larger than the limit" in (st.get("error") or ""))
    files = [(p.name, p.read_bytes()) for p in sorted(case.iterdir()) if "flair" not in p.name and p.is_file()]
    code, reply = _post_files(upload, files, token)
    assert code == 400 and "missing flair" in reply["error"]
    page.wait_state(lambda st: "missing flair" in (st.get("error") or ""))
    code, reply = _post_files(upload, [("x.zip", b"PK\x03\x04garbage")], token)
    assert code == 400 and "not a valid zip" in reply["error"]
    page.wait_state(lambda st: "not a valid zip" in (st.get("error") or ""))
    assert proc.poll() is None  # bad uploads never take the server down
    folders = _upload_folders(tmpdir)
    assert len(folders) == 1 and not any(folders.pop().iterdir())  # refused uploads leave nothing behind
    page.close()
    _wait(lambda: not _upload_folders(tmpdir), 30, "the closed connection's upload folder to go")


def test_uploads_are_per_connection(server, web_case, connect):
    """Each connection's uploads in its own folder, removed when that connection closes (its analysis
    cancelled, its results taken off the views); another connection's folder and analysis stay; a second
    analysis is refused while one runs (HTTP 409, and the message in the page)."""
    base, proc, _, tmpdir = server
    _, case, _ = web_case
    files = [(p.name, p.read_bytes()) for p in sorted(case.iterdir()) if p.name.endswith(".nii.gz")]
    upload = base + "/btx/upload"
    a, b = connect(), connect()
    token_a, token_b = a.trigger("btx_upload_token"), b.trigger("btx_upload_token")
    assert token_a and token_b and token_a != token_b

    code, reply = _post_files(upload, files, token_a)
    assert code == 200 and reply == {"ok": True, "case": "BraTS2021_00042"}
    (folder_a,) = _upload_folders(tmpdir)
    assert any(folder_a.rglob("*flair*"))
    code, reply = _post_files(upload, files, token_b)  # while A's analysis runs
    assert code == 409 and "still running" in reply["error"]
    b.wait_state(lambda st: "still running" in (st.get("error") or ""))
    assert _upload_folders(tmpdir) == {folder_a}
    b.wait_state(lambda st: st.get("loaded_case") == "BraTS2021_00042" and not st.get("busy"), 150)

    code, reply = _post_files(upload, files, token_b)  # A's case is shown, nothing runs: B may start one
    assert code == 200, reply
    (folder_b,) = _upload_folders(tmpdir) - {folder_a}
    b.wait_state(lambda st: st.get("busy"))
    a.close()  # A's upload folder goes, A's results leave the views; B's folder and analysis stay
    _wait(lambda: not folder_a.exists(), 30, "A's upload folder to be removed")
    b.wait_state(lambda st: st.get("loaded_case") == "")
    assert folder_b.is_dir() and any(folder_b.rglob("*flair*"))
    assert b.state["busy"] and b.state.get("progress_text") != "cancelled"
    assert _post_files(upload, [("evil.exe", b"MZ")], token_a)[0] == 403  # A's token ended with A

    b.close()  # B's running analysis is cancelled and its folder removed, without blocking the server
    t0 = time.time()
    with urllib.request.urlopen(base + "/btx/health", timeout=10) as r:
        assert r.status == 200
    assert time.time() - t0 < 2, "the server's event loop should not wait for the analysis to die"
    _wait(lambda: not folder_b.exists(), 30, "B's upload folder to be removed")
    assert proc.poll() is None

    c = connect()  # leave an analysis running for the SIGTERM test
    token_c = c.trigger("btx_upload_token")
    _wait(lambda: _post_files(upload, files, token_c)[0] == 200, 30, "the server to accept a new upload")
    c.wait_state(lambda st: st.get("busy"))


def test_data_folder_scan_error_is_shown(tmp_path):
    """A data folder that cannot be scanned is a message in the page (set after the state is reset)."""
    from types import SimpleNamespace

    from BrainTumorXAILib.web.app import ViewerApp
    from BrainTumorXAILib.web.uploads import UploadLimits
    from trame.app import get_server

    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")  # removed and replaced by a file after the server checked it
    class Fake(SimpleNamespace):  # a class of its own: trame's trigger decorator annotates it
        pass

    trame = get_server("btx-scan-error-test", client_type="vue3")
    fake = Fake(state=trame.state, ctrl=trame.controller, data_dir=not_a_folder, limits=UploadLimits(), _cases={})
    for name in ("_scan_cases", "_on_case", "_on_overlay", "_on_preset", "_on_review_jump", "_update"):
        setattr(fake, name, getattr(ViewerApp, name).__get__(fake))
    ViewerApp._init_state(fake)
    assert fake.state.cases == [] and "not a folder" in fake.state.error


def test_sigterm_stops_the_server_cleanly(server):
    """SIGTERM (with the uploaded case's analysis still running) ends the server by itself with status 0."""
    base, proc, log, _ = server
    assert proc.poll() is None
    t0 = time.time()
    rc = driver.stop(proc, timeout=30)
    assert rc == 0, f"server exit status {rc}:\n{log.read_text(errors='replace')[-3000:]}"
    assert time.time() - t0 < 30
    assert "stopped" in log.read_text(errors="replace")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_refused_because_another_viewer_finished_the_same_analysis_counts_as_done(web_case, tmp_path):
    """Two viewers sharing one cache analyse the same case: the second one's analyze refuses to replace the
    first one's complete folder (no --overwrite); its job shows that complete result, not a failure."""
    from BrainTumorXAILib.web.jobs import JobOptions, JobRunner

    data, case, weights = web_case
    runner = JobRunner(tmp_path / "results", JobOptions(weights=weights, device="cpu", mc_samples=0, gradcam="none"))
    out = runner.results_for(case)
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}")  # the other viewer's finished result
    job = runner.submit(case)
    assert job.wait(120)
    assert job.state == "done" and job.error is None, (job.state, job.error, job._process.log[-2000:])
    assert "not empty" in job._process.log  # analyze did refuse: the result is the other viewer's, untouched
    assert (out / "summary.json").read_text() == "{}"


def test_cancel_kills_the_analysis_and_leaves_no_partial_result(web_case, tmp_path):
    from BrainTumorXAILib.web.jobs import JobOptions, JobRunner, is_complete

    data, case, weights = web_case
    results = tmp_path / "results"
    runner = JobRunner(results, JobOptions(weights=weights, device="cpu", mc_samples=500, gradcam="none"))
    out = runner.results_for(case)
    # what a SIGKILLed run would have left: analyze's staging folder next to the results folder
    host = socket.gethostname()
    leftover = results / f".{out.name}.partial-{_dead_pid()}@{host}-abcd1234"
    leftover.mkdir(parents=True)
    (leftover / "prob_ET.nii.gz").write_bytes(b"partial")
    # another viewer (a live process) analysing the same case into the same cache: its staging folder stays
    other = results / f".{out.name}.partial-{os.getppid()}@{host}-efgh5678"
    other.mkdir()
    job = runner.submit(case)
    end = time.time() + 90
    while job.running and job.stage in ("queued", "load") and time.time() < end:  # until the network runs
        time.sleep(0.1)
    time.sleep(0.5)
    assert job.running, f"the analysis ended before it could be cancelled: {job.state} {job.error}"
    pid = job.pid
    t0 = time.time()
    assert runner.cancel()  # signals and returns: the server's event loop never waits for the child
    assert time.time() - t0 < 0.5
    assert job.state == "cancelled" and not job.running
    assert runner.busy  # until the child is reaped and its leftovers removed
    with pytest.raises(RuntimeError, match="stopping"):
        runner.submit(case)  # a new job would race with the clean-up
    assert job.wait(15) and job.settled and not runner.busy
    assert time.time() - t0 < 15
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone (and reaped)
    assert not out.exists() and not is_complete(runner.results_for(case))
    assert list(results.iterdir()) == [other]  # no partial results of dead runs in the cache
    assert not runner.cancel()  # nothing left to cancel


@pytest.mark.skipif(driver.find_chromium() is None,
                    reason="chromium is not installed (apt-get install -y chromium) - browser end-to-end test skipped")
def test_end_to_end_in_headless_chromium(web_case, tmp_path):
    pytest.importorskip("websocket", reason="websocket-client not installed")
    data, _, weights = web_case
    t0 = time.time()
    out = driver.run(data, tmp_path / "results", case="BraTS2021_00042",
                     extra_server_args=["--weights", str(weights), "--mc-samples", "2", "--gradcam", "NCR"],
                     timeout=150, log_path=tmp_path / "server.log", overlay="probability:ET", bad_upload=True)
    print(json.dumps(out))
    assert out["server_exit"] == 0, "the server should stop by itself on SIGTERM"
    assert out["saw_progress"], "the analysis should have run in the background with a progress bar"
    assert "notes.txt: unsupported file type" in (out["bad_upload_error"] or ""), out["bad_upload_error"]
    assert out["downloads"]["scene.mrb"][1], f"the .mrb holds no scene: {out['downloads']}"
    assert out["downloads"]["results.zip"][1], f"the results zip has no summary.json: {out['downloads']}"
    threed, axial = out["stats"]["threed"], out["stats"]["axial"]
    assert threed["size"][0] > 200 and threed["size"][1] > 200
    assert threed["std"] > 5 and threed["colours"] > 50, f"3D view looks blank: {threed}"
    assert threed["coloured_fraction"] > 0.005, f"no tumour colours in the 3D view: {threed}"
    assert axial["std"] > 5, f"axial view looks blank: {axial}"
    assert any((tmp_path / "results").glob("BraTS2021_00042-*/summary.json"))  # cached in the results folder
    assert time.time() - t0 < 170
