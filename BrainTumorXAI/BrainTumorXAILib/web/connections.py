"""Browser connections of the viewer: each one's upload token and temporary upload folder."""

from __future__ import annotations

import secrets
import threading

from .uploads import UploadSession


class ConnectionsMixin:
    """ViewerApp's connections: upload tokens per websocket connection, their folders removed on close."""

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

    def _drop_uploads(self) -> None:
        """All connections' uploads (server stopping; the analysis is already cancelled)."""
        self._tokens.clear()
        sessions, self._uploads = list(self._uploads.values()), {}
        for session in sessions:
            session.close()
        for thread in self._dropping:
            thread.join(timeout=30)
        self._dropping.clear()
