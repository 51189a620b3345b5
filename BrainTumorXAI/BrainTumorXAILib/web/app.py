"""``braintumorxai view``: the analysis in a browser, on Slicer's own core (trame-slicer).

One trame server holds one Slicer MRML scene rendered by trame-slicer's slice
and 3D views (remote-controlled areas).  The page lists the data folder's cases,
takes an uploaded case (four NIfTI files or a zip, see :mod:`.uploads`), runs the
analysis in a child process with a progress bar and a Cancel button (:mod:`.jobs`)
and shows the results loaded by the Slicer module's Logic (:mod:`.scene`).  Downloads (results zip, .mrb scene) and uploads go
through plain HTTP routes on the same server so large files never travel over
the websocket.

trame shares one state among the browser connections of a server, so every open
page shows the same scene and one analysis runs at a time (a second one is
refused with a message until it ends or is cancelled).  Uploads are per
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
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import webbrowser
import zipfile
from pathlib import Path

os.environ.setdefault("VTK_SMP_BACKEND_IN_USE", "STDThread")

from .jobs import JobBusy, JobOptions, JobRunner, default_results_dir, is_complete  # noqa: E402
from .scene import VIEW_PRESETS  # noqa: E402
from .uploads import GIB, UploadError, UploadLimits, UploadSession, check_name  # noqa: E402

LAYOUT_ID = "BrainTumorXAI"
ROUTE = "/btx"


def _layout():
    from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

    return Layout(LayoutDirection.Horizontal, [
        Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view()]),
        Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.threed_view(), ViewLayoutDefinition.sagittal_view()]),
    ])


class ViewerApp:
    def __init__(self, data_dir: Path | None, results_dir: Path | None = None, options: JobOptions | None = None,
                 limits: UploadLimits | None = None, server=None):
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories

        from .scene import ResultsScene

        self.data_dir = Path(data_dir).resolve() if data_dir else None
        self.results_dir = Path(results_dir or default_results_dir())
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or UploadLimits()
        self.runner = JobRunner(self.results_dir, options or JobOptions())
        self.server = server or get_server(None, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.state, self.ctrl = self.server.state, self.server.controller

        self.slicer_app = SlicerApp()
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

    # -- state ---------------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        s = self.state
        s.trame__title = "BrainTumorXAI viewer"
        s.error = ""  # before the scan: a data-folder scan error is shown
        s.info = ""
        s.cases = self._scan_cases()
        s.selected_case = None
        s.busy = False
        s.progress = 0
        s.progress_text = ""
        s.loaded_case = ""
        s.overlay_items = [{"title": "None", "value": "none"}]
        s.overlay = "none"
        s.opacity = 0.6
        s.legend = None
        s.show_seg = True
        s.preset = "all"
        s.preset_items = [{"title": t, "value": v} for v, t in VIEW_PRESETS.items()]
        s.volumes = []
        s.metrics = []
        s.max_upload = f"{self.limits.max_total_bytes / GIB:.1f} GB"
        s.change("selected_case")(self._on_case)
        s.change("overlay")(self._on_overlay)
        s.change("opacity")(lambda opacity, **_: self._update(self.results.set_opacity, opacity))
        s.change("preset")(self._on_preset)
        s.change("show_seg")(lambda show_seg, **_: self._update(self.results.set_segmentation_visible, show_seg))

    def _scan_cases(self) -> list[dict]:
        from ..case_io import list_cases

        self._cases = {}
        if self.data_dir is None:
            return []
        try:
            folders = list_cases(self.data_dir)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            self.state.error = str(exc)
            return []
        for folder in folders:
            self._cases[folder.name] = folder
        return [{"title": name, "value": name} for name in self._cases]

    def _update(self, fn, *args):
        fn(*args)
        self._render_all()

    def _render_all(self) -> None:
        for view in self.slicer_app.view_manager.get_views():
            view.schedule_render()

    # -- cases and jobs --------------------------------------------------------------------------------------
    def _on_case(self, selected_case, **_):
        if not selected_case:
            return
        folder = self._cases.get(selected_case)
        if folder is None:
            return
        if self.runner.busy:  # the dropdown is disabled while busy; another tab (shared state) may still set it
            self.state.error = self._busy_message()
            return
        self.state.error = ""
        try:
            out = self.runner.results_for(folder)
        except Exception as exc:  # noqa: BLE001
            self.state.error = str(exc)
            return
        self._open_or_run(folder, out)

    def _busy_message(self) -> str:
        job = self.runner.current
        what = job.case_dir.name if job is not None else "a case"
        return f"the analysis of {what} is still running; wait for it or cancel it before starting another"

    def _open_or_run(self, case_dir: Path, out_dir: Path) -> None:
        if is_complete(out_dir):
            self._show_results(out_dir, case_dir)
            return
        job = self.runner.submit(case_dir, out_dir)  # JobBusy while one runs (callers check runner.busy first)
        self.state.busy, self.state.progress, self.state.progress_text = True, 0, f"analysing {case_dir.name}..."
        self._start_polling(job)

    def _start_polling(self, job) -> None:
        from trame_server.utils.asynchronous import create_task

        if self._poll_task is not None and not self._poll_task.done():
            self._poll_task.cancel()  # (cannot happen: submit refuses while a job is unsettled)

        async def poll():
            while not job.settled:  # running, or cancelled and the child not reaped yet
                if job is not self.runner.current:
                    return
                if job.running:
                    with self.state:
                        self.state.progress = round(100 * job.fraction)
                        self.state.progress_text = f"{job.case_dir.name}: {job.stage} {job.message}".strip()
                await asyncio.sleep(0.3)
            if job is not self.runner.current:  # a newer job owns the progress bar
                return
            with self.state:
                self.state.busy = False
                self.state.cancelling = False
                if job.state == "done":
                    self.state.progress = 100
                    self._show_results(job.out_dir, job.case_dir)
                elif job.state == "failed":
                    self.state.error = f"analysis of {job.case_dir.name} failed: {job.error}"
                else:
                    self.state.progress_text = "cancelled"

        self._poll_task = create_task(poll())

    def _cancel_analysis(self) -> None:
        """Cancel button: signal the analysis (a thread reaps it, it can take seconds), the poller sees it end."""
        job = self.runner.current
        if job is None or not job.running:
            return
        self.state.cancelling = True
        self.state.progress_text = f"cancelling {job.case_dir.name}..."
        job.request_cancel()

    def _show_results(self, out_dir: Path, case_dir: Path | None) -> None:
        try:
            summary = self.results.load(out_dir, case_dir)
        except Exception as exc:  # noqa: BLE001 - a broken results folder is a message, not a crash
            self.state.error = f"cannot show {out_dir.name}: {exc}"
            return
        s = self.state
        s.overlay_items = self.results.overlay_items()
        if s.overlay not in [i["value"] for i in s.overlay_items]:
            s.overlay = "none"
        tables = self.results.tables()
        s.volumes, s.metrics = tables["volumes"], tables["metrics"]
        legend = self.results.set_overlay(s.overlay, s.opacity)
        s.legend = legend.as_state() if legend else None
        self.results.show_preset(s.preset)
        self.results.set_segmentation_visible(s.show_seg)
        self.slicer_app.display_manager.reset_views()
        for view in self.slicer_app.view_manager.get_threed_views():
            view.reset_camera()
        self._render_all()
        s.loaded_case = summary.get("case", {}).get("id", out_dir.name)
        s.progress_text = f"showing {s.loaded_case}"

    def _on_overlay(self, overlay, **_):
        legend = self.results.set_overlay(overlay, self.state.opacity)
        self.state.legend = legend.as_state() if legend else None
        self._render_all()

    def _on_preset(self, preset, **_):
        if preset in VIEW_PRESETS:
            self.results.show_preset(preset)
            self._render_all()

    # -- connections: each one's uploads in its own temporary folder -------------------------------------------
    # trame shares one state (and here one MRML scene) among all the browser connections of a server: every tab
    # shows the same case.  Uploads are per connection: the page asks for an upload token once it is connected
    # (trigger btx_upload_token, answered for the connection that called it), sends it with each upload, and the
    # files land in that connection's own UploadSession folder, removed when that connection closes (its
    # analysis cancelled and its results taken off the views first).
    def _configure_protocol(self, protocol) -> None:
        from wslink.websocket import LinkProtocol

        app = self

        class Connections(LinkProtocol):
            def onConnect(self, request, client_id):
                app._connections.add(client_id)

            def onClose(self, client_id):
                app._connection_closed(client_id)

        protocol.registerLinkProtocol(Connections())

    def _upload_token(self):
        """Trigger btx_upload_token: the calling connection's upload token (made on first call)."""
        client_id = getattr(self._web_app, "last_active_client_id", None)  # set by wslink for the calling RPC
        if client_id is None or client_id not in self._connections:
            return None
        for token, owner in self._tokens.items():
            if owner == client_id:
                return token
        token = secrets.token_urlsafe(24)
        self._tokens[token] = client_id
        return token

    def _upload_session(self, token: str | None) -> UploadSession | None:
        """The upload folder of the connection holding ``token``; None for an unknown or closed one."""
        if not token or token not in self._tokens:
            return None
        session = self._uploads.get(token)
        if session is None or session.closed:
            session = self._uploads[token] = UploadSession(self.limits)
        return session

    def _connection_closed(self, client_id) -> None:
        self._connections.discard(client_id)
        for token in [t for t, owner in self._tokens.items() if owner == client_id]:
            del self._tokens[token]
            session = self._uploads.pop(token, None)
            if session is not None:
                self._drop_session(session)

    def _drop_session(self, session: UploadSession) -> None:
        """Remove a closed connection's uploads without blocking the event loop: its analysis is signalled
        and the folder removed once the child is gone (it writes there)."""
        if self.results.out_dir is not None and session.root in self.results.out_dir.parents:
            self._clear_results()
        job = self.runner.current
        if job is not None and session.root in job.out_dir.parents and not job.settled:
            job.request_cancel()

            def remove_when_stopped():
                job.wait(60)
                session.close()

            target = remove_when_stopped
        else:
            target = session.close
        thread = threading.Thread(target=target, name="drop-uploads", daemon=True)
        thread.start()
        self._dropping = [t for t in self._dropping if t.is_alive()] + [thread]

    def _clear_results(self) -> None:
        self.results.clear()
        s = self.state
        s.loaded_case, s.volumes, s.metrics, s.legend = "", [], [], None
        s.overlay_items, s.overlay = [{"title": "None", "value": "none"}], "none"
        s.progress_text = ""
        self._render_all()

    def _drop_uploads(self) -> None:
        """All connections' uploads (server stopping; the analysis is already cancelled)."""
        self._tokens.clear()
        sessions, self._uploads = list(self._uploads.values()), {}
        for session in sessions:
            session.close()
        for thread in self._dropping:
            thread.join(timeout=30)
        self._dropping.clear()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.runner.shutdown()
        self._drop_uploads()
        for tmp in self._tmp_dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        self._tmp_dirs.clear()

    def _temp_download_dir(self, prefix: str) -> Path:
        """A folder for one download, removed after 10 minutes or when the server stops."""
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self._tmp_dirs.append(tmp)
        timer = threading.Timer(600, shutil.rmtree, args=(tmp,), kwargs={"ignore_errors": True})
        timer.daemon = True  # never keeps a stopping server alive
        timer.start()
        return tmp

    # -- HTTP routes: upload, downloads ----------------------------------------------------------------------------
    def _bind_routes(self, wslink_server) -> None:
        from aiohttp import web

        self._web_app = wslink_server
        app = wslink_server.app
        app.router.add_post(f"{ROUTE}/upload", self._handle_upload)
        app.router.add_get(f"{ROUTE}/results.zip", self._handle_results_zip)
        app.router.add_get(f"{ROUTE}/scene.mrb", self._handle_scene)
        app.router.add_get(f"{ROUTE}/health", lambda request: web.json_response({"ok": True}))

    async def _handle_upload(self, request):
        from aiohttp import web

        token = request.query.get("token")
        if not token or token not in self._tokens:
            msg = "this page's upload session has ended (its connection closed): reload the page"
            return web.json_response({"ok": False, "error": msg, "code": "no-session"}, status=403)
        if self.runner.busy:
            msg = self._busy_message()
            with self.state:
                self.state.error = msg
            return web.json_response({"ok": False, "error": msg}, status=409)
        session = self._upload_session(token)
        try:
            folder, case_id = await self._receive_upload(request, session)
        except UploadError as exc:
            with self.state:
                self.state.error = str(exc)
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        except Exception as exc:  # noqa: BLE001 - never crash the server on a bad request
            msg = f"upload failed: {type(exc).__name__}: {exc}"
            with self.state:
                self.state.error = msg
            return web.json_response({"ok": False, "error": msg}, status=400)
        with self.state:
            if self.runner.busy:  # another upload or a case started while this one was arriving
                session.remove(folder)
                self.state.error = self._busy_message()
                return web.json_response({"ok": False, "error": self.state.error}, status=409)
            self.state.error = ""
            self.state.info = f"uploaded case {case_id}"
            try:
                self._open_or_run(folder, folder.parent / "results")
            except JobBusy as exc:
                self.state.error = str(exc)
                return web.json_response({"ok": False, "error": str(exc)}, status=409)
        return web.json_response({"ok": True, "case": case_id})

    async def _receive_upload(self, request, session: UploadSession):
        limit = self.limits.max_total_bytes
        if request.content_length is not None and request.content_length > limit + (1 << 20):
            raise UploadError(f"the upload is larger than the limit of {limit / GIB:.1f} GB")
        if not request.content_type.startswith("multipart/"):
            raise UploadError("expected a multipart/form-data upload")
        staging = Path(tempfile.mkdtemp(prefix="incoming-", dir=session.root))
        try:
            reader = await request.multipart()
            files, total = [], 0
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not part.filename:
                    continue
                name = check_name(part.filename)
                if len(files) >= self.limits.max_files:
                    raise UploadError(f"more than {self.limits.max_files} files uploaded")
                target = staging / f"{len(files):02d}"
                with open(target, "wb") as out:
                    while True:
                        chunk = await part.read_chunk(1 << 20)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > limit:
                            raise UploadError(f"{name}: the upload is larger than the limit of {limit / GIB:.1f} GB")
                        out.write(chunk)
                files.append((name, target))
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, session.add, files)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def _handle_results_zip(self, request):
        from aiohttp import web

        out = self.results.out_dir
        if out is None or not is_complete(out):
            return web.json_response({"ok": False, "error": "no results are shown"}, status=404)
        tmp = self._temp_download_dir("braintumorxai-zip-")
        name = f"{self.state.loaded_case or out.name}_results.zip"
        path = tmp / name

        def build():
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # outputs are gzip/png already
                for f in sorted(out.rglob("*")):
                    if f.is_file():
                        zf.write(f, f"{out.name}/{f.relative_to(out)}")

        await asyncio.get_running_loop().run_in_executor(None, build)
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def _handle_scene(self, request):
        from aiohttp import web

        if self.results.out_dir is None:
            return web.json_response({"ok": False, "error": "no results are shown"}, status=404)
        tmp = self._temp_download_dir("braintumorxai-mrb-")
        name = f"{self.state.loaded_case or 'scene'}.mrb"
        path = tmp / name
        try:
            self.results.save_bundle(path)  # the scene shown, written by the Logic (as Slicer's Save)
        except Exception as exc:  # noqa: BLE001
            shutil.rmtree(tmp, ignore_errors=True)
            return web.json_response({"ok": False, "error": str(exc)}, status=500)
        return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- page --------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        from trame.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame.widgets import html
        from trame.widgets import vuetify3 as v3

        # The upload token belongs to this page's connection (see _upload_token); asked for once, and again when
        # the server no longer knows it (the websocket reconnected as a new connection).  The handler is an arrow
        # function, which Vue calls with the event (an invoked function expression "(async (ev) => ...)($event)"
        # also looks like a function to Vue's compiler: it ran once at render time and the input never uploaded).
        # Template expressions see the state, trame, utils, window and a few allowed globals (Math, JSON...):
        # browser APIs go through window.
        upload_js = (
            "async (ev) => { const fd = new window.FormData();"
            " for (const f of ev.target.files) fd.append('files', f, f.name);"
            " ev.target.value = ''; uploading = true; error = '';"
            " const send = async (fresh) => { if (fresh || !window.btxUploadToken)"
            " window.btxUploadToken = await trame.trigger('btx_upload_token');"
            f" return window.fetch('{ROUTE.lstrip('/')}/upload?token=' + encodeURIComponent(window.btxUploadToken || ''),"
            " {method: 'POST', body: fd}); };"
            " try { let r = await send(false); if (r.status === 403) r = await send(true);"
            " const j = await r.json(); if (!j.ok) { error = j.error; } }"
            " catch (e) { error = 'upload failed: ' + e; } uploading = false; }"
        )
        self.state.uploading = False
        self.state.cancelling = False
        self.ctrl.cancel_analysis = self._cancel_analysis
        with SinglePageWithDrawerLayout(self.server, theme="dark") as ui:
            ui.title.set_text("BrainTumorXAI")
            ui.root.theme = "dark"
            with ui.toolbar:
                v3.VSpacer()
                v3.VSelect(label="Case", items=("cases",), v_model=("selected_case",), density="compact",
                           hide_details=True, style="max-width: 320px;", classes="mx-2", id="case-select",
                           disabled=("busy",))
                with html.Label(classes="v-btn v-btn--variant-outlined mx-2 px-3", style="cursor: pointer;",
                                title=("`NIfTI files (t1, t1ce, t2, flair) or one zip, up to ${max_upload}`",)):
                    html.Span("Upload case")
                    html.Input(type="file", multiple=True, accept=".nii,.gz,.zip", style="display: none;",
                               id="upload-input", change=upload_js, disabled=("busy || uploading",))
                v3.VBtn("Results (zip)", href=f"{ROUTE.lstrip('/')}/results.zip", target="_blank",
                        disabled=("!loaded_case",), variant="text", prepend_icon="mdi-download")
                v3.VBtn("Scene (.mrb)", href=f"{ROUTE.lstrip('/')}/scene.mrb", target="_blank",
                        disabled=("!loaded_case",), variant="text", prepend_icon="mdi-download")
            with ui.drawer as drawer:
                drawer.width = 330
                with html.Div(classes="pa-3"):
                    v3.VProgressLinear(v_model=("progress",), height=18, color="primary", v_show=("busy || uploading",),
                                       indeterminate=("uploading || cancelling",), id="progress")
                    v3.VBtn("Cancel analysis", click=self.ctrl.cancel_analysis, v_show=("busy",),
                            disabled=("cancelling",), size="small", variant="outlined", color="error",
                            prepend_icon="mdi-close", classes="my-1", id="cancel-analysis")
                    html.Div("{{ progress_text }}", classes="text-caption mb-2", id="progress-text")
                    v3.VAlert(text=("error",), type="error", density="compact", v_show=("error",),
                              closable=True, id="error", classes="mb-2")
                    html.Div("{{ loaded_case }}", id="loaded-case", classes="text-subtitle-1 mb-2",
                             v_show=("loaded_case",))
                    v3.VSelect(label="Overlay", items=("overlay_items",), v_model=("overlay",), density="compact",
                               hide_details=True, id="overlay-select")
                    v3.VSlider(label="Opacity", v_model=("opacity",), min=0, max=1, step=0.05, hide_details=True,
                               density="compact")
                    with html.Div(v_if=("legend",), classes="mb-2", id="legend"):
                        html.Div("{{ legend.title }}", classes="text-caption")
                        html.Div(style=("{height: '12px', background: legend.gradient, borderRadius: '2px'}",))
                        with html.Div(classes="d-flex text-caption"):
                            html.Span("{{ legend.min }}")
                            v3.VSpacer()
                            html.Span("{{ legend.max }}")
                    v3.VCheckbox(label="Segmentation in slices", v_model=("show_seg",), density="compact",
                                 hide_details=True)
                    html.Div("View", classes="text-caption")
                    with v3.VBtnToggle(v_model=("preset",), mandatory=True, density="compact", divided=True,
                                       variant="outlined", classes="flex-wrap mb-2", id="preset"):
                        for value, title in VIEW_PRESETS.items():
                            v3.VBtn(title, value=value, size="small")
                    with v3.VTable(density="compact", v_show=("volumes.length",), classes="mt-2"):
                        with html.Thead():
                            with html.Tr():
                                html.Th("Region")
                                html.Th("Volume (cm³)")
                        with html.Tbody():
                            with html.Tr(v_for="row in volumes", key="row.name"):
                                html.Td("{{ row.name }}")
                                html.Td("{{ row.volume }}")
                    with v3.VTable(density="compact", v_show=("metrics.length",), classes="mt-2", id="metrics"):
                        with html.Thead():
                            with html.Tr():
                                for h in ("Region", "Dice", "HD95 (mm)", "Sens.", "Prec."):
                                    html.Th(h)
                        with html.Tbody():
                            with html.Tr(v_for="m in metrics", key="m.region"):
                                for k in ("region", "dice", "hd95", "sensitivity", "precision"):
                                    html.Td(f"{{{{ m.{k} }}}}")
            with ui.content:
                with html.Div(style="position: relative; width: 100%; height: calc(100vh - 92px);", id="views"):
                    self.layout_manager.initialize_layout_grid(ui)
        self.ui = ui


def _free_argv():
    """trame parses sys.argv itself; give it nothing of ours."""
    saved = sys.argv
    sys.argv = [saved[0]]
    return saved


def serve(data_dir=None, host: str = "127.0.0.1", port: int = 8080, open_browser: bool = False, *,
          results_dir=None, weights=None, mc_samples: int = 20, gradcam: str = "all", device: str = "auto",
          max_upload_bytes: int = 2 * GIB, max_uncompressed_bytes: int = 4 * GIB) -> int:
    """Run the web viewer until interrupted; returns the exit status."""
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
    a = p.parse_args(argv)
    return serve(a.data_dir, host=a.host, port=a.port, open_browser=a.open, results_dir=a.results, weights=a.weights,
                 mc_samples=a.mc_samples, gradcam=a.gradcam, device=a.device,
                 max_upload_bytes=int(a.max_upload_mb * 1024 * 1024))


if __name__ == "__main__":
    sys.exit(main())
