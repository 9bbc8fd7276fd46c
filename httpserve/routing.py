"""Starlette's router over a service's declared routes, answering in the APIs' error
shape.

:class:`JsonRouter` takes ``(method, path, endpoint)`` triples (a path in Starlette's
syntax, ``{id}`` or ``{id:convertor}``), makes one Starlette route per path with the
methods declared on it, and hands a request to the endpoint of its method (``HEAD``
to ``GET``'s). An unknown path is 404 ``not_found``, a known path with another method
405 ``method_not_allowed`` with ``Allow`` (RFC 9110 §15.5.6), each
``{"error": {"code", "message"}}``. No redirects (a trailing slash is another path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.routing import Route, Router

from httpserve.asgi import ASGIReceive, ASGISend, Scope, error_body, send_json

__all__ = ["Endpoint", "JsonRouter"]

Endpoint = Callable[[Scope, ASGIReceive, ASGISend], Awaitable[None]]


class _ByMethod:
    """The ASGI endpoint of one path: the endpoint of each method declared on it."""

    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = dict(endpoints)
        if "GET" in self.endpoints:
            self.endpoints["HEAD"] = self.endpoints["GET"]

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        await self.endpoints[scope["method"]](scope, receive, send)


class JsonRouter:
    """An ASGI application routing HTTP requests to endpoints (module docstring)."""

    def __init__(self, routes: Iterable[tuple[str, str, Endpoint]]) -> None:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for method, path, endpoint in routes:
            by_path.setdefault(path, {})[method] = endpoint
        self.router = Router(
            routes=[
                Route(path, _ByMethod(endpoints), methods=list(endpoints))
                for path, endpoints in by_path.items()
            ],
            redirect_slashes=False,
        )

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        scope["app"] = self  # Starlette's router then raises HTTPException for 404 and 405
        try:
            await self.router(scope, receive, send)
        except HTTPException as exc:
            headers = dict(exc.headers or {})
            if exc.status_code == 405:
                body = error_body("method_not_allowed", f"use {headers.get('Allow', '')}")
            else:
                body = error_body("not_found", "no such endpoint")
            await send_json(send, exc.status_code, body, headers)
