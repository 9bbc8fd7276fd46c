"""Taps in and the deny list out over NATS JetStream: the back office's side of the
gate protocol on a message bus (the gate's side: terminal/apps/stream.py).

The HTTP gate protocol (:mod:`backoffice.service`) suits one machine with no message
bus, and stays the default. Past one machine, gates and back office instances meet on
NATS JetStream instead, with these names for operator ``OP`` (:class:`Names`; lower
case letters, digits, ``-`` and ``_``):

- **Taps**: each gate publishes each sealed tap (the TAP object of the gate protocol,
  JSON) to subject ``taps.OP.<gate_id>`` of stream ``TAPS_OP`` (work-queue
  retention, file storage), with the tap id as message id (header ``Nats-Msg-Id``).
  The stream's duplicate window (default 2 h) makes a re-send after a crash or a lost
  acknowledgement a no-op on the server; the gate marks the journal entry uploaded
  only on the publish acknowledgement. Beyond the window, the back office's store
  takes a tap id once (:meth:`backoffice.store.Store.store_taps`).
- **Back office instances** consume through one durable pull consumer,
  ``backoffice`` (explicit acknowledgement): each fetches a batch, validates each tap
  (:func:`backoffice.store.validate_tap`, the gate id from the subject; a gate that is
  unknown or revoked, or a malformed tap, is logged and terminated: never redelivered),
  commits the batch in one transaction, then acknowledges it. An instance killed
  mid-batch never acknowledged its batch: the server redelivers it to another after
  the consumer's ``ack_wait``, and the store applies it once by tap id.
- **Deny list**: key-value bucket ``deny_OP``, one key per card reference on the
  list (value ``1``), deleted when it leaves the list. Gates watch the bucket instead
  of polling; a key's revision (its stream sequence) is the gate's deny-list version.
  The back office publishes from ``deny_changes`` after they commit, from the version
  recorded in ``meta`` (``deny_published``) on: a crash between the publication and
  that record publishes the same changes again, which changes nothing. One instance
  publishes at a time (a lock of the database, :meth:`backoffice.database.Database.
  try_lock`), so changes reach the bucket in version order.

Every link is TLS in a deployment: ``tls://`` URLs, the server verified against a
CA, a client certificate presented (NATS authorisation then restricts each gate to
publishing on its own subject). ``nats://`` (no TLS) only with ``--dev-plain-http``,
for a local server such as a developer's.

:func:`setup` makes the stream, the consumer and the bucket (idempotent: run again, it
changes nothing, or updates what may change); :class:`TapConsumer` is a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.kv import KeyValue

from backoffice.errors import BackOfficeError, ForeignTapError, TapError
from backoffice.fares import FareRules
from backoffice.store import Store, now_text, validate_tap

__all__ = [
    "DEFAULT_ACK_WAIT",
    "DEFAULT_DUPLICATE_WINDOW",
    "DURABLE",
    "Names",
    "NatsLink",
    "StreamError",
    "StreamUnreachableError",
    "TapConsumer",
    "setup",
]

log = logging.getLogger("backoffice.stream")

_OPERATOR: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: The one durable pull consumer every back office instance fetches from.
DURABLE: Final = "backoffice"
#: Seconds in which the server drops a re-sent tap id (2 h: past a gate's restart).
DEFAULT_DUPLICATE_WINDOW: Final = 7200.0
#: Seconds before a fetched, unacknowledged tap goes to another instance.
DEFAULT_ACK_WAIT: Final = 30.0
#: Most taps fetched and committed at once.
DEFAULT_BATCH: Final = 500
#: Deny-list changes published per round (then the next round goes on).
_DENY_BATCH: Final = 1000
_DENY_PUBLISHER: Final = "bo:deny-publish"


class StreamError(BackOfficeError):
    """NATS refused, or lacks the stream, consumer or bucket (the message says which)."""


class StreamUnreachableError(StreamError):
    """NATS could not be reached."""


@dataclass(frozen=True, slots=True)
class Names:
    """The JetStream names of operator ``operator`` (module docstring)."""

    operator: str

    def __post_init__(self) -> None:
        if not _OPERATOR.fullmatch(self.operator):
            raise ValueError("an operator name is 1-32 lower-case letters, digits, '-' and '_'")

    @property
    def stream(self) -> str:
        """The stream of taps."""
        return f"TAPS_{self.operator}"

    @property
    def subjects(self) -> str:
        """Every gate's subject."""
        return f"taps.{self.operator}.*"

    @property
    def bucket(self) -> str:
        """The deny list's key-value bucket."""
        return f"deny_{self.operator}"


@dataclass(frozen=True, slots=True)
class NatsLink:
    """A NATS server at ``url`` for operator ``names``, over TLS with ``tls`` (``None``:
    a local server without TLS, :meth:`emvwire.tls.ClientTls.for_nats`)."""

    url: str
    names: Names
    tls: ssl.SSLContext | None = None

    async def connect(self, name: str) -> Client:
        """A connection that reconnects for ever once made; :class:`StreamError` if the
        server cannot be reached now (two attempts)."""
        try:
            nc = await nats.connect(
                self.url, name=name, tls=self.tls, connect_timeout=5,
                max_reconnect_attempts=1, reconnect_time_wait=0.5, error_cb=_quiet,
            )  # fmt: skip
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            why = str(exc) or type(exc).__name__
            raise StreamUnreachableError(f"cannot reach NATS at {self.url}: {why}") from None
        nc.options["max_reconnect_attempts"] = -1  # once connected: for ever (nats-py reads it)
        return nc


async def _quiet(exc: Exception) -> None:
    """NATS's asynchronous errors (a lost connection, a reconnection attempt refused):
    one line each, no traceback; the client reconnects by itself."""
    log.warning("NATS: %s", exc or type(exc).__name__)


async def setup(
    link: NatsLink,
    *,
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
    ack_wait: float = DEFAULT_ACK_WAIT,
) -> dict[str, Any]:
    """Make (or update) the stream of taps, the durable consumer and the deny-list
    bucket of ``link.names`` (module docstring); what there is now."""
    names = link.names
    nc = await link.connect("tapstack backoffice setup")
    try:
        js = nc.jetstream()
        config = api.StreamConfig(
            name=names.stream, subjects=[names.subjects],
            retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
            duplicate_window=duplicate_window, max_msg_size=64 * 1024,
        )  # fmt: skip
        try:
            info = await js.add_stream(config)
        except nats.js.errors.BadRequestError:  # there, configured otherwise: update it
            info = await js.update_stream(config)
        consumer = await js.add_consumer(
            names.stream,
            api.ConsumerConfig(
                durable_name=DURABLE, ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL, ack_wait=ack_wait,
                max_ack_pending=20_000, max_deliver=-1,
            ),
        )  # fmt: skip
        await js.create_key_value(bucket=names.bucket, history=1, storage=api.StorageType.FILE)
    except nats.errors.Error as exc:
        raise StreamError(f"NATS refused the set-up: {exc}") from None
    finally:
        await nc.close()
    return {
        "stream": names.stream,
        "subjects": names.subjects,
        "duplicate_window_s": info.config.duplicate_window,
        "consumer": consumer.name,
        "ack_wait_s": consumer.config.ack_wait,
        "deny_list_bucket": names.bucket,
        "taps_waiting": info.state.messages,
    }


class _Puller:
    """Batches of the durable pull consumer, one pull request each (the JetStream API's
    ``CONSUMER.MSG.NEXT``), delivered to one callback subscription: nats-py's own
    ``fetch`` awaits each message apart, about 100 us each on this machine. A batch is
    what is there now (``no_wait``); when nothing is, the request waits up to ``wait``
    seconds for the first message. A status message (404 none, 408 expired, 409...) ends
    a request."""

    def __init__(self, nc: Client, stream: str, durable: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self._msgs: list[Msg] = []
        self._wanted = 0
        self._done = asyncio.Event()

    async def start(self) -> None:
        await self.nc.subscribe(self.inbox, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None and not self._done.is_set():
            self._msgs.append(msg)
            if len(self._msgs) >= self._wanted:
                self._done.set()
        elif status is not None and status != "100":  # 100: a heartbeat
            self._done.set()

    async def _request(self, batch: int, wait: float | None) -> list[Msg]:
        self._msgs, self._wanted = [], batch
        self._done.clear()
        request: dict[str, Any] = {"batch": batch}
        if wait is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait * 1e9)
        await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), (wait or 0) + 5)
        self._done.set()  # what comes late is for no request: dropped (redelivered)
        return self._msgs

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        """Up to ``batch`` messages: those there now, else the first within ``wait``."""
        msgs = await self._request(batch, None)
        if msgs:
            return msgs
        first = await self._request(1, wait)
        if not first:
            return []
        return first + await self._request(batch - 1, None) if batch > 1 else first


class TapConsumer:
    """A back office instance's worker on the bus (module docstring): taps from the
    durable consumer into ``store`` (``batch`` at a time), deny-list changes from the
    store to the bucket. ``on_stored`` is called with the count of new taps after each
    commit (the engine worker's nudge)."""

    def __init__(
        self,
        store: Store,
        rules: FareRules,
        link: NatsLink,
        *,
        batch: int = DEFAULT_BATCH,
        on_stored: Callable[[int], None] = lambda count: None,
        deny_every: float = 1.0,
    ) -> None:
        self.store = store
        self.rules = rules
        self.link = link
        self.batch = batch
        self.on_stored = on_stored
        self.deny_every = deny_every
        self.stored = 0
        self.duplicates = 0
        self.refused = 0
        self.published = 0
        # The store's connections are per thread: every store call runs in this one.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="backoffice-consumer-db")

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (the batch under way is finished first)."""
        names = self.link.names
        nc = await self.link.connect("tapstack backoffice")
        try:
            js = nc.jetstream()
            try:
                await js.consumer_info(names.stream, DURABLE)
                kv = await js.key_value(names.bucket)
            except nats.js.errors.Error as exc:
                raise StreamError(
                    f"{names.stream} or {names.bucket} is missing on {self.link.url}: "
                    f"run `backoffice nats setup` ({exc})"
                ) from None
            puller = _Puller(nc, names.stream, DURABLE)
            await puller.start()
            last_deny = 0.0
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                try:
                    msgs = await puller.fetch(self.batch, 1.0)
                except nats.errors.Error as exc:  # a lost connection: it comes back
                    log.warning("fetch failed (retrying): %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                if msgs:
                    try:
                        await self._apply(msgs)
                    except Exception as exc:  # the database: not acknowledged, redelivered
                        log.warning("batch not stored (NATS delivers it again): %s", exc)
                        await asyncio.sleep(1.0)
                if loop.time() - last_deny >= self.deny_every:
                    last_deny = loop.time()
                    try:
                        await self.publish_deny_list(kv)
                    except Exception as exc:  # the database: published next round
                        log.warning("deny list not published (next round): %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
            self._db.shutdown(wait=True)

    async def _apply(self, msgs: Sequence[Msg]) -> None:
        """Validate, commit, then acknowledge one batch (module docstring)."""
        received = now_text()
        gates = {m.subject.rpartition(".")[2] for m in msgs}
        active = {g for g in gates if await self._call(self.store.gate_active, g)}
        good: list[tuple[Msg, tuple[Any, ...]]] = []
        for msg in msgs:
            gate = msg.subject.rpartition(".")[2]
            try:
                if gate not in active:
                    raise TapError(f"gate {gate} is unknown or revoked")
                good.append((msg, validate_tap(json.loads(msg.data), gate, self.rules, received)))
            except (ValueError, TapError, ForeignTapError) as exc:
                self.refused += 1
                log.warning("tap refused on %s (not redelivered): %s", msg.subject, exc)
                await msg.term()
        if good:
            result = await self._call(self.store.store_taps, [row for _, row in good])
            self.stored += len(result.accepted)
            self.duplicates += len(result.duplicates)
            for msg, _ in good:
                await msg.ack()
            if result.accepted:
                self.on_stored(len(result.accepted))

    async def publish_deny_list(self, kv: KeyValue) -> int:
        """Publish the deny-list changes not published yet (module docstring); how
        many. Skipped while another instance publishes."""
        got = await self._call(self._deny_changes)
        if got is None:
            return 0
        changes = got
        try:
            for _version, ref, op in changes:
                if op == "add":
                    await kv.put(ref, b"1")
                else:
                    await kv.delete(ref)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("deny-list publication failed (retried): %s", exc)
            changes = []
        await self._call(self._deny_done, changes[-1][0] if changes else None)
        self.published += len(changes)
        return len(changes)

    def _deny_changes(self) -> list[tuple[int, str, str]] | None:
        """Take the publisher's lock and read the changes after ``deny_published``;
        ``None`` if another instance holds the lock."""
        db = self.store.db
        if not db.try_lock(db.conn, _DENY_PUBLISHER):
            return None
        try:
            return [
                (int(v), str(ref), str(op))
                for v, ref, op in db.conn.execute(
                    "SELECT version, card_reference, op FROM deny_changes WHERE version > "
                    "COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = "
                    "'deny_published'), 0) ORDER BY version LIMIT ?",
                    (_DENY_BATCH,),
                )
            ]
        except BaseException:
            db.unlock(db.conn, _DENY_PUBLISHER)
            raise

    def _deny_done(self, version: int | None) -> None:
        """Record the version published last (if any) and give back the lock."""
        db = self.store.db
        try:
            if version is not None:
                with db.write() as w:
                    w.execute(
                        "INSERT INTO meta VALUES ('deny_published', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(version),),
                    )
        finally:
            db.unlock(db.conn, _DENY_PUBLISHER)
