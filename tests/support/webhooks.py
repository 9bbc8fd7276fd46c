"""A webhook receiver for the tests: a real HTTP server (the standard library's, in a
thread, plain or TLS) that keeps every delivery it gets, answers the status a test
sets, can be stopped and started again on the same port (a receiver that is down for
a while), and checks signatures the way the README tells receivers to: written here
from the documented scheme, never with the issuer's signer::

    Tapstack-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Receiver", "signature_valid", "wait_for"]


def signature_valid(header: str, body: bytes, secret: str, *, tolerance: float = 300) -> bool:
    """Whether ``header`` (``t=...,v1=...[,v1=...]``) holds a v1 that is the HMAC-SHA256
    of ``"<t>.<body>"`` under ``secret`` (its UTF-8 text), with ``t`` within
    ``tolerance`` seconds of now; compared in constant time."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [v for k, v in fields if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    if abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(
        secret.encode("utf-8"), stamps[0].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in fields if k == "v1")


@dataclass(frozen=True)
class Received:
    """One delivery as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event_id(self) -> str:
        return self.headers["tapstack-event-id"]


class Receiver:
    """An HTTP(S) server on 127.0.0.1 that records POSTs (module docstring)."""

    def __init__(self, context: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.context = context
        self.port = port
        self.received: list[Received] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks?src=tapstack"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes: no wait for a delayed ACK.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.status
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                answer = b'{"ok":true}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.context is not None:
            server.socket = self.context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections to the port are refused until :meth:`start`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def reserve(self) -> Receiver:
        """Take a free port without listening on it yet (a receiver that is down)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        return self

    def ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.received]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Any, timeout: float = 30.0, step: float = 0.02) -> bool:
    """Poll ``condition()`` until true or ``timeout`` (bounded waits for other
    processes; no assertion on the time it took)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
