"""Money movements as balanced journals, and the authorisation life cycle they follow.

Every movement is a journal whose books each sum to zero (double entry), the other
side being one of the issuer's system accounts (:data:`~issuer.model.entities.SYSTEM_ACCOUNTS`):

==========  ===========================================  ==============================
journal     cardholder account                           system account
==========  ===========================================  ==============================
credit      posted +amount                               funding posted -amount
hold        held +amount                                 holds held -amount
release     held -amount                                 holds held +amount
capture     held -hold, posted -amount                   holds held +hold,
                                                         settlement posted +amount
refund      posted +amount                               settlement posted -amount
==========  ===========================================  ==============================

The authorisation operations (:func:`reverse`, :func:`capture`, :func:`expire_due`,
:func:`refund`) move an authorisation out of ``pending`` with a compare-and-set
(:meth:`AuthorisationRepository.transition`), so that a hold is released exactly once
however many reversals, captures or expiries race; each writes its event
(``authorisation.reversed``, ``.captured``, ``.expired``, ``refund.created``:
:mod:`issuer.domain.events`) in the same transaction. All functions work inside the
caller's unit of work; the caller commits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from issuer.domain import events
from issuer.errors import InvalidStateError, RefusedError, ValidationError
from issuer.model.entities import (
    SYSTEM_ACCOUNTS,
    Account,
    AccountStatus,
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Book,
    Entry,
    Journal,
    JournalKind,
    new_id,
    utc_in,
    utc_now,
)
from issuer.model.events import EventType

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = [
    "DEFAULT_HOLD_DAYS",
    "capture",
    "credit",
    "expire_due",
    "expiry_time",
    "hold",
    "hold_journal",
    "refund",
    "release",
    "reverse",
]

#: How long a pending authorisation holds funds before the issuer expires it (Stripe
#: Issuing releases uncaptured authorisations after 7 days).
DEFAULT_HOLD_DAYS = 7

_FUNDING = SYSTEM_ACCOUNTS["funding"]
_HOLDS = SYSTEM_ACCOUNTS["holds"]
_SETTLEMENT = SYSTEM_ACCOUNTS["settlement"]


def expiry_time(days: int = DEFAULT_HOLD_DAYS) -> str:
    """The ``expires_at`` of a hold placed now."""
    return utc_in(days * 86_400)


def _positive(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise ValidationError("an amount is a positive number of minor units")
    return amount


def _post(
    uow: UnitOfWork,
    kind: JournalKind,
    entries: list[Entry],
    transaction_id: str | None,
    memo: str,
) -> Journal:
    journal = Journal(new_id("jrn"), kind, tuple(entries), utc_now(), transaction_id, memo)
    uow.journals.post(journal)
    return journal


def credit(uow: UnitOfWork, account: Account, amount: int, memo: str = "") -> Journal:
    """Add money to an open account (a top-up, a payment to a credit account)."""
    _positive(amount)
    if account.status is not AccountStatus.OPEN:
        raise InvalidStateError(f"account {account.id} is closed")
    return _post(
        uow,
        JournalKind.CREDIT,
        [Entry(account.id, Book.POSTED, amount), Entry(_FUNDING, Book.POSTED, -amount)],
        None,
        memo,
    )


def hold(
    uow: UnitOfWork, account_id: str, amount: int, transaction_id: str, *, reserved: bool = False
) -> Journal:
    """Reserve ``amount`` for an authorisation (the caller checked availability, or
    with ``reserved`` already added it to the held book:
    :meth:`~issuer.ledger.repository.AccountRepository.reserve`)."""
    journal = hold_journal(account_id, amount, transaction_id)
    uow.journals.post(journal, apply_balances=not reserved)
    return journal


def hold_journal(account_id: str, amount: int, transaction_id: str) -> Journal:
    """The journal of :func:`hold` (for a caller that posts it with others:
    :meth:`~issuer.ledger.repository.UnitOfWork.record_many`)."""
    _positive(amount)
    return Journal(
        new_id("jrn"),
        JournalKind.HOLD,
        (Entry(account_id, Book.HELD, amount), Entry(_HOLDS, Book.HELD, -amount)),
        utc_now(),
        transaction_id,
        "",
    )


def release(uow: UnitOfWork, account_id: str, amount: int, transaction_id: str) -> Journal:
    """Give back a held amount."""
    _positive(amount)
    return _post(
        uow,
        JournalKind.RELEASE,
        [Entry(account_id, Book.HELD, -amount), Entry(_HOLDS, Book.HELD, amount)],
        transaction_id,
        "",
    )


def reverse(
    uow: UnitOfWork, transaction_id: str, *, request_id: str | None = None
) -> Authorisation:
    """Reverse a pending authorisation (the merchant's or the terminal's time-out
    reversal): its hold is released once. Reversing a reversed one changes nothing;
    reversing a closed or expired one is :class:`InvalidStateError`."""
    auth = uow.authorisations.get(transaction_id, for_update=True)
    if auth.status is AuthorisationStatus.REVERSED:
        return auth
    if auth.status is not AuthorisationStatus.PENDING:
        raise InvalidStateError(f"transaction {auth.id} is {auth.status.value}, not pending")
    outstanding = auth.held_amount - auth.released_amount
    if not uow.authorisations.transition(
        auth.id,
        expected=AuthorisationStatus.PENDING,
        status=AuthorisationStatus.REVERSED,
        event="reversed",
        amount=outstanding,
        released_amount=auth.held_amount,
        request_id=request_id,
    ):
        return uow.authorisations.get(transaction_id)
    if outstanding and auth.account_id is not None:
        release(uow, auth.account_id, outstanding, auth.id)
    after = uow.authorisations.get(transaction_id)
    events.authorisation_changed(
        uow, after, EventType.AUTHORISATION_REVERSED, {"status": auth.status.value}
    )
    return after


def capture(
    uow: UnitOfWork,
    transaction_id: str,
    amount: int | None = None,
    *,
    request_id: str | None = None,
    over_capture_limit: int | None = None,
) -> Authorisation:
    """Capture a pending authorisation, wholly (``amount=None``) or in part: the hold
    is released and ``amount`` (at most the amount held) is posted to settlement.

    With ``over_capture_limit`` (transit aggregation: the fares of a period captured
    on the first tap's authorisation, the Visa and Mastercard rules of open-loop
    transit), ``amount`` may exceed the hold up to that total,
    if the account has the difference available; otherwise :class:`RefusedError`
    (``aggregation_limit_exceeded`` or ``insufficient_funds``) and nothing changes."""
    auth = uow.authorisations.get(transaction_id, for_update=True)
    if auth.status is not AuthorisationStatus.PENDING or not auth.approved:
        raise InvalidStateError(f"transaction {auth.id} is {auth.status.value}, not pending")
    outstanding = auth.held_amount - auth.released_amount
    take = outstanding if amount is None else _positive(amount)
    if auth.account_id is None:
        raise InvalidStateError(f"transaction {auth.id} has no account")
    if take > outstanding:
        if over_capture_limit is None:
            raise ValidationError("cannot capture more than the amount held")
        if take > over_capture_limit:
            raise RefusedError(
                "aggregation_limit_exceeded",
                f"{take} is above the transit aggregation limit of {over_capture_limit}",
            )
        account = uow.accounts.get(auth.account_id, for_update=True)
        if account.available < take - outstanding:
            raise RefusedError(
                "insufficient_funds",
                f"the account lacks the {take - outstanding} captured above the hold",
            )
    if not uow.authorisations.transition(
        auth.id,
        expected=AuthorisationStatus.PENDING,
        status=AuthorisationStatus.CLOSED,
        event="captured",
        amount=take,
        captured_amount=take,
        released_amount=auth.held_amount,
        request_id=request_id,
    ):
        raise InvalidStateError(f"transaction {auth.id} changed state meanwhile")
    entries = [
        Entry(auth.account_id, Book.HELD, -outstanding),
        Entry(_HOLDS, Book.HELD, outstanding),
    ]
    if take:
        entries += [
            Entry(auth.account_id, Book.POSTED, -take),
            Entry(_SETTLEMENT, Book.POSTED, take),
        ]
    _post(uow, JournalKind.CAPTURE, entries, auth.id, "")
    after = uow.authorisations.get(transaction_id)
    events.authorisation_changed(
        uow, after, EventType.AUTHORISATION_CAPTURED, {"status": auth.status.value}
    )
    return after


def expire_due(uow: UnitOfWork, now: str | None = None, *, limit: int = 100) -> list[str]:
    """Expire pending authorisations past their ``expires_at``: issuer-side, kept
    apart from a merchant reversal (``authorisation.expired``, Stripe's ``expired``
    status). The ids expired now; the service's background worker calls this
    periodically (:class:`issuer.domain.delivery.Worker`)."""
    done = []
    for auth in uow.authorisations.pending_expired(now or utc_now(), limit=limit):
        outstanding = auth.held_amount - auth.released_amount
        if uow.authorisations.transition(
            auth.id,
            expected=AuthorisationStatus.PENDING,
            status=AuthorisationStatus.EXPIRED,
            event="expired",
            amount=outstanding,
            released_amount=auth.held_amount,
        ):
            if outstanding and auth.account_id is not None:
                release(uow, auth.account_id, outstanding, auth.id)
            after = uow.authorisations.get(auth.id)
            events.authorisation_changed(
                uow, after, EventType.AUTHORISATION_EXPIRED, {"status": auth.status.value}
            )
            done.append(auth.id)
    return done


def refund(
    uow: UnitOfWork,
    parent_id: str,
    amount: int,
    *,
    terminal_id: str,
    request_id: str,
    request_hash: str = "",
    response: str = "",
) -> Authorisation:
    """Refund part or all of a captured authorisation: a new ``refund`` record (closed)
    and a journal crediting the cardholder from settlement. The refunds of one
    authorisation never exceed what was captured. Idempotent on (terminal, request id).
    """
    _positive(amount)
    existing = uow.authorisations.find_by_request(terminal_id, request_id)
    if existing is not None:
        return existing
    parent = uow.authorisations.get(parent_id, for_update=True)
    if parent.kind is not AuthorisationKind.AUTHORISATION or parent.captured_amount <= 0:
        raise InvalidStateError(f"transaction {parent.id} has nothing captured to refund")
    if parent.terminal_id != terminal_id:
        raise InvalidStateError("a refund comes from the terminal of the purchase")
    refunded = sum(r.amount for r in uow.authorisations.list(parent_id=parent.id, limit=100_000))
    if refunded + amount > parent.captured_amount:
        raise ValidationError("refunds would exceed the amount captured")
    if parent.account_id is None:
        raise InvalidStateError(f"transaction {parent.id} has no account")
    now = utc_now()
    record = Authorisation(
        id=new_id("txn"),
        kind=AuthorisationKind.REFUND,
        terminal_id=terminal_id,
        request_id=request_id,
        request_hash=request_hash,
        amount=amount,
        currency=parent.currency,
        approved=True,
        response_code="00",
        status=AuthorisationStatus.CLOSED,
        created_at=now,
        updated_at=now,
        card_id=parent.card_id,
        token_id=parent.token_id,
        account_id=parent.account_id,
        parent_id=parent.id,
        mcc=parent.mcc,
        response=response,
        channel=parent.channel,
    )
    if not uow.authorisations.add(record):
        found = uow.authorisations.find_by_request(terminal_id, request_id)
        assert found is not None
        return found
    _post(
        uow,
        JournalKind.REFUND,
        [
            Entry(parent.account_id, Book.POSTED, amount),
            Entry(_SETTLEMENT, Book.POSTED, -amount),
        ],
        record.id,
        "",
    )
    events.refund_created(uow, record)
    return record
