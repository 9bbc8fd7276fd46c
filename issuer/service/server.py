"""HTTP/1.1 transport of the authorisation service (RFC 9112), on the standard library.

One listening socket; ``workers`` processes (``os.fork`` after binding, each opening
its own key store and ledger connections) each run a threaded server on it, so that
cryptography and JSON use more than one core despite the GIL. Keep-alive connections;
bodies need ``Content-Length``. Every failure is an answer from
:class:`~issuer.service.api.Api`, never a traceback to the client.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from issuer.service.api import MAX_BODY, Api

__all__ = ["make_server", "serve"]

log = logging.getLogger("issuer.service")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tapstack-issuer"
    sys_version = ""
    # The headers and the body are two writes: without TCP_NODELAY, Nagle's algorithm
    # holds the body until the client's delayed ACK (40 ms on Linux) of the headers.
    disable_nagle_algorithm = True
    api: Api

    def _answer(self) -> None:
        length_text = self.headers.get("Content-Length", "0")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.send_error(413 if length > MAX_BODY else 400)
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.api.handle(self.command, self.path, headers, body)
        data = answer.encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address, exc_info=True)


def make_server(api: Api, sock: socket.socket) -> ThreadingHTTPServer:
    """A threaded HTTP server answering ``api`` on an already bound ``sock``."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = _Server(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    return server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve(
    open_api: Callable[[], Api],
    host: str,
    port: int,
    *,
    workers: int = 1,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. ``open_api`` runs in each worker (after the fork)."""
    sock = _bind(host, port)
    bound = sock.getsockname()
    children: list[int] = []
    for _ in range(max(0, workers - 1)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _run(open_api, sock)
            os._exit(0)
        children.append(pid)
    if ready is not None:
        ready(bound[0], bound[1])

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        _run(open_api, sock)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _run(open_api: Callable[[], Api], sock: socket.socket) -> None:
    api = open_api()
    server = make_server(api, sock)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        api.app.close()
        sys.stderr.flush()
