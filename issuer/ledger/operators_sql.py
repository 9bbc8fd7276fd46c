# ruff: noqa: S608 - statements (and column lists) are assembled from module constants only, never input
"""The repositories of operators, their requests' idempotency keys, the audit log and
cursor pagination (:mod:`issuer.ledger.repository`), in SQL (schema migration 8).

Pagination is newest first by ``(created_at, id)`` (the audit log by its sequence):
the page after an object is the rows strictly before it in that order, so a page
never repeats or skips a row that existed when the previous one was read, whatever
was added since. One row more than asked is read to know ``has_more``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from issuer.errors import NotFoundError, ValidationError
from issuer.ledger.repository import Page
from issuer.model.entities import utc_now
from issuer.model.operators import AuditRecord, Operator, OperatorStatus

if TYPE_CHECKING:
    from issuer.ledger.sql import SqlConnection

__all__ = ["SqlAuditLog", "SqlOperatorRequests", "SqlOperators", "SqlPages"]

_OPERATOR_COLUMNS: Final = (
    "id, name, scopes, credential_hash, status, created_at, certificate_serial,"
    " certificate_not_after, revoked_at"
)


def _operator(row: tuple[Any, ...]) -> Operator:
    return Operator(
        row[0],
        row[1],
        tuple(s for s in row[2].split(",") if s),
        row[3],
        OperatorStatus(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
    )


class SqlOperators:
    """:class:`~issuer.ledger.repository.OperatorRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(self, operator: Operator) -> None:
        o = operator
        self.db.run(
            f"INSERT INTO operators ({_OPERATOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (o.id, o.name, ",".join(o.scopes), o.credential_hash, o.status.value, o.created_at,
             o.certificate_serial, o.certificate_not_after, o.revoked_at),
        )  # fmt: skip

    def get(self, operator_id: str) -> Operator:
        row = self.db.one(f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE id = ?", (operator_id,))
        if row is None:
            raise NotFoundError(f"no operator {operator_id!r}")
        return _operator(row)

    def set_certificate(self, operator_id: str, serial: str, not_after: str) -> None:
        if not self.db.run(
            "UPDATE operators SET certificate_serial = ?, certificate_not_after = ? WHERE id = ?",
            (serial, not_after, operator_id),
        ):
            raise NotFoundError(f"no operator {operator_id!r}")

    def set_status(self, operator_id: str, status: OperatorStatus, at: str) -> None:
        revoked_at = at if status is OperatorStatus.REVOKED else None
        if not self.db.run(
            "UPDATE operators SET status = ?, revoked_at = ? WHERE id = ?",
            (status.value, revoked_at, operator_id),
        ):
            raise NotFoundError(f"no operator {operator_id!r}")


class SqlOperatorRequests:
    """:class:`~issuer.ledger.repository.OperatorRequestRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def add(
        self,
        operator_id: str,
        key: str,
        request_hash: str,
        status: int,
        object_type: str,
        object_id: str,
    ) -> None:
        self.db.run(
            "INSERT INTO operator_requests (operator_id, idempotency_key, request_hash, status,"
            " object_type, object_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (operator_id, key, request_hash, status, object_type, object_id, utc_now()),
        )

    def get(self, operator_id: str, key: str) -> tuple[str, int, str, str] | None:
        row = self.db.one(
            "SELECT request_hash, status, object_type, object_id FROM operator_requests"
            " WHERE operator_id = ? AND idempotency_key = ?",
            (operator_id, key),
        )
        return None if row is None else (row[0], int(row[1]), row[2], row[3])


_AUDIT_COLUMNS: Final = "id, at, actor, action, object_type, object_id, details, outcome"


def _audit(row: tuple[Any, ...]) -> AuditRecord:
    return AuditRecord(*row)


class SqlAuditLog:
    """:class:`~issuer.ledger.repository.AuditRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def append(self, record: AuditRecord) -> None:
        r = record
        self.db.run(
            f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (r.id, r.at, r.actor, r.action, r.object_type, r.object_id, r.details, r.outcome),
        )


@dataclass(frozen=True, slots=True)
class _Listing:
    """How a kind of object is paged: its table, columns, row reader, key column, the
    columns it orders by (newest first), a fixed condition, the filters it takes."""

    table: str
    columns: str
    read: Callable[[tuple[Any, ...]], Any]
    key: str
    order: tuple[str, ...]
    condition: str = ""
    filters: tuple[str, ...] = ()


def _listings() -> dict[str, _Listing]:
    from issuer.ledger import sql

    stamp = ("created_at", "id")
    return {
        "accounts": _Listing("accounts", sql._ACCOUNT_COLUMNS, sql._account, "id", stamp,
                             "kind <> 'system'", ("status",)),
        "cards": _Listing("cards", sql._CARD_COLUMNS, sql._card, "id", stamp, "",
                          ("account_id", "status")),
        "tokens": _Listing("tokens", sql._TOKEN_COLUMNS, sql._token, "id", stamp, "",
                           ("card_id", "account_id", "status")),
        "terminals": _Listing("terminals", sql._TERMINAL_COLUMNS, sql._terminal, "id", stamp,
                              "", ("status",)),
        "ranges": _Listing("bin_ranges", sql._BIN_COLUMNS, sql._bin, "prefix",
                           ("created_at", "prefix"), "", ("status",)),
        "authorisations": _Listing("authorisations", sql._AUTH_COLUMNS, sql._auth, "id", stamp,
                                   "", ("card_id", "account_id", "terminal_id", "status")),
        "operators": _Listing("operators", _OPERATOR_COLUMNS, _operator, "id", stamp, "",
                              ("status",)),
        "audit": _Listing("audit_log", _AUDIT_COLUMNS, _audit, "id", ("seq",), "",
                          ("actor", "object_id")),
    }  # fmt: skip


class SqlPages:
    """:class:`~issuer.ledger.repository.PageRepository` in SQL (module docstring)."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db
        self._listings: dict[str, _Listing] | None = None

    def page(
        self,
        kind: str,
        *,
        limit: int,
        starting_after: str | None = None,
        filters: Mapping[str, str | None] | None = None,
    ) -> Page[Any]:
        if self._listings is None:
            self._listings = _listings()
        listing = self._listings.get(kind)
        if listing is None:
            raise ValidationError(f"nothing to list named {kind!r}")
        if not 1 <= limit <= 1000:
            raise ValidationError("a page holds 1 to 1000 objects")
        where = [listing.condition] if listing.condition else []
        params: list[Any] = []
        for name, value in (filters or {}).items():
            if name not in listing.filters:
                raise ValidationError(f"{kind} are not listed by {name}")
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        if starting_after is not None:
            order = ", ".join(listing.order)
            cursor = self.db.one(
                f"SELECT {order} FROM {listing.table} WHERE {listing.key} = ?", (starting_after,)
            )
            if cursor is None:
                raise NotFoundError(f"no {kind[:-1]} {starting_after!r} to start after")
            where.append(_before(listing.order))
            params.extend(_before_params(cursor))
        text = " WHERE " + " AND ".join(where) if where else ""
        descending = ", ".join(f"{c} DESC" for c in listing.order)
        rows = self.db.all(
            f"SELECT {listing.columns} FROM {listing.table}{text} ORDER BY {descending} LIMIT ?",
            (*params, limit + 1),
        )
        return Page([listing.read(r) for r in rows[:limit]], len(rows) > limit)


def _before(order: tuple[str, ...]) -> str:
    """The condition of the rows strictly before a cursor in ``order`` (descending):
    ``a < ?`` or ``(a < ? OR (a = ? AND b < ?))``."""
    if len(order) == 1:
        return f"{order[0]} < ?"
    first, second = order
    return f"({first} < ? OR ({first} = ? AND {second} < ?))"


def _before_params(cursor: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(cursor) == 1:
        return (cursor[0],)
    return (cursor[0], cursor[0], cursor[1])
