"""The back office's HTTP API for gates (the gate protocol, described here), and the
worker that runs the engine while it serves.

**The gate protocol** (the gate's side: terminal/apps/uploader.py). HTTP/1.1 with JSON
bodies. Every request but the health check carries ``Authorization: Bearer
<gate_id>:<key>``, the id and key ``backoffice gate add`` printed (401 otherwise).
Errors are ``{"error": {"code", "message"}}`` as ``issuer serve`` answers them: 400
``bad_request``, 401 ``unauthorised``, 403 ``forbidden``, 404 ``not_found``, 405
``method_not_allowed``, 408 ``timeout``, 413 ``too_large``, 431 ``head_too_large``.
Nothing of a request body is logged.

- ``GET /v1/health`` -> ``{"status": "ok"}`` (no credential).
- ``POST /v1/taps`` with ``{"taps": [TAP, ...]}`` (1 to 500 taps, a body of at most
  :data:`MAX_BODY` bytes) -> ``{"accepted": [tap_id, ...], "duplicates": [tap_id,
  ...]}``. All or nothing: a malformed tap (400) or a tap of another gate (403)
  stores none of the batch. Idempotent by ``tap_id``: a tap stored before is listed
  under ``duplicates`` and changes nothing, so a gate that lost the answer sends the
  batch again, and moves its upload cursor only once every tap of the batch is in one
  of the two lists (:meth:`backoffice.store.Store.insert_taps`).
- ``GET /v1/deny-list?since=N`` -> ``{"version": V, "full": BOOL, "add": [REF, ...],
  "remove": [REF, ...]}``: the changes after version ``N``, net per card reference,
  or the whole list in ``add`` with ``full`` true when ``N`` is 0 or newer than the
  back office's. The gate applies ``remove``, then ``add``, and asks from ``V`` next.

A **TAP** is one decided tap, a JSON object of these keys
(:func:`backoffice.store.validate_tap` checks each):

- ``tap_id`` (``<gate_id>:<seq>``, the gate's journal sequence number), ``gate_id``,
  ``time`` (UTC with milliseconds, ``2026-11-24T07:31:02.123Z``), ``mode``
  (``transit``);
- ``direction`` (``single`` at a flat-fare gate, ``on`` or ``off`` at zone gates) and
  ``zone`` (null only for ``single``);
- ``card_reference`` (32 hex digits, :func:`emvwire.cardref.card_reference`),
  ``masked_pan`` (never a full PAN), ``token`` (whether it is a payment token, e.g. a
  phone's), ``scheme`` (``visa``, ``mastercard``, ``other``), ``aid`` (hex);
- ``outcome`` (the kernel's: ``approved`` or ``online_request``) and ``oda``
  (``passed``, ``not_performed``, ``failed``);
- ``decision`` (``open`` or ``deny``) and ``deny_reason`` (``deny_list``,
  ``first_ride_limit``, ``card_error``; null exactly when the gate opened);
- ``amount`` (the nominal amount the kernel ran with, 9F02, in minor units) and
  ``currency`` (ISO 4217 numeric, ``"978"``);
- ``icc_data`` (hex: the field 55 data of the deferred authorisation) and
  ``track2_sealed`` (hex: track 2 sealed to the back office's public key with the tap
  id as context, :func:`emvwire.seal.seal`, RFC 9180 HPKE: a box is ``enc (32) ||
  ciphertext || tag (16)``); either may be null for a denied tap only.

Server: the services' own (:mod:`httpserve`: uvicorn with httptools and uvloop, its
limits and process life), one process; the routes below are declared once
(:data:`ROUTES`: method, path, body and query types, summary), which makes Starlette's
router and the decoding of each request. A body is read whole (at most
:data:`MAX_BODY` bytes, else 413) and decoded with msgspec into its declared type, so
no JSON value is deeper than the type allows (a tap is an object of scalars). Store
calls run in the event loop's thread (the store's connection of that thread). Back
offices on several machines take taps from NATS JetStream instead
(:mod:`backoffice.stream`).

The worker (:class:`EngineWorker`) runs an engine pass every ``interval`` seconds and
soon (``nudge_delay``) after an upload, so a first tap is authorised, and a declined
card on the deny list, within seconds: a gate polling every 60 s (the default
``--deny-refresh`` of ``terminal gate transit``) sees the entry within its poll
interval of the decline.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import parse_qs

import msgspec

from backoffice.engine import Engine
from backoffice.engine.context import IssuerLike, PassReport
from backoffice.errors import BackOfficeError, ForeignTapError, TapError
from backoffice.fares import FareRules
from backoffice.store import MAX_TAPS_PER_REQUEST, Home, Store
from httpserve.asgi import (
    ASGIReceive,
    ASGISend,
    Scope,
    client_certificate,
    error_body,
    read_or_refuse,
    send_json,
)
from httpserve.routing import JsonRouter

__all__ = ["MAX_BODY", "ROUTES", "EngineWorker", "GateApp", "Route", "make_app"]

log = logging.getLogger("backoffice")

#: Largest request body (500 taps of about 1 KiB each, with room).
MAX_BODY: Final = 2 * 1024 * 1024

#: A tap as it travels: an object of scalars (:func:`backoffice.store.validate_tap`
#: checks each key).
Tap = dict[str, str | int | float | bool | None]


class TapBatch(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /v1/taps``."""

    taps: Annotated[list[Tap], msgspec.Meta(min_length=1, max_length=MAX_TAPS_PER_REQUEST)]


class DenyListQuery(msgspec.Struct, forbid_unknown_fields=True):
    """The query of ``GET /v1/deny-list``: the version the gate has (0: none)."""

    since: Annotated[int, msgspec.Meta(ge=0, le=2**62)] = 0


class _Refused(BackOfficeError):  # noqa: N818 - control flow inside the service
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Route:
    """One route of the gate protocol: the :class:`GateApp` method that answers it
    (``name``), its body and query types, whether it needs a gate's credential."""

    name: str
    method: str
    path: str
    summary: str
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None
    public: bool = False


#: Every route of the gate protocol (module docstring).
ROUTES: Final[tuple[Route, ...]] = (
    Route("health", "GET", "/v1/health", "Liveness", public=True),
    Route("taps", "POST", "/v1/taps", "Upload decided taps", body=TapBatch),
    Route("deny_list", "GET", "/v1/deny-list", "The deny list's changes", query=DenyListQuery),
)

_Handler = Callable[[str, Any, Any], Awaitable[tuple[int, Any]]]


class GateApp:
    """The ASGI application of one back office home (module docstring); ``notify`` is
    called after an upload stored taps."""

    def __init__(
        self, store: Store, rules: FareRules, *, require_certificate: bool = False
    ) -> None:
        self.store = store
        self.rules = rules
        #: Whether every gate request must come with the gate's client certificate
        #: (served over mutual TLS): one naming another gate, revoked or not recorded
        #: is refused (:meth:`~backoffice.store.Store.certificate_allowed`).
        self.require_certificate = require_certificate
        self.notify: Callable[[], None] = lambda: None
        self.router = JsonRouter(
            (route.method, route.path, functools.partial(self._answer, route)) for route in ROUTES
        )
        self._handlers: dict[str, _Handler] = {
            "health": self._health,
            "taps": self._taps,
            "deny_list": self._deny_list,
        }

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    async def __call__(self, scope: Scope, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "http":
            await self.router(scope, receive, send)

    async def _answer(
        self, route: Route, scope: Scope, receive: ASGIReceive, send: ASGISend
    ) -> None:
        raw = await read_or_refuse(scope, receive, send, MAX_BODY)
        if raw is None:
            return
        try:
            gate = "" if route.public else self._gate(scope, client_certificate(scope))
            body = _decode_body(raw, route.body) if route.body else None
            query = _decode_query(scope["query_string"], route.query) if route.query else None
            status, answer = await self._handlers[route.name](gate, body, query)
        except _Refused as refused:
            await send_json(send, refused.status, error_body(refused.code, refused.message))
            return
        except Exception:  # a fault of the back office, not of the request
            log.exception("%s %s failed", route.method, route.path)
            refusal = error_body("internal", "the back office could not process the request")
            await send_json(send, 500, refusal)
            return
        await send_json(send, status, msgspec.json.encode(answer))

    def _gate(self, scope: Scope, certificate: str | None) -> str:
        """The authenticated gate id, proven by ``certificate`` where one is required;
        else :class:`_Refused` 401."""
        header = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
        scheme, _, credential = header.partition(" ")
        gate_id, _, key = credential.strip().partition(":")
        if scheme.lower() != "bearer" or not gate_id or not key:
            raise _Refused(401, "unauthorised", "Authorization: Bearer <gate_id>:<key> is needed")
        if not self.store.authenticate(gate_id, key):
            raise _Refused(401, "unauthorised", "unknown gate or wrong key")
        if self.require_certificate and (
            certificate is None or not self.store.certificate_allowed(certificate, gate_id)
        ):
            raise _Refused(401, "unauthorised", "the client certificate does not prove this gate")
        return gate_id

    # -- routes ------------------------------------------------------------------------------

    async def _health(self, gate: str, body: None, query: None) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    async def _taps(self, gate: str, body: TapBatch, query: None) -> tuple[int, Any]:
        try:
            result = self.store.insert_taps(gate, body.taps, self.rules)
        except ForeignTapError as exc:
            raise _Refused(403, "forbidden", str(exc)) from None
        except TapError as exc:
            raise _Refused(400, "bad_request", f"{exc}; nothing was stored") from None
        if result.accepted:
            self.notify()
        return 200, {"accepted": result.accepted, "duplicates": result.duplicates}

    async def _deny_list(self, gate: str, body: None, query: DenyListQuery) -> tuple[int, Any]:
        return 200, self.store.deny_changes(query.since)


def _decode_body(raw: bytes, kind: type[msgspec.Struct]) -> Any:
    """The body as its declared type; :class:`_Refused` 400 naming what is wrong."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise _Refused(400, "bad_request", f'the body is {{"taps": [TAP, ...]}}: {exc}') from None
    except msgspec.DecodeError:
        raise _Refused(400, "bad_request", "the body is not JSON") from None


def _decode_query(raw: bytes, kind: type[msgspec.Struct]) -> Any:
    """The query string as its declared type (the first value of each name)."""
    fields = {k: v[0] for k, v in parse_qs(raw.decode("latin-1")).items()}
    try:
        return msgspec.convert(fields, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise _Refused(400, "bad_request", f"query: {exc}") from None


def make_app(home: Home, *, require_certificate: bool = False) -> GateApp:
    """The gates' API of ``home`` (its store opened); ``require_certificate`` when it is
    served over mutual TLS."""
    return GateApp(Store(home), home.fares(), require_certificate=require_certificate)


class EngineWorker(threading.Thread):
    """Runs engine passes in the background of ``serve`` (module docstring)."""

    def __init__(
        self,
        home: Home,
        issuer: IssuerLike | None,
        *,
        interval: float = 30.0,
        nudge_delay: float = 1.0,
        on_report: Callable[[PassReport], None] | None = None,
    ) -> None:
        super().__init__(name="backoffice-engine", daemon=True)
        self.home = home
        self.issuer = issuer
        self.interval = interval
        self.nudge_delay = nudge_delay
        self.on_report = on_report or (lambda report: None)
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def nudge(self) -> None:
        """Taps came: run a pass soon."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the pass under way and stop."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        store = Store(self.home)
        try:
            engine = Engine.for_home(store, self.issuer)
            while not self._stopping.is_set():
                with store.db.engine_lock(wait=False) as mine:
                    if mine:
                        try:
                            self.on_report(engine.run())
                        except Exception:  # a pass that failed is logged and tried again
                            log.exception("engine pass failed")
                if self._wake.wait(self.interval) and not self._stopping.is_set():
                    self._stopping.wait(self.nudge_delay)  # gather the uploads of a moment
                self._wake.clear()
        finally:
            store.close()
