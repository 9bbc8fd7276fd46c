"""After the authorisation: reversal, completion (capture), resubmission (debt
recovery) and refund of a terminal's transactions.

Each runs in group commit with the service's other writes and is idempotent per
(terminal, request id): a retry answers what the first call did and changes nothing.
A hold is released exactly once however many reversals, captures or expiries race
(:mod:`issuer.domain.funds`).

Debt recovery follows Visa's rule for open-loop transit: a declined transit
authorisation may be resubmitted without new chip data at most
:data:`RESUBMIT_MAX` times within :data:`RESUBMIT_PERIOD` of the original, only when
it was declined for funds or limits (:data:`RESUBMITTABLE`). Transit aggregation: a
terminal of MCC 4111 (local commuter transport) may capture the fares of a period on
the first tap's authorisation, above the authorised amount up to
:data:`TRANSIT_AGGREGATION_LIMIT` in total.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from emvwire.contract import Decision, DeclineReason
from issuer.domain import funds
from issuer.domain.decisions import (
    VELOCITY_LIMIT,
    VELOCITY_PERIOD,
    Decided,
    Issuing,
    Velocity,
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
from issuer.model.entities import (
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Terminal,
    new_id,
)

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
        )  # fmt: skip
        record = new_record(
            decided, terminal=terminal, request_id=request_id, digest=digest, inst=inst,
            channel=original.channel,
        )  # fmt: skip
        if not uow.authorisations.add(record):
            raise TransientError("a concurrent request with this id")  # replayed on retry
        if reason is None:
            funds.hold(uow, account.id, take, txn_id)
        return decided

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
