"""The back office's operators (who signs in to ``backoffice console``) and the audit
log of their actions (tables of migration 3, :mod:`backoffice.schema`).

An operator's id is ``bop_`` and 16 lower-case base32 characters (80 random bits; no
run of digits that a log scrubber would take for a PAN); its credential is ``bsk_``
and 256 random bits, shown once by ``backoffice operator add``, kept only as an
Argon2id hash (:mod:`emvwire.credentials`, the issuer's parameters). Its scopes:

- ``read``: every page of the console (riders, trips, aggregations, deny list,
  debts, charts), masked;
- ``operations``: ``read``, and the console's actions (taking an entry off the deny
  list).

A revoked operator is refused from its next request: the console reads the operator
on each request, not only at sign-in.

An audit record is one row of ``audit_log``, appended only: who (``actor``,
``operator:bop_...``), what (``action``: ``deny_list.remove``), to which object, when,
with which outcome (:data:`OUTCOMES`), and details, masked
(:func:`emvwire.mask.scrub`: no run of 12 digits or more is kept as it came).
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from backoffice.database import Connection
from backoffice.errors import StoreError
from backoffice.store import Store, now_text
from emvwire.credentials import hash_credential, new_credential, verify_credential
from emvwire.mask import scrub

__all__ = [
    "CREDENTIAL_PREFIX",
    "ID_PREFIX",
    "OUTCOMES",
    "SCOPES",
    "AuditRecord",
    "Operator",
    "Operators",
    "check_scopes",
]

ID_PREFIX: Final = "bop_"
CREDENTIAL_PREFIX: Final = "bsk_"
#: The scopes an operator may hold (module docstring).
SCOPES: Final = ("read", "operations")
#: What became of an audited action: done; refused before anything was tried (a
#: scope); tried and failed (nothing changed).
OUTCOMES: Final = ("succeeded", "refused", "failed")


@functools.cache
def _decoy() -> str:
    """Verified against when the operator is unknown, so that an unknown id takes as
    long as a wrong credential (no telling which ids exist by timing)."""
    return hash_credential(new_credential(CREDENTIAL_PREFIX))


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes given, known and each once, in :data:`SCOPES` order; at least one
    (:class:`ValueError` otherwise)."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    if not wanted:
        raise ValueError(f"an operator needs a scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in wanted)


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator of the console (module docstring); never its credential."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """Whether it may sign in."""
        return self.revoked_at is None

    def may(self, scope: str) -> bool:
        """Whether it holds ``scope`` (``operations`` includes ``read``)."""
        return scope in self.scopes or (scope == "read" and "operations" in self.scopes)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "status": "active" if self.active else "revoked",
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit log (module docstring); ``details`` masked."""

    id: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    outcome: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
            "object_type": self.object_type, "object_id": self.object_id,
            "details": self.details, "outcome": self.outcome,
        }  # fmt: skip


def _new_id() -> str:
    return ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().lower()


_OPERATOR_COLUMNS: Final = "operator_id, name, scopes, created_at, revoked_at"


def _operator(row: Any) -> Operator:
    return Operator(row[0], row[1], tuple(row[2].split()), row[3], row[4])


class Operators:
    """The operators and the audit log of a back office store (module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, name: str, scopes: Iterable[str]) -> tuple[Operator, str]:
        """A new operator and its credential (returned once; a hash is kept).
        :class:`ValueError` for an empty name or unknown scopes."""
        if not name.strip():
            raise ValueError("an operator needs a name")
        held = check_scopes(scopes)
        credential = new_credential(CREDENTIAL_PREFIX)
        made = Operator(_new_id(), name.strip(), held, now_text())
        with self.store.write() as w:
            w.execute(
                "INSERT INTO operators (operator_id, name, scopes, credential_hash, created_at) "
                "VALUES (?,?,?,?,?)",
                (made.id, made.name, " ".join(held), hash_credential(credential),
                 made.created_at),
            )  # fmt: skip
        return made, credential

    def all(self) -> list[Operator]:
        """Every operator, oldest first."""
        rows = self.store.conn.execute(
            f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY created_at, operator_id"  # noqa: S608
        ).fetchall()
        return [_operator(r) for r in rows]

    def get(self, operator_id: str) -> Operator | None:
        """The operator of this id, revoked or not; ``None`` if unknown."""
        row = self.store.conn.execute(
            f"SELECT {_OPERATOR_COLUMNS} FROM operators WHERE operator_id = ?",  # noqa: S608
            (operator_id,),
        ).fetchone()
        return None if row is None else _operator(row)

    def revoke(self, operator_id: str) -> Operator:
        """Refuse the operator from now on; :class:`StoreError` if it is unknown or
        revoked already."""
        with self.store.write() as w:
            if not w.execute(
                "UPDATE operators SET revoked_at = ? WHERE operator_id = ? AND revoked_at IS NULL",
                (now_text(), operator_id),
            ).rowcount:
                raise StoreError(f"operator {operator_id} is unknown or revoked already")
        revoked = self.get(operator_id)
        assert revoked is not None
        return revoked

    def verify(self, operator_id: str, credential: str) -> Operator | None:
        """The active operator whose credential this is, else ``None`` (Argon2id, as
        slow for an unknown id as for a wrong credential)."""
        row = self.store.conn.execute(
            f"SELECT {_OPERATOR_COLUMNS}, credential_hash FROM operators "  # noqa: S608
            "WHERE operator_id = ?",
            (operator_id,),
        ).fetchone()
        stored = row[5] if row is not None else _decoy()
        matches = verify_credential(stored, credential)
        if row is None or not matches or row[4] is not None:
            return None
        return _operator(row)

    # -- the audit log -----------------------------------------------------------------------

    def record(
        self,
        conn: Connection,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        outcome: str,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an audit record in the caller's transaction; its id."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: one of {', '.join(OUTCOMES)}")
        text = scrub(json.dumps(dict(details or {}), sort_keys=True, default=str))
        row = conn.execute(
            "INSERT INTO audit_log (at, actor, action, object_type, object_id, details, "
            "outcome) VALUES (?,?,?,?,?,?,?) RETURNING audit_id",
            (now_text(), actor, action, object_type, scrub(object_id), text, outcome),
        ).fetchone()
        return int(row[0])

    def audit(self, limit: int = 50) -> list[AuditRecord]:
        """The newest audit records first."""
        rows = self.store.conn.execute(
            "SELECT audit_id, at, actor, action, object_type, object_id, details, outcome "
            "FROM audit_log ORDER BY audit_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            AuditRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7])
            for r in rows
        ]
