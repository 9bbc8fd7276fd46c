# ruff: noqa: S608 - statements are assembled from module constants only, never input
"""The outbox and the webhooks of :mod:`issuer.ledger.repository` in SQL
(:class:`~issuer.ledger.repository.EventRepository`,
:class:`~issuer.ledger.repository.WebhookRepository`; schema migration 7).

The hot path writes an authorisation's event: queued by :meth:`SqlEvents.add` and
inserted with every other event of the transaction in one statement just before the
commit (:meth:`SqlEvents.flush`), so that a group commit of 48 authorisations adds one
INSERT, not 48. An event that is not its object's first is numbered by the statement
that inserts it (the object's highest ``object_seq`` plus one, read through the
unique index), after the queue is flushed.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from issuer.errors import NotFoundError
from issuer.ledger.repository import Claimed, Undispatched
from issuer.model.events import (
    Delivery,
    DeliveryStatus,
    EndpointStatus,
    Event,
    EventType,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from issuer.ledger.sql import SqlConnection

__all__ = ["SqlEvents", "SqlWebhooks"]

#: First key of the advisory lock of the one event dispatcher of a ledger on PostgreSQL
#: ("tapv" in ASCII, an int4); the second is the hash of the ledger's schema, so that
#: the ledgers of several schemas in one database each have their own dispatcher.
_DISPATCH_LOCK: Final = 0x74617076
#: Rows per multi-row statement (well below SQLite's 32,766 parameters).
_CHUNK: Final = 200

_EVENT_INSERT: Final = "id, type, object_type, object_id, object_seq, terminal_id, data, created_at"
_EVENT_COLUMNS: Final = (
    "id, type, created_at, object_type, object_id, data, object_seq, terminal_id"
)


def _event(row: Sequence[Any]) -> Event:
    return Event(row[0], EventType(row[1]), row[2], row[3], row[4], row[5], int(row[6]), row[7])


@functools.lru_cache(maxsize=64)
def _events_insert(count: int) -> str:
    """The INSERT of ``count`` first events of their objects in one statement."""
    values = ", ".join("(?, ?, ?, ?, 1, ?, ?, ?)" for _ in range(count))
    return f"INSERT INTO events ({_EVENT_INSERT}) VALUES {values}"


class SqlEvents:
    """:class:`~issuer.ledger.repository.EventRepository` in SQL (module docstring)."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db
        self._queue: list[Event] = []

    def add(self, event: Event) -> None:
        if event.sequence == 1:
            self._queue.append(event)
            return
        self.flush()
        e = event
        self.db.run(
            f"INSERT INTO events ({_EVENT_INSERT})"
            " SELECT ?, ?, ?, ?, COALESCE(MAX(object_seq), 0) + 1, ?, ?, ?"
            " FROM events WHERE object_id = ?",
            (e.id, e.type.value, e.object_type, e.object_id, e.terminal_id, e.data,
             e.created_at, e.object_id),
        )  # fmt: skip

    def flush(self) -> None:
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), _CHUNK):
            chunk = queue[start : start + _CHUNK]
            params: list[Any] = []
            for e in chunk:
                params += (e.id, e.type.value, e.object_type, e.object_id, e.terminal_id,
                           e.data, e.created_at)  # fmt: skip
            self.db.later(_events_insert(len(chunk)), params)

    def discard(self) -> None:
        self._queue.clear()

    def get(self, event_id: str) -> Event:
        row = self.db.one(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,))
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        return _event(row)

    def locate(self, event_id: str) -> Undispatched:
        """An event's sequence, type, object and terminal (for a resend)."""
        row = self.db.one(
            "SELECT seq, id, type, object_id, terminal_id FROM events WHERE id = ?", (event_id,)
        )
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        return Undispatched(int(row[0]), row[1], row[2], row[3], row[4])

    def list(
        self,
        *,
        type: str | None = None,
        object_id: str | None = None,
        limit: int = 100,
        starting_after: str | None = None,
    ) -> tuple[builtins.list[Event], bool]:
        parts: builtins.list[str] = []
        params: builtins.list[Any] = []
        if type is not None:
            parts.append("type = ?")
            params.append(type)
        if object_id is not None:
            parts.append("object_id = ?")
            params.append(object_id)
        if starting_after is not None:
            after = self.locate(starting_after)
            parts.append("seq < ?")
            params.append(after.seq)
        where = " WHERE " + " AND ".join(parts) if parts else ""
        rows = self.db.all(
            f"SELECT {_EVENT_COLUMNS} FROM events{where} ORDER BY seq DESC LIMIT ?",
            (*params, limit + 1),
        )
        return [_event(r) for r in rows[:limit]], len(rows) > limit

    def undispatched(self, limit: int) -> builtins.list[Undispatched]:
        rows = self.db.all(
            "SELECT seq, id, type, object_id, terminal_id FROM events WHERE dispatched = 0"
            " ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [Undispatched(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def mark_dispatched(self, seqs: Sequence[int]) -> None:
        for start in range(0, len(seqs), _CHUNK):
            chunk = seqs[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            self.db.run(f"UPDATE events SET dispatched = 1 WHERE seq IN ({marks})", chunk)

    def dispatch_lock(self) -> bool:
        if self.db.dialect.name != "postgresql":
            return True
        row = self.db.one(
            "SELECT pg_try_advisory_xact_lock(?, hashtext(current_schema()))", (_DISPATCH_LOCK,)
        )
        return bool(row and row[0])


_ENDPOINT_COLUMNS: Final = (
    "id, url, events, status, created_at, description, terminal_id, ca_file, previous_secret_until"
)
_DELIVERY_COLUMNS: Final = (
    "id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at, last_status,"
    " last_error, delivered_at"
)


def _endpoint(row: Sequence[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        row[0], row[1], tuple(t for t in row[2].split(",") if t), EndpointStatus(row[3]),
        row[4], row[5], row[6], row[7], row[8],
    )  # fmt: skip


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        int(row[0]), row[1], row[2], DeliveryStatus(row[3]), int(row[4]), row[5], row[6],
        None if row[7] is None else int(row[7]), row[8], row[9],
    )  # fmt: skip


@functools.lru_cache(maxsize=16)
def _deliveries_insert(count: int) -> str:
    values = ", ".join("(?, ?, ?, ?, 'pending', 0, ?, ?)" for _ in range(count))
    return (
        "INSERT INTO webhook_deliveries (event_seq, event_id, endpoint_id, object_id, status,"
        f" attempts, next_attempt_at, created_at) VALUES {values}"
        " ON CONFLICT (endpoint_id, event_id) DO NOTHING"
    )


#: Due pending deliveries of enabled endpoints, unleased, each the oldest pending one
#: of its endpoint and object (order per object: a later event waits for it).
_CLAIMABLE: Final = (
    "SELECT d.id, d.endpoint_id, d.attempts, d.created_at,"
    " e.id, e.type, e.created_at, e.object_type, e.object_id, e.data, e.object_seq,"
    " e.terminal_id"
    " FROM webhook_deliveries d"
    " JOIN webhook_endpoints w ON w.id = d.endpoint_id"
    " JOIN events e ON e.id = d.event_id"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.status = 'enabled'"
    " AND (d.claimed_until IS NULL OR d.claimed_until <= ?)"
    " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.status = 'pending'"
    " AND p.endpoint_id = d.endpoint_id AND p.object_id = d.object_id"
    " AND p.event_seq < d.event_seq)"
    " ORDER BY d.next_attempt_at, d.id LIMIT ?"
)


class SqlWebhooks:
    """:class:`~issuer.ledger.repository.WebhookRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, endpoint: WebhookEndpoint, secret_sealed: bytes) -> None:
        e = endpoint
        self.db.run(
            "INSERT INTO webhook_endpoints (id, url, events, status, created_at, description,"
            " terminal_id, ca_file, secret_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.url, ",".join(e.events), e.status.value, e.created_at, e.description,
             e.terminal_id, e.ca_file, secret_sealed),
        )  # fmt: skip

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        row = self.db.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
        )
        if row is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
        return _endpoint(row)

    def list(self) -> builtins.list[WebhookEndpoint]:
        rows = self.db.all(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        )
        return [_endpoint(r) for r in rows]

    def sealed_secrets(self, endpoint_id: str) -> tuple[bytes, bytes | None, str | None]:
        row = self.db.one(
            "SELECT secret_sealed, previous_secret_sealed, previous_secret_until"
            " FROM webhook_endpoints WHERE id = ?",
            (endpoint_id,),
        )
        if row is None:
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
        previous = None if row[1] is None else bytes(row[1])
        return bytes(row[0]), previous, row[2]

    def set_status(self, endpoint_id: str, status: EndpointStatus) -> None:
        if not self.db.run(
            "UPDATE webhook_endpoints SET status = ? WHERE id = ?", (status.value, endpoint_id)
        ):
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")

    def rotate(self, endpoint_id: str, secret_sealed: bytes, previous_until: str) -> None:
        if not self.db.run(
            "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed,"
            " previous_secret_until = ?, secret_sealed = ? WHERE id = ?",
            (previous_until, secret_sealed, endpoint_id),
        ):
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")

    def remove(self, endpoint_id: str) -> None:
        self.db.run("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
        if not self.db.run("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)):
            raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")

    def add_deliveries(self, rows: Sequence[tuple[int, str, str, str]], now: str) -> None:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            params: builtins.list[Any] = []
            for seq, event_id, endpoint_id, object_id in chunk:
                params += (seq, event_id, endpoint_id, object_id, now, now)
            self.db.run(_deliveries_insert(len(chunk)), params)

    def schedule(self, event: Undispatched, endpoint_id: str, now: str) -> None:
        self.db.run(
            "INSERT INTO webhook_deliveries (event_seq, event_id, endpoint_id, object_id,"
            " status, attempts, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)"
            " ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending',"
            " attempts = 0, next_attempt_at = excluded.next_attempt_at, claimed_until = NULL,"
            " created_at = excluded.created_at",
            (event.seq, event.id, endpoint_id, event.object_id, now, now),
        )

    def claim(self, now: str, until: str, limit: int) -> builtins.list[Claimed]:
        # PostgreSQL: rows another worker is claiming are skipped, not waited for; the
        # lease then keeps them out of every later claim until it ends. SQLite: the
        # write transaction holds the one writer lock.
        lock = " FOR UPDATE OF d SKIP LOCKED" if self.db.dialect.name == "postgresql" else ""
        rows = self.db.all(_CLAIMABLE + lock, (now, now, limit))
        ids = [int(r[0]) for r in rows]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            self.db.run(
                f"UPDATE webhook_deliveries SET claimed_until = ? WHERE id IN ({marks})",
                (until, *chunk),
            )
        return [Claimed(int(r[0]), r[1], int(r[2]), r[3], _event(r[4:])) for r in rows]

    def delivered(self, delivery_id: int, status: int, now: str) -> None:
        self.db.run(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " last_status = ?, last_error = NULL, delivered_at = ?, claimed_until = NULL"
            " WHERE id = ? AND status = 'pending'",
            (status, now, delivery_id),
        )

    def attempt_failed(
        self,
        delivery_id: int,
        status: int | None,
        error: str,
        *,
        next_attempt_at: str | None,
    ) -> None:
        if next_attempt_at is None:
            self.db.run(
                "UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1,"
                " last_status = ?, last_error = ?, claimed_until = NULL"
                " WHERE id = ? AND status = 'pending'",
                (status, error, delivery_id),
            )
            return
        self.db.run(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?,"
            " last_error = ?, next_attempt_at = ?, claimed_until = NULL"
            " WHERE id = ? AND status = 'pending'",
            (status, error, next_attempt_at, delivery_id),
        )

    def release(self, delivery_ids: Sequence[int]) -> None:
        for start in range(0, len(delivery_ids), _CHUNK):
            chunk = delivery_ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            self.db.run(
                f"UPDATE webhook_deliveries SET claimed_until = NULL WHERE id IN ({marks})",
                chunk,
            )

    def due(self, now: str) -> bool:
        row = self.db.one(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending'"
            " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
            " LIMIT 1",
            (now, now),
        )
        return row is not None

    def deliveries(self, event_id: str) -> builtins.list[Delivery]:
        rows = self.db.all(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE event_id = ?"
            " ORDER BY endpoint_id",
            (event_id,),
        )
        return [_delivery(r) for r in rows]

    def pending(self) -> int:
        row = self.db.one("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        return int(row[0]) if row else 0
