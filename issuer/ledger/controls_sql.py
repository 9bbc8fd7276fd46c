# ruff: noqa: S608 - statements are assembled from module constants only, never input
"""The repositories of migration 9 (:mod:`issuer.ledger.schema`) in SQL: spending
controls and the spending they limit, the program's decision endpoint and its answers,
increments of pending authorisations.

Spending is summed in the caller's transaction (:meth:`SqlSpendingControls.spent`), so
that the write phase of an authorisation counts the approvals written before it in
its own group-commit batch as well as those committed by others; the caller locks the
account row first (:meth:`~issuer.ledger.repository.AccountRepository.get` with
``for_update``), after which PostgreSQL's next statement (``READ COMMITTED``) sees every
commit of a concurrent batch of that account.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from issuer.model.controls import (
    ControlLevel,
    DecisionEndpoint,
    Fallback,
    Increment,
    Limit,
    Measure,
    Period,
    ProgramDecision,
    ProgramOutcome,
    SpendingControls,
)
from issuer.model.entities import utc_now

if TYPE_CHECKING:
    from issuer.ledger.sql import SqlConnection

__all__ = ["LIMIT_COLUMNS", "SqlIncrements", "SqlPrograms", "SqlSpendingControls"]

#: The limit columns of ``spending_controls``, in table order.
LIMIT_COLUMNS: Final = tuple(
    (f"{period.value}_{measure.value}", period, measure) for measure in Measure for period in Period
)
_CONTROL_COLUMNS: Final = (
    "level, subject_id, allowed_mccs, blocked_mccs, allowed_countries, blocked_countries,"
    " max_per_transaction, updated_at, " + ", ".join(name for name, _, _ in LIMIT_COLUMNS)
)
_CONTROL_MARKS: Final = ", ".join("?" for _ in _CONTROL_COLUMNS.split(","))
_UPDATES: Final = ", ".join(
    f"{c.strip()} = excluded.{c.strip()}" for c in _CONTROL_COLUMNS.split(",")[2:]
)
#: What an approved authorisation has spent: its hold while pending, what was captured
#: once closed (a reversal or an expiry gives it all back).
SPEND: Final = "held_amount - released_amount + captured_amount"


def _items(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(x for x in text.split(",") if x)


def _text(items: tuple[str, ...] | None) -> str | None:
    return None if items is None else ",".join(items)


def _controls(row: tuple[Any, ...]) -> SpendingControls:
    limits = tuple(
        Limit(period, measure, int(value))
        for (_, period, measure), value in zip(LIMIT_COLUMNS, row[8:], strict=True)
        if value is not None
    )
    return SpendingControls(
        level=ControlLevel(row[0]),
        subject_id=row[1],
        allowed_mccs=_items(row[2]),
        blocked_mccs=_items(row[3]),
        allowed_countries=_items(row[4]),
        blocked_countries=_items(row[5]),
        max_per_transaction=None if row[6] is None else int(row[6]),
        limits=limits,
        updated_at=row[7],
    )


class SqlSpendingControls:
    """:class:`~issuer.ledger.repository.SpendingControlRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def get(self, level: ControlLevel, subject_id: str) -> SpendingControls | None:
        row = self.db.one(
            f"SELECT {_CONTROL_COLUMNS} FROM spending_controls WHERE level = ? AND subject_id = ?",
            (level.value, subject_id),
        )
        return None if row is None else _controls(row)

    def applying(
        self, *, account_id: str, card_id: str, token_id: str | None
    ) -> tuple[SpendingControls, ...]:
        rows = self.db.all(
            f"SELECT {_CONTROL_COLUMNS} FROM spending_controls"
            " WHERE (level = 'account' AND subject_id = ?)"
            " OR (level = 'card' AND subject_id = ?) OR (level = 'token' AND subject_id = ?)",
            (account_id, card_id, token_id or ""),
        )
        order = {ControlLevel.TOKEN: 0, ControlLevel.CARD: 1, ControlLevel.ACCOUNT: 2}
        return tuple(sorted((_controls(r) for r in rows), key=lambda c: order[c.level]))

    def put(self, controls: SpendingControls) -> None:
        c = controls
        values = {lim.name: lim.value for lim in c.limits}
        self.db.run(
            f"INSERT INTO spending_controls ({_CONTROL_COLUMNS}) VALUES ({_CONTROL_MARKS})"
            f" ON CONFLICT (level, subject_id) DO UPDATE SET {_UPDATES}",
            (
                c.level.value,
                c.subject_id,
                _text(c.allowed_mccs),
                _text(c.blocked_mccs),
                _text(c.allowed_countries),
                _text(c.blocked_countries),
                c.max_per_transaction,
                c.updated_at or utc_now(),
                *(values.get(name) for name, _, _ in LIMIT_COLUMNS),
            ),
        )

    def delete(self, level: ControlLevel, subject_id: str) -> bool:
        return bool(
            self.db.run(
                "DELETE FROM spending_controls WHERE level = ? AND subject_id = ?",
                (level.value, subject_id),
            )
        )

    def list(self) -> builtins.list[SpendingControls]:
        rows = self.db.all(
            f"SELECT {_CONTROL_COLUMNS} FROM spending_controls ORDER BY level, subject_id"
        )
        return [_controls(r) for r in rows]

    def spent(
        self, level: ControlLevel, subject_id: str, since: Sequence[str]
    ) -> builtins.list[tuple[int, int]]:
        if not since:
            return []
        column = {
            ControlLevel.ACCOUNT: "account_id",
            ControlLevel.CARD: "card_id",
            ControlLevel.TOKEN: "token_id",
        }[level]
        sums = ", ".join(
            f"COALESCE(SUM(CASE WHEN created_at >= ? THEN {SPEND} ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END), 0)"
            for _ in since
        )
        params: list[Any] = []
        for start in since:
            params += (start, start)
        row = self.db.one(
            f"SELECT {sums} FROM authorisations WHERE {column} = ? AND approved = 1"
            " AND kind = 'authorisation' AND created_at >= ?",
            (*params, subject_id, min(since)),
        )
        assert row is not None
        return [(int(row[2 * i]), int(row[2 * i + 1])) for i in range(len(since))]


_ENDPOINT_COLUMNS: Final = "url, deadline_ms, fallback, ca_pem, secret_sealed, created_at"
_DECISION_COLUMNS: Final = (
    "transaction_id, outcome, amount, fallback, cause, latency_ms, created_at"
)


class SqlPrograms:
    """:class:`~issuer.ledger.repository.ProgramRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def endpoint(self) -> DecisionEndpoint | None:
        row = self.db.one(f"SELECT {_ENDPOINT_COLUMNS} FROM decision_endpoint WHERE id = 1")
        if row is None:
            return None
        return DecisionEndpoint(
            row[0], int(row[1]), Fallback(row[2]), row[3], bytes(row[4]), row[5]
        )

    def set_endpoint(self, endpoint: DecisionEndpoint) -> None:
        e = endpoint
        self.db.run(
            f"INSERT INTO decision_endpoint (id, {_ENDPOINT_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET url = excluded.url,"
            " deadline_ms = excluded.deadline_ms, fallback = excluded.fallback,"
            " ca_pem = excluded.ca_pem, secret_sealed = excluded.secret_sealed,"
            " created_at = excluded.created_at",
            (e.url, e.deadline_ms, e.fallback.value, e.ca_pem, e.secret_sealed, e.created_at),
        )

    def clear_endpoint(self) -> bool:
        return bool(self.db.run("DELETE FROM decision_endpoint WHERE id = 1"))

    def record(self, decision: ProgramDecision) -> None:
        d = decision
        self.db.run(
            f"INSERT INTO authorisation_decisions ({_DECISION_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                d.transaction_id,
                d.outcome.value,
                d.amount,
                None if d.fallback is None else d.fallback.value,
                d.cause,
                d.latency_ms,
                d.created_at,
            ),
        )

    def decision(self, transaction_id: str) -> ProgramDecision | None:
        row = self.db.one(
            f"SELECT {_DECISION_COLUMNS} FROM authorisation_decisions WHERE transaction_id = ?",
            (transaction_id,),
        )
        if row is None:
            return None
        return ProgramDecision(
            row[0],
            ProgramOutcome(row[1]),
            None if row[2] is None else int(row[2]),
            None if row[3] is None else Fallback(row[3]),
            row[4],
            int(row[5]),
            row[6],
        )


_INCREMENT_COLUMNS: Final = (
    "id, transaction_id, terminal_id, request_id, request_hash, amount, approved_amount,"
    " approved, response_code, decline_reason, response, created_at"
)


def _increment(row: tuple[Any, ...]) -> Increment:
    return Increment(
        row[0], row[1], row[2], row[3], row[4], int(row[5]), int(row[6]), bool(row[7]),
        row[8], row[9], row[10], row[11],
    )  # fmt: skip


class SqlIncrements:
    """:class:`~issuer.ledger.repository.IncrementRepository` in SQL."""

    def __init__(self, db: SqlConnection) -> None:
        self.db = db

    def find(self, terminal_id: str, request_id: str) -> Increment | None:
        row = self.db.one(
            f"SELECT {_INCREMENT_COLUMNS} FROM authorisation_increments"
            " WHERE terminal_id = ? AND request_id = ?",
            (terminal_id, request_id),
        )
        return None if row is None else _increment(row)

    def for_transaction(self, transaction_id: str) -> builtins.list[Increment]:
        rows = self.db.all(
            f"SELECT {_INCREMENT_COLUMNS} FROM authorisation_increments"
            " WHERE transaction_id = ? ORDER BY created_at, id",
            (transaction_id,),
        )
        return [_increment(r) for r in rows]

    def add(self, increment: Increment) -> bool:
        i = increment
        params = (
            i.id, i.transaction_id, i.terminal_id, i.request_id, i.request_hash, i.amount,
            i.approved_amount, int(i.approved), i.response_code, i.decline_reason,
            i.response, i.created_at,
        )  # fmt: skip
        return bool(
            self.db.run(
                f"INSERT INTO authorisation_increments ({_INCREMENT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (terminal_id, request_id) DO NOTHING",
                params,
            )
        )

    def raise_hold(self, transaction_id: str, amount: int, request_id: str) -> bool:
        now = utc_now()
        changed = self.db.run(
            "UPDATE authorisations SET amount = amount + ?, held_amount = held_amount + ?,"
            " updated_at = ? WHERE id = ? AND status = 'pending' AND approved = 1",
            (amount, amount, now, transaction_id),
        )
        if changed:
            self.event(transaction_id, "incremented", amount, request_id, now)
        return bool(changed)

    def event(
        self, transaction_id: str, kind: str, amount: int, request_id: str, when: str
    ) -> None:
        self.db.run(
            "INSERT INTO authorisation_events (transaction_id, kind, amount, request_id,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            (transaction_id, kind, amount, request_id, when),
        )
