"""HTTP routes of the viewer: case upload, results zip and .mrb downloads, health check."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

from .jobs import JobBusy, is_complete
from .uploads import GIB, UploadError, UploadSession, check_name

#: Prefix of the viewer's own HTTP routes.
ROUTE = "/btx"


class HandlersMixin:
    """ViewerApp's HTTP routes (uploads and downloads travel over plain HTTP, never the websocket)."""

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
