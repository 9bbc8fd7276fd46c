"""Online authorisation: from a terminal's field 55 blob and track 2 to a decision.

The flow (EMV Book 2 §8.1-8.2 for the cryptograms; ISO 8583 field 55 for the request;
the issuer-side defences of shared/notes/emv.md "Published attacks")::

    parse field 55 (emvwire, nothing assumed)  ->  PAN or token from track 2 (57)
    -> token vault: de-tokenise, status, expiry, domain controls (contactless, MCC)
    -> derive the ICC AC key (cached per card), verify the ARQC for the card's CVN
    -> ATC strictly new within a window (replayed / rolled back: decline, flag)
    -> card CVR (in the MAC'd IAD) against terminal CVM results 9F34, CTQ 9F6C, TVR
    -> transit indicators against the terminal's MCC, velocity, available funds
    -> hold the amount, record, answer 8A + ARPC (method per CVN) + reason.

Only what the ARQC covers is trusted: amount, currency, date, type, UN, TVR, AIP,
ATC and IAD. The MCC is the terminal's as registered, never the request's. A request
is idempotent per (terminal, request id): the same request gets the stored answer and
changes nothing; the same id with another request is a :class:`ConflictError`.

Lock order (issuer.ledger.repository): ATC state, then account, then authorisation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from emvwire.crypto.cryptogram import (
    CryptogramData,
    cvn_spec,
    generate_arpc,
    verify_arqc,
)
from emvwire.errors import EmvWireError
from emvwire.mask import mask_pan
from emvwire.tlv import decode_flat
from issuer.domain import funds
from issuer.domain.cache import ReadCache
from issuer.domain.decline import DeclineReason, response_code
from issuer.domain.group_commit import GroupCommit
from issuer.domain.vault import Instrument
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    NotFoundError,
    RefusedError,
    TransientError,
    ValidationError,
)
from issuer.model.currency import currency_by_numeric
from issuer.model.entities import (
    AtcVerdict,
    Authorisation,
    AuthorisationKind,
    AuthorisationStatus,
    Terminal,
    new_id,
    utc_in,
    utc_now,
)

if TYPE_CHECKING:
    from issuer.bootstrap import IssuerApp
    from issuer.ledger.repository import UnitOfWork

__all__ = [
    "ATC_MAX_JUMP",
    "ATC_WINDOW",
    "RESUBMITTABLE",
    "RESUBMIT_MAX",
    "RESUBMIT_PERIOD",
    "TRANSIT_AGGREGATION_LIMIT",
    "TRANSIT_AGGREGATION_MCC",
    "TRANSIT_MCCS",
    "AuthorisationRequest",
    "Authoriser",
    "Checked",
    "Decision",
    "authorise",
    "parse_field55",
]

#: ATCs accepted below the highest seen (out-of-order online taps), and the largest
#: jump forward (EMV Book 2 §8.1: the ATC is an anti-replay counter; emv.md).
ATC_WINDOW: Final = 16
ATC_MAX_JUMP: Final = 1000
#: Velocity: approved authorisations of one card or token per period (Lithic-style).
VELOCITY_LIMIT: Final = 50
VELOCITY_PERIOD: Final = timedelta(minutes=10)
#: MCCs of transit and parking (ISO 18245): local commuter transport, passenger
#: railways, bus lines, tolls, parking. A transit-mode tap elsewhere declines
#: (Radu et al., S&P 2022: Apple Pay Visa transit mode relayed to a shop).
TRANSIT_MCCS: Final = frozenset({"4111", "4112", "4131", "4784", "7523"})
#: Debt recovery (shared/notes/emv.md "Open-loop transit", Visa's rule): a declined
#: transit authorisation may be resubmitted without new chip data at most 6 times
#: within 14 days of the original, only when it was declined for funds or limits.
RESUBMIT_MAX: Final = 6
RESUBMIT_PERIOD: Final = timedelta(days=14)
RESUBMITTABLE: Final = frozenset(
    {
        DeclineReason.INSUFFICIENT_FUNDS,
        DeclineReason.VELOCITY_EXCEEDED,
        DeclineReason.AMOUNT_LIMIT_EXCEEDED,
    }
)
#: Transit aggregation: a terminal of MCC 4111 (local commuter transport) may capture
#: the fares of a period on the first tap's authorisation, above the authorised amount
#: up to this total (minor units; the back office caps fares below it).
TRANSIT_AGGREGATION_MCC: Final = "4111"
TRANSIT_AGGREGATION_LIMIT: Final = 1500
#: Group-commit batches that may run at once on PostgreSQL (SQLite: one writer).
GROUP_LEADERS: Final = 4
#: Transaction types (9C) an authorisation may carry: purchase, purchase with cashback.
PURCHASE_TYPES: Final = frozenset({0x00, 0x09})
#: Tags the ARQC covers (EMV Book 2 §8.1.1 minimum set) plus cryptogram, CID and IAD.
REQUIRED_TAGS: Final = (0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02,
                        0x9F03, 0x5F2A, 0x82, 0x9F1A)  # fmt: skip
#: Where the CVR sits in the IAD, per CVN: (offset, length) of the CVR data bytes.
#: Visa format 0/1 (VIS 1.5 Appendix A-13: ``06 | DKI | CVN | 03 | CVR(3)``), Visa
#: format 2 (VIS 1.6: ``1F | CVN | DKI | CVR(5) | ...``), M/Chip 4 (``DKI | CVN |
#: CVR(6) | ...``). CVN 10/18/16/17/20/21 MAC the CVR; CVN 22 MACs the whole IAD.
CVR_IN_IAD: Final[Mapping[int, tuple[int, int]]] = {
    10: (4, 3), 18: (4, 3), 22: (3, 5), 16: (2, 6), 17: (2, 6), 20: (2, 6), 21: (2, 6),
}  # fmt: skip
#: Card-proven facts in the CVR: (byte index, mask), per scheme (card/visa.py,
#: card/mastercard.py module docstrings; VIS 1.5 A-13, M/Chip 4 CVR).
_VISA_CVR_CDCVM: Final = (2, 0x01)
_VISA_CVR_OFFLINE_ONLY: Final = (0, 0x01)  # "unable to go online": an offline reader
_MC_CVR_PIN_PERFORMED: Final = (0, 0x04)
_MC_CVR_PIN_OK: Final = (0, 0x01)
#: CVM results 9F34 method codes (EMV Book 3 Annex C3, low six bits): offline PIN
#: verified by the ICC (plaintext 01, enciphered 04, combinations 03, 05) = CDCVM on
#: contactless kernel 2/3 (01 00 02).
_OFFLINE_PIN_METHODS: Final = frozenset({0x01, 0x03, 0x04, 0x05})
#: CTQ byte 2 bit 8: consumer device CVM performed (Book C-3 Annex A).
_CTQ_CDCVM: Final = (1, 0x80)
#: TVR byte 3 bit 8: cardholder verification was not successful (Book 3 Annex C5).
_TVR_CV_FAILED: Final = (2, 0x80)
#: Card status update (ARPC method 2, Book 2 §8.2.2; VIS 1.5 CSU byte 2 bit 8 "issuer
#: approves online transaction").
CSU_APPROVED: Final = bytes.fromhex("00800000")
CSU_DECLINED: Final = bytes(4)

T = TypeVar("T")


def _bit(value: bytes, where: tuple[int, int]) -> bool:
    index, mask = where
    return len(value) > index and bool(value[index] & mask)


def _bcd_int(value: bytes) -> int:
    text = value.hex()
    if not text.isdigit():
        raise ValidationError("a BCD amount has a non-decimal digit")
    return int(text)


def parse_field55(blob: bytes) -> dict[int, bytes]:
    """The primitive data objects of a field 55 blob (EMV Book 3 Annex B BER-TLV);
    :class:`ValidationError` if it does not decode."""
    try:
        return decode_flat(blob)
    except EmvWireError as exc:
        raise ValidationError(f"field 55 does not decode: {exc}") from None


def _track2_pan(track2: bytes) -> str:
    """PAN digits of Track 2 Equivalent Data (Book 3 Annex A, tag 57): before ``D``."""
    pan, sep, _ = track2.hex().upper().partition("D")
    if not sep or not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise ValidationError("track 2 equivalent data has no valid PAN")
    return pan


@dataclass(frozen=True, slots=True)
class AuthorisationRequest:
    """What a terminal sends: its request id, field 55 and track 2 (57)."""

    request_id: str
    icc_data: bytes = field(repr=False)
    track2: bytes = field(repr=False)

    def digest(self) -> str:
        """The request hash that tells a true retry from a reused request id."""
        return hashlib.sha256(b"auth|" + self.icc_data + b"|" + self.track2).hexdigest()


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to an authorisation request."""

    transaction_id: str
    approved: bool
    response_code: str
    reason: DeclineReason | None
    amount: int
    currency: str
    status: str
    arpc: bytes = b""
    issuer_authentication_data: bytes = b""
    card: str = ""
    par: str | None = None
    original_id: str | None = None
    replayed: bool = False
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def encoded(self) -> str:
        """:meth:`to_json` as compact JSON text, made once: the record's stored
        answer and the HTTP body are the same text."""
        text = self._text
        if text is None:
            text = json.dumps(self.to_json(), separators=(",", ":"))
            object.__setattr__(self, "_text", text)
        return text

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the card masked; ``par`` the payment account reference of
        the card or token, EMVCo PAR 9F24, shared by the tokens of one card)."""
        return {
            "id": self.transaction_id,
            "approved": self.approved,
            "response_code": self.response_code,
            "reason": self.reason.value if self.reason else None,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "arpc": self.arpc.hex().upper(),
            "issuer_authentication_data": self.issuer_authentication_data.hex().upper(),
            "card": self.card,
            "par": self.par,
            "original_id": self.original_id,
            "replayed": self.replayed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, replayed: bool = False) -> Decision:
        """The stored answer of a request (for a retry)."""
        reason = data.get("reason")
        return cls(
            transaction_id=str(data["id"]),
            approved=bool(data["approved"]),
            response_code=str(data["response_code"]),
            reason=DeclineReason(reason) if reason else None,
            amount=int(data["amount"]),
            currency=str(data["currency"]),
            status=str(data["status"]),
            arpc=bytes.fromhex(data.get("arpc", "")),
            issuer_authentication_data=bytes.fromhex(data.get("issuer_authentication_data", "")),
            card=str(data.get("card", "")),
            par=data.get("par"),
            original_id=data.get("original_id"),
            replayed=replayed,
        )


class _TakenError(Exception):
    """The request id was recorded by a concurrent request meanwhile."""


class _DeclineError(Exception):
    def __init__(self, reason: DeclineReason, *, flag: bool = False) -> None:
        self.reason = reason
        self.flag = flag
        super().__init__(reason.value)


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


def _par(inst: Instrument | None) -> str | None:
    """The payment account reference of an instrument (the token's, else the card's;
    ``None`` if it has none)."""
    if inst is None:
        return None
    return (inst.token.par if inst.token is not None else inst.card.par) or None


@dataclass(frozen=True, slots=True)
class Checked:
    """A request after the read phase (:meth:`Authoriser.check`): decided already
    (``outcome``: a stored answer or an exception) or waiting for its write phase."""

    terminal: Terminal
    request: AuthorisationRequest
    outcome: Decision | Exception | None
    digest: str = ""
    checked: _Checked | None = None


_UNDECIDED: Final = TransientError("not decided: retry")


def _order(checked: _Checked | None) -> str:
    """The group-commit order of a write: its account (locks taken in id order)."""
    return checked.instrument.account.id if checked and checked.instrument else ""


def _retry(work: Callable[[], T], attempts: int = 5) -> T:
    for attempt in range(attempts):
        try:
            return work()
        except TransientError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Authoriser:
    """Authorisations, reversals, completions and refunds over an :class:`IssuerApp`.

    Keeps the derived AC key per card application (SoftHSM derives ~1,600/s; a key
    store call per authorisation would cap the service). Thread-safe.
    """

    def __init__(
        self,
        app: IssuerApp,
        *,
        atc_window: int = ATC_WINDOW,
        atc_max_jump: int = ATC_MAX_JUMP,
        velocity_limit: int = VELOCITY_LIMIT,
        velocity_period: timedelta = VELOCITY_PERIOD,
        transit_aggregation_limit: int = TRANSIT_AGGREGATION_LIMIT,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.app = app
        self.transit_aggregation_limit = transit_aggregation_limit
        self.atc_window = atc_window
        self.atc_max_jump = atc_max_jump
        self.velocity_limit = velocity_limit
        self.velocity_period = velocity_period
        self._velocity_seconds = max(1, round(velocity_period.total_seconds()))
        self._today = today or (lambda: datetime.now(UTC).date())
        self._keys: dict[tuple[str, str, int, str], bytes] = {}
        self._lock = threading.Lock()
        #: Terminal and instrument rows between requests (:mod:`issuer.domain.cache`).
        self.cache = ReadCache(app.ledger)
        # Every write goes through group commit: concurrent requests share transactions
        # and log flushes. SQLite has one writer (one batch at a time, queued here
        # rather than in SQLite's busy handler); PostgreSQL runs a few batches at once.
        leaders = 1 if app.ledger.dialect == "sqlite" else GROUP_LEADERS
        self._group = GroupCommit(app.ledger, leaders=leaders)

    # -- the AC key --------------------------------------------------------------------

    def _icc_mk(self, instrument: Instrument, pan: str) -> bytes:
        token = instrument.token
        bin_ = token.bin if token is not None else instrument.card.bin
        cache_key = (instrument.instrument_id, bin_, instrument.cvn, instrument.psn)
        found = self._keys.get(cache_key)
        if found is not None:
            return found
        mk = self.app.keys.derive_icc_mk(instrument.key_ref, pan, instrument.psn)
        with self._lock:
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[cache_key] = mk
        return mk

    # -- authorisation -----------------------------------------------------------------

    def authorise(self, terminal: Terminal, request: AuthorisationRequest) -> Decision:
        """Decide on ``request`` from ``terminal`` (module docstring)."""
        digest, checked = self._prepare(terminal, request, self.cache.refresh())
        return _retry(lambda: self._write(terminal, request, digest, checked))

    def authorise_many(
        self, items: Sequence[tuple[Terminal, AuthorisationRequest]]
    ) -> list[Decision | Exception]:
        """Decide on independent requests together: :meth:`check` each, then
        :meth:`decide_many`; each request's decision or exception, as :meth:`authorise`."""
        return self.decide_many([self.check(t, r) for t, r in items])

    def check(
        self,
        terminal: Terminal,
        request: AuthorisationRequest,
        *,
        generation: int | None = None,
    ) -> Checked:
        """The read phase of :meth:`authorise` (nothing written): what
        :meth:`decide_many` needs, or the request's exception. ``generation`` is what
        :meth:`ReadCache.refresh` of :attr:`cache` answered at the start of the
        caller's turn (``None``: refreshed now)."""
        try:
            if generation is None:
                generation = self.cache.refresh()
            digest, checked = self._prepare(terminal, request, generation)
        except Exception as exc:
            return Checked(terminal, request, exc)
        return Checked(terminal, request, None, digest, checked)

    def decide_many(self, items: Sequence[Checked]) -> list[Decision | Exception]:
        """The write phases of checked requests in shared transactions (group commit:
        an event loop's turn); each request's decision or exception."""
        pending: list[Checked] = []
        jobs: list[tuple[Callable[[UnitOfWork], Decision], str]] = []
        for c in items:
            if c.outcome is None and c.checked is not None:
                pending.append(c)
                work = functools.partial(
                    self._record,
                    terminal=c.terminal, request=c.request, digest=c.digest, checked=c.checked,
                )  # fmt: skip
                jobs.append((work, _order(c.checked)))
        results = self._group.run_batch(jobs)
        decided: dict[int, Decision | Exception] = {}
        for c, result in zip(pending, results, strict=True):
            try:
                if isinstance(result, _TakenError):
                    decided[id(c)] = self._taken(c.terminal, c.request, c.digest)
                elif isinstance(result, TransientError) and c.checked is not None:
                    retry = functools.partial(
                        self._write, c.terminal, c.request, c.digest, c.checked
                    )  # a conflict: alone, retried
                    decided[id(c)] = _retry(retry)
                else:
                    decided[id(c)] = result
            except Exception as exc:
                decided[id(c)] = exc
        return [
            c.outcome if c.outcome is not None else decided.get(id(c), _UNDECIDED) for c in items
        ]

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
    ) -> Decision:
        """The write phase of one request through group commit."""
        try:
            return self._group.run(
                lambda uow: self._record(
                    uow, terminal=terminal, request=request, digest=digest, checked=checked
                ),
                order=_order(checked),
            )
        except _TakenError:
            return self._taken(terminal, request, digest)

    def _taken(self, terminal: Terminal, request: AuthorisationRequest, digest: str) -> Decision:
        """The stored answer of a request id a concurrent request recorded meanwhile."""
        with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
            found = self._stored(uow, terminal.id, request.request_id, digest)
        if found is None:
            raise TransientError("a concurrent request with this id")
        return found

    @staticmethod
    def _stored(uow: UnitOfWork, terminal_id: str, request_id: str, digest: str) -> Decision | None:
        found = uow.authorisations.find_by_request(terminal_id, request_id)
        if found is None:
            return None
        if found.kind is not AuthorisationKind.AUTHORISATION or not hmac.compare_digest(
            found.request_hash, digest
        ):
            raise ConflictError("this Idempotency-Key was used for another request")
        return Decision.from_json(json.loads(found.response), replayed=True)

    def _instrument(self, pan: str, generation: int) -> Instrument | None:
        """The card or token of ``pan`` (the token vault), from :attr:`cache` if it
        holds it for this generation; ``None`` if this issuer has none."""
        digest = self.app.keys.pan_hash(pan)
        key = ("instrument", digest)
        found: Instrument | None = self.cache.get(key)
        if found is None:
            with self.app.ledger.unit_of_work(write=False, snapshot=False) as uow:
                found = self.app.vault.lookup_hash(uow, digest)
            if found is not None:
                self.cache.put(key, found, generation)
        return found

    def _check(
        self, terminal: Terminal, request: AuthorisationRequest, generation: int
    ) -> _Checked:
        """The read phase: parse, de-tokenise, verify the cryptogram and the CVM."""
        tags = parse_field55(request.icc_data)
        pan = _track2_pan(request.track2)
        masked = mask_pan(pan)
        try:
            amount = _bcd_int(tags[0x9F02]) if len(tags.get(0x9F02, b"")) == 6 else -1
            cur = tags.get(0x5F2A, b"")
            currency = currency_by_numeric(cur).code if len(cur) == 2 else "XXX"
        except (ValidationError, NotFoundError, ValueError):
            amount, currency = -1, "XXX"
        checked = _Checked(None, max(amount, 0), currency, None, None, b"", b"", masked)
        try:
            if any(t not in tags for t in REQUIRED_TAGS):
                raise _DeclineError(DeclineReason.FORMAT_ERROR)
            if amount <= 0:
                raise _DeclineError(DeclineReason.INVALID_AMOUNT)
            if currency == "XXX":
                raise _DeclineError(DeclineReason.CURRENCY_MISMATCH)
            if tags[0x9F27][:1] != b"" and tags[0x9F27][0] & 0xC0 != 0x80:
                raise _DeclineError(DeclineReason.FORMAT_ERROR)  # not an ARQC
            if tags[0x9C][0] not in PURCHASE_TYPES:
                raise _DeclineError(DeclineReason.FORMAT_ERROR)
            instrument = self._instrument(pan, generation)
            if instrument is None:
                raise _DeclineError(DeclineReason.CARD_NOT_FOUND)
            checked.instrument = instrument
            refused = self.app.vault.check(
                instrument, today=self._today(), contactless=True, mcc=terminal.mcc
            )
            if refused is not None:
                raise _DeclineError(refused)
            checked.pan_masked = (
                instrument.token.token_masked if instrument.token else instrument.card.pan_masked
            )
            if instrument.account.currency != currency:
                raise _DeclineError(DeclineReason.CURRENCY_MISMATCH)
            try:
                data = CryptogramData(
                    tag_9f02=tags[0x9F02], tag_9f03=tags[0x9F03], tag_9f1a=tags[0x9F1A],
                    tag_95=tags[0x95], tag_5f2a=tags[0x5F2A], tag_9a=tags[0x9A],
                    tag_9c=tags[0x9C], tag_9f37=tags[0x9F37], tag_82=tags[0x82],
                    tag_9f36=tags[0x9F36], tag_9f10=tags[0x9F10],
                )  # fmt: skip
                mk = self._icc_mk(instrument, pan)
                data = self._verify(instrument, mk, data, tags[0x9F26])
            except EmvWireError:
                raise _DeclineError(DeclineReason.CRYPTOGRAM_INVALID) from None
            checked.data, checked.arqc, checked.icc_mk = data, tags[0x9F26], mk
            checked.atc = int.from_bytes(tags[0x9F36])
            self._check_cvm(instrument, tags)
            self._check_transit(instrument, tags, terminal)
        except _DeclineError as decline:
            checked.reason, checked.flag = decline.reason, decline.flag
        return checked

    @staticmethod
    def _verify(
        instrument: Instrument, mk: bytes, data: CryptogramData, arqc: bytes
    ) -> CryptogramData:
        """Verify the ARQC (EMV Book 2 §8.1.2) over exactly the field 55 values: the
        TVR there is the one the card's cryptogram covers (kernel 3 sends the PDOL's)."""
        verify_arqc(instrument.cvn, mk, data, arqc)
        return data

    @staticmethod
    def _cvr(instrument: Instrument, iad: bytes) -> bytes:
        where = CVR_IN_IAD.get(instrument.cvn)
        if where is None or len(iad) < where[0] + where[1]:
            raise _DeclineError(DeclineReason.FORMAT_ERROR)
        return iad[where[0] : where[0] + where[1]]

    def _check_cvm(self, instrument: Instrument, tags: Mapping[int, bytes]) -> None:
        """Chip and PIN is broken (Murdoch et al., S&P 2010) and the CTQ downgrade:
        what the terminal says was verified must be what the card's CVR proves."""
        cvr = self._cvr(instrument, tags[0x9F10])
        if instrument.scheme == "visa":
            card_cdcvm = _bit(cvr, _VISA_CVR_CDCVM)
        else:
            card_cdcvm = _bit(cvr, _MC_CVR_PIN_PERFORMED) and _bit(cvr, _MC_CVR_PIN_OK)
        cvm = tags.get(0x9F34, b"")
        terminal_cdcvm = len(cvm) == 3 and cvm[0] & 0x3F in _OFFLINE_PIN_METHODS and cvm[2] == 0x02
        ctq_cdcvm = _bit(tags.get(0x9F6C, b""), _CTQ_CDCVM)
        if (terminal_cdcvm or ctq_cdcvm) and not card_cdcvm:
            raise _DeclineError(DeclineReason.CVM_MISMATCH, flag=True)
        if card_cdcvm and _bit(tags[0x95], _TVR_CV_FAILED):
            raise _DeclineError(DeclineReason.CVM_MISMATCH, flag=True)

    def _check_transit(
        self, instrument: Instrument, tags: Mapping[int, bytes], terminal: Terminal
    ) -> None:
        """A cryptogram made for an offline-only (transit) reader, or one naming a
        transit MCC, is good only at a transit terminal."""
        transit = False
        if instrument.scheme == "visa":
            transit = _bit(self._cvr(instrument, tags[0x9F10]), _VISA_CVR_OFFLINE_ONLY)
        mcc = tags.get(0x9F15, b"").hex()
        if mcc and mcc != terminal.mcc:
            raise _DeclineError(DeclineReason.UNAUTHORIZED_MERCHANT, flag=True)
        transit = transit or mcc in TRANSIT_MCCS
        if transit and terminal.mcc not in TRANSIT_MCCS:
            raise _DeclineError(DeclineReason.TRANSIT_NOT_ALLOWED, flag=True)

    def _record(
        self,
        uow: UnitOfWork,
        *,
        terminal: Terminal,
        request: AuthorisationRequest,
        digest: str,
        checked: _Checked,
    ) -> Decision:
        """The write phase: ATC, funds, hold, record, in the caller's unit of work.
        :class:`_TakenError` if the request id is taken (a concurrent retry): the
        caller answers the stored decision. The unique (terminal, request id) makes the
        retry's checks vanish with its rolled-back job, so no look-up precedes them."""
        txn_id = new_id("txn")
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
            if verdict is AtcVerdict.REPLAYED:
                reason, flag = DeclineReason.ATC_REPLAYED, True
            elif verdict is AtcVerdict.ROLLED_BACK:
                reason, flag = DeclineReason.ATC_ROLLED_BACK, True
            elif verdict is AtcVerdict.JUMPED:
                reason, flag = DeclineReason.SUSPECTED_FRAUD, True
        reserved = False
        if reason is None and inst is not None:
            # Velocity, funds check and hold in one statement (it locks the account
            # row); if it holds nothing, the count tells velocity from funds.
            since = utc_in(-self._velocity_seconds)
            token_id = inst.token.id if inst.token else None
            card_id = None if token_id else inst.card.id
            reserved = uow.accounts.reserve(
                inst.account.id, checked.amount, card_id=card_id, token_id=token_id,
                since=since, limit=self.velocity_limit,
            )  # fmt: skip
            if not reserved:
                count = uow.authorisations.count_since(
                    card_id=card_id, token_id=token_id, since=since
                )
                reason = (
                    DeclineReason.VELOCITY_EXCEEDED
                    if count >= self.velocity_limit
                    else DeclineReason.INSUFFICIENT_FUNDS
                )
        approved = reason is None
        code = response_code(reason)
        arpc, iad91 = self._arpc(inst, checked, code, approved)
        decision = Decision(
            transaction_id=txn_id,
            approved=approved,
            response_code=code,
            reason=reason,
            amount=checked.amount,
            currency=checked.currency,
            status=(AuthorisationStatus.PENDING if approved else AuthorisationStatus.CLOSED),
            arpc=arpc,
            issuer_authentication_data=iad91,
            card=checked.pan_masked,
            par=_par(inst),
        )
        now = utc_now()
        record = Authorisation(
            id=txn_id,
            kind=AuthorisationKind.AUTHORISATION,
            terminal_id=terminal.id,
            request_id=request.request_id,
            request_hash=digest,
            amount=checked.amount,
            currency=checked.currency,
            approved=approved,
            response_code=code,
            status=AuthorisationStatus.PENDING if approved else AuthorisationStatus.CLOSED,
            created_at=now,
            updated_at=now,
            card_id=inst.card.id if inst else None,
            token_id=inst.token.id if inst and inst.token else None,
            account_id=inst.account.id if inst else None,
            mcc=terminal.mcc,
            decline_reason=reason.value if reason else None,
            atc=checked.atc,
            held_amount=checked.amount if approved else 0,
            expires_at=funds.expiry_time() if approved else None,
            response=decision.encoded(),
        )
        if not uow.authorisations.add(record):
            raise _TakenError
        if approved and reserved and inst is not None:
            funds.hold(uow, inst.account.id, checked.amount, txn_id, reserved=True)
        if flag and inst is not None and reason is not None:
            if inst.token is not None:
                uow.tokens.set_flag(inst.token.id, reason.value)
            else:
                uow.cards.set_flag(inst.card.id, reason.value)
        return decision

    @staticmethod
    def _arpc(
        inst: Instrument | None, checked: _Checked, code: str, approved: bool
    ) -> tuple[bytes, bytes]:
        """ARPC and Issuer Authentication Data (91) by the CVN's method (Book 2 §8.2):
        method 1 ``ARPC(8) || ARC(2)``, method 2 ``ARPC(4) || CSU(4)``."""
        if inst is None or checked.data is None or not checked.icc_mk:
            return b"", b""
        spec = cvn_spec(inst.cvn)
        arc = code.encode("ascii")
        if spec.arpc_method == 1:
            arpc = generate_arpc(spec, checked.icc_mk, checked.data, checked.arqc, arc=arc)
            return arpc, arpc + arc
        csu = CSU_APPROVED if approved else CSU_DECLINED
        arpc = generate_arpc(spec, checked.icc_mk, checked.data, checked.arqc, csu=csu)
        return arpc, arpc + csu

    # -- after the authorisation -------------------------------------------------------

    @staticmethod
    def _own(uow: UnitOfWork, terminal: Terminal, transaction_id: str) -> Authorisation:
        auth = uow.authorisations.get(transaction_id)
        if auth.terminal_id != terminal.id:
            raise NotFoundError(f"no transaction {transaction_id} of this terminal")
        return auth

    def reverse(self, terminal: Terminal, transaction_id: str, request_id: str) -> Authorisation:
        """Reverse a pending authorisation: its hold is released exactly once; a
        declined one (nothing held) or a reversed one is answered as it is."""

        def work(uow: UnitOfWork) -> Authorisation:
            auth = self._own(uow, terminal, transaction_id)
            if not auth.approved or auth.status is AuthorisationStatus.REVERSED:
                return auth
            return funds.reverse(uow, transaction_id, request_id=request_id)

        return _retry(lambda: self._group.run(work))

    def reverse_request(self, terminal: Terminal, request_id: str) -> Authorisation | None:
        """Reverse the authorisation of a request id (a time-out reversal, when the
        terminal never learnt the transaction id); ``None`` if it never arrived."""
        with self.app.ledger.unit_of_work(write=False) as uow:
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
            auth = self._own(uow, terminal, transaction_id)
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

        return _retry(lambda: self._group.run(work))

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

        def work(uow: UnitOfWork) -> Decision:
            stored = self._stored(uow, terminal.id, request_id, digest)
            if stored is not None:
                return stored
            return self._resubmit(uow, terminal, transaction_id, amount, request_id, digest)

        return _retry(lambda: self._group.run(work))

    def _resubmit(
        self,
        uow: UnitOfWork,
        terminal: Terminal,
        transaction_id: str,
        amount: int | None,
        request_id: str,
        digest: str,
    ) -> Decision:
        given = self._own(uow, terminal, transaction_id)
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
        reason = self.app.vault.check(inst, today=self._today(), mcc=terminal.mcc)
        if reason is None:
            since = utc_in(-self._velocity_seconds)
            count = uow.authorisations.count_since(
                card_id=None if token else card.id, token_id=token.id if token else None,
                since=since,
            )  # fmt: skip
            if count >= self.velocity_limit:
                reason = DeclineReason.VELOCITY_EXCEEDED
        if reason is None and account.available < take:
            reason = DeclineReason.INSUFFICIENT_FUNDS
        approved = reason is None
        code = response_code(reason)
        status = AuthorisationStatus.PENDING if approved else AuthorisationStatus.CLOSED
        txn_id = new_id("txn")
        decision = Decision(
            transaction_id=txn_id,
            approved=approved,
            response_code=code,
            reason=reason,
            amount=take,
            currency=original.currency,
            status=status,
            card=token.token_masked if token else card.pan_masked,
            par=_par(inst),
            original_id=original.id,
        )
        now = utc_now()
        record = Authorisation(
            id=txn_id,
            kind=AuthorisationKind.AUTHORISATION,
            terminal_id=terminal.id,
            request_id=request_id,
            request_hash=digest,
            amount=take,
            currency=original.currency,
            approved=approved,
            response_code=code,
            status=status,
            created_at=now,
            updated_at=now,
            card_id=card.id,
            token_id=token.id if token else None,
            account_id=account.id,
            parent_id=original.id,
            mcc=terminal.mcc,
            decline_reason=reason.value if reason else None,
            held_amount=take if approved else 0,
            expires_at=funds.expiry_time() if approved else None,
            response=decision.encoded(),
        )
        if not uow.authorisations.add(record):
            raise TransientError("a concurrent request with this id")  # replayed on retry
        if approved:
            funds.hold(uow, account.id, take, txn_id)
        return decision

    def refund(
        self, terminal: Terminal, transaction_id: str, amount: int, request_id: str
    ) -> Authorisation:
        """Refund part of a captured authorisation of this terminal (idempotent)."""

        def work(uow: UnitOfWork) -> Authorisation:
            self._own(uow, terminal, transaction_id)
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

        return _retry(lambda: self._group.run(work))


def authorise(app: IssuerApp, terminal: Terminal, request: AuthorisationRequest) -> Decision:
    """One authorisation with a fresh :class:`Authoriser` (a service keeps one)."""
    return Authoriser(app).authorise(terminal, request)
