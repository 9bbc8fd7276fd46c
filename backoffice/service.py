"""The back office's HTTP API for gates (the gate protocol, described here), and the
worker that runs the engine while it serves.

**The gate protocol** (the gate's side: terminal/apps/uploader.py). HTTP/1.1 with JSON
bodies. Every request but the health check carries ``Authorization: Bearer
<gate_id>:<key>``, the id and key ``backoffice gate add`` printed (401 otherwise).
Errors are ``{"error": {"code", "message"}}`` as ``issuer serve`` answers them: 400
``bad_request``, 401 ``unauthorised``, 403 ``forbidden``, 404 ``not_found``, 405, 411
``length_required``, 413 ``too_large``. Nothing of a request body is logged.

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

Server: standard library only (:class:`http.server.ThreadingHTTPServer`, one thread
per connection, keep-alive).

The worker (:class:`EngineWorker`) runs an engine pass every ``interval`` seconds and
soon (``nudge_delay``) after an upload, so a first tap is authorised, and a declined
card on the deny list, within seconds: a gate polling every 60 s (the default
``--deny-refresh`` of ``terminal gate transit``) sees the entry within its poll
interval of the decline.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from backoffice.engine import Engine
from backoffice.engine.context import IssuerLike, PassReport
from backoffice.errors import ForeignTapError, TapError
from backoffice.fares import FareRules
from backoffice.store import MAX_TAPS_PER_REQUEST, Home, Store

__all__ = ["MAX_BODY", "BackOfficeServer", "EngineWorker", "make_server"]

log = logging.getLogger("backoffice")

#: Largest request body (500 taps of about 1 KiB each, with room).
MAX_BODY: Final = 2 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: BackOfficeServer
    protocol_version = "HTTP/1.1"
    server_version = "tapstack-backoffice/1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- answers -----------------------------------------------------------------------------

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": code, "message": message}})

    def _gate(self) -> str | None:
        """The authenticated gate id, or ``None`` after a 401 answer."""
        header = self.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        gate_id, _, key = credential.strip().partition(":")
        if scheme.lower() != "bearer" or not gate_id or not key:
            self._error(401, "unauthorised", "Authorization: Bearer <gate_id>:<key> is needed")
            return None
        if not self.server.store.authenticate(gate_id, key):
            self._error(401, "unauthorised", "unknown gate or wrong key")
            return None
        return gate_id

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/v1/health":
            self._send(200, {"status": "ok"})
        elif url.path == "/v1/deny-list":
            if self._gate() is None:
                return
            values = parse_qs(url.query).get("since", ["0"])
            try:
                since = int(values[-1])
            except ValueError:
                self._error(400, "bad_request", "since: a version number")
                return
            self._send(200, self.server.store.deny_changes(since))
        else:
            self._error(404, "not_found", f"no route GET {url.path}")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length_text = self.headers.get("Content-Length")
        if url.path != "/v1/taps":
            self._discard(length_text)
            self._error(404, "not_found", f"no route POST {url.path}")
            return
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._error(411, "length_required", "Content-Length is needed")
            return
        length = int(length_text)
        if length > MAX_BODY:
            self.close_connection = True
            self._error(413, "too_large", f"a body is at most {MAX_BODY} bytes")
            return
        raw = self.rfile.read(length)
        gate = self._gate()
        if gate is None:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "bad_request", "the body is not JSON")
            return
        taps = body.get("taps") if isinstance(body, dict) else None
        if not isinstance(taps, list) or not taps:
            self._error(400, "bad_request", 'the body is {"taps": [TAP, ...]}')
            return
        if len(taps) > MAX_TAPS_PER_REQUEST:
            self._error(400, "bad_request", f"at most {MAX_TAPS_PER_REQUEST} taps per request")
            return
        try:
            result = self.server.store.insert_taps(gate, taps, self.server.rules)
        except ForeignTapError as exc:
            self._error(403, "forbidden", str(exc))
            return
        except TapError as exc:
            self._error(400, "bad_request", f"{exc}; nothing was stored")
            return
        self._send(200, {"accepted": result.accepted, "duplicates": result.duplicates})
        if result.accepted:
            self.server.notify()

    def _discard(self, length_text: str | None) -> None:
        if length_text and length_text.isdigit() and int(length_text) <= MAX_BODY:
            self.rfile.read(int(length_text))
        else:
            self.close_connection = True

    def do_PUT(self) -> None:
        self._discard(self.headers.get("Content-Length"))
        self._error(405, "method_not_allowed", "GET or POST")

    do_DELETE = do_PUT  # noqa: N815 (http.server names)
    do_PATCH = do_PUT  # noqa: N815


class BackOfficeServer(ThreadingHTTPServer):
    """The HTTP server of one back office home."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], store: Store, rules: FareRules) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.rules = rules
        self.notify: Callable[[], None] = lambda: None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the bound socket."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def make_server(home: Home, bind: str) -> BackOfficeServer:
    """A server of ``home`` bound to ``HOST:PORT`` (port 0: a free one)."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bind address HOST:PORT, not {bind!r}")
    store = Store(home)
    return BackOfficeServer((host, int(port)), store, home.fares())


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
                with self.home.engine_lock(wait=False) as mine:
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
