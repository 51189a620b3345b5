"""The web test driver cannot hang: a server that accepts the websocket but never answers (while it keeps
sending other messages) makes every wait end with a clear TimeoutError within its deadline."""

from __future__ import annotations

import base64
import hashlib
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("websocket", reason="websocket-client not installed")
pytest.importorskip("wslink", reason="wslink not installed (web extra)")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web_e2e"))
import protocols  # noqa: E402

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ChattyMuteServer:
    """Accepts a websocket handshake, then sends an event (a text frame) every 50 ms and never replies."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        try:
            while not self.stop.is_set():
                payload = b'{"method": "Page.event", "params": {}}'  # an event: never the awaited reply
                conn.sendall(bytes([0x81, len(payload)]) + payload)  # FIN + text frame
                time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture()
def mute_server():
    server = ChattyMuteServer()
    yield server
    server.close()


def test_trame_request_times_out_while_other_messages_keep_arriving(mute_server):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="no reply to wslink.hello within 2 s"):
        protocols.TrameConnection(f"http://127.0.0.1:{mute_server.port}", timeout=2)
    assert time.monotonic() - t0 < 10


def test_devtools_call_times_out_while_other_messages_keep_arriving(mute_server):
    cdp = protocols.Cdp(f"ws://127.0.0.1:{mute_server.port}/devtools", timeout=2)
    t0 = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="no DevTools reply to Runtime.evaluate within 2 s"):
            cdp.js("1 + 1")
    finally:
        cdp.close()
    assert time.monotonic() - t0 < 10
