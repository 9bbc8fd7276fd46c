"""The program's decision endpoint as the service reaches it: asked on the event loop
while other requests go on (:mod:`issuer.domain.program` says what is asked, how it
is signed and what the answer may do).

:class:`Consultant` keeps the endpoint of the ledger (read once per cache generation:
``issuer decisions set`` or ``clear`` takes effect from a running service's next turn)
and one :class:`ProgramClient` per event loop: HTTP/1.1 over keep-alive connections
(asyncio streams, TLS for ``https``, the response read by ``httptools``, the parser
uvicorn uses already). A request takes an idle connection or opens one; a connection
the endpoint closed while idle is replaced once; a request cut by the deadline closes
its connection (its late answer is never read as another's). A general HTTP client
(httpx) was measured at 1.4-3.2 ms of CPU per request on the project's 2-core machine
against 31-36 µs for this one (BENCHMARKS.md "Real-time decisions"): with an
authorisation costing about 0.8 ms of CPU, it would have halved throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import httptools

from issuer.domain.program import (
    SIGNATURE_HEADER,
    Endpoint,
    ProgramRequest,
    Verdict,
    load_endpoint,
    read_answer,
)

if TYPE_CHECKING:
    from issuer.bootstrap import IssuerApp

__all__ = ["MAX_ANSWER", "Consultant", "ProgramClient"]

log = logging.getLogger("issuer.program")

#: The largest answer body read from the program.
MAX_ANSWER: Final = 64 * 1024
#: Idle connections kept per client.
_KEEP: Final = 512
_CACHE_KEY: Final = "decision-endpoint"
_SIGNATURE_NAME: Final = SIGNATURE_HEADER.lower().encode()


class _NoEndpoint:
    """The read cache's value when no endpoint is set (``None`` means not cached)."""


_NONE: Final = _NoEndpoint()


class _AnswerError(Exception):
    """The program's answer is not HTTP, or too large."""


@dataclass(slots=True)
class _Answer:
    """What the parser collected (httptools callbacks): whether the connection stays
    open is read once the headers are in (the parser forgets it at the message's end)."""

    parser: httptools.HttpResponseParser | None = None
    signature: str | None = None
    body: bytearray = field(default_factory=bytearray)
    keep: bool = False
    done: bool = False

    def on_headers_complete(self) -> None:
        self.keep = self.parser is not None and self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == _SIGNATURE_NAME:
            self.signature = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > MAX_ANSWER:
            raise _AnswerError("the answer is too large")

    def on_message_complete(self) -> None:
        self.done = True


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _close(connection: _Connection) -> None:
    with contextlib.suppress(Exception):
        connection[1].close()


class ProgramClient:
    """POSTs to one URL over keep-alive connections, in the running event loop (module
    docstring). ``context``: TLS for an ``https`` URL. Its idle connections are closed
    by :meth:`close`, or when the loop ends (the task that keeps them is cancelled
    then, as an ending loop cancels every task), never left to the garbage collector."""

    def __init__(self, url: str, context: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = context
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            "User-Agent: tapstack-issuer\r\n"
        )
        self._idle: list[_Connection] = []
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.close()

    async def _open(self) -> _Connection:
        return await asyncio.open_connection(
            self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None
        )

    async def post(self, body: bytes, signature: str) -> tuple[int, str | None, bytes]:
        """POST ``body`` signed ``signature``: (status, the answer's signature header,
        its body). :class:`OSError` if no connection answers; the caller bounds the
        time."""
        request = (
            f"{self._head}{SIGNATURE_HEADER}: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await self._open()
        try:
            try:
                status, keep, answer = await self._exchange(connection, request)
            except (OSError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                _close(connection)  # closed by the endpoint while idle: once more, anew
                connection = await self._open()
                status, keep, answer = await self._exchange(connection, request)
        except BaseException:
            _close(connection)
            raise
        if keep and len(self._idle) < _KEEP and not self._keeper.done():
            self._idle.append(connection)
        else:
            _close(connection)
        return status, answer.signature, bytes(answer.body)

    @staticmethod
    async def _exchange(connection: _Connection, request: bytes) -> tuple[int, bool, _Answer]:
        reader, writer = connection
        writer.write(request)
        answer = _Answer()
        parser = answer.parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = await reader.read(65536)
            if not data:
                raise ConnectionResetError("the endpoint closed the connection")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise _AnswerError(str(exc)) from None
        return parser.get_status_code(), answer.keep, answer

    def close(self) -> None:
        """Close the idle connections (and stop keeping them)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            _close(connection)
        if not self._keeper.done():
            self._keeper.cancel()


def _context(endpoint: Endpoint) -> ssl.SSLContext | None:
    """TLS for an ``https`` endpoint: its CA, or the system's."""
    if urlsplit(endpoint.url).scheme != "https":
        return None
    if endpoint.ca_pem:
        return ssl.create_default_context(cadata=endpoint.ca_pem)
    return ssl.create_default_context()


class Consultant:
    """The decision endpoint of a service process (module docstring)."""

    def __init__(self, app: IssuerApp) -> None:
        self.app = app
        self._client: tuple[object, ProgramClient] | None = None
        self._failing: str | None = None

    def endpoint(self, generation: int) -> Endpoint | None:
        """The endpoint (its secret unsealed), from the read cache while
        ``generation`` stands; ``None`` if none is set."""
        cached = self.app.cache.get(_CACHE_KEY)
        if cached is None:
            cached = load_endpoint(self.app.ledger, self.app.keys) or _NONE
            self.app.cache.put(_CACHE_KEY, cached, generation)
        return None if cached is _NONE else cached

    def _client_for(self, endpoint: Endpoint) -> ProgramClient:
        loop = asyncio.get_running_loop()
        key = (loop, endpoint.url, endpoint.ca_pem, endpoint.created_at)
        if self._client is None or self._client[0] != key:
            if self._client is not None:
                self._client[1].close()
            self._client = (key, ProgramClient(endpoint.url, _context(endpoint)))
        return self._client[1]

    async def consult(self, endpoint: Endpoint, request: ProgramRequest) -> Verdict:
        """Ask the program about ``request`` within the endpoint's deadline: its
        verdict, or the fallback with its cause (``timeout``, ``unreachable``,
        ``invalid_answer``, ``error`` for anything unforeseen, or what
        :func:`~issuer.domain.program.read_answer` finds)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        body, signature = endpoint.request(request)
        try:
            client = self._client_for(endpoint)
            async with asyncio.timeout(endpoint.deadline_ms / 1000):
                status, answer_signature, answer = await client.post(body, signature)
        except TimeoutError:
            verdict = endpoint.fallback_for("timeout", _ms(loop, start))
        except (OSError, asyncio.IncompleteReadError):
            verdict = endpoint.fallback_for("unreachable", _ms(loop, start))
        except _AnswerError:
            verdict = endpoint.fallback_for("invalid_answer", _ms(loop, start))
        except Exception as exc:  # never the request's failure: the fallback's
            log.error("decision endpoint: unexpected failure", exc_info=exc)
            verdict = endpoint.fallback_for("error", _ms(loop, start))
        else:
            verdict = read_answer(
                endpoint, request, status, answer_signature, answer, _ms(loop, start)
            )
        self._note(verdict)
        return verdict

    def _note(self, verdict: Verdict) -> None:
        """One log line when the endpoint starts failing for a cause, one when it
        answers again (not one per request)."""
        if verdict.cause != self._failing:
            if verdict.cause is None:
                log.warning("decision endpoint answering again")
            else:
                log.warning(
                    "decision endpoint: %s (fallback: %s)",
                    verdict.cause,
                    verdict.fallback.value if verdict.fallback else "-",
                )
            self._failing = verdict.cause


def _ms(loop: asyncio.AbstractEventLoop, start: float) -> int:
    return round((loop.time() - start) * 1000)
