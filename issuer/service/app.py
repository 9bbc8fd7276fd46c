"""The authorisation service as an ASGI application (ASGI 3.0, HTTP scope), with group
commit.

The router is Starlette's (:class:`httpserve.routing.JsonRouter`), made from the
declared routes (:data:`issuer.service.routes.ROUTES`): an unknown path is 404
``not_found``, a known path with another method 405 ``method_not_allowed``, both in
the API's error shape. A route's endpoint reads the body (at most
:data:`~issuer.service.api.MAX_BODY` bytes: else 413, :func:`httpserve.asgi.read_body`)
and hands the request to :class:`~issuer.service.api.Api` in two stages:

- :meth:`~issuer.service.api.Api.prepare` at once, in the task of the request: a read
  is answered (a long poll of a QR sale is awaited in the request's task, the loop
  serving others meanwhile); an authorisation runs its read phase (credential, fields,
  ARQC, status); another write is validated. The cache generation is read once per
  event-loop turn, for every request that turn prepares (:mod:`issuer.domain.cache`).
- With a program's decision endpoint, an authorisation then awaits the program's
  answer (:meth:`~issuer.service.api.Api.consult`: an HTTP request on this event
  loop, at most the endpoint's deadline) in its own task: the loop reads, prepares
  and commits the other requests meanwhile, and this one joins the batch after.
- The writes of every request prepared meanwhile, together, two event-loop turns later
  (the sockets read once more, so that what arrived during the last commit joins) and
  once the ledger's writer is free (SQLite: no other worker writing; the loop serves
  other requests while it waits): one
  :meth:`~issuer.service.api.Api.finish_many`, one ledger transaction and one durable
  commit for the batch (group commit), then each request's answer.

Requests whose bytes arrive in the same turns of the loop are therefore decided in one
batch, as the hand-written event loop before this one did, and nothing is answered
before it is durable. A batch that fails as a whole (a lost database connection) is
answered 503 ``busy``: the terminals retry with the same ``Idempotency-Key`` and get
the stored answer if it was committed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from starlette.convertors import Convertor, register_url_convertor

from httpserve.asgi import (
    ASGIReceive,
    ASGISend,
    Scope,
    client_certificate,
    read_or_refuse,
    send_json,
)
from httpserve.routing import JsonRouter
from issuer.service.api import MAX_BODY, Api, Prepared, Request, Response, error_answer
from issuer.service.routes import BILL_PATTERN, ID_PATTERN, PREFIX_PATTERN, ROUTES, Route

__all__ = ["WRITER_RETRY", "ServiceApp"]

log = logging.getLogger("issuer.service")

#: How soon a batch waiting for the ledger's writer (another process's) looks again;
#: requests that arrive meanwhile join the batch.
WRITER_RETRY: Final = 0.0002


class _TransactionId(Convertor[str]):
    """A path segment that is a transaction id (:data:`ID_PATTERN`)."""

    regex = ID_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _RangePrefix(_TransactionId):
    """A path segment that is a range's prefix (:data:`PREFIX_PATTERN`)."""

    regex = PREFIX_PATTERN


class _BillNumber(_TransactionId):
    """A path segment that is a bill number (:data:`BILL_PATTERN`)."""

    regex = BILL_PATTERN


register_url_convertor("txn", _TransactionId())
register_url_convertor("prefix", _RangePrefix())
register_url_convertor("bill", _BillNumber())


def _starlette_path(path: str) -> str:
    return (
        path.replace("{id}", "{id:txn}")
        .replace("{prefix}", "{prefix:prefix}")
        .replace("{bill}", "{bill:bill}")
    )


class ServiceApp:
    """The ASGI application of an :class:`~issuer.service.api.Api` (module docstring).
    One per process; it lives in one event loop at a time. ``on_close`` runs first
    when it closes (stopping a background worker that uses the issuer)."""

    def __init__(self, api: Api, *, on_close: Callable[[], None] | None = None) -> None:
        self.api = api
        self._on_close = on_close
        self.router = JsonRouter(
            (route.method, _starlette_path(route.path), functools.partial(self.answer, route))
            for route in ROUTES
        )
        self._batch: list[tuple[Prepared, asyncio.Future[Response]]] = []
        self._flushing = False
        self._turn: tuple[asyncio.AbstractEventLoop, int] | None = None

    def close(self) -> None:
        """Stop what ``on_close`` stops, then close the issuer the API runs on."""
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            self.api.app.close()

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "http":
            await self.router(scope, receive, send)

    async def answer(
        self, route: Route, scope: Scope, receive: ASGIReceive, send: ASGISend
    ) -> None:
        """Answer one request of ``route`` (module docstring)."""
        body = await read_or_refuse(scope, receive, send, MAX_BODY)
        if body is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request = Request(
            route.name,
            headers,
            body,
            scope.get("path_params", {}),
            scope["query_string"].decode("latin-1"),
            client_certificate(scope),
        )
        prepared = self.api.prepare(request, self._turn_generation())
        if prepared.answer is not None:
            await _send(send, prepared.answer)
            return
        if prepared.wait is not None:  # a long poll (issuer.service.qr)
            await _send(send, await prepared.wait())
            return
        if prepared.proposal is not None:
            await self.api.consult(prepared)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self._batch.append((prepared, future))
        if not self._flushing:
            self._flushing = True
            # Two turns on: the sockets are read once more first, so the requests that
            # arrived while the last batch committed join this one.
            loop.call_soon(loop.call_soon, self._flush)
        await _send(send, await future)

    def _turn_generation(self) -> int:
        """The ledger's cache generation, read once per turn of the running loop."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, self.api.cache.refresh())
            loop.call_soon(self._end_turn)
        return self._turn[1]

    def _end_turn(self) -> None:
        self._turn = None

    def _flush(self) -> None:
        """Stage two for every request prepared so far, once the writer is free."""
        if not self.api.ready_to_write():
            asyncio.get_running_loop().call_later(WRITER_RETRY, self._flush)
            return
        batch, self._batch = self._batch, []
        self._flushing = False
        try:
            answers = self.api.finish_many([prepared for prepared, _ in batch])
        except Exception as exc:
            log.warning(
                "a batch of %d requests failed (%s): answered 503", len(batch), type(exc).__name__
            )
            busy = error_answer(503, "busy", "retry with the same Idempotency-Key")
            answers = [busy] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


async def _send(send: ASGISend, answer: Response, headers: Mapping[str, str] | None = None) -> None:
    extra = {**answer.headers, **headers} if headers else answer.headers
    await send_json(send, answer.status, answer.encode(), extra)


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    """ASGI lifespan: nothing to start or stop (the server opens the API)."""
    while True:
        message: Any = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
