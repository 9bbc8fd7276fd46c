"""Spending controls, the program's decision endpoint, its answers and increments, as
immutable values (the ledger stores them: :mod:`issuer.ledger.controls_sql`; the
domain decides with them: :mod:`issuer.domain.controls`, :mod:`issuer.domain.program`).

The names follow the issuing platforms (Stripe Issuing ``spending_controls``: allowed
or blocked categories, ``spending_limits`` per authorisation, day, week, month, year
and all time; Lithic's velocity limits by amount and by count). A control is set on an
account, a card or a token (:class:`ControlLevel`); every control of the instrument
that pays applies (a token's, its card's and their account's).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ControlLevel",
    "DecisionEndpoint",
    "Fallback",
    "Increment",
    "Limit",
    "Measure",
    "Period",
    "ProgramDecision",
    "ProgramOutcome",
    "SpendingControls",
]


class ControlLevel(enum.StrEnum):
    """What a set of controls is on."""

    ACCOUNT = "account"
    CARD = "card"
    TOKEN = "token"  # noqa: S105 - a level's name, not a password


class Period(enum.StrEnum):
    """The period of a limit: a calendar day, ISO 8601 week (from Monday), month or year
    in UTC, or all time."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"
    ALL_TIME = "all_time"


class Measure(enum.StrEnum):
    """What a limit counts: the amount spent (minor units) or the approvals."""

    AMOUNT = "amount"
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``value`` of ``measure`` per ``period``."""

    period: Period
    measure: Measure
    value: int

    @property
    def name(self) -> str:
        """The control's name (``daily_amount``): a column of ``spending_controls``."""
        return f"{self.period.value}_{self.measure.value}"


@dataclass(frozen=True, slots=True)
class SpendingControls:
    """The spending controls of one account, card or token. An MCC list is allowed or
    blocked, never both; so is a country list (ISO 3166 numeric, four digits as the
    terminal's country is kept: ``0250``). ``max_per_transaction`` bounds one
    authorisation (with its increments); each :class:`Limit` a period's total."""

    level: ControlLevel
    subject_id: str
    allowed_mccs: tuple[str, ...] | None = None
    blocked_mccs: tuple[str, ...] | None = None
    allowed_countries: tuple[str, ...] | None = None
    blocked_countries: tuple[str, ...] | None = None
    max_per_transaction: int | None = None
    limits: tuple[Limit, ...] = ()
    updated_at: str = ""

    @property
    def empty(self) -> bool:
        """Whether no control is set."""
        return (
            self.allowed_mccs is None
            and self.blocked_mccs is None
            and self.allowed_countries is None
            and self.blocked_countries is None
            and self.max_per_transaction is None
            and not self.limits
        )

    def limit(self, name: str) -> Limit | None:
        """The limit called ``name`` (``daily_amount``), if set."""
        return next((lim for lim in self.limits if lim.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (amounts in minor units)."""
        return {
            "level": self.level.value,
            "id": self.subject_id,
            "allowed_mccs": _listed(self.allowed_mccs),
            "blocked_mccs": _listed(self.blocked_mccs),
            "allowed_countries": _listed(self.allowed_countries),
            "blocked_countries": _listed(self.blocked_countries),
            "max_per_transaction": self.max_per_transaction,
            "limits": {lim.name: lim.value for lim in self.limits},
            "updated_at": self.updated_at,
        }


def _listed(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


class Fallback(enum.StrEnum):
    """What stands when the program gives no usable answer in time."""

    #: The issuer's own decision.
    ISSUER = "issuer"
    #: A decline (``PROGRAM_UNAVAILABLE``).
    DECLINE = "decline"


@dataclass(frozen=True, slots=True)
class DecisionEndpoint:
    """The program's decision endpoint (one per issuer): where the issuer sends its
    proposed decisions, how long it waits, what stands without an answer, the CA that
    signed the endpoint's TLS certificate (PEM; ``None``: the system's), and the
    signing secret sealed under a key-store key (never shown after it is made)."""

    url: str
    deadline_ms: int
    fallback: Fallback
    ca_pem: str | None
    secret_sealed: bytes = field(repr=False)
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never the secret)."""
        return {
            "url": self.url,
            "deadline_ms": self.deadline_ms,
            "fallback": self.fallback.value,
            "ca": "custom" if self.ca_pem else "system",
            "created_at": self.created_at,
        }


class ProgramOutcome(enum.StrEnum):
    """What the program answered: ``none`` when it gave no usable answer."""

    APPROVE = "approve"
    DECLINE = "decline"
    PARTIAL = "partial"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProgramDecision:
    """The program's answer to one authorisation as recorded with it: its outcome (and
    the amount of a partial approval), or the fallback taken and its cause
    (``timeout``, ``unreachable``, ``http_<status>``, ``bad_signature``,
    ``invalid_answer``, ``error``), and how long it took."""

    transaction_id: str
    outcome: ProgramOutcome
    amount: int | None
    fallback: Fallback | None
    cause: str | None
    latency_ms: int
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "transaction": self.transaction_id,
            "outcome": self.outcome.value,
            "amount": self.amount,
            "fallback": None if self.fallback is None else self.fallback.value,
            "cause": self.cause,
            "latency_ms": self.latency_ms,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Increment:
    """One increment asked of a pending authorisation by its terminal (idempotent per
    terminal and request id: ``response`` is the stored answer)."""

    id: str
    transaction_id: str
    terminal_id: str
    request_id: str
    request_hash: str
    amount: int
    approved_amount: int
    approved: bool
    response_code: str
    decline_reason: str | None
    response: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "transaction": self.transaction_id,
            "terminal": self.terminal_id,
            "request_id": self.request_id,
            "amount": self.amount,
            "approved_amount": self.approved_amount,
            "approved": self.approved,
            "response_code": self.response_code,
            "decline_reason": self.decline_reason,
            "created_at": self.created_at,
        }
