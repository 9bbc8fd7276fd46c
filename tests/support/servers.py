"""A server of the code under test (or of a test) answering in a thread of the test.

:func:`serving` runs anything with the life cycle of :class:`socketserver.BaseServer`
(``serve_forever(poll_interval)``, ``shutdown()``, ``server_close()``): a test's own
contract server. :func:`asgi_serving` runs an ASGI application (the issuer's, the back
office's) on the services' own server (:func:`httpserve.server.make_server`: uvicorn
with the limits) on a free loopback port.

:class:`TlsHttpServer` is an HTTP server of a test behind TLS (a server context of
:mod:`emvwire.tls`): each connection's handshake runs in its own thread before any
request is read, a refused handshake is recorded (``refused``) and never reaches the
handler, and :class:`JsonHandler` answers fixed JSON bodies while recording each
request with the client certificate the handshake verified.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol, TypeVar

from httpserve.limits import Limits
from httpserve.server import listen, make_server

__all__ = ["JsonHandler", "Seen", "Server", "TlsHttpServer", "asgi_serving", "serving"]


class Server(Protocol):
    """What :func:`serving` needs of a server."""

    def serve_forever(self, poll_interval: float = ...) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


S = TypeVar("S", bound=Server)


@contextmanager
def serving(server: S, poll_interval: float = 0.05) -> Iterator[S]:
    """``server`` answering in a thread while the block runs; on leaving, stopped
    (``shutdown`` waits for its loop), closed, and its thread joined.

    ``poll_interval`` bounds how long ``shutdown`` waits for the loop to notice: the
    standard library's 0.5 s would be spent in every test's teardown.
    """
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": poll_interval},
        name=f"serving-{type(server).__name__}",
        daemon=True,
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        assert not thread.is_alive(), f"{type(server).__name__} never stopped"


class Seen(NamedTuple):
    """A request :class:`JsonHandler` answered: method, path, ``Authorization`` header
    and the PEM of the client certificate the handshake verified (``None``: none)."""

    method: str
    path: str
    authorization: str | None
    peer: str | None


class TlsHttpServer(ThreadingHTTPServer):
    """An HTTP server of a test on 127.0.0.1 behind TLS with ``context`` (module
    docstring); ``answers`` maps a path (without its query) to the JSON body of a 200."""

    daemon_threads = True

    def __init__(
        self,
        context: ssl.SSLContext,
        answers: dict[str, Any] | None = None,
        handler: type[BaseHTTPRequestHandler] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler or JsonHandler)
        self.context = context
        self.answers = answers or {}
        self.refused: list[str] = []
        self.seen: list[Seen] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"

    def wait_refused(self, timeout: float = 5.0) -> list[str]:
        """The refused handshakes, once there is one (the client may learn of the
        refusal before the server's thread has recorded it)."""
        deadline = time.monotonic() + timeout
        while not self.refused and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.refused

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The handshake (in the connection's thread), then HTTP on the TLS socket."""
        assert isinstance(request, socket.socket)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.refused.append(str(exc))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class JsonHandler(BaseHTTPRequestHandler):
    """Answers :attr:`TlsHttpServer.answers` (404 for another path) and records every
    request in :attr:`TlsHttpServer.seen`."""

    server: TlsHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        peer = ssl.DER_cert_to_PEM_cert(der) if der else None
        self.server.seen.append(
            Seen(self.command, self.path, self.headers.get("Authorization"), peer)
        )
        path = self.path.partition("?")[0]
        found = path in self.server.answers
        data = json.dumps(
            self.server.answers[path]
            if found
            else {"error": {"code": "not_found", "message": path}}
        ).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()


@contextmanager
def asgi_serving(
    app: Any, limits: Limits | None = None, ssl_context: Any = None
) -> Iterator[tuple[str, int]]:
    """``app`` served in a thread on 127.0.0.1 while the block runs: (host, port); on
    leaving, drained as on SIGTERM and its thread joined."""
    sock = listen("127.0.0.1", 0)
    server = make_server(app, limits, ssl_context)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="asgi-serving", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.started, "the server did not start"
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "the server never stopped"
