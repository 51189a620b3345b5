"""Screenshots of ``braintumorxai view`` in headless Chromium: the first screen, a case after its analysis, and two
browser sessions side by side (the analysed one and a fresh one: each has its own scene).

    python Testing/web_e2e/screenshots.py DATA_DIR --results DIR --out docs/screenshots [--case NAME]

Starts the front server (``python -m BrainTumorXAILib.cli view``) on a free loopback port; each page it sends to a
session of its own.  Writes ``web_first_screen.png``, ``web_after_run.png`` and ``web_two_sessions.png``.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import driver  # noqa: E402
import protocols  # noqa: E402

WIDTH, HEIGHT = 1600, 1000


def _shot(cdp, path: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
    cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    time.sleep(2)
    path.write_bytes(base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"]))


def _open_session(cdp, front: str) -> str:
    """Navigate to the front page; the session's own address once the page has been forwarded there."""
    cdp.call("Page.navigate", url=front)
    cdp.wait_js(f"window.location.href.startsWith('{front}') ? null : window.location.href", 180, "a session")
    cdp.wait_js("!!document.querySelector('#case-select')", 90, "the viewer page")
    return cdp.js("window.location.origin")


def run(data_dir: Path, results: Path, out: Path, case: str | None, timeout: float) -> dict:
    exe = driver.find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="btx-shots-"))
    port = driver.free_port()
    front_url = f"http://127.0.0.1:{port}/"
    log = open(tmp / "front.log", "wb")
    front = subprocess.Popen([sys.executable, "-m", "BrainTumorXAILib.cli", "view", str(data_dir), "--port", str(port),
                              "--results", str(results), "--max-sessions", "3"], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    chrome = cdp = None
    try:
        driver.wait_http(front_url + "btx/health", 30)
        chrome, ws_url = driver.start_chromium(exe, tmp / "profile", WIDTH, HEIGHT)
        cdp = protocols.Cdp(ws_url)
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        session_a = _open_session(cdp, front_url)
        cases = cdp.wait_js("window.trame && window.trame.state.get('cases')", 30, "the case list")
        _shot(cdp, out / "web_first_screen.png")
        name = case or cases[0]["value"]
        if cdp.js(driver.SELECT_CASE_JS % json.dumps(name)) != "clicked":
            cdp.js(f"window.trame.state.set('selected_case', {json.dumps(name)})")
        cdp.wait_js("window.trame.state.get('loaded_case') || (window.trame.state.get('error') ? "
                    "'error: ' + window.trame.state.get('error') : null)", timeout, f"case {name} shown")
        cdp.wait_js("document.querySelectorAll('#views img').length >= 4 && "
                    "[...document.querySelectorAll('#views img')].every(i => i.naturalWidth > 0)", 60, "the views")
        cdp.js("window.trame.state.set('overlay', 'probability:ET')")
        time.sleep(4)
        _shot(cdp, out / "web_after_run.png")
        # Two sessions in one window: the analysed session (its state lives on its server) beside a new one.
        page = tmp / "two.html"
        page.write_text(f"<!doctype html><html><body style='margin:0;display:flex;background:#000'>"
                        f"<iframe src='{session_a}/' style='width:50%;height:100vh;border:0;border-right:3px solid "
                        f"#888'></iframe><iframe src='{front_url}' style='width:50%;height:100vh;border:0'></iframe>"
                        "</body></html>")
        cdp.call("Page.navigate", url=page.as_uri())
        time.sleep(45)  # the second session's process starts, its page connects and draws
        _shot(cdp, out / "web_two_sessions.png", 2 * WIDTH, HEIGHT)
        return {"case": name, "session": session_a, "files": sorted(p.name for p in out.glob("web_*.png"))}
    finally:
        if cdp is not None:
            cdp.close()
        driver.kill(chrome)
        driver.stop(front, timeout=40)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    p.add_argument("--case")
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args(argv)
    print(json.dumps(run(a.data_dir, a.results, a.out, a.case, a.timeout), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
