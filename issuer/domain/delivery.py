"""Delivering events to webhook endpoints, and the service's own expiry of stale holds:
the background worker of ``issuer serve`` and of ``issuer events deliver``.

One :meth:`Deliverer.cycle` is one write transaction, then HTTP:

1. record the outcomes of the previous cycle's sends;
2. **dispatch**: the events not dispatched yet (oldest first, under the one
   dispatcher's lock: PostgreSQL's advisory lock, SQLite's writer lock) get a pending
   delivery for each enabled endpoint that subscribes to them
   (:meth:`~issuer.model.events.WebhookEndpoint.subscribes`: type and terminal);
3. **claim** due deliveries with a lease (``claimed_until``; on PostgreSQL also
   ``FOR UPDATE SKIP LOCKED``), each the oldest pending one of its endpoint and object,
   so that two workers (two issuer processes on one database) never send one at the
   same time and an object's later event waits for the earlier one;
4. commit, then send: an HTTP POST of the event's JSON, signed
   (:func:`issuer.domain.webhooks.signature_header`), the deliveries of one endpoint
   one after another on a kept-alive connection, endpoints in parallel.

An answer 2xx is delivered. Anything else (another status, a time-out, a refused
connection, a TLS failure) is retried after an exponential wait (:func:`backoff`:
:attr:`DeliveryPolicy.retry_base` doubling, up to a quarter less at random so that
retries spread, at most :attr:`DeliveryPolicy.retry_cap`), until
:attr:`DeliveryPolicy.give_up_after` from when the delivery was made (three days,
as issuing platforms retry), then it is ``failed`` (``issuer events resend`` sends it
again). A connection-level failure marks the endpoint down for the rest of its batch:
those deliveries count the same failed attempt, without waiting on it again. Delivery
is at least once: a worker killed after a send but before recording it sends it again
once the lease ends (the receiver drops the duplicate by ``Tapstack-Event-Id``).

The scheduling clock (``clock``, seconds since the epoch) is injectable so that tests
move time; the signature's ``t`` is the real time of the send.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import urlsplit

import msgspec

from emvwire.pki import PkiError
from emvwire.tls import KeptConnection, client_context
from issuer.domain import funds
from issuer.domain.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Webhooks,
    is_loopback,
    signature_header,
)
from issuer.model.entities import utc_text
from issuer.model.events import EndpointStatus, Event, WebhookEndpoint

if TYPE_CHECKING:
    from issuer.ledger.repository import Claimed, Ledger, UnitOfWork

__all__ = [
    "USER_AGENT",
    "Attempt",
    "Deliverer",
    "DeliveryPolicy",
    "HttpSender",
    "Report",
    "Sender",
    "Worker",
    "backoff",
    "payload",
]

log = logging.getLogger("issuer.events")

USER_AGENT: Final = "tapstack-webhooks/1"
#: The largest part of a wait taken off at random (jitter).
JITTER: Final = 0.25
#: Bytes of an endpoint's answer read (the rest is not: the connection is closed).
_ANSWER_MAX: Final = 65536
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are retried and paced (module docstring); seconds."""

    retry_base: float = 30.0
    retry_cap: float = 3600.0
    give_up_after: float = 3 * 86400.0
    #: Per HTTP request (connect, send, answer).
    timeout: float = 10.0
    #: How long a claimed delivery is kept from other workers.
    lease: float = 60.0
    #: Deliveries claimed per cycle.
    batch: int = 100
    #: Waits of the worker between cycles: when idle, and when work came in.
    poll: float = 0.5
    busy_poll: float = 0.05
    #: How often the worker expires stale holds (0: never).
    expire_every: float = 60.0


def backoff(attempt: int, policy: DeliveryPolicy) -> float:
    """The wait after failed attempt number ``attempt`` (1, 2, ...): ``retry_base``
    doubled each time, at most ``retry_cap``, less up to :data:`JITTER` of it at
    random (CSPRNG)."""
    wait = min(policy.retry_cap, policy.retry_base * 2.0 ** min(attempt - 1, 60))
    return wait * (1.0 - JITTER * secrets.randbelow(1001) / 1000)


def _text(seconds: float) -> str:
    return utc_text(datetime.fromtimestamp(seconds, UTC))


def _seconds(text: str) -> float:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC).timestamp()


_encode = msgspec.json.Encoder().encode


def payload(event: Event) -> bytes:
    """The body of a delivery: the event as JSON (Stripe's event shape: ``id``,
    ``object``, ``type``, ``created`` in Unix seconds, ``data.object``, and
    ``sequence``, the number of the event among its object's)."""
    return _encode(
        {
            "id": event.id,
            "object": "event",
            "type": event.type.value,
            "created": int(_seconds(event.created_at)),
            "created_at": event.created_at,
            "object_type": event.object_type,
            "sequence": event.sequence,
            "terminal": event.terminal_id,
            "data": msgspec.Raw(event.data.encode()),
        }
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one send got: the HTTP status, or ``None`` and why there was none."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status is not None and 200 <= self.status < 300


class Sender(Protocol):
    """Sends one signed delivery (:class:`HttpSender`)."""

    def send(
        self, endpoint: WebhookEndpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Attempt:
        """POST ``body`` to the endpoint."""

    def close(self) -> None:
        """Close kept connections."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or 'certificate verify failed'}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or type(exc).__name__}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class HttpSender:
    """:class:`Sender` over HTTP/1.1 (the standard library's ``http.client``, through
    :class:`emvwire.tls.KeptConnection`): one kept-alive connection per endpoint, TLS
    verified against the endpoint's CA file or the system's trust store with its host
    name checked; redirects are not followed (a 3xx is a failed attempt). Each
    endpoint's deliveries are sent by one thread at a time."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str, str | None], KeptConnection] = {}
        self._lock = threading.Lock()

    def _connection(self, endpoint: WebhookEndpoint) -> KeptConnection:
        key = (endpoint.id, endpoint.url, endpoint.ca_file)
        with self._lock:
            found = self._kept.get(key)
        if found is not None:
            return found
        parts = urlsplit(endpoint.url)
        host = parts.hostname or ""
        if parts.scheme == "https":
            context: ssl.SSLContext | None = client_context(endpoint.ca_file)
        elif is_loopback(host):
            context = None
        else:
            raise PkiError("plain http:// is only for this machine")
        kept = KeptConnection(host, parts.port, context)
        with self._lock:
            self._kept[key] = kept
        return kept

    def send(
        self, endpoint: WebhookEndpoint, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Attempt:
        try:
            kept = self._connection(endpoint)
        except PkiError as exc:
            return Attempt(None, str(exc)[:200])
        parts = urlsplit(endpoint.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for fresh in (False, True):
            reused = kept._conn is not None
            try:
                conn = kept.connection(timeout)
                conn.request("POST", target, body=body, headers=dict(headers))
                answer = conn.getresponse()
                answer.read(_ANSWER_MAX)
                if answer.will_close or not answer.isclosed():
                    kept.close()
                return Attempt(answer.status)
            except (OSError, http.client.HTTPException) as exc:
                kept.close()
                # A kept connection the endpoint closed meanwhile: once more on a new one.
                stale = isinstance(
                    exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected
                )
                if reused and stale and not fresh:
                    continue
                return Attempt(None, _why(exc))
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for one in kept:
            one.close()


@dataclass(slots=True)
class Report:
    """What cycles did."""

    dispatched: int = 0
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0

    def add(self, other: Report) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class _Outcome:
    claimed: Claimed
    attempt: Attempt | None  # None: not attempted (released)


@dataclass(slots=True)
class _Target:
    endpoint: WebhookEndpoint
    signing: list[str] = field(default_factory=list)


class Deliverer:
    """Dispatches, claims, sends and records deliveries, and expires stale holds
    (module docstring). One per worker; not shared between threads."""

    def __init__(
        self,
        ledger: Ledger,
        webhooks: Webhooks,
        policy: DeliveryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sender: Sender | None = None,
    ) -> None:
        self.ledger = ledger
        self.webhooks = webhooks
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.sender: Sender = sender or HttpSender()
        self._outcomes: list[_Outcome] = []
        self._pool: ThreadPoolExecutor | None = None

    # -- one cycle -------------------------------------------------------------------

    def _waiting(self, now: str) -> bool:
        """Whether an event waits for dispatch or a delivery is due (read only: an idle
        worker takes no write lock)."""
        with self.ledger.unit_of_work(write=False, snapshot=False) as uow:
            return bool(uow.events.undispatched(1)) or uow.webhooks.due(now)

    def cycle(self) -> Report:
        """Record, dispatch, claim in one transaction; then send (module docstring)."""
        report = Report()
        now_s = self.clock()
        now = _text(now_s)
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes and not self._waiting(now):
            return report
        targets: dict[str, _Target] = {}
        try:
            with self.ledger.unit_of_work() as uow:
                self._record(uow, outcomes, now_s, report)
                report.dispatched = self._dispatch(uow, now)
                claimed = uow.webhooks.claim(
                    now, _text(now_s + self.policy.lease), self.policy.batch
                )
                for c in claimed:
                    if c.endpoint_id not in targets:
                        targets[c.endpoint_id] = _Target(
                            uow.webhooks.get(c.endpoint_id),
                            self.webhooks.signing_secrets(
                                c.endpoint_id, uow.webhooks.sealed_secrets(c.endpoint_id),
                                utc_text(datetime.now(UTC)),
                            ),
                        )  # fmt: skip
                uow.commit()
        except BaseException:
            self._outcomes = outcomes + self._outcomes  # recorded by a later cycle
            raise
        report.claimed = len(claimed)
        if claimed:
            self._outcomes = self._send(claimed, targets)
        return report

    def _dispatch(self, uow: UnitOfWork, now: str) -> int:
        """Make the deliveries of undispatched events (oldest first)."""
        if not uow.events.dispatch_lock():
            return 0
        pending = uow.events.undispatched(max(self.policy.batch, 500))
        if not pending:
            return 0
        endpoints = [e for e in uow.webhooks.list() if e.status is EndpointStatus.ENABLED]
        rows = [
            (ev.seq, ev.id, ep.id, ev.object_id)
            for ev in pending
            for ep in endpoints
            if ep.subscribes(ev.type, ev.terminal_id)
        ]
        uow.webhooks.add_deliveries(rows, now)
        uow.events.mark_dispatched([ev.seq for ev in pending])
        return len(pending)

    def _record(
        self, uow: UnitOfWork, outcomes: Sequence[_Outcome], now_s: float, report: Report
    ) -> None:
        """Write what the sends got: delivered, retried later, failed, or released."""
        released: list[int] = []
        now = _text(now_s)
        for o in outcomes:
            c = o.claimed
            if o.attempt is None:
                released.append(c.delivery_id)
            elif o.attempt.ok:
                assert o.attempt.status is not None
                uow.webhooks.delivered(c.delivery_id, o.attempt.status, now)
                report.delivered += 1
            else:
                error = o.attempt.error or f"HTTP {o.attempt.status}"
                deadline = _seconds(c.created_at) + self.policy.give_up_after
                if now_s >= deadline - 1.0:  # within a second of it (times are text)
                    uow.webhooks.attempt_failed(
                        c.delivery_id, o.attempt.status, error, next_attempt_at=None
                    )
                    report.failed += 1
                    log.warning("gave up delivering %s to %s: %s", c.event.id, c.endpoint_id, error)
                else:
                    wait = backoff(c.attempts + 1, self.policy)
                    uow.webhooks.attempt_failed(
                        c.delivery_id, o.attempt.status, error,
                        next_attempt_at=_text(min(now_s + wait, deadline)),
                    )  # fmt: skip
                    report.retried += 1
        if released:
            uow.webhooks.release(released)

    def _send(self, claimed: Sequence[Claimed], targets: Mapping[str, _Target]) -> list[_Outcome]:
        groups: dict[str, list[Claimed]] = {}
        for c in claimed:
            groups.setdefault(c.endpoint_id, []).append(c)
        if len(groups) == 1:
            (only,) = groups.values()
            return self._send_group(only, targets[only[0].endpoint_id])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
        futures = [
            self._pool.submit(self._send_group, items, targets[endpoint_id])
            for endpoint_id, items in groups.items()
        ]
        return [o for f in futures for o in f.result()]

    def _send_group(self, items: Sequence[Claimed], target: _Target) -> list[_Outcome]:
        """One endpoint's deliveries, in turn. Sends stop before the lease could end
        (the rest are released); after a connection-level failure the rest count the
        same failed attempt."""
        policy = self.policy
        stop_at = time.monotonic() + max(policy.lease - policy.timeout - 1.0, 1.0)
        out: list[_Outcome] = []
        down: Attempt | None = None
        for c in items:
            if down is not None:
                out.append(_Outcome(c, down))
                continue
            if time.monotonic() > stop_at:
                out.append(_Outcome(c, None))
                continue
            body = payload(c.event)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                EVENT_ID_HEADER: c.event.id,
                "Tapstack-Event-Type": c.event.type.value,
                SIGNATURE_HEADER: signature_header(target.signing, int(time.time()), body),
            }
            attempt = self.sender.send(target.endpoint, body, headers, policy.timeout)
            if attempt.status is None:
                down = attempt
            out.append(_Outcome(c, attempt))
        return out

    # -- the rest ----------------------------------------------------------------------

    def flush(self) -> Report:
        """Record the outcomes of the last sends (before stopping)."""
        report = Report()
        outcomes, self._outcomes = self._outcomes, []
        if outcomes:
            with self.ledger.unit_of_work() as uow:
                self._record(uow, outcomes, self.clock(), report)
                uow.commit()
        return report

    def expire(self) -> int:
        """Expire the pending authorisations past their ``expires_at`` (each with its
        ``authorisation.expired`` event, :func:`issuer.domain.funds.expire_due`), in
        transactions of 100; how many."""
        total = 0
        while True:
            with self.ledger.unit_of_work() as uow:
                done = funds.expire_due(uow, _text(self.clock()), limit=100)
                uow.commit()
            total += len(done)
            if len(done) < 100:
                return total

    def run_once(self, max_cycles: int = 100_000) -> Report:
        """Expire stale holds, then cycle until nothing is left to dispatch, due or to
        record (what waits for a later retry stays): ``issuer events deliver --once``."""
        total = Report(expired=self.expire())
        for _ in range(max_cycles):
            report = self.cycle()
            total.add(report)
            if not report.claimed and not report.dispatched and not self._outcomes:
                break
        total.add(self.flush())
        return total

    def close(self) -> None:
        """Stop the send threads and close the kept connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.sender.close()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Worker(threading.Thread):
    """The background worker (a daemon thread beside the service's event loop, so that
    its database and HTTP work never runs in the loop that answers terminals): cycles
    of its :class:`Deliverer` and, every ``expire_every`` seconds, the expiry of stale
    holds. Errors (a busy database, a lost connection) are logged and the next cycle
    tries again. :meth:`stop` records the last outcomes and returns."""

    def __init__(self, deliverer: Deliverer) -> None:
        super().__init__(name="issuer-events", daemon=True)
        self.deliverer = deliverer
        self._halt = threading.Event()

    def run(self) -> None:
        policy = self.deliverer.policy
        next_expiry = time.monotonic()
        while not self._halt.is_set():
            wait = policy.poll
            try:
                if policy.expire_every and time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + policy.expire_every
                    self.deliverer.expire()
                report = self.deliverer.cycle()
                if report.claimed >= policy.batch:
                    wait = 0.0
                elif report.claimed or report.dispatched:
                    wait = policy.busy_poll
            except Exception as exc:
                log.warning("event delivery: %s", _why(exc))
            self._halt.wait(wait)
        with contextlib.suppress(Exception):
            self.deliverer.flush()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the cycle under way (its sends included), then close."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
        self.deliverer.close()
