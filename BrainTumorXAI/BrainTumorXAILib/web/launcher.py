"""``braintumorxai view``: one viewer process per browser session, started on demand.

A trame server shares one state, and here one MRML scene, among all its connections: two tabs would see and
change each other's case.  As wslink's launcher does for ParaView Web, this small front server gives every
visit of its page a viewer process of its own (:func:`.app.serve`, on the next free port above the front's),
waits until it answers, and sends the browser there.  A session's process stops by itself once no page has been
open for ``idle_s`` seconds; at most ``max_sessions`` run at once, and a visit past that gets a page saying so.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Seconds a session's process waits without any open page before it stops (a reload reconnects well within it).
IDLE_S = 60.0
#: Seconds a new session's process may take to start listening.
START_TIMEOUT_S = 120.0


@dataclass
class Session:
    token: str
    port: int
    process: subprocess.Popen
    started: float
    ready: bool = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;background:#121212;color:#eee;display:flex;align-items:center;"
            "justify-content:center;height:90vh}div{max-width:36em;text-align:center;line-height:1.5}</style>"
            f"</head><body><div id='message'>{body}</div>{script}</body></html>")


class SessionLauncher:
    """The front server: ``/`` starts a session and forwards the page to it; ``/btx/sessions`` lists them."""

    def __init__(self, viewer_args: list[str], host: str = "127.0.0.1", port: int = 8080, max_sessions: int = 4,
                 idle_s: float = IDLE_S, log_dir: Path | None = None, public_host: str | None = None):
        self.viewer_args, self.host, self.port = list(viewer_args), host, int(port)
        self.max_sessions, self.idle_s = max(1, int(max_sessions)), float(idle_s)
        self.public_host = public_host or ("127.0.0.1" if host in ("0.0.0.0", "", "::") else host)
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="btx-sessions-"))
        self.sessions: dict[str, Session] = {}

    # -- sessions ---------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        for token in [t for t, s in self.sessions.items() if not s.alive]:
            del self.sessions[token]

    def _next_port(self) -> int:
        taken = {s.port for s in self.sessions.values()}
        for port in range(self.port + 1, self.port + 1 + 10 * self.max_sessions):
            if port not in taken and _port_free(self.host, port):
                return port
        raise RuntimeError("no free port for a new session")

    def start_session(self) -> Session | None:
        """A new viewer process, or None when ``max_sessions`` already run."""
        self._reap()
        if len(self.sessions) >= self.max_sessions:
            return None
        token, port = secrets.token_urlsafe(12), self._next_port()
        cmd = [sys.executable, "-m", "BrainTumorXAILib.web.app", *self.viewer_args, "--host", self.host,
               "--port", str(port), "--exit-when-idle", str(self.idle_s)]
        log = open(self.log_dir / f"session-{port}.log", "ab")
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        session = self.sessions[token] = Session(token, port, process, time.monotonic())
        return session

    def url(self, session: Session) -> str:
        return f"http://{self.public_host}:{session.port}/"

    async def _probe(self, session: Session) -> bool:
        """The session's server answers its health route."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.public_host, session.port), 2)
        except (OSError, asyncio.TimeoutError):
            return False
        try:
            writer.write(f"GET /btx/health HTTP/1.0\r\nHost: {self.public_host}\r\n\r\n".encode())
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            return b" 200 " in status
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()

    def stop_all(self, timeout: float = 20.0) -> None:
        for s in self.sessions.values():
            if s.alive:
                s.process.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout
        for s in self.sessions.values():
            try:
                s.process.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                s.process.kill()
        self.sessions.clear()

    # -- HTTP -------------------------------------------------------------------------------------------------
    async def _root(self, request):
        from aiohttp import web

        session = self.start_session()
        if session is None:
            body = (f"All {self.max_sessions} viewer sessions of this server are in use.<br>"
                    "Close a viewer tab (its session ends a minute later) or ask whoever runs the server to raise "
                    "<code>--max-sessions</code>, then reload this page.")
            return web.Response(status=503, text=_page("BrainTumorXAI: server busy", body), content_type="text/html",
                                headers={"Retry-After": str(int(self.idle_s))})
        script = ("<script>const poll = async () => { const r = await fetch('btx/sessions/" + session.token + "');"
                  " const j = await r.json(); if (j.url) { window.location.replace(j.url); return; }"
                  " if (j.error) { document.getElementById('message').textContent = j.error; return; }"
                  " setTimeout(poll, 500); }; poll();</script>")
        return web.Response(text=_page("BrainTumorXAI: starting", "Starting a viewer session for you "
                                       "(a few seconds)...", script), content_type="text/html")

    async def _session(self, request):
        from aiohttp import web

        session = self.sessions.get(request.match_info["token"])
        if session is None or not session.alive:
            return web.json_response({"error": "this viewer session ended; reload the page for a new one"})
        if not session.ready:
            session.ready = await self._probe(session)
        if session.ready:
            return web.json_response({"url": self.url(session)})
        if time.monotonic() - session.started > START_TIMEOUT_S:
            session.process.terminate()
            return web.json_response({"error": f"the viewer session did not start within {START_TIMEOUT_S:.0f} s "
                                               f"(log: {self.log_dir / f'session-{session.port}.log'})"})
        return web.json_response({"starting": True})

    async def _list(self, request):
        from aiohttp import web

        self._reap()
        return web.json_response({"max_sessions": self.max_sessions,
                                  "sessions": [{"port": s.port, "ready": s.ready} for s in self.sessions.values()]})

    async def run(self, on_ready=None) -> None:
        """Serve until SIGINT/SIGTERM; every session's process is stopped on the way out."""
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get("/index.html", self._root)
        app.router.add_get("/btx/sessions", self._list)
        app.router.add_get("/btx/sessions/{token}", self._session)
        app.router.add_get("/btx/health", lambda request: web.json_response({"ok": True}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready()
        try:
            await stop.wait()
        finally:
            await loop.run_in_executor(None, self.stop_all)
            await runner.cleanup()


def serve_sessions(viewer_args: list[str], host: str = "127.0.0.1", port: int = 8080, max_sessions: int = 4,
                   open_browser: bool = False, idle_s: float = IDLE_S) -> int:
    """``braintumorxai view``: the front server until interrupted; returns the exit status."""
    from ..errors import BrainTumorXAIError

    if not _port_free(host, port):
        raise BrainTumorXAIError(f"port {port} on {host} is in use (choose another with --port)")
    launcher = SessionLauncher(viewer_args, host, port, max_sessions, idle_s)
    url = f"http://{launcher.public_host}:{port}/"

    def ready():
        print(f"braintumorxai view: open {url} in a browser (each tab gets its own viewer session, at most "
              f"{launcher.max_sessions} at once, on ports {port + 1} and up; Ctrl+C stops the server)", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    asyncio.run(launcher.run(ready))
    print("braintumorxai view: stopped", file=sys.stderr, flush=True)
    return 0
