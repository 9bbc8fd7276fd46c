"""uvicorn's httptools protocol (llhttp parses every request) with the limits of
:class:`~httpserve.limits.Limits`, every refusal in the APIs' error shape, and the ASGI
TLS extension.

What this adds to :class:`uvicorn.protocols.http.httptools_impl.HttpToolsProtocol`:

- **A malformed request** (a head llhttp refuses: a non-ASCII digit, a duplicate or
  negative ``Content-Length``, ``Transfer-Encoding`` with ``Content-Length``, a bad
  request target; RFC 9112 §6.3) is 400 ``bad_request``, a protocol upgrade or
  ``CONNECT`` 400 too; a head larger than ``max_head`` bytes 431 ``head_too_large``
  (RFC 6585 §5). Each answer is JSON, ``{"error": {"code", "message"}}``, and closes
  the connection; nothing is logged above debug.
- **Time-outs**: a head not complete ``head_timeout`` seconds after its first byte, or
  a body not complete ``body_timeout`` seconds after its head, is 408 ``timeout``
  (RFC 9110 §15.5.9) and the connection closed; a connection with no request under
  way is closed after ``idle_timeout`` seconds, before its first request as after its
  last answer (uvicorn's keep-alive time-out). Timers are armed only while a head or
  a body is incomplete at the end of a read: a request that arrives whole costs none.
- **Connections per worker**: at most ``max_connections``. One more closes the
  connection that has been idle longest (no request under way; a head still arriving
  counts as idle), as nginx reuses its idle keep-alive connections when it runs out;
  if every connection has a request under way, the newcomer gets 503 ``busy``. So
  the worker never runs out of file descriptors, and a flood of idle or slow sockets
  cannot keep a real client out.
- **TLS**: on a TLS connection every request's scope carries the ASGI TLS extension
  (``scope["extensions"]["tls"]``, ASGI TLS extension 0.2): ``client_cert_chain`` the
  verified client certificate in PEM (leaf first; its chain too where the ``ssl``
  module gives it, Python 3.13's ``get_verified_chain``), ``client_cert_name`` its
  subject (RFC 4514), ``client_cert_error`` ``None``, ``tls_version`` and
  ``cipher_suite`` (``None``: the ``ssl`` module does not give its number), and
  ``server_cert`` ``None``. The handshake (and the verification of the client's
  certificate) is the ``ssl.SSLContext``'s; uvicorn 0.55 leaves the extension out.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from typing import Any, Final, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from httpserve.asgi import error_body
from httpserve.errors import HttpServeError
from httpserve.limits import Limits

__all__ = ["LimitedConfig", "Protocol", "tls_extension"]

_IDLE, _HEAD, _BODY = 0, 1, 2
#: TLS protocol versions as the TLS extension numbers them (RFC 8446 §4.2.1).
_TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
#: Per server: its connections with no request under way, the longest idle first.
_IDLE_CONNECTIONS: weakref.WeakKeyDictionary[ServerState, dict[Protocol, None]] = (
    weakref.WeakKeyDictionary()
)


class LimitedConfig(Config):
    """uvicorn's configuration with the :class:`Limits` the protocol enforces."""

    def __init__(self, app: Any, limits: Limits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


class _RefusedError(HttpServeError):
    """A request refused with ``status`` (raised in a parser callback)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension of a connection (module docstring)."""
    from cryptography import x509

    chain: list[str] = []
    name = None
    getter = getattr(ssl_object, "get_verified_chain", None)
    ders: list[bytes] = []
    if getter is not None:  # Python 3.13: the chain as verified (DER), leaf first
        ders = [bytes(der) for der in getter()]
    if not ders:
        leaf = ssl_object.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    if ders:
        chain = [ssl.DER_cert_to_PEM_cert(der) for der in ders]
        name = x509.load_der_x509_certificate(ders[0]).subject.rfc4514_string()
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


class Protocol(HttpToolsProtocol):
    """One HTTP/1.1 connection (module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = cast(LimitedConfig, config).limits
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]
        self.access_log = False  # no line per request
        self._phase = _IDLE
        self._reads = 0  # reads fed to the parser
        self._head_read = 0  # the read in which the current head began
        self._head_size = 0  # bytes of the current head (at least)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase = _IDLE
        self._timer_read = 0
        self._counted = 0  # head bytes the callbacks counted in this read
        self._tls: dict[str, Any] | None = None
        self._idle = _IDLE_CONNECTIONS.setdefault(server_state, {})

    # -- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._tls = tls_extension(ssl_object)
        self._idle[self] = None
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self._refuse(503, "busy", "too many connections: try again")
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._idle.pop(self, None)
        self._cancel_timer()
        super().connection_lost(exc)

    def _make_room(self) -> bool:
        """Close the longest idle connection but this one; ``False`` if none is idle."""
        for other in self._idle:
            if other is not self and not other.transport.is_closing():
                other.transport.close()
                return True
        return False

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._reads += 1
        self._counted = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _RefusedError):
                self._refuse(cause.status, cause.code, cause.message)
            else:
                self._refuse(400, "bad_request", "malformed HTTP request")
            return
        except httptools.HttpParserUpgrade:
            self._refuse(400, "bad_request", "protocol upgrades are not supported")
            return
        if self._phase == _HEAD:
            if self._head_read != self._reads:  # the head began in an earlier read
                self._head_size += max(0, len(data) - self._counted)
            if self._head_size > self.limits.max_head:
                self._refuse(431, "head_too_large", "the request head is too large")
                return
        self._arm()

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            cast(dict[str, Any], self.scope)["extensions"] = {"tls": self._tls}
        self._phase = _HEAD
        self._head_read = self._reads
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_size += size
        self._counted += size
        if self._head_size > self.limits.max_head:
            raise _RefusedError(431, "head_too_large", "the request head is too large")

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade():
            raise _RefusedError(400, "bad_request", "protocol upgrades are not supported")
        try:
            super().on_headers_complete()
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            raise _RefusedError(400, "bad_request", "malformed request target") from None
        self._phase = _BODY
        self._idle.pop(self, None)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = _IDLE

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._idle[self] = None  # the longest idle last

    # -- time-outs and refusals ----------------------------------------------------------

    def _arm(self) -> None:
        """After a read: a timer while a head or a body is incomplete, none else."""
        phase = self._phase
        if phase == self._timer_phase and (phase != _HEAD or self._timer_read == self._head_read):
            return
        self._cancel_timer()
        if phase == _HEAD:
            self._timer = self.loop.call_later(self.limits.head_timeout, self._expired)
        elif phase == _BODY:
            self._timer = self.loop.call_later(self.limits.body_timeout, self._expired)
        self._timer_phase = phase
        self._timer_read = self._head_read

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_phase = _IDLE

    def _expired(self) -> None:
        self._timer = None
        what = "head" if self._timer_phase == _HEAD else "body"
        self._timer_phase = _IDLE
        self._refuse(408, "timeout", f"the request {what} did not arrive in time")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the error shape and close, unless an answer is under
        way (then only close). The request's application, if it runs, sees the client
        gone."""
        self._cancel_timer()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self.transport.close()
                return
            cycle.disconnected = True
            cycle.message_event.set()
        body = error_body(code, message)
        self.transport.write(
            STATUS_LINE[status] + b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body) + body
        )
        self.transport.close()
