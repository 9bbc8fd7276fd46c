"""Store and forward over NATS JetStream: the gate's side of the gate protocol on a
message bus (the back office's side, and the names: backoffice/stream.py).

Where a back office runs on several machines, a gate talks to NATS instead of to one
back office over HTTP (:mod:`.uploader`); the choice is the gate's configuration
(``terminal gate transit --nats URL`` rather than ``--backoffice URL``).

:class:`TapPublisher` is a thread that publishes the journal's pending records
(oldest first, at most ``batch`` at a time, all in flight together) to subject
``taps.<operator>.<gate_id>``, each with its tap id as message id (``Nats-Msg-Id``),
and moves the journal's cursor past a record only once JetStream acknowledged it and
every record before it. A gate that crashes, or loses the acknowledgement, sends the
record again: JetStream drops a message id it has seen within the stream's duplicate
window, and the back office stores a tap id once beyond it. Failures (no server, no
acknowledgement in time) are retried with exponential back-off and jitter, as the
HTTP uploader does; the NATS client reconnects by itself meanwhile.

:class:`DenyListFollower` is a thread that watches the operator's deny-list bucket
(``deny_<operator>``: a key per card reference on the list) instead of polling: it
reads the bucket's stream from the revision after the one the gate applied last (the
list's version), or, for a gate with no list yet (or a bucket younger than its list),
takes the current value of every key as the full list, then applies each change as it
comes (:meth:`terminal.apps.denylist.DenyList.apply`, durable first).

Every link is TLS in a deployment (``tls://``, the gate's client certificate);
``nats://`` only for local development (:meth:`emvwire.tls.ClientTls.for_nats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from terminal.apps.denylist import DenyList, DenyListError
from terminal.apps.journal import Journal

__all__ = ["BATCH_LIMIT", "DenyListFollower", "JetStreamLink", "TapPublisher"]

log = logging.getLogger(__name__)

#: Most taps in flight at once.
BATCH_LIMIT: Final = 500
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 30.0
_OPERATOR: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: The header of a key-value deletion (NATS ADR-8).
_KV_OPERATION: Final = "KV-Operation"


@dataclass(frozen=True, slots=True)
class JetStreamLink:
    """The NATS server at ``url`` of ``operator``, for gate ``gate_id``, over TLS with
    ``tls`` (``None``: a local server without TLS)."""

    url: str
    operator: str
    gate_id: str
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if not _OPERATOR.fullmatch(self.operator):
            raise ValueError("an operator name is 1-32 lower-case letters, digits, '-' and '_'")

    @property
    def subject(self) -> str:
        """Where this gate publishes its taps."""
        return f"taps.{self.operator}.{self.gate_id}"

    @property
    def bucket(self) -> str:
        """The deny list's key-value bucket."""
        return f"deny_{self.operator}"

    async def connect(self, what: str) -> Client:
        """A connection that reconnects by itself once made (the first attempt fails
        after two tries: the caller backs off and tries again)."""
        nc = await nats.connect(
            self.url, name=f"tapstack gate {self.gate_id} {what}", tls=self.tls,
            connect_timeout=5, max_reconnect_attempts=1, reconnect_time_wait=0.5,
            error_cb=_quiet,
        )  # fmt: skip
        nc.options["max_reconnect_attempts"] = -1  # once connected: for ever (nats-py reads it)
        return nc


async def _quiet(exc: Exception) -> None:
    """NATS's asynchronous errors (a lost connection, a reconnection attempt refused):
    one line each, no traceback; the client reconnects by itself."""
    log.warning("NATS: %s", exc or type(exc).__name__)


class _LoopThread:
    """A thread running one asyncio coroutine until :meth:`stop`."""

    name = "nats"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        """Start the thread (daemon: a crash of the gate leaves the journal as it is)."""
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _main(self) -> None:
        asyncio.run(self._with_loop())

    async def _with_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._run(self._stop)

    def _run(self, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def _soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (a batch in flight finishes or times out first)."""
        stop = self._stop
        if stop is not None:
            self._soon(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


class TapPublisher(_LoopThread):
    """Publishes the journal's pending taps to JetStream (module docstring), the
    counterpart of :class:`terminal.apps.uploader.Uploader`: ``on_acknowledged``
    receives the records the back office's stream now holds, after the cursor moved;
    ``status`` says how the last attempt went."""

    name = "tap-publisher"

    def __init__(
        self,
        journal: Journal,
        link: JetStreamLink,
        *,
        batch: int = BATCH_LIMIT,
        on_acknowledged: Callable[[list[dict[str, Any]]], None] | None = None,
        ack_timeout: float = 5.0,
        idle_poll: float = 5.0,
        backoff_max: float = _BACKOFF_MAX,
    ) -> None:
        super().__init__()
        if not 1 <= batch <= BATCH_LIMIT:
            raise ValueError(f"a batch is 1 to {BATCH_LIMIT} taps")
        self.journal = journal
        self.link = link
        self.batch = batch
        self.on_acknowledged = on_acknowledged
        self.ack_timeout = ack_timeout
        self.idle_poll = idle_poll
        self.backoff_max = backoff_max
        self.status = "idle"
        self.failures = 0
        self.duplicates = 0
        self._wake: asyncio.Event | None = None

    def notify(self) -> None:
        """A new tap is in the journal: publish now rather than at the next poll."""
        wake = self._wake
        if wake is not None:
            self._soon(wake.set)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until nothing is pending; whether that happened."""
        deadline = time.monotonic() + timeout
        self.notify()
        while self.journal.pending(1):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    async def publish_once(self, nc: Client) -> int:
        """Publish one batch of pending taps; move the cursor past those acknowledged
        in order; how many. Raises (cursor moved only as far as acknowledged) when one
        is not acknowledged."""
        records = self.journal.pending(self.batch)
        if not records:
            return 0
        js = nc.jetstream()
        subject = self.link.subject
        sends = [
            js.publish(
                subject,
                json.dumps(_tap(r), separators=(",", ":")).encode(),
                timeout=self.ack_timeout,
                headers={"Nats-Msg-Id": r["tap_id"]},
            )
            for r in records
        ]
        answers = await asyncio.gather(*sends, return_exceptions=True)
        taken = 0
        failure: BaseException | None = None
        for answer in answers:
            if isinstance(answer, BaseException):
                failure = answer
                break
            taken += 1
            self.duplicates += int(bool(answer.duplicate))
        if taken:
            self.journal.acknowledge(records[taken - 1]["seq"])
            if self.on_acknowledged is not None:
                self.on_acknowledged(records[:taken])
        if failure is not None:
            raise failure
        return taken

    async def _run(self, stop: asyncio.Event) -> None:
        self._wake = asyncio.Event()
        delay = _BACKOFF_FIRST
        nc: Client | None = None
        try:
            while not stop.is_set():
                try:
                    if nc is None:
                        nc = await self.link.connect("taps")
                    sent = await self.publish_once(nc)
                except (OSError, TimeoutError, nats.errors.Error) as exc:
                    self.failures += 1
                    self.status = f"failing: {exc or type(exc).__name__}"
                    log.warning("publish failed (retry in %.1f s): %s", delay, self.status)
                    await _wait(stop, delay * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                delay = _BACKOFF_FIRST
                if sent:
                    self.status = "ok"
                    continue  # more may be pending
                await _wait(self._wake, self.idle_poll, also=stop)
                self._wake.clear()
        finally:
            if nc is not None:
                await _close(nc)


class DenyListFollower(_LoopThread):
    """Keeps ``deny_list`` current from the operator's bucket as it changes (module
    docstring), the counterpart of :class:`terminal.apps.uploader.DenyListPoller`."""

    name = "deny-list-follower"

    def __init__(self, deny_list: DenyList, link: JetStreamLink) -> None:
        super().__init__()
        self.deny_list = deny_list
        self.link = link
        self.status = "not followed yet"
        self.changes = 0
        self._sweep: list[str] | None = None
        self._swept = 0

    def _apply(self, msg: Msg) -> None:
        """One message of the bucket's stream: a key set (on the list) or deleted."""
        meta = msg.metadata
        ref = msg.subject.rpartition(".")[2]
        removed = bool(msg.headers and msg.headers.get(_KV_OPERATION) in ("DEL", "PURGE"))
        revision = meta.sequence.stream
        try:
            if self._sweep is not None:  # the first look at every key: the full list
                if not removed:
                    self._sweep.append(ref)
                self._swept = max(self._swept, revision)
                if meta.num_pending == 0:
                    refs, self._sweep = self._sweep, None
                    self.deny_list.apply({"version": self._swept, "full": True, "add": refs})
            else:
                delta = {"version": revision, "add": [] if removed else [ref],
                         "remove": [ref] if removed else []}  # fmt: skip
                self.deny_list.apply(delta)
        except DenyListError as exc:
            log.warning("deny-list change ignored: %s", exc)
            return
        self.changes += 1
        self.status = f"version {self.deny_list.version}"

    async def _subscribe(self, nc: Client) -> Any:
        js = nc.jetstream()
        bucket_stream = f"KV_{self.link.bucket}"
        state = (await js.stream_info(bucket_stream)).state
        version = self.deny_list.version
        subject = f"$KV.{self.link.bucket}.>"

        async def on_msg(msg: Msg) -> None:
            self._apply(msg)

        if 0 < version <= state.last_seq:
            config = api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=version + 1
            )
            return await js.subscribe(subject, cb=on_msg, ordered_consumer=True, config=config)
        if state.messages == 0:  # nothing on the list: an empty full list at its revision
            self.deny_list.apply({"version": state.last_seq, "full": True, "add": []})
            config = api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=state.last_seq + 1,
            )
            return await js.subscribe(subject, cb=on_msg, ordered_consumer=True, config=config)
        self._sweep, self._swept = [], 0
        return await js.subscribe(
            subject, cb=on_msg, ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        )  # fmt: skip

    async def _run(self, stop: asyncio.Event) -> None:
        delay = _BACKOFF_FIRST
        while not stop.is_set():
            nc: Client | None = None
            try:
                nc = await self.link.connect("deny list")
                await self._subscribe(nc)
                self.status = f"following from version {self.deny_list.version}"
                delay = _BACKOFF_FIRST
                await stop.wait()
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                self.status = f"failing: {exc or type(exc).__name__}"
                log.warning("deny list not followed (the gate keeps its list): %s", self.status)
                await _wait(stop, delay)
                delay = min(delay * 2, _BACKOFF_MAX)
            finally:
                if nc is not None:
                    await _close(nc)


def _tap(record: dict[str, Any]) -> dict[str, Any]:
    """The TAP of a journal record (the journal's ``seq`` is not part of it)."""
    return {k: v for k, v in record.items() if k != "seq"}


async def _wait(event: asyncio.Event, seconds: float, *, also: asyncio.Event | None = None) -> None:
    """Wait until ``event`` (or ``also``) is set or ``seconds`` pass."""
    waiters = [asyncio.ensure_future(event.wait())]
    if also is not None:
        waiters.append(asyncio.ensure_future(also.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _close(nc: Client) -> None:
    """Close a connection, whatever state it is in."""
    with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):
        await asyncio.wait_for(nc.close(), timeout=5)
