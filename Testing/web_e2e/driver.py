"""Drive the BrainTumorXAI web viewer in headless Chromium over the DevTools protocol.

Usage (also used by Testing/python/test_web_app.py):

    python Testing/web_e2e/driver.py DATA_DIR --results DIR [--weights W] [--mc-samples N]
        [--case NAME] [--screenshot OUT.png] [--timeout 240]

Starts ``python -m BrainTumorXAILib.web.app`` on a free loopback port and
Chromium (``/usr/bin/chromium``) with a fresh profile, selects the case in the
page's dropdown, waits in real time until the case is shown, takes a
screenshot and measures the 3D view (top-right quarter of the view grid).
The server is stopped with SIGTERM (it must exit 0 on its own; SIGKILL only as
a last resort, reported as a failure), Chromium is killed.  Only 127.0.0.1 is
contacted.  Overlays are named as the Slicer Logic names them:
``probability:ET``, ``variance:NCR``, ``gradcam:ED``, ``entropy``,
``mutual_information``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from protocols import Cdp

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


@contextlib.contextmanager
def alarm_deadline(what: str, seconds: int):
    """The last guard of a test against a hang: TimeoutError naming ``what`` after ``seconds`` (SIGALRM;
    a no-op where the platform has none). Every network wait below has its own, shorter deadline."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(_signum, _frame):
        raise TimeoutError(f"{what}: no result within {seconds} s (a network wait without a deadline?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def find_chromium() -> str | None:
    env = os.environ.get("BRAINTUMORXAI_CHROMIUM")
    for cand in ((env,) if env else ()) + CHROMIUM_CANDIDATES:
        if cand and Path(cand).exists():
            return cand
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s ({last})")


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGTERM to the process group, SIGKILL after ``timeout`` s; the exit status (negative: killed by a
    signal, -9 when SIGTERM did not stop it)."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        return proc.wait(timeout=10)


kill = stop  # Chromium and other helpers: the same, without caring about the status


def start_server(data_dir, results, port, extra=(), log=None, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "BrainTumorXAILib.web.app", str(data_dir), "--host", "127.0.0.1",
           "--port", str(port), "--results", str(results), *extra]
    return subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)



def start_chromium(exe: str, profile: Path, width=1600, height=1000) -> tuple[subprocess.Popen, str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
           "--disable-default-apps", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
           f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    end = time.time() + 30
    while time.time() < end and not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        time.sleep(0.2)
    if not port_file.exists():
        kill(proc)
        raise TimeoutError("chromium did not open its DevTools port within 30 s")
    time.sleep(0.2)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        pages = [t for t in json.load(r) if t.get("type") == "page"]
    return proc, pages[0]["webSocketDebuggerUrl"]


def image_stats(png: bytes, box: tuple[int, int, int, int]) -> dict:
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float32)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = img[max(y0, 0):y1, max(x0, 0):x1]
    if region.size == 0:
        return {"std": 0.0, "colours": 0, "coloured_fraction": 0.0, "size": [0, 0]}
    flat = region.reshape(-1, 3)
    sat = flat.max(1) - flat.min(1)
    return {"std": float(flat.std()), "colours": int(len(np.unique((flat // 8).astype(np.int32) @ [1024, 32, 1]))),
            "coloured_fraction": float((sat > 60).mean()), "size": [int(region.shape[1]), int(region.shape[0])]}


SELECT_CASE_JS = """
(async (name) => {
  const sleep = (ms) => new Promise(r => setTimeout(r, ms));
  const field = document.querySelector('#case-select')?.closest('.v-field') || document.querySelector('#case-select');
  if (!field) return 'no-select';
  field.click(); field.dispatchEvent(new MouseEvent('mousedown', {bubbles: true}));
  for (let i = 0; i < 20; i++) {
    const items = [...document.querySelectorAll('.v-overlay .v-list-item')];
    const hit = items.find(el => el.textContent.trim() === name);
    if (hit) { hit.click(); return 'clicked'; }
    await sleep(250);
  }
  return 'no-item';
})(%s)
"""


def downloads(port: int) -> dict:
    """The page's two download links, fetched: {name: [bytes, member names ending in .mrml / summary.json]}."""
    import zipfile

    out = {}
    for name, wanted in (("scene.mrb", ".mrml"), ("results.zip", "summary.json")):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/btx/{name}", timeout=60) as r:
            data = r.read()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out[name] = [len(data), [n for n in zf.namelist() if n.endswith(wanted)]]
    return out


def upload_through_page(cdp: Cdp, path: Path) -> None:
    """Choose ``path`` in the page's (hidden) upload input, as the file dialog would: the page posts it."""
    root = cdp.call("DOM.getDocument", depth=0)["root"]["nodeId"]
    node = cdp.call("DOM.querySelector", nodeId=root, selector="#upload-input")["nodeId"]
    if not node:
        raise RuntimeError("the page has no #upload-input")
    cdp.call("DOM.setFileInputFiles", nodeId=node, files=[str(path)])


def run(data_dir, results, case=None, screenshot=None, extra_server_args=(), timeout=240.0, log_path=None,
        overlay=None, bad_upload=False) -> dict:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="btx-e2e-"))
    server = chrome = cdp = None
    log = open(log_path or tmp / "server.log", "wb")
    try:
        port = free_port()
        server = start_server(data_dir, results, port, extra_server_args, log)
        url = f"http://127.0.0.1:{port}/index.html"
        wait_http(f"http://127.0.0.1:{port}/btx/health", 60)
        chrome, ws_url = start_chromium(exe, tmp / "profile")
        cdp = Cdp(ws_url)
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)
        cdp.call("Page.navigate", url=url)
        cdp.wait_js("!!document.querySelector('#case-select')", 60, "the page (case dropdown)")
        cases = cdp.wait_js("window.trame && window.trame.state.get('cases')", 30, "the case list")
        bad_upload_error = None
        if bad_upload:  # a refused upload through the page: its message appears in the page's error box
            bad = tmp / "notes.txt"
            bad.write_text("not an image")
            upload_through_page(cdp, bad)
            bad_upload_error = cdp.wait_js(
                "(() => { const e = window.trame.state.get('error'); const box = document.querySelector('#error');"
                " return e && box && box.offsetParent !== null && box.textContent.includes(e) ? e : null; })()",
                30, "the upload error in the page")
            cdp.js("window.trame.state.set('error', '')")
        name = case or cases[0]["value"]
        how = cdp.js(SELECT_CASE_JS % json.dumps(name))
        if how != "clicked":  # the dropdown could not be operated: set the same state the dropdown sets
            cdp.js(f"window.trame.state.set('selected_case', {json.dumps(name)})")
        saw_progress = False
        end = time.time() + timeout
        while time.time() < end:
            st = cdp.js("({l: window.trame.state.get('loaded_case'), b: window.trame.state.get('busy'),"
                        " p: window.trame.state.get('progress'), e: window.trame.state.get('error')})")
            saw_progress |= bool(st and st["b"])
            if st and st["e"]:
                raise RuntimeError(f"the page shows an error: {st['e']}")
            if st and st["l"]:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"case {name} not shown within {timeout:.0f} s")
        cdp.wait_js("document.querySelectorAll('#views img').length >= 4 && "
                    "[...document.querySelectorAll('#views img')].every(i => i.naturalWidth > 0)", 60,
                    "four rendered views")
        if overlay:
            cdp.js(f"window.trame.state.set('overlay', {json.dumps(overlay)})")
            cdp.wait_js("!!document.querySelector('#legend')", 30, "the overlay legend")
        time.sleep(3)  # let the last frames arrive
        box = cdp.js("(() => { const r = document.querySelector('#views').getBoundingClientRect();"
                     " return [r.left, r.top, r.right, r.bottom]; })()")
        png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
        x0, y0, x1, y1 = box
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        stats = {"threed": image_stats(png, (xm + 4, y0 + 4, x1 - 4, ym - 4)),
                 "axial": image_stats(png, (x0 + 4, y0 + 4, xm - 4, ym - 4))}
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(png)
        result = {"case": name, "selected_by": how, "saw_progress": saw_progress, "stats": stats,
                  "bad_upload_error": bad_upload_error,
                  "seconds": round(time.time() - t0, 1), "views_box": box, "downloads": downloads(port)}
        if cdp is not None:
            cdp.close()
            cdp = None
        kill(chrome)
        result["server_exit"] = stop(server, timeout=30)
        return result
    finally:
        if cdp is not None:
            cdp.close()
        kill(chrome)
        stop(server)
        log.close()
        if log_path is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp / "profile", ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--case")
    p.add_argument("--weights", type=Path)
    p.add_argument("--mc-samples", type=int)
    p.add_argument("--gradcam")
    p.add_argument("--screenshot", type=Path, help="save the page screenshot here (e.g. Resources/Screenshots/web_viewer.png)")
    p.add_argument("--overlay", help="overlay to show before the screenshot, e.g. probability:ET, gradcam:NCR, entropy")
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("--log", type=Path)
    a = p.parse_args(argv)
    extra = []
    if a.weights:
        extra += ["--weights", str(a.weights)]
    if a.mc_samples is not None:
        extra += ["--mc-samples", str(a.mc_samples)]
    if a.gradcam:
        extra += ["--gradcam", a.gradcam]
    out = run(a.data_dir, a.results, a.case, a.screenshot, extra, a.timeout, a.log, a.overlay)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
