"""Operators of the issuer's API, their scopes, and the records of the audit log.

An operator is a person or a program that manages the issuer through the operator API
(``/v1/issuing/...``): its id is ``op_`` and 16 base32 characters, it holds one or
more :data:`SCOPES` and an Argon2id hash of its credential
(:mod:`issuer.domain.credentials`), and the serial of the TLS client certificate
issued to it (``urn:tapstack:operator:<id>``). Its scopes:

- ``read``: read every resource;
- ``operations``: ``read``, and create accounts, cards, tokens and terminals, change
  their status, credit accounts;
- ``keys``: card and token ranges (add, retire) and reading them.

An :class:`AuditRecord` is one line of the append-only audit log: who (``actor``:
``operator:op_...`` or ``cli:<os user>``), what (``action``: ``card.suspend``), when,
to which object, with which outcome (:data:`OUTCOMES`) and details, masked.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from emvwire.mask import scrub
from issuer.errors import ValidationError

__all__ = [
    "OUTCOMES",
    "SCOPES",
    "AuditRecord",
    "Operator",
    "OperatorStatus",
    "check_scopes",
    "granted",
    "masked_details",
]

#: The scopes an operator may hold (module docstring).
SCOPES: Final = ("read", "operations", "keys")
#: What became of an audited action: done; refused before anything was tried (a
#: scope); tried and failed (a domain error; nothing changed).
OUTCOMES: Final = ("succeeded", "refused", "failed")


class OperatorStatus(enum.StrEnum):
    """An operator's state: a revoked operator is refused from the next request."""

    ACTIVE = "active"
    REVOKED = "revoked"


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes given, known and each once, in :data:`SCOPES` order; at least one."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValidationError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
    if not wanted:
        raise ValidationError(f"an operator needs a scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in wanted)


def granted(scopes: Iterable[str]) -> frozenset[str]:
    """What ``scopes`` allow: ``operations`` includes ``read`` (module docstring)."""
    out = set(scopes)
    if "operations" in out:
        out.add("read")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator of the API (module docstring), with its credential's hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    credential_hash: str = field(repr=False)
    status: OperatorStatus
    created_at: str
    certificate_serial: str | None = None
    certificate_not_after: str | None = None
    revoked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never the credential or its hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "status": self.status.value,
            "certificate_serial": self.certificate_serial,
            "certificate_not_after": self.certificate_not_after,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def masked_details(details: Mapping[str, Any] | None) -> str:
    """``details`` as the JSON text an audit record keeps: every run of 12 or more
    digits masked as a PAN would be (:func:`emvwire.mask.scrub`), whatever field it is
    in, so that no full PAN reaches the log even by mistake."""
    return scrub(json.dumps(dict(details or {}), sort_keys=True, default=str))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log (module docstring); ``details`` is JSON text, masked
    (:func:`masked_details`)."""

    id: str
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str
    details: str
    outcome: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "details": json.loads(self.details),
            "outcome": self.outcome,
        }
