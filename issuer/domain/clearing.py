"""After the authorisation: reversal, completion (capture), resubmission (debt
recovery), refund and increment of a terminal's transactions.

Each runs in group commit with the service's other writes and is idempotent per
(terminal, request id): a retry answers what the first call did and changes nothing.
A hold is released exactly once however many reversals, captures or expiries race
(:mod:`issuer.domain.funds`). Each change writes its event in its transaction
(:mod:`issuer.domain.events`): a reversal, a capture and a refund through
:mod:`issuer.domain.funds`, a resubmission's decision here.

Debt recovery follows Visa's rule for open-loop transit: a declined transit
authorisation may be resubmitted without new chip data at most
:data:`RESUBMIT_MAX` times within :data:`RESUBMIT_PERIOD` of the original, only when
it was declined for funds or limits (:data:`RESUBMITTABLE`). Transit aggregation: a
terminal of MCC 4111 (local commuter transport) may capture the fares of a period on
the first tap's authorisation, above the authorised amount up to
:data:`TRANSIT_AGGREGATION_LIMIT` in total.

Incremental authorisation (Visa's and Mastercard's "incremental authorisation" of a
pending pre-authorisation: a parking stay, a hotel night, a transit day that grows):
the terminal of a pending approval raises its hold by an amount, checked like a new
authorisation for the card's and account's status, the spending controls (merchant,
the maximum per transaction against the new total, the period amount limits; count
limits do not count an increment, which is no new approval) and the available funds,
never the ATC (no new cryptogram) nor velocity. Approved (all, or with
``partial_allowed`` what is available), the record's amount and hold grow and an
``incremented`` event is appended; declined, the authorisation and its hold stay as
they were and an ``increment_declined`` event records the attempt. A resubmission is a
new authorisation: it meets the spending controls like any.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from emvwire.contract import Decision, DeclineReason, IncrementDecision, decode, encode
from issuer.domain import events, funds
from issuer.domain.controls import Breach, allowed_amount, limits_amount, merchant_breach
from issuer.domain.decisions import (
    VELOCITY_LIMIT,
    VELOCITY_PERIOD,
    Decided,
    Issuing,
    Velocity,
    code_of,
    decide,
    new_record,
    retry,
    stored,
)
from issuer.domain.vault import Instrument
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    NotFoundError,
    RefusedError,
    TransientError,
    ValidationError,
)
from issuer.model.controls import Increment
from issuer.model.entities import (
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Terminal,
    new_id,
    utc_now,
)
from issuer.model.events import EventType

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = [
    "RESUBMITTABLE",
    "RESUBMIT_MAX",
    "RESUBMIT_PERIOD",
    "TRANSIT_AGGREGATION_LIMIT",
    "TRANSIT_AGGREGATION_MCC",
    "Clearing",
]

#: Debt recovery (module docstring): resubmissions of one declined authorisation, the
#: period after it they may come in, and the decline reasons that allow them.
RESUBMIT_MAX: Final = 6
RESUBMIT_PERIOD: Final = timedelta(days=14)
RESUBMITTABLE: Final = frozenset(
    {
        DeclineReason.INSUFFICIENT_FUNDS,
        DeclineReason.VELOCITY_EXCEEDED,
        DeclineReason.AMOUNT_LIMIT_EXCEEDED,
    }
)
#: Transit aggregation (module docstring): the terminal MCC, and the total a capture
#: may reach (minor units; the back office caps fares below it).
TRANSIT_AGGREGATION_MCC: Final = "4111"
TRANSIT_AGGREGATION_LIMIT: Final = 1500


def _own(uow: UnitOfWork, terminal: Terminal, transaction_id: str) -> Authorisation:
    """The transaction ``transaction_id`` of ``terminal``, else :class:`NotFoundError`
    (another terminal's transaction does not exist for it)."""
    auth = uow.authorisations.get(transaction_id)
    if auth.terminal_id != terminal.id:
        raise NotFoundError(f"no transaction {transaction_id} of this terminal")
    return auth


class Clearing:
    """Reversals, completions, resubmissions and refunds over an
    :class:`~issuer.domain.decisions.Issuing` (module docstring). Thread-safe."""

    def __init__(
        self,
        issuer: Issuing,
        *,
        transit_aggregation_limit: int = TRANSIT_AGGREGATION_LIMIT,
        velocity_limit: int = VELOCITY_LIMIT,
        velocity_period: timedelta = VELOCITY_PERIOD,
        today: Callable[[], date] | None = None,
    ) -> None:
        self._issuer = issuer
        self.transit_aggregation_limit = transit_aggregation_limit
        self.velocity = Velocity(velocity_limit, velocity_period)
        self._today = today or (lambda: datetime.now(UTC).date())

    def reverse(self, terminal: Terminal, transaction_id: str, request_id: str) -> Authorisation:
        """Reverse a pending authorisation: its hold is released exactly once; a
        declined one (nothing held) or a reversed one is answered as it is."""

        def work(uow: UnitOfWork) -> Authorisation:
            auth = _own(uow, terminal, transaction_id)
            if not auth.approved or auth.status is AuthorisationStatus.REVERSED:
                return auth
            return funds.reverse(uow, transaction_id, request_id=request_id)

        return retry(lambda: self._issuer.writes.run(work))

    def reverse_request(self, terminal: Terminal, request_id: str) -> Authorisation | None:
        """Reverse the authorisation of a request id (a time-out reversal, when the
        terminal never learnt the transaction id); ``None`` if it never arrived."""
        with self._issuer.ledger.unit_of_work(write=False) as uow:
            found = uow.authorisations.find_by_request(terminal.id, request_id)
        if found is None:
            return None
        return self.reverse(terminal, found.id, f"reversal:{request_id}")

    def complete(
        self, terminal: Terminal, transaction_id: str, amount: int | None, request_id: str
    ) -> Authorisation:
        """Capture a pending authorisation wholly or in part; the rest is released. A
        terminal of MCC 4111 may capture more, up to the transit aggregation limit, if
        funds allow (:func:`issuer.domain.funds.capture`). A retried completion (same
        request id) answers the completed record."""

        def work(uow: UnitOfWork) -> Authorisation:
            auth = _own(uow, terminal, transaction_id)
            if auth.status is AuthorisationStatus.CLOSED and any(
                e.kind == "captured" and e.request_id == request_id
                for e in uow.authorisations.events(auth.id)
            ):
                return auth
            if not auth.approved:
                raise InvalidStateError(f"transaction {auth.id} was declined")
            over = (
                self.transit_aggregation_limit if terminal.mcc == TRANSIT_AGGREGATION_MCC else None
            )
            return funds.capture(
                uow, transaction_id, amount, request_id=request_id, over_capture_limit=over
            )

        return retry(lambda: self._issuer.writes.run(work))

    def resubmit(
        self, terminal: Terminal, transaction_id: str, amount: int | None, request_id: str
    ) -> Decision:
        """Debt recovery: decide again on a declined authorisation without new chip data
        (its cryptogram and ATC were verified at the first attempt).

        Allowed (else :class:`RefusedError` ``not_resubmittable``) only for a decline
        for funds or limits (:data:`RESUBMITTABLE`), from the same terminal, at most
        :data:`RESUBMIT_MAX` times within :data:`RESUBMIT_PERIOD` of the original, and
        not once a resubmission was approved. Status, expiry, domain, velocity and funds
        are checked now; ``amount`` (default the original's) is at most the original's.
        The answer is a new authorisation (``original_id`` the declined one); approved,
        its amount is held like any approval. Idempotent per (terminal, request id)."""
        if not request_id or len(request_id) > 255:
            raise ValidationError("a request id is 1 to 255 characters")
        digest = hashlib.sha256(
            f"resubmit|{transaction_id}|{'' if amount is None else amount}".encode()
        ).hexdigest()

        def work(uow: UnitOfWork) -> Decided:
            found = stored(uow, terminal.id, request_id, digest)
            if found is not None:
                return found
            return self._resubmit(uow, terminal, transaction_id, amount, request_id, digest)

        return retry(lambda: self._issuer.writes.run(work)).decision

    def _resubmit(
        self,
        uow: UnitOfWork,
        terminal: Terminal,
        transaction_id: str,
        amount: int | None,
        request_id: str,
        digest: str,
    ) -> Decided:
        given = _own(uow, terminal, transaction_id)
        is_retry = given.kind is AuthorisationKind.AUTHORISATION and given.parent_id is not None
        original = uow.authorisations.get(
            given.parent_id if is_retry and given.parent_id else given.id, for_update=True
        )

        def refuse(why: str) -> RefusedError:
            return RefusedError("not_resubmittable", f"transaction {original.id} {why}")

        if original.kind is not AuthorisationKind.AUTHORISATION or original.approved:
            raise refuse("was not a declined authorisation")
        if original.decline_reason not in {r.value for r in RESUBMITTABLE}:
            raise refuse(f"was declined for {original.decline_reason}, not for funds or limits")
        created = datetime.strptime(original.created_at, "%Y-%m-%dT%H:%M:%S.%fZ")
        if datetime.now(UTC) - created.replace(tzinfo=UTC) > RESUBMIT_PERIOD:
            raise refuse(f"is older than {RESUBMIT_PERIOD.days} days")
        attempts = [
            a
            for a in uow.authorisations.list(parent_id=original.id, limit=1000)
            if a.kind is AuthorisationKind.AUTHORISATION
        ]
        recovered = [a.id for a in attempts if a.approved]
        if recovered:
            raise refuse(f"was recovered by {recovered[0]}")
        if len(attempts) >= RESUBMIT_MAX:
            raise refuse(f"was resubmitted {RESUBMIT_MAX} times already")
        take = original.amount if amount is None else amount
        if not 0 < take <= original.amount:
            raise ValidationError(f"a resubmission is 1 to {original.amount} (the original)")
        if original.card_id is None or original.account_id is None:
            raise refuse("has no card")
        card = uow.cards.get(original.card_id)
        token = uow.tokens.get(original.token_id) if original.token_id else None
        account = uow.accounts.get(original.account_id, for_update=True)
        inst = Instrument(card, account, token)
        reason = self._issuer.vault.check(inst, today=self._today(), mcc=terminal.mcc)
        control: Breach | None = None
        if reason is None:
            reason, control = self._controls(uow, terminal, inst, take)
        if reason is None:
            count = uow.authorisations.count_since(
                card_id=None if token else card.id, token_id=token.id if token else None,
                since=self.velocity.since(),
            )  # fmt: skip
            if count >= self.velocity.limit:
                reason = DeclineReason.VELOCITY_EXCEEDED
        if reason is None and account.available < take:
            reason = DeclineReason.INSUFFICIENT_FUNDS
        txn_id = new_id("txn")
        decided = decide(
            txn_id, reason, amount=take, currency=original.currency, inst=inst,
            card=token.token_masked if token else card.pan_masked, original_id=original.id,
            control=control.wire() if control is not None else None,
        )  # fmt: skip
        record = new_record(
            decided, terminal=terminal, request_id=request_id, digest=digest, inst=inst,
            channel=original.channel,
        )  # fmt: skip
        if not uow.authorisations.add(record):
            raise TransientError("a concurrent request with this id")  # replayed on retry
        if reason is None:
            funds.hold(uow, account.id, take, txn_id)
        events.authorisation_decided(uow, record)
        return decided

    @staticmethod
    def _controls(
        uow: UnitOfWork, terminal: Terminal, inst: Instrument, amount: int
    ) -> tuple[DeclineReason | None, Breach | None]:
        """The spending controls of a new authorisation of ``amount`` without partial
        approval (:mod:`issuer.domain.controls`): the control that declines it, if any."""
        controls = uow.controls.applying(
            account_id=inst.account.id,
            card_id=inst.card.id,
            token_id=inst.token.id if inst.token else None,
        )
        breach = merchant_breach(controls, mcc=terminal.mcc, country=terminal.country)
        if breach is None and limits_amount(controls):
            allowed, binding = allowed_amount(uow, inst.account.id, controls, amount)
            breach = binding if allowed < amount else None
        return (None, None) if breach is None else (DeclineReason.SPENDING_CONTROL, breach)

    def increment(
        self,
        terminal: Terminal,
        transaction_id: str,
        amount: int,
        request_id: str,
        *,
        partial_allowed: bool = False,
    ) -> IncrementDecision:
        """Raise a pending approval's hold by ``amount`` (module docstring): the
        answer, approved or declined. :class:`InvalidStateError` if the authorisation
        is not a pending approval (nothing to raise). Idempotent per (terminal, request
        id): a retry answers the stored decision (``replayed``), the same id with
        another request is a :class:`ConflictError`."""
        if not request_id or len(request_id) > 255:
            raise ValidationError("a request id is 1 to 255 characters")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValidationError("an increment is a positive number of minor units")
        digest = hashlib.sha256(
            f"increment|{transaction_id}|{amount}|{int(partial_allowed)}".encode()
        ).hexdigest()

        def work(uow: UnitOfWork) -> IncrementDecision:
            found = uow.increments.find(terminal.id, request_id)
            if found is not None:
                if not hmac.compare_digest(found.request_hash, digest):
                    raise ConflictError("this Idempotency-Key was used for another request")
                stored_answer = decode(found.response.encode(), IncrementDecision)
                stored_answer.replayed = True
                return stored_answer
            return self._increment(uow, terminal, transaction_id, amount, request_id,
                                   digest, partial_allowed)  # fmt: skip

        return retry(lambda: self._issuer.writes.run(work))

    def _increment(
        self,
        uow: UnitOfWork,
        terminal: Terminal,
        transaction_id: str,
        amount: int,
        request_id: str,
        digest: str,
        partial: bool,
    ) -> IncrementDecision:
        auth = _own(uow, terminal, transaction_id)
        card_id = auth.card_id
        if auth.account_id is None or card_id is None:
            raise InvalidStateError(f"transaction {auth.id} has no card")
        # Lock order (issuer.ledger.repository): the account, then the authorisation.
        account = uow.accounts.get(auth.account_id, for_update=True)
        auth = uow.authorisations.get(transaction_id, for_update=True)
        if (
            auth.kind is not AuthorisationKind.AUTHORISATION
            or not auth.approved
            or auth.status is not AuthorisationStatus.PENDING
        ):
            raise InvalidStateError(
                f"transaction {auth.id} is {auth.status.value}, not a pending approval"
            )
        card = uow.cards.get(card_id)
        token = uow.tokens.get(auth.token_id) if auth.token_id else None
        inst = Instrument(card, account, token)
        reason = self._issuer.vault.check(inst, today=self._today(), mcc=terminal.mcc)
        control: Breach | None = None
        take = amount
        if reason is None:
            controls = uow.controls.applying(
                account_id=account.id, card_id=card.id, token_id=token.id if token else None
            )
            control = merchant_breach(controls, mcc=terminal.mcc, country=terminal.country)
            if control is not None:
                reason = DeclineReason.SPENDING_CONTROL
            elif limits_amount(controls):
                allowed, control = allowed_amount(
                    uow, account.id, controls, take, already=auth.amount, counts=False
                )
                if allowed < take and partial and allowed > 0:
                    take = allowed
                elif allowed < take:
                    reason = DeclineReason.SPENDING_CONTROL
        if reason is None and not uow.accounts.reserve(account.id, take):
            available = uow.accounts.get(account.id).available
            if partial and 0 < available < take and uow.accounts.reserve(account.id, available):
                take = available
            else:
                reason, control = DeclineReason.INSUFFICIENT_FUNDS, None
        now = utc_now()
        if reason is None:
            if not uow.increments.raise_hold(auth.id, take, request_id):
                raise TransientError("the authorisation changed meanwhile")
            funds.hold(uow, account.id, take, auth.id, reserved=True)
            events.authorisation_changed(
                uow, uow.authorisations.get(auth.id), EventType.AUTHORISATION_INCREMENTED,
                {"amount": auth.amount, "held_amount": auth.held_amount},
            )  # fmt: skip
        else:
            uow.increments.event(auth.id, "increment_declined", amount, request_id, now)
        wire = control.wire() if control is not None else None
        approved = reason is None
        decision = IncrementDecision(
            id=auth.id,
            approved=approved,
            response_code=code_of(reason, control=wire, partial=approved and take < amount),
            amount=amount,
            approved_amount=take if approved else 0,
            authorised_amount=auth.amount + (take if approved else 0),
            currency=auth.currency,
            reason=reason,
            control=wire,
        )
        record = Increment(
            new_id("inc"), auth.id, terminal.id, request_id, digest, amount,
            decision.approved_amount, approved, decision.response_code,
            reason.value if reason else None, encode(decision).decode(), now,
        )  # fmt: skip
        if not uow.increments.add(record):
            raise TransientError("a concurrent request with this id")  # replayed on retry
        return decision

    def refund(
        self, terminal: Terminal, transaction_id: str, amount: int, request_id: str
    ) -> Authorisation:
        """Refund part of a captured authorisation of this terminal (idempotent)."""

        def work(uow: UnitOfWork) -> Authorisation:
            _own(uow, terminal, transaction_id)
            digest = hashlib.sha256(f"refund|{transaction_id}|{amount}".encode()).hexdigest()
            found = uow.authorisations.find_by_request(terminal.id, request_id)
            if found is not None and found.request_hash != digest:
                raise ConflictError("this Idempotency-Key was used for another request")
            return funds.refund(
                uow,
                transaction_id,
                amount,
                terminal_id=terminal.id,
                request_id=request_id,
                request_hash=digest,
            )

        return retry(lambda: self._issuer.writes.run(work))
