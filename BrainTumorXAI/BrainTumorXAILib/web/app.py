"""``braintumorxai view``: the analysis in a browser, on Slicer's own core (trame-slicer).

One trame server holds one Slicer MRML scene rendered by trame-slicer's slice
and 3D views (remote-controlled areas).  The page lists the data folder's cases,
takes an uploaded case (four NIfTI files or a zip, see :mod:`.uploads`), runs the
analysis in a child process with a progress bar and a Cancel button (:mod:`.jobs`)
and shows the results loaded by the Slicer module's Logic (:mod:`.scene`).  Downloads (results zip, .mrb scene) and uploads go
through plain HTTP routes on the same server so large files never travel over
the websocket.

trame shares one state among the browser connections of a server, so the pages
connected to one server show the same scene and one analysis runs at a time (a
second one is refused with a message until it ends or is cancelled);
``braintumorxai view`` therefore runs one such server per browser session
(:mod:`.launcher`).  Uploads are per
connection: each page gets its own token and temporary folder, removed when that
connection closes.

Runs on CPU-only servers: 3D views render through EGL/OSMesa (llvmpipe) with
depth peeling off, which llvmpipe cannot do with multisampling (translucent
surfaces would vanish).

SIGTERM and SIGINT stop the server cleanly: the running analysis is cancelled,
upload folders and temporary downloads are removed, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import sys
import threading
import webbrowser
from pathlib import Path

os.environ.setdefault("VTK_SMP_BACKEND_IN_USE", "STDThread")

from .connections import ConnectionsMixin  # noqa: E402
from .handlers import HandlersMixin  # noqa: E402
from .jobs import JobOptions, JobRunner, default_results_dir  # noqa: E402
from .layout import LAYOUT_ID, LayoutMixin, _layout  # noqa: E402
from .state import StateMixin  # noqa: E402
from .uploads import GIB, UploadLimits, UploadSession  # noqa: E402

class ViewerApp(StateMixin, ConnectionsMixin, HandlersMixin, LayoutMixin):
    """The web viewer: one trame server, one MRML scene; composed from :class:`~.state.StateMixin` (state and its
    reactions), :class:`~.connections.ConnectionsMixin` (per-connection uploads), :class:`~.handlers.HandlersMixin`
    (HTTP routes) and :class:`~.layout.LayoutMixin` (the page)."""

    def __init__(self, data_dir: Path | None, results_dir: Path | None = None, options: JobOptions | None = None,
                 limits: UploadLimits | None = None, server=None):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        from .results_scene import ResultsScene
        from .vtk_messages import quiet_harmless_vtk_messages

        quiet_harmless_vtk_messages()  # before the first render window: "bad X server connection" on a server
        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.results_dir = Path(results_dir or default_results_dir())
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or UploadLimits()
        self.runner = JobRunner(self.results_dir, options or JobOptions())
        self.server = server or get_server(None, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state, self.ctrl = self.server.state, self.server.controller

        self.slicer_app = SlicerApp()
        quiet_harmless_vtk_messages()  # Slicer's application logic installed an output window of its own
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout(LAYOUT_ID, _layout())
        self._fix_threed_rendering()
        self.results = ResultsScene(self.slicer_app)

        self._cases: dict[str, Path] = {}
        self._case_dirs: dict[str, Path] = {}
        self._connections: set[str] = set()  # wslink client ids of the open websocket connections
        self._tokens: dict[str, str] = {}  # upload token -> client id
        self._uploads: dict[str, UploadSession] = {}  # upload token -> that connection's folder
        self._web_app = None  # wslink's server, for the client id of the connection calling a trigger
        self._dropping: list[threading.Thread] = []  # removing closed connections' folders
        self._poll_task = None
        self._tmp_dirs: list[Path] = []
        self._closed = False
        self._init_state()
        self._build_ui()
        self.layout_manager.set_layout(LAYOUT_ID)
        self._fix_threed_rendering()
        self._watch_slices()
        self.server.add_protocol_to_configure(self._configure_protocol)
        self.ctrl.on_server_bind.add(self._bind_routes)
        self.ctrl.trigger("btx_upload_token")(self._upload_token)
        atexit.register(self.close)

    # -- rendering on CPU-only machines ------------------------------------------------------------------------
    def _fix_threed_rendering(self) -> None:
        for view in self.slicer_app.view_manager.get_threed_views():
            view.renderer().SetUseDepthPeeling(False)
            view.renderer().SetUseDepthPeelingForVolumes(False)
            view.set_background_color([20, 20, 30]) if hasattr(view, "set_background_color") else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.runner.shutdown()
        self._drop_uploads()
        for tmp in self._tmp_dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        self._tmp_dirs.clear()


def _free_argv():
    """trame parses sys.argv itself; give it nothing of ours."""
    saved = sys.argv
    sys.argv = [saved[0]]
    return saved


def serve(data_dir=None, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False, *,
          results_dir=None, weights=None, mc_samples: int = 20, gradcam: str = "all", device: str = "auto",
          max_upload_bytes: int = 2 * GIB, max_uncompressed_bytes: int = 4 * GIB,
          exit_when_idle: float | None = None, announce: bool = True) -> int:
    """Run one viewer (one scene) until interrupted; returns the exit status.

    ``exit_when_idle``: stop once no page has been connected for that many seconds (a session process of
    :mod:`.launcher`).  ``announce``: print the address to open once the server listens."""
    from ..errors import BrainTumorXAIError

    if data_dir is not None and not Path(data_dir).is_dir():
        raise BrainTumorXAIError(f"{data_dir}: data folder does not exist or is not a folder")
    options = JobOptions(weights=Path(weights) if weights else None, device=device, mc_samples=mc_samples,
                         gradcam=gradcam)
    limits = UploadLimits(max_total_bytes=max_upload_bytes, max_uncompressed_bytes=max_uncompressed_bytes)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach it can upload and run analyses", file=sys.stderr)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    saved = _free_argv()
    # Until the event loop runs (building the app takes seconds) a signal simply interrupts; then
    # _install_signal_handlers takes over on the loop.
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    app = None
    try:
        app = ViewerApp(Path(data_dir) if data_dir else None, results_dir, options, limits)
        if open_browser:
            app.ctrl.on_server_ready.add(lambda **_: webbrowser.open(url))
        app.ctrl.on_server_ready.add(lambda **_: _install_signal_handlers(app))
        if announce:
            app.ctrl.on_server_ready.add(lambda **_: print(f"braintumorxai view: open {url} in a browser "
                                                           "(Ctrl+C stops the server)", flush=True))
        if exit_when_idle:
            app.ctrl.on_server_ready.add(lambda **_: _stop_when_idle(app, exit_when_idle))
        # thread=True only switches off aiohttp's own SIGINT/SIGTERM handlers (they abort the loop with an
        # exception); ours stop the trame server, so start() returns normally.
        app.server.start(port=port, host=host, open_browser=False, timeout=0, show_connection_info=False,
                         thread=True)
    except KeyboardInterrupt:
        pass
    finally:
        sys.argv = saved
        if app is not None:
            app.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("braintumorxai view: stopped", file=sys.stderr, flush=True)
    return 0


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _install_signal_handlers(app: ViewerApp) -> None:
    """SIGTERM/SIGINT on the running event loop: cancel the analysis, stop the trame server (serve() returns).

    A second signal while stopping gets the default action (SIGTERM kills, SIGINT raises KeyboardInterrupt).
    """
    loop = asyncio.get_running_loop()

    def on_signal(signum):
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        print(f"braintumorxai view: {signal.Signals(signum).name} received, stopping", file=sys.stderr, flush=True)

        async def stop():
            await loop.run_in_executor(None, app.runner.shutdown)
            await app.server.stop()

        loop.create_task(stop())

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)


#: Seconds a session's first page has to connect (the launcher's redirect), whatever the idle time.
FIRST_PAGE_S = 60.0


def _stop_when_idle(app: ViewerApp, seconds: float) -> None:
    """Stop the server once no page has been open for ``seconds`` after the last one closed (or for
    ``FIRST_PAGE_S``, if longer, after the start)."""
    loop = asyncio.get_running_loop()

    async def watch():
        idle_since, allowed = loop.time(), max(seconds, FIRST_PAGE_S)
        while True:
            await asyncio.sleep(min(1.0, seconds / 4))
            if app._connections:
                idle_since, allowed = None, seconds
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since >= allowed:
                print(f"braintumorxai view: no page open for {seconds:g} s, stopping", file=sys.stderr, flush=True)
                await loop.run_in_executor(None, app.runner.shutdown)
                await app.server.stop()
                return

    loop.create_task(watch())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="braintumorxai-view", description=__doc__.splitlines()[0])
    p.add_argument("data_dir", nargs="?", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--results", type=Path, help="cache folder for analyses (default: per-user cache)")
    p.add_argument("--weights", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--mc-samples", type=int, default=20)
    p.add_argument("--gradcam", default="all")
    p.add_argument("--max-upload-mb", type=float, default=2048)
    p.add_argument("--open", action="store_true", help="open the system browser")
    p.add_argument("--exit-when-idle", type=float, metavar="S", help="stop after S seconds without an open page")
    a = p.parse_args(argv)
    return serve(a.data_dir, host=a.host, port=a.port, open_browser=a.open, results_dir=a.results, weights=a.weights,
                 mc_samples=a.mc_samples, gradcam=a.gradcam, device=a.device,
                 max_upload_bytes=int(a.max_upload_mb * 1024 * 1024), exit_when_idle=a.exit_when_idle)


if __name__ == "__main__":
    sys.exit(main())
