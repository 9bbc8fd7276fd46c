"""What authorisation (:mod:`issuer.domain.authorise`) and the operations after it
(:mod:`issuer.domain.clearing`) share: the issuer they work on, the decision and its
record, the stored answer of a retried request, the velocity rule and retries.

A decision is the contract's :class:`~emvwire.contract.Decision`, encoded once
(:class:`Decided`): the record keeps that text as its answer, and the service sends
the same bytes. A retry of a request id gets the stored text back with ``replayed``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, TypeVar

from emvwire.contract import (
    PARTIAL_APPROVAL,
    Decision,
    DeclineReason,
    SpendingControl,
    control_response_code,
    decode,
    encode,
    response_code,
)
from issuer.domain import funds
from issuer.errors import ConflictError, TransientError
from issuer.model.entities import (
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Terminal,
    utc_in,
    utc_now,
)

if TYPE_CHECKING:
    from issuer.domain.cache import ReadCache
    from issuer.domain.group_commit import GroupCommit
    from issuer.domain.vault import Instrument, TokenVault
    from issuer.keys.base import KeyStore
    from issuer.ledger.repository import Ledger, UnitOfWork

__all__ = [
    "VELOCITY_LIMIT",
    "VELOCITY_PERIOD",
    "Decided",
    "Issuing",
    "Velocity",
    "code_of",
    "decide",
    "new_record",
    "par",
    "retry",
    "stored",
]

#: Velocity: approved authorisations of one card or token per period (Lithic-style).
VELOCITY_LIMIT: Final = 50
VELOCITY_PERIOD: Final = timedelta(minutes=10)

T = TypeVar("T")


class Issuing(Protocol):
    """What authorisation and the operations after it need of an opened issuer; the
    composition root (``issuer.bootstrap``) makes one."""

    @property
    def ledger(self) -> Ledger:
        """The ledger."""

    @property
    def keys(self) -> KeyStore:
        """The key store (AC master keys, the PAN hash key)."""

    @property
    def vault(self) -> TokenVault:
        """The token vault."""

    @property
    def writes(self) -> GroupCommit:
        """Group commit on the ledger: every write of the service goes through it."""

    @property
    def cache(self) -> ReadCache:
        """Terminal and instrument rows between requests."""


class Decided(NamedTuple):
    """A decision and its JSON text (:func:`emvwire.contract.encode`), made once."""

    decision: Decision
    text: bytes


@dataclass(frozen=True, slots=True)
class Velocity:
    """At most ``limit`` approved authorisations of one card or token per ``period``."""

    limit: int = VELOCITY_LIMIT
    period: timedelta = VELOCITY_PERIOD

    def since(self) -> str:
        """The start of the period that ends now (a record time)."""
        return utc_in(-max(1, round(self.period.total_seconds())))


def par(inst: Instrument | None) -> str | None:
    """The payment account reference of an instrument (the token's, else the card's;
    ``None`` if it has none)."""
    if inst is None:
        return None
    return (inst.token.par if inst.token is not None else inst.card.par) or None


def code_of(
    reason: DeclineReason | None,
    *,
    control: SpendingControl | None = None,
    partial: bool = False,
) -> str:
    """The response code (8A, ISO 8583 field 39) of a decision: the reason's (EMV Book
    4 §A6), a spending control's own (:func:`~emvwire.contract.control_response_code`),
    ``10`` for a partial approval, ``00`` for a full one."""
    if reason is None:
        return PARTIAL_APPROVAL if partial else response_code(None)
    if reason is DeclineReason.SPENDING_CONTROL and control is not None:
        return control_response_code(control.name)
    return response_code(reason)


def decide(
    txn_id: str,
    reason: DeclineReason | None,
    *,
    amount: int,
    currency: str,
    inst: Instrument | None,
    card: str,
    arpc: bytes = b"",
    issuer_authentication_data: bytes = b"",
    original_id: str | None = None,
    approved_amount: int | None = None,
    control: SpendingControl | None = None,
) -> Decided:
    """The decision of transaction ``txn_id``: approved when no ``reason`` declines
    it, for ``approved_amount`` (default all of ``amount``; less: a partial approval),
    its response code (:func:`code_of`), and its text."""
    approved = reason is None
    held = (amount if approved_amount is None else approved_amount) if approved else None
    decision = Decision(
        id=txn_id,
        approved=approved,
        response_code=code_of(reason, control=control, partial=held is not None and held < amount),
        reason=reason,
        amount=amount,
        currency=currency,
        status=AuthorisationStatus.PENDING if approved else AuthorisationStatus.CLOSED,
        arpc=arpc.hex().upper(),
        issuer_authentication_data=issuer_authentication_data.hex().upper(),
        card=card,
        par=par(inst),
        original_id=original_id,
        approved_amount=held,
        control=control,
    )
    return Decided(decision, encode(decision))


def new_record(
    decided: Decided,
    *,
    terminal: Terminal,
    request_id: str,
    digest: str,
    inst: Instrument | None,
    atc: int | None = None,
    channel: str = "contactless",
) -> Authorisation:
    """The authorisation record of a decision, its answer the decision's text; an
    approval holds the amount approved (all of it, or less in a partial approval: the
    record's amount) until it expires (:func:`issuer.domain.funds.expiry_time`).
    ``channel``: how the card's data came (:class:`emvwire.contract.Channel`)."""
    decision, text = decided
    approved = decision.approved
    amount = decision.amount
    if approved and decision.approved_amount is not None:
        amount = decision.approved_amount
    reason = decision.reason
    now = utc_now()
    return Authorisation(
        id=decision.id,
        kind=AuthorisationKind.AUTHORISATION,
        terminal_id=terminal.id,
        request_id=request_id,
        request_hash=digest,
        amount=amount,
        currency=decision.currency,
        approved=approved,
        response_code=decision.response_code,
        status=AuthorisationStatus.PENDING if approved else AuthorisationStatus.CLOSED,
        created_at=now,
        updated_at=now,
        card_id=inst.card.id if inst else None,
        token_id=inst.token.id if inst and inst.token else None,
        account_id=inst.account.id if inst else None,
        parent_id=decision.original_id,
        mcc=terminal.mcc,
        decline_reason=reason.value if reason else None,
        atc=atc,
        held_amount=amount if approved else 0,
        expires_at=funds.expiry_time() if approved else None,
        response=text.decode(),
        channel=channel,
    )


def stored(uow: UnitOfWork, terminal_id: str, request_id: str, digest: str) -> Decided | None:
    """The stored answer of ``request_id`` of the terminal (``replayed`` set), ``None``
    if it has none; :class:`ConflictError` if the id was used for another request
    (``digest`` differs)."""
    found = uow.authorisations.find_by_request(terminal_id, request_id)
    if found is None:
        return None
    if found.kind is not AuthorisationKind.AUTHORISATION or not hmac.compare_digest(
        found.request_hash, digest
    ):
        raise ConflictError("this Idempotency-Key was used for another request")
    decision = decode(found.response.encode(), Decision)
    decision.replayed = True
    return Decided(decision, encode(decision))


def retry(work: Callable[[], T], attempts: int = 5) -> T:
    """``work()``, run again on a :class:`TransientError` (a lock time-out, a
    serialisation failure) at most ``attempts`` times in all."""
    for attempt in range(attempts):
        try:
            return work()
        except TransientError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
