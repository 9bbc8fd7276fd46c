"""The exceptions of :mod:`httpserve`, under one root."""

from __future__ import annotations

__all__ = ["HttpServeError", "ListenError"]


class HttpServeError(Exception):
    """The root of every error of :mod:`httpserve`."""


class ListenError(HttpServeError):
    """The address cannot be listened on (in use, not this machine's, not allowed):
    the message is one line that says which, why and what to do; :attr:`errno` is the
    socket error's number (``EADDRINUSE``, ``EADDRNOTAVAIL``, ``EACCES``...), ``None``
    for an address that is no address."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
