"""What the services' ASGI applications share: reading a request body within a limit
and sending a JSON answer (ASGI 3.0 HTTP connection scope, ``http.request`` and
``http.response.*`` events), in the error shape of both services' APIs,
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from httpserve.errors import HttpServeError

__all__ = [
    "ASGIApp",
    "ASGIReceive",
    "ASGISend",
    "BodyError",
    "Scope",
    "client_certificate",
    "error_body",
    "read_body",
    "read_or_refuse",
    "send_json",
]

Scope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]


class BodyError(HttpServeError):
    """A request body that cannot be read: too large (``status`` 413), or the client
    went away (``status`` 0: nobody to answer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def client_certificate(scope: Scope) -> str | None:
    """The verified client certificate of the request's connection (PEM: the first of
    the ASGI TLS extension's ``client_cert_chain``), ``None`` without TLS or without
    a client certificate."""
    tls = scope.get("extensions", {}).get("tls")
    chain = tls.get("client_cert_chain") if tls else None
    return str(chain[0]) if chain else None


def error_body(code: str, message: str) -> bytes:
    """An error answer's JSON body."""
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()


def _too_large(limit: int) -> BodyError:
    return BodyError(413, "too_large", f"the request body is larger than {limit} bytes")


async def read_body(scope: Scope, receive: ASGIReceive, limit: int) -> bytes:
    """The whole body of the request, at most ``limit`` bytes (RFC 9110 §15.5.14: 413
    else, before reading it when ``Content-Length`` says so); :class:`BodyError`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] != "http.request":
        raise BodyError(0, "gone", "the client went away")
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyError(0, "gone", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def read_or_refuse(
    scope: Scope, receive: ASGIReceive, send: ASGISend, limit: int
) -> bytes | None:
    """:func:`read_body`, or ``None`` once a body too large has been answered (413 in
    the error shape, closing the connection) or the client has gone."""
    try:
        return await read_body(scope, receive, limit)
    except BodyError as exc:
        if exc.status:
            body = error_body(exc.code, exc.message)
            await send_json(send, exc.status, body, {"Connection": "close"})
        return None


async def send_json(
    send: ASGISend, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """An answer with a JSON body (``Content-Length``; ``headers`` besides)."""
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
