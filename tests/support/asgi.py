"""Calling an ASGI application in the test's own thread, without a socket.

:func:`call` sends one request (ASGI 3.0 HTTP scope, its body in one ``http.request``
event) and returns the status, the headers (names in lower case) and the body;
:func:`call_many` sends several at once in one event loop, as a server would whose
clients' requests arrive in the same turn (what group commit batches). Each call runs
in a new event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["Answer", "Call", "call", "call_many"]


class Call(NamedTuple):
    """One request: method, target (path and query), headers, body."""

    method: str
    target: str
    headers: Mapping[str, str] = {}
    body: bytes = b""


class Answer(NamedTuple):
    """One answer: status, headers (names in lower case), body."""

    status: int
    headers: dict[str, str]
    body: bytes


async def _one(app: Any, request: Call, extensions: Mapping[str, Any] | None) -> Answer:
    path, _, query = request.target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
        + [(b"content-length", str(len(request.body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    if extensions:
        scope["extensions"] = dict(extensions)
    sent = False
    status = 0
    headers: dict[str, str] = {}
    parts: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no more: as a client that keeps the line open
        sent = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.update((k.decode(), v.decode()) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope, receive, send)
    return Answer(status, headers, b"".join(parts))


def call(
    app: Any,
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    extensions: Mapping[str, Any] | None = None,
) -> Answer:
    """One request to ``app`` (module docstring)."""
    return asyncio.run(_one(app, Call(method, target, headers or {}, body), extensions))


def call_many(app: Any, requests: Sequence[Call]) -> list[Answer]:
    """Several requests to ``app`` at once, in one event loop; their answers in order."""

    async def together() -> list[Answer]:
        return list(await asyncio.gather(*(_one(app, r, None) for r in requests)))

    return asyncio.run(together())
