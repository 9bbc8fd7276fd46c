"""Online authorisation: from a terminal's field 55 blob and track 2 to a decision.

The flow (EMV Book 2 §8.1-8.2 for the cryptograms; ISO 8583 field 55 for the request;
the read-phase rules of :mod:`issuer.domain.field55`)::

    parse field 55 (emvwire, nothing assumed)  ->  PAN or token from track 2 (57)
    -> token vault: de-tokenise, status, expiry, domain controls (channel, MCC)
    -> derive the ICC AC key (cached per card), verify the ARQC for the card's CVN
    -> ATC strictly new within a window (replayed / rolled back: decline, flag)
    -> card CVR (in the MAC'd IAD) against terminal CVM results 9F34, CTQ 9F6C, TVR
    -> transit indicators against the terminal's MCC
    -> spending controls: merchant category and country (issuer.domain.controls)
    -> [the program's decision endpoint, between the phases (issuer.domain.program)]
    -> ATC recorded; the program's decline; spending limits; velocity, funds
    -> hold the amount (or less: a partial approval the request allows), record,
       answer 8A + ARPC (method per CVN) + reason (+ the control named),
       and its event (authorisation.approved / .declined) in the same transaction.

Only what the ARQC covers is trusted: amount, currency, date, type, UN, TVR, AIP,
ATC and IAD. The MCC is the terminal's as registered, never the request's. A request
is idempotent per (terminal, request id): the same request gets the stored answer and
changes nothing; the same id with another request is a :class:`ConflictError`.

A request has a read phase (:meth:`Authoriser.check`: nothing written) and a write
phase (:meth:`Authoriser.decide_many`) that runs in group commit with the write
phases of concurrent requests. Between the two, a service with a decision endpoint
asks the program (:meth:`Authoriser.proposal`, then :meth:`Authoriser.take`), waiting
for it without holding anything. On a ledger that pipelines statements (PostgreSQL)
the write phases of a batch run together, in rounds of two round trips, the
transaction's begin and commit in the first and last (:meth:`Authoriser._record_many`),
deciding exactly as one after another. Reversal,
completion, resubmission, refund and increments are :mod:`issuer.domain.clearing`'s.

Partial approval: a request that allows one (``partial_allowed``) and that a spending
limit, the program or the available funds allow only in part is approved for that
part (response code ``10``, ``approved_amount``), which is held; never below one
minor unit, never when a count limit or velocity is reached.

Lock order (issuer.ledger.repository): ATC state, then account, then authorisation.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from emvwire.contract import APPROVED, PARTIAL_APPROVAL, Decision, DeclineReason
from emvwire.crypto.cryptogram import CryptogramData, cvn_spec, generate_arpc, verify_arqc
from emvwire.errors import EmvWireError
from emvwire.mask import mask_pan
from emvwire.tags import Tag
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
from issuer.domain.field55 import (
    amount_and_currency,
    check_cvm,
    check_format,
    check_transit,
    cryptogram_data,
    pan_of,
    parse_field55,
)
from issuer.domain.program import ProgramRequest, Proposed, Verdict
from issuer.domain.vault import DeclinedError, Instrument
from issuer.errors import IssuerError, TransientError, ValidationError
from issuer.ledger.repository import Reservation
from issuer.model.controls import SpendingControls
from issuer.model.entities import AtcVerdict, Authorisation, Journal, Terminal, new_id, utc_now

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = [
    "ATC_MAX_JUMP",
    "ATC_WINDOW",
    "AuthorisationRequest",
    "Authoriser",
    "Checked",
]

#: ATCs accepted below the highest seen (out-of-order online taps), and the largest
#: jump forward (EMV Book 2 §8.1: the ATC is an anti-replay counter).
ATC_WINDOW: Final = 16
ATC_MAX_JUMP: Final = 1000
#: Card status update (ARPC method 2, Book 2 §8.2.2; VIS 1.5 CSU byte 2 bit 8 "issuer
#: approves online transaction").
CSU_APPROVED: Final = bytes.fromhex("00800000")
CSU_DECLINED: Final = bytes(4)


@dataclass(frozen=True, slots=True)
class AuthorisationRequest:
    """What a terminal sends: its request id, field 55 and track 2 (57), whether it
    accepts a partial approval, and how the card's data came (``channel``,
    :class:`emvwire.contract.Channel`). A QR payment (:mod:`issuer.domain.qr`) may also
    carry the ``amount`` to authorise (a code made without one) and a ``refusal``: why
    its code is refused, declined once the cryptogram verified (the code's data that
    says so is then the card's)."""

    request_id: str
    icc_data: bytes = field(repr=False)
    track2: bytes = field(repr=False)
    partial_allowed: bool = False
    channel: str = "contactless"
    amount: int | None = None
    refusal: DeclineReason | None = None

    def digest(self) -> str:
        """The request hash that tells a true retry from a reused request id."""
        data = b"auth|" + self.icc_data + b"|" + self.track2
        if self.partial_allowed:
            data += b"|partial"
        if self.channel != "contactless":
            data += f"|{self.channel}|{self.amount}".encode()
        return hashlib.sha256(data).hexdigest()


class _TakenError(IssuerError):
    """The request id was recorded by a concurrent request meanwhile."""


@dataclass(slots=True)
class _Checked:
    """What the read phase established."""

    instrument: Instrument | None
    amount: int
    currency: str
    atc: int | None
    data: CryptogramData | None
    arqc: bytes
    icc_mk: bytes
    pan_masked: str
    reason: DeclineReason | None = None
    flag: bool = False
    #: The spending controls of the instrument (token, card, account), and the merchant
    #: control they decline it by (applied after the ATC is recorded).
    controls: tuple[SpendingControls, ...] = ()
    breach: Breach | None = None
    #: The transaction id, chosen at once when the program is asked (its request names
    #: it), else by the write phase.
    txn_id: str = ""
    #: The program's answer (or the fallback), when it was asked.
    verdict: Verdict | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """A request after the read phase (:meth:`Authoriser.check`): failed already
    (``outcome``, its exception) or waiting for its write phase."""

    terminal: Terminal
    request: AuthorisationRequest
    outcome: Exception | None
    digest: str = ""
    checked: _Checked | None = None


_UNDECIDED: Final = TransientError("not decided: retry")


def _atc_decline(
    verdict: AtcVerdict, reason: DeclineReason | None, flag: bool
) -> tuple[DeclineReason | None, bool]:
    """The decline (and card flag) of an ATC verdict (EMV Book 2 §8.1: the ATC is an
    anti-replay counter); ``reason`` and ``flag`` as they were if it is new."""
    if verdict is AtcVerdict.REPLAYED:
        return DeclineReason.ATC_REPLAYED, True
    if verdict is AtcVerdict.ROLLED_BACK:
        return DeclineReason.ATC_ROLLED_BACK, True
    if verdict is AtcVerdict.JUMPED:
        return DeclineReason.SUSPECTED_FRAUD, True
    return reason, flag


def _velocity_subject(inst: Instrument) -> tuple[str | None, str | None]:
    """(token id, card id) whose approvals the velocity rule counts: the token's if the
    instrument is one, else the card's."""
    token_id = inst.token.id if inst.token else None
    return token_id, None if token_id else inst.card.id


@dataclass(slots=True)
class _Round:
    """What the writes of a round of :meth:`Authoriser._record_many` touch.

    Its instruments and cards are distinct: a card's ATC state, velocity count and flag
    belong to one write. Writes may share an account: their reservations run in the
    round's order, each seeing the ones before, as one after another; except a write
    that allows a partial approval, whose second reservation (of what is available,
    after the first held nothing) would come after the later writes' first: such a
    write has its account to itself in a round."""

    writes: list[_Write] = field(default_factory=list)
    cards: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    partial: set[str] = field(default_factory=set)

    def admits(self, write: _Write) -> bool:
        """Whether ``write`` can join (else the round is run first)."""
        inst = write.checked.instrument
        if inst is None:
            return True
        account = inst.account.id
        if inst.instrument_id in self.cards or inst.card.id in self.cards:
            return False
        if account in self.partial:
            return False
        return not (write.request.partial_allowed and account in self.accounts)

    def add(self, write: _Write) -> None:
        self.writes.append(write)
        inst = write.checked.instrument
        if inst is not None:
            self.cards |= {inst.instrument_id, inst.card.id}
            self.accounts.add(inst.account.id)
            if write.request.partial_allowed:
                self.partial.add(inst.account.id)


def _decided(
    uow: UnitOfWork,
    record: Authorisation,
    inst: Instrument | None,
    reason: DeclineReason | None,
    flag: bool,
) -> None:
    """After a record is added: its event, and the flag of a card or token a decline
    flags (a replayed ATC, a suspected fraud)."""
    events.authorisation_decided(uow, record)
    if flag and inst is not None and reason is not None:
        if inst.token is not None:
            uow.tokens.set_flag(inst.token.id, reason.value)
        else:
            uow.cards.set_flag(inst.card.id, reason.value)


@dataclass(slots=True)
class _Write:
    """The write phase of one checked request, as a group commit job."""

    authoriser: Authoriser
    terminal: Terminal
    request: AuthorisationRequest
    digest: str
    checked: _Checked

    def __call__(self, uow: UnitOfWork) -> Decided:
        return self.authoriser._record(
            uow, terminal=self.terminal, request=self.request, digest=self.digest,
            checked=self.checked,
        )  # fmt: skip


def _order(checked: _Checked | None) -> str:
    """The group-commit order of a write: its account (locks taken in id order)."""
    return checked.instrument.account.id if checked and checked.instrument else ""


class Authoriser:
    """Authorisations over an :class:`~issuer.domain.decisions.Issuing` (its ledger,
    key store, vault, group commit and read cache).

    Keeps the derived AC key per card application (SoftHSM derives ~1,600/s; a key
    store call per authorisation would cap the service). Thread-safe.
    """

    def __init__(
        self,
        issuer: Issuing,
        *,
        atc_window: int = ATC_WINDOW,
        atc_max_jump: int = ATC_MAX_JUMP,
        velocity_limit: int = VELOCITY_LIMIT,
        velocity_period: timedelta = VELOCITY_PERIOD,
        today: Callable[[], date] | None = None,
        together: bool | None = None,
    ) -> None:
        self._issuer = issuer
        self.together = together
        self.atc_window = atc_window
        self.atc_max_jump = atc_max_jump
        self.velocity = Velocity(velocity_limit, velocity_period)
        self._today = today or (lambda: datetime.now(UTC).date())
        self._keys: dict[tuple[str, str, int, str, int], bytes] = {}
        self._lock = threading.Lock()

    def _together(self) -> bool:
        """Whether :meth:`decide_many` runs a batch's write phases together
        (:meth:`_record_many`): as asked, else if the ledger pipelines statements."""
        if self.together is not None:
            return self.together
        return self._issuer.ledger.pipelines

    # -- the AC key --------------------------------------------------------------------

    def _icc_mk(self, instrument: Instrument, pan: str) -> bytes:
        token = instrument.token
        bin_ = token.bin if token is not None else instrument.card.bin
        cache_key = (
            instrument.instrument_id,
            bin_,
            instrument.cvn,
            instrument.psn,
            instrument.key_version,
        )
        found = self._keys.get(cache_key)
        if found is not None:
            return found
        mk = self._issuer.keys.derive_icc_mk(instrument.key_ref, pan, instrument.psn)
        with self._lock:
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[cache_key] = mk
        return mk

    # -- the two phases ----------------------------------------------------------------

    def authorise(self, terminal: Terminal, request: AuthorisationRequest) -> Decision:
        """Decide on ``request`` from ``terminal`` (module docstring)."""
        digest, checked = self._prepare(terminal, request, self._issuer.cache.refresh())
        return retry(lambda: self._write(terminal, request, digest, checked)).decision

    def authorise_many(
        self, items: Sequence[tuple[Terminal, AuthorisationRequest]]
    ) -> list[Decision | Exception]:
        """Decide on independent requests together: :meth:`check` each, then
        :meth:`decide_many`; each request's decision or exception, as :meth:`authorise`."""
        return [
            d if isinstance(d, Exception) else d.decision
            for d in self.decide_many([self.check(t, r) for t, r in items])
        ]

    def check(
        self,
        terminal: Terminal,
        request: AuthorisationRequest,
        *,
        generation: int | None = None,
    ) -> Checked:
        """The read phase of :meth:`authorise` (nothing written): what
        :meth:`decide_many` needs, or the request's exception. ``generation`` is what
        :meth:`~issuer.domain.cache.ReadCache.refresh` answered at the start of the
        caller's turn (``None``: refreshed now)."""
        try:
            if generation is None:
                generation = self._issuer.cache.refresh()
            digest, checked = self._prepare(terminal, request, generation)
        except Exception as exc:
            return Checked(terminal, request, exc)
        return Checked(terminal, request, None, digest, checked)

    def decide_many(self, items: Sequence[Checked]) -> list[Decided | Exception]:
        """The write phases of checked requests in shared transactions (group commit:
        an event loop's turn); each request's decision (with its text) or exception."""
        pending: list[Checked] = []
        jobs: list[tuple[Callable[[UnitOfWork], Decided], str]] = []
        for c in items:
            if c.outcome is None and c.checked is not None:
                pending.append(c)
                work = _Write(self, c.terminal, c.request, c.digest, c.checked)
                jobs.append((work, _order(c.checked)))
        together = self._record_many if self._together() else None
        results = self._issuer.writes.run_batch(jobs, together=together)
        decided: dict[int, Decided | Exception] = {}
        for c, result in zip(pending, results, strict=True):
            try:
                if isinstance(result, _TakenError):
                    decided[id(c)] = self._taken(c.terminal, c.request, c.digest)
                elif isinstance(result, TransientError) and c.checked is not None:
                    again = functools.partial(
                        self._write, c.terminal, c.request, c.digest, c.checked
                    )  # a conflict: alone, retried
                    decided[id(c)] = retry(again)
                else:
                    decided[id(c)] = result
            except Exception as exc:
                decided[id(c)] = exc
        return [
            c.outcome if c.outcome is not None else decided.get(id(c), _UNDECIDED) for c in items
        ]

    @staticmethod
    def proposal(checked: Checked) -> ProgramRequest | None:
        """What to ask the program's decision endpoint about a checked request
        (:mod:`issuer.domain.program`): the issuer's proposed decision with masked data
        only; ``None`` for a request that failed or whose cryptogram did not verify
        (nothing is asked about a request the issuer cannot authenticate). Fixes the
        transaction id the write phase will use."""
        c = checked.checked
        if checked.outcome is not None or c is None or c.data is None or c.instrument is None:
            return None
        c.txn_id = c.txn_id or new_id("txn")
        inst, terminal = c.instrument, checked.terminal
        breach = c.breach if c.reason is None else None
        reason = c.reason or (DeclineReason.SPENDING_CONTROL if breach else None)
        return ProgramRequest(
            id=c.txn_id,
            created_at=utc_now(),
            request_id=checked.request.request_id,
            terminal=terminal.id,
            merchant=terminal.merchant,
            mcc=terminal.mcc,
            country=terminal.country,
            card=c.pan_masked,
            card_id=inst.card.id,
            token_id=inst.token.id if inst.token else None,
            account_id=inst.account.id,
            amount=c.amount,
            currency=c.currency,
            partial_allowed=checked.request.partial_allowed,
            proposed=Proposed(
                approved=reason is None,
                reason=reason,
                control=breach.wire() if breach else None,
            ),
        )

    @staticmethod
    def take(checked: Checked, verdict: Verdict) -> None:
        """Give a checked request the program's answer to its :meth:`proposal` (or the
        fallback taken): its write phase applies it and records it."""
        if checked.checked is not None:
            checked.checked.verdict = verdict

    def _prepare(
        self, terminal: Terminal, request: AuthorisationRequest, generation: int
    ) -> tuple[str, _Checked]:
        """The read phase: what the checks found. A retried request id is not looked
        up here: its write phase finds the id taken (the unique (terminal, request id)
        of the ledger), rolls its job back and answers the stored decision
        (:meth:`_taken`), so a first request costs no idempotency read."""
        if not request.request_id or len(request.request_id) > 255:
            raise ValidationError("a request id is 1 to 255 characters")
        return request.digest(), self._check(terminal, request, generation)

    def _write(
        self,
        terminal: Terminal,
        request: AuthorisationRequest,
        digest: str,
        checked: _Checked,
    ) -> Decided:
        """The write phase of one request through group commit."""
        try:
            return self._issuer.writes.run(
                lambda uow: self._record(
                    uow, terminal=terminal, request=request, digest=digest, checked=checked
                ),
                order=_order(checked),
            )
        except _TakenError:
            return self._taken(terminal, request, digest)

    def _taken(self, terminal: Terminal, request: AuthorisationRequest, digest: str) -> Decided:
        """The stored answer of a request id a concurrent request recorded meanwhile."""
        with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
            found = stored(uow, terminal.id, request.request_id, digest)
        if found is None:
            raise TransientError("a concurrent request with this id")
        return found

    # -- the read phase ----------------------------------------------------------------

    def _instrument(self, pan: str, generation: int) -> Instrument | None:
        """The card or token of ``pan`` (the token vault), from the read cache if it
        holds it for this generation; ``None`` if this issuer has none."""
        issuer = self._issuer
        digest = issuer.keys.pan_hash(pan)
        key = ("instrument", digest)
        found: Instrument | None = issuer.cache.get(key)
        if found is None:
            with issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
                found = issuer.vault.lookup_hash(uow, digest)
            if found is not None:
                issuer.cache.put(key, found, generation)
        return found

    def _controls(self, instrument: Instrument, generation: int) -> tuple[SpendingControls, ...]:
        """The spending controls of the instrument (token, card, account), from the read
        cache if it holds them for this generation (a change of controls bumps it)."""
        issuer = self._issuer
        key = ("controls", instrument.instrument_id)
        found: tuple[SpendingControls, ...] | None = issuer.cache.get(key)
        if found is None:
            with issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
                found = uow.controls.applying(
                    account_id=instrument.account.id,
                    card_id=instrument.card.id,
                    token_id=instrument.token.id if instrument.token else None,
                )
            issuer.cache.put(key, found, generation)
        return found

    def _key_retired(self, instrument: Instrument, generation: int) -> bool:
        """Whether the master key version of the instrument's keys is retired (the
        ledger's list, read once per cache generation: a retirement bumps it)."""
        issuer = self._issuer
        retired: frozenset[tuple[str, str, int, int]] | None = issuer.cache.get("retired-keys")
        if retired is None:
            with issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
                retired = uow.bins.retired_keys()
            issuer.cache.put("retired-keys", retired, generation)
        ref = instrument.key_ref
        return (ref.scheme, ref.bin, ref.cvn, ref.version) in retired

    def _check(
        self, terminal: Terminal, request: AuthorisationRequest, generation: int
    ) -> _Checked:
        """The read phase: parse, de-tokenise, verify the cryptogram and the CVM, the
        merchant's spending controls (:mod:`issuer.domain.controls`: only once the
        cryptogram verified)."""
        tags = parse_field55(request.icc_data)
        pan = pan_of(request.track2)
        amount, currency = amount_and_currency(tags)
        if request.amount is not None:
            amount = request.amount
        checked = _Checked(None, max(amount, 0), currency, None, None, b"", b"", mask_pan(pan))
        try:
            check_format(tags, amount, currency)
            instrument = self._instrument(pan, generation)
            if instrument is None:
                raise DeclinedError(DeclineReason.CARD_NOT_FOUND)
            checked.instrument = instrument
            refused = self._issuer.vault.check(
                instrument, today=self._today(), mcc=terminal.mcc, channel=request.channel
            )
            if refused is not None:
                raise DeclinedError(refused)
            checked.pan_masked = (
                instrument.token.token_masked if instrument.token else instrument.card.pan_masked
            )
            if instrument.account.currency != currency:
                raise DeclinedError(DeclineReason.CURRENCY_MISMATCH)
            if self._key_retired(instrument, generation):
                raise DeclinedError(DeclineReason.KEY_RETIRED)
            arqc = tags[Tag.APPLICATION_CRYPTOGRAM]
            try:
                data = cryptogram_data(tags)
                mk = self._icc_mk(instrument, pan)
                verify_arqc(instrument.cvn, mk, data, arqc)  # EMV Book 2 §8.1.2
            except EmvWireError:
                raise DeclinedError(DeclineReason.CRYPTOGRAM_INVALID) from None
            checked.data, checked.arqc, checked.icc_mk = data, arqc, mk
            checked.atc = int.from_bytes(tags[Tag.ATC])
            if request.refusal is not None:
                raise DeclinedError(request.refusal)
            check_cvm(instrument, tags)
            check_transit(instrument, tags, terminal.mcc)
            checked.controls = self._controls(instrument, generation)
            checked.breach = merchant_breach(
                checked.controls, mcc=terminal.mcc, country=terminal.country
            )
        except DeclinedError as decline:
            checked.reason, checked.flag = decline.reason, decline.flag
        return checked

    # -- the write phase ---------------------------------------------------------------

    def _record(
        self,
        uow: UnitOfWork,
        *,
        terminal: Terminal,
        request: AuthorisationRequest,
        digest: str,
        checked: _Checked,
    ) -> Decided:
        """The write phase: ATC, the merchant control, the program's answer, spending
        limits, velocity and funds, hold, record, in the caller's unit of work.
        :class:`_TakenError` if the request id is taken (a concurrent retry): the
        caller answers the stored decision. The unique (terminal, request id) makes the
        retry's checks vanish with its rolled-back job, so no look-up precedes them."""
        txn_id = checked.txn_id or new_id("txn")
        inst = checked.instrument
        reason, flag = checked.reason, checked.flag
        if reason is None and inst is not None and checked.atc is not None:
            verdict = uow.atcs.check_and_record(
                inst.instrument_id,
                checked.atc,
                window=self.atc_window,
                max_jump=self.atc_max_jump,
                transaction_id=txn_id,
            )
            reason, flag = _atc_decline(verdict, reason, flag)
        partial = request.partial_allowed
        control = checked.breach if reason is None else None
        if control is not None:
            reason = DeclineReason.SPENDING_CONTROL
        want = checked.amount
        if reason is None and checked.verdict is not None:
            reason, want = checked.verdict.apply(want, partial_allowed=partial)
        if reason is None and inst is not None and limits_amount(checked.controls):
            allowed, binding = allowed_amount(uow, inst.account.id, checked.controls, want)
            if allowed < want:
                control = binding
                if partial and allowed > 0:
                    want = allowed
                else:
                    reason = DeclineReason.SPENDING_CONTROL
        reserved = False
        if reason is None and inst is not None:
            reserved, reason, want = self._reserve(uow, inst, want, partial=partial)
        decided, record = self._conclude(
            terminal, request, digest, checked, txn_id, reason, control, want
        )
        if not uow.authorisations.add(record):
            raise _TakenError
        if checked.verdict is not None:
            uow.programs.record(checked.verdict.record(txn_id))
        if reserved and inst is not None and reason is None:
            funds.hold(uow, inst.account.id, want, txn_id, reserved=True)
        _decided(uow, record, inst, reason, flag)
        return decided

    def _conclude(
        self,
        terminal: Terminal,
        request: AuthorisationRequest,
        digest: str,
        checked: _Checked,
        txn_id: str,
        reason: DeclineReason | None,
        control: Breach | None,
        want: int,
    ) -> tuple[Decided, Authorisation]:
        """The answer (ARPC by the response code, Book 2 §8.2) and its record, once the
        write phase's checks decided ``reason`` (the ``control`` it names) and ``want``."""
        if reason is not None and reason is not DeclineReason.SPENDING_CONTROL:
            control = None
        wire = control.wire() if control is not None else None
        arpc, iad91 = self._arpc(
            checked.instrument, checked,
            code_of(reason, control=wire, partial=want < checked.amount),
        )  # fmt: skip
        decided = decide(
            txn_id, reason, amount=checked.amount, currency=checked.currency,
            inst=checked.instrument, card=checked.pan_masked, arpc=arpc,
            issuer_authentication_data=iad91, approved_amount=want, control=wire,
        )  # fmt: skip
        record = new_record(
            decided, terminal=terminal, request_id=request.request_id, digest=digest,
            inst=checked.instrument, atc=checked.atc, channel=request.channel,
        )  # fmt: skip
        return decided, record

    def _record_many(self, uow: UnitOfWork, writes: list[_Write]) -> list[Decided | Exception]:
        """The write phases of a batch (group commit's ``together``), deciding as
        :meth:`_record` one after another would, in a few round trips per round.

        A round is a run of writes whose statements depend on no other's but in the
        order they run (:class:`_Round`); each round costs two
        :class:`~issuer.ledger.repository.UnitOfWork` calls that a ledger may send in one
        round trip each: the ATC checks and the reservations
        (:meth:`~issuer.ledger.repository.UnitOfWork.check_and_reserve`, with the
        transaction's ``BEGIN`` in the first), then the records and holds
        (:meth:`~issuer.ledger.repository.UnitOfWork.record_many`; the last round's
        with the events and the ``COMMIT``: a batch of one round is two round trips).
        A write with the program's verdict or an amount limit runs alone
        (:meth:`_record`), between rounds. Answers in order, up to the first write
        that failed (its exception, last: group commit takes it out)."""
        out: list[Decided | Exception] = []
        round_ = _Round()
        for w in writes:
            c = w.checked
            alone = c.verdict is not None or limits_amount(c.controls)
            if round_.writes and (alone or not round_.admits(w)):
                if not self._round(uow, round_.writes, out):
                    return out
                round_ = _Round()
            if alone:
                try:
                    out.append(w(uow))
                except Exception as exc:
                    out.append(exc)
                    return out
                continue
            round_.add(w)
        if round_.writes:
            self._round(uow, round_.writes, out, last=True)
        return out

    def _round(
        self,
        uow: UnitOfWork,
        writes: list[_Write],
        out: list[Decided | Exception],
        *,
        last: bool = False,
    ) -> bool:
        """One round of :meth:`_record_many` (answers appended to ``out``); ``False`` if
        a request id was taken (its :class:`_TakenError` appended last). The ``last``
        round's records and holds may go with the commit (``record_many``'s ``last``:
        a request id taken then fails the commit, and group commit runs the batch one
        by one)."""
        since = self.velocity.since()
        asks: list[tuple[_Write, Reservation | None]] = []
        for w in writes:
            c, inst = w.checked, w.checked.instrument
            ask = None
            if c.reason is None and inst is not None:
                token_id, card_id = _velocity_subject(inst)
                ask = Reservation(
                    inst.instrument_id,
                    c.atc,
                    self.atc_window,
                    self.atc_max_jump,
                    inst.account.id,
                    c.amount if c.breach is None else None,
                    card_id,
                    token_id,
                    since,
                    self.velocity.limit,
                )
            asks.append((w, ask))
        answers = iter(uow.check_and_reserve([a for _, a in asks if a is not None]))
        records: list[Authorisation] = []
        holds: list[Journal] = []
        done: list[tuple[Decided, Authorisation, DeclineReason | None, bool]] = []
        for w, ask in asks:
            c, inst = w.checked, w.checked.instrument
            txn_id = c.txn_id or new_id("txn")
            reason, flag = c.reason, c.flag
            reserved = False
            if ask is not None:
                verdict, reserved = next(answers)
                if verdict is not None:
                    reason, flag = _atc_decline(verdict, reason, flag)
            control = c.breach if reason is None else None
            if control is not None:
                reason = DeclineReason.SPENDING_CONTROL
            want = c.amount
            if reason is None and inst is not None and not reserved:
                reserved, reason, want = self._short(
                    uow, inst, want, partial=w.request.partial_allowed
                )
            decided, record = self._conclude(
                w.terminal, w.request, w.digest, c, txn_id, reason, control, want
            )
            if reserved and inst is not None and reason is None:
                holds.append(funds.hold_journal(inst.account.id, want, txn_id))
            records.append(record)
            done.append((decided, record, reason, flag))
        for (decided, record, reason, flag), added, w in zip(
            done, uow.record_many(records, holds, last=last), writes, strict=True
        ):
            if not added:
                out.append(_TakenError())
                return False
            _decided(uow, record, w.checked.instrument, reason, flag)
            out.append(decided)
        return True

    def _reserve(
        self, uow: UnitOfWork, inst: Instrument, want: int, *, partial: bool
    ) -> tuple[bool, DeclineReason | None, int]:
        """Velocity, funds check and hold in one statement (it locks the account row);
        if it holds nothing, the count tells velocity from funds, and a partial
        approval holds what is available. (reserved, decline reason, amount held)."""
        since = self.velocity.since()
        token_id, card_id = _velocity_subject(inst)
        if uow.accounts.reserve(
            inst.account.id, want, card_id=card_id, token_id=token_id, since=since,
            limit=self.velocity.limit,
        ):  # fmt: skip
            return True, None, want
        return self._short(uow, inst, want, partial=partial, since=since)

    def _short(
        self,
        uow: UnitOfWork,
        inst: Instrument,
        want: int,
        *,
        partial: bool,
        since: str | None = None,
    ) -> tuple[bool, DeclineReason | None, int]:
        """After a reservation that held nothing: velocity or funds, or the partial
        approval of what is available (as :meth:`_reserve`)."""
        since = since or self.velocity.since()
        token_id, card_id = _velocity_subject(inst)
        account_id = inst.account.id
        count = uow.authorisations.count_since(card_id=card_id, token_id=token_id, since=since)
        if count >= self.velocity.limit:
            return False, DeclineReason.VELOCITY_EXCEEDED, want
        if partial:
            available = uow.accounts.get(account_id, for_update=True).available
            if 0 < available < want and uow.accounts.reserve(account_id, available):
                return True, None, available
        return False, DeclineReason.INSUFFICIENT_FUNDS, want

    @staticmethod
    def _arpc(inst: Instrument | None, checked: _Checked, code: str) -> tuple[bytes, bytes]:
        """ARPC and Issuer Authentication Data (91) by the CVN's method (Book 2 §8.2):
        method 1 ``ARPC(8) || ARC(2)`` (the ARC the response ``code``), method 2
        ``ARPC(4) || CSU(4)`` (approved for ``00`` and ``10``)."""
        if inst is None or checked.data is None or not checked.icc_mk:
            return b"", b""
        spec = cvn_spec(inst.cvn)
        if spec.arpc_method == 1:
            arc = code.encode("ascii")
            arpc = generate_arpc(spec, checked.icc_mk, checked.data, checked.arqc, arc=arc)
            return arpc, arpc + arc
        csu = CSU_APPROVED if code in (APPROVED, PARTIAL_APPROVAL) else CSU_DECLINED
        arpc = generate_arpc(spec, checked.icc_mk, checked.data, checked.arqc, csu=csu)
        return arpc, arpc + csu
