"""A server of the code under test (or of a test) answering in a thread of the test.

:func:`serving` runs anything with the life cycle of :class:`socketserver.BaseServer`
(``serve_forever(poll_interval)``, ``shutdown()``, ``server_close()``): the back office's
:class:`http.server.ThreadingHTTPServer`, the issuer's event loop
(issuer.service.server.HttpServer), a test's own contract server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

__all__ = ["Server", "serving"]


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
