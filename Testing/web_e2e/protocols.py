"""The two protocols the end-to-end driver speaks: trame's websocket (wslink) as a page does, and Chromium's
DevTools protocol for one page.  Only loopback addresses are contacted."""

from __future__ import annotations

import json
import time


class TrameConnection:
    """One websocket connection to the trame server, as a browser page makes it (wslink protocol: msgpack
    messages in chunks), without a browser: call triggers, read the shared state the server pushes."""

    SECRET = "wslink-secret"  # trame's default

    def __init__(self, base_url: str, timeout: float = 30):
        import websocket  # websocket-client
        from wslink.chunking import UnChunker

        self.timeout = float(timeout)
        self.ws = websocket.create_connection(base_url.replace("http://", "ws://", 1) + "/ws", timeout=timeout,
                                              suppress_origin=True)
        self.unchunker = UnChunker()
        self.state: dict = {}
        self._count = 0
        hello = self._request("system:c0:0", "wslink.hello", [{"secret": self.SECRET}])
        self.client_id = hello["clientID"]
        self.unchunker.set_max_message_size(1 << 30)
        self.state.update(self.call("trame.state.get").get("state", {}))

    def _send(self, key: str, method: str, args: list) -> None:
        import msgpack
        from wslink.chunking import generate_chunks

        data = msgpack.packb({"wslink": "1.0", "id": key, "method": method, "args": args, "kwargs": {}})
        for chunk in generate_chunks(data, 4 << 20):
            self.ws.send_binary(chunk)

    def _receive(self, end: float | None = None):
        """The next complete message (state pushes applied to :attr:`state`).

        ``end`` (``time.monotonic()``) bounds the whole wait, also while frames that complete no message keep
        arriving: past it, WebSocketTimeoutException."""
        import websocket

        while True:
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    raise websocket.WebSocketTimeoutException("deadline passed")
                self.ws.settimeout(left)
            frame = self.ws.recv_data()
            if frame[0] != websocket.ABNF.OPCODE_BINARY:
                continue
            msg = self.unchunker.process_chunk(frame[1])
            if msg is None:
                continue
            topic = str(msg.get("id", "")).split(":")
            if topic[0] == "publish" and len(topic) > 1 and topic[1] == "trame.state.topic":
                self.state.update(msg.get("result") or {})
            return msg

    def _request(self, key: str, method: str, args: list, timeout: float | None = None):
        """Send one request and read messages until its reply; TimeoutError after ``timeout`` s (default: the
        connection's), however many other messages (state pushes) arrive meanwhile."""
        import websocket

        timeout = self.timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        self._send(key, method, args)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to {method} within {timeout:.0f} s")
            try:
                msg = self._receive(end)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no reply to {method} within {timeout:.0f} s") from None
            except websocket.WebSocketConnectionClosedException:
                raise ConnectionError(f"the server closed the connection while waiting for {method}") from None
            if msg.get("id") == key:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result")

    def call(self, method: str, *args):
        self._count += 1
        return self._request(f"rpc:{self.client_id}:{self._count}", method, list(args))

    def trigger(self, name: str, *args):
        return self.call("trame.trigger", name, list(args), {})

    def wait_state(self, predicate, timeout: float = 10.0) -> dict:
        """Read the server's pushes until ``predicate(state)`` holds; the state."""
        import websocket

        end = time.monotonic() + timeout
        while not predicate(self.state):
            if time.monotonic() > end:
                raise TimeoutError(f"state never matched within {timeout:.0f} s: "
                                   f"{ {k: self.state.get(k) for k in ('error', 'busy')} }")
            try:
                self._receive(max(end, time.monotonic() + 0.1))
            except websocket.WebSocketTimeoutException:
                pass
            except websocket.WebSocketConnectionClosedException:
                raise ConnectionError("the server closed the connection while waiting for a state") from None
        return self.state

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


class Cdp:
    """A minimal DevTools client for one page."""

    def __init__(self, ws_url: str, timeout: float = 60.0):
        import websocket  # websocket-client

        self.timeout = float(timeout)
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params):
        """One DevTools command; TimeoutError after ``self.timeout`` s even while events keep arriving."""
        import websocket

        self._id += 1
        mid = self._id
        end = time.monotonic() + self.timeout
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no DevTools reply to {method} within {self.timeout:.0f} s")
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no DevTools reply to {method} within {self.timeout:.0f} s") from None
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS error in {expr[:80]!r}: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def wait_js(self, expr: str, timeout: float, what: str, poll: float = 0.5):
        end = time.time() + timeout
        while time.time() < end:
            try:
                value = self.js(expr)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
