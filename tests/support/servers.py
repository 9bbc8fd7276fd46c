"""A server of the code under test (or of a test) answering in a thread of the test.

:func:`serving` runs anything with the life cycle of :class:`socketserver.BaseServer`
(``serve_forever(poll_interval)``, ``shutdown()``, ``server_close()``): a test's own
contract server. :func:`asgi_serving` runs an ASGI application (the issuer's, the back
office's) on the services' own server (:func:`httpserve.server.make_server`: uvicorn
with the limits) on a free loopback port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from httpserve.limits import Limits
from httpserve.server import listen, make_server

__all__ = ["Server", "asgi_serving", "serving"]


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
