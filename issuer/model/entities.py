"""The issuer's domain objects: accounts, cards, tokens, terminals, authorisations,
journals and their states, as immutable values.

Names follow the issuing platforms users know:

- card states ``active | paused | closed`` (Lithic ``OPEN | PAUSED | CLOSED``, Stripe
  ``active | inactive | canceled``);
- token states ``active | suspended | deleted`` (Stripe Issuing tokens);
- authorisation states ``pending | closed | reversed | expired`` (Stripe Issuing; a
  merchant reversal is kept apart from an issuer-side expiry), with ``approved`` and a
  decline reason from a closed set (:class:`emvwire.contract.DeclineReason`).

Amounts are integers in the currency's minor unit (ISO 4217). Times are UTC ISO 8601
strings (``2026-01-31T12:00:00.000000Z``), which sort as they read. A card or token
never holds its PAN in clear: it holds the masked form (PCI DSS v4.0 Req. 3.4.1), a
keyed hash for look-up and the PAN sealed under the key store's data key
(:mod:`issuer.keys.base`).
"""

from __future__ import annotations

import enum
import functools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

__all__ = [
    "SYSTEM_ACCOUNTS",
    "SYSTEM_PREFIX",
    "Account",
    "AccountKind",
    "AccountStatus",
    "AtcVerdict",
    "Authorisation",
    "AuthorisationEvent",
    "AuthorisationKind",
    "AuthorisationStatus",
    "BinRange",
    "Book",
    "Card",
    "CardOrigin",
    "CardStatus",
    "CertificateStatus",
    "Entry",
    "Journal",
    "JournalKind",
    "QrSale",
    "QrSaleStatus",
    "Terminal",
    "TerminalCertificate",
    "TerminalStatus",
    "Token",
    "TokenStatus",
    "Wallet",
    "new_id",
    "utc_in",
    "utc_now",
    "utc_text",
]


def utc_text(when: datetime) -> str:
    """An aware time as the UTC ISO 8601 text every record carries
    (``2026-01-31T12:00:00.000000Z``)."""
    when = when.astimezone(UTC)
    return f"{_second_text(int(when.replace(microsecond=0).timestamp()))}.{when.microsecond:06d}Z"


@functools.lru_cache(maxsize=64)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def utc_in(seconds: int = 0) -> str:
    """Now plus ``seconds`` (an expiry, or minus for a window's start), as the UTC ISO
    8601 text every record carries. The service calls this a few times per
    authorisation: the text of a second is made once (``strftime`` of ``time.gmtime``,
    a few microseconds), the microseconds added each time."""
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_second_text(second + seconds)}.{micro:06d}Z"


def utc_now() -> str:
    """Now, as the UTC ISO 8601 text every record carries."""
    return utc_in(0)


#: How the 16 characters of an id are drawn: lower-case base32 letters in byte order,
#: so that ids made later sort later (within the cycle of the time part); two at a time.
_ID_ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
_ID_PAIRS: Final = tuple(a + b for a in _ID_ALPHABET for b in _ID_ALPHABET)
_ID_SHIFTS: Final = tuple(range(70, -1, -10))
#: The time part of an id: milliseconds modulo 2^30 (a cycle of 12.4 days).
_ID_TIME_BITS: Final = 30
_ID_RANDOM_BITS: Final = 80 - _ID_TIME_BITS


def new_id(prefix: str) -> str:
    """A new identifier with a type prefix: ``txn_a6zntceygmem2n3h``, 80 bits in
    lower-case base32 (whose few digits never look like a PAN to a log scrubber).

    The first 30 bits are the time in milliseconds (modulo 2^30), the other 50 come
    from the CSPRNG: records made together get ids that sit together in a B-tree
    index, so a group commit of many inserts writes a few index pages rather than one
    page per insert (UUIDv7's idea, RFC 9562 §5.7, in the 80 bits these ids have). An
    id is a name, not a secret (a terminal sees only its own transactions); two ids
    of one millisecond collide with a chance of 2^-50, and a unique key refuses it."""
    n = (time.time_ns() // 1_000_000 % (1 << _ID_TIME_BITS)) << _ID_RANDOM_BITS | (
        int.from_bytes(secrets.token_bytes(7)) >> (56 - _ID_RANDOM_BITS)
    )
    pairs = _ID_PAIRS
    return prefix + "_" + "".join([pairs[(n >> s) & 1023] for s in _ID_SHIFTS])


class AccountKind(enum.StrEnum):
    """A debit (prepaid) account spends its balance; a credit account its limit too."""

    DEBIT = "debit"
    CREDIT = "credit"
    SYSTEM = "system"


class AccountStatus(enum.StrEnum):
    """An account is open or, for good, closed."""

    OPEN = "open"
    CLOSED = "closed"


class CardStatus(enum.StrEnum):
    """Card states (Lithic OPEN / PAUSED / CLOSED)."""

    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


class CardOrigin(enum.StrEnum):
    """How a card came to be: personalised here, personalised elsewhere from this
    issuer's master keys (``register``), or a funding PAN behind tokens only."""

    PROVISIONED = "provisioned"
    REGISTERED = "registered"
    FUNDING = "funding"


class TokenStatus(enum.StrEnum):
    """Token states (Stripe Issuing tokens; ``requested`` is not used here)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


class TerminalStatus(enum.StrEnum):
    """A terminal's credential is accepted (active) or no longer (revoked)."""

    ACTIVE = "active"
    REVOKED = "revoked"


class CertificateStatus(enum.StrEnum):
    """A terminal's client certificate is accepted (active) or no longer (revoked);
    one that expired is refused by the TLS handshake whatever its status."""

    ACTIVE = "active"
    REVOKED = "revoked"


class AuthorisationKind(enum.StrEnum):
    """An authorisation (purchase, possibly captured later) or a refund."""

    AUTHORISATION = "authorisation"
    REFUND = "refund"


class AuthorisationStatus(enum.StrEnum):
    """Authorisation states (Stripe Issuing). A declined authorisation is ``closed``."""

    PENDING = "pending"
    CLOSED = "closed"
    REVERSED = "reversed"
    EXPIRED = "expired"


class Book(enum.StrEnum):
    """The two books of an account: money posted, and money held by authorisations."""

    POSTED = "posted"
    HELD = "held"


class JournalKind(enum.StrEnum):
    """Why money moved."""

    CREDIT = "credit"
    HOLD = "hold"
    RELEASE = "release"
    CAPTURE = "capture"
    REFUND = "refund"


class AtcVerdict(enum.StrEnum):
    """The answer of the ATC window check (EMV Book 2 §8.1: the ATC counts the
    cryptograms, so a value seen before is a replay)."""

    NEW = "new"
    REPLAYED = "replayed"
    ROLLED_BACK = "rolled_back"
    JUMPED = "jumped"


#: Prefix of the ids of the issuer's own accounts.
SYSTEM_PREFIX = "sys_"
#: Accounts of the issuer itself, the other side of every journal (double entry):
#: where credited money comes from, where holds are reserved, what merchants are owed.
#: They keep no running balance (it is the sum of their entries when read), so that
#: concurrent journals do not all queue on their rows.
SYSTEM_ACCOUNTS = {
    "funding": "sys_funding",
    "holds": "sys_holds",
    "settlement": "sys_settlement",
}


@dataclass(frozen=True, slots=True)
class Account:
    """A cardholder account. ``balance`` (posted) and ``held`` always equal the sums
    of their entries (:meth:`issuer.ledger.repository.UnitOfWork`)."""

    id: str
    holder: str
    kind: AccountKind
    currency: str
    credit_limit: int
    status: AccountStatus
    created_at: str
    balance: int = 0
    held: int = 0

    @property
    def available(self) -> int:
        """What an authorisation may still take: balance + credit limit - held."""
        return self.balance + self.credit_limit - self.held

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "holder": self.holder,
            "kind": self.kind.value,
            "currency": self.currency,
            "credit_limit": self.credit_limit,
            "status": self.status.value,
            "balance": self.balance,
            "held": self.held,
            "available": self.available,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class BinRange:
    """A range of PANs (or tokens) this issuer hands out, with the issuer public key
    certificate a card of the range carries (tags 8F, 90, 92, 9F32; Book 2 §5.1)."""

    prefix: str
    scheme: str
    kind: str  # "card" or "token"
    cvn: int
    pan_length: int
    issuer_key_id: str
    ca_rid: bytes
    ca_index: int
    certificate: bytes
    remainder: bytes
    exponent: bytes
    created_at: str
    status: str = "active"  # or "retired": no new cards (schema migration 6)
    retired_at: str | None = None

    @property
    def active(self) -> bool:
        """Whether the range issues and registers cards."""
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (public values only)."""
        return {
            "prefix": self.prefix,
            "scheme": self.scheme,
            "kind": self.kind,
            "cvn": self.cvn,
            "pan_length": self.pan_length,
            "issuer_key": self.issuer_key_id,
            "ca": f"{self.ca_rid.hex().upper()}/{self.ca_index:02X}",
            "status": self.status,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }


@dataclass(frozen=True, slots=True)
class Card:
    """A card (a PAN with its PSN, expiry and CVN) of an account."""

    id: str
    account_id: str
    scheme: str
    bin: str
    pan_masked: str
    pan_last4: str
    pan_hash: bytes = field(repr=False)
    pan_sealed: bytes = field(repr=False)
    psn: str
    expiry: date
    cvn: int
    par: str
    status: CardStatus
    origin: CardOrigin
    created_at: str
    flag: str | None = None
    key_version: int = 1  # of the range's master keys (schema migration 6)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data: the PAN masked."""
        return {
            "id": self.id,
            "account": self.account_id,
            "scheme": self.scheme,
            "pan": self.pan_masked,
            "last4": self.pan_last4,
            "psn": self.psn,
            "expiry": self.expiry.strftime("%Y-%m"),
            "cvn": self.cvn,
            "key_version": self.key_version,
            "par": self.par,
            "status": self.status.value,
            "origin": self.origin.value,
            "flag": self.flag,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Token:
    """A payment token bound to a card, with its domain restriction controls (EMVCo
    Payment Tokenisation: requestor id 9F19, PAR 9F24, channel and MCC limits)."""

    id: str
    card_id: str
    account_id: str
    scheme: str
    bin: str
    token_masked: str
    token_last4: str
    token_hash: bytes = field(repr=False)
    token_sealed: bytes = field(repr=False)
    psn: str
    expiry: date
    cvn: int
    par: str
    requestor_id: str
    status: TokenStatus
    contactless_only: bool
    allowed_mccs: tuple[str, ...] | None
    blocked_mccs: tuple[str, ...] | None
    created_at: str
    flag: str | None = None
    key_version: int = 1  # of the token range's master keys (schema migration 6)
    #: The channels the token may pay on (``contactless``, ``qr_cpm``, ``qr_mpm``:
    #: :class:`emvwire.contract.Channel`); ``None``: every one (schema migration 10).
    channels: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data: the token masked."""
        return {
            "id": self.id,
            "card": self.card_id,
            "account": self.account_id,
            "scheme": self.scheme,
            "token": self.token_masked,
            "last4": self.token_last4,
            "psn": self.psn,
            "expiry": self.expiry.strftime("%Y-%m"),
            "cvn": self.cvn,
            "key_version": self.key_version,
            "par": self.par,
            "requestor_id": self.requestor_id,
            "status": self.status.value,
            "contactless_only": self.contactless_only,
            "allowed_mccs": list(self.allowed_mccs) if self.allowed_mccs is not None else None,
            "blocked_mccs": list(self.blocked_mccs) if self.blocked_mccs is not None else None,
            "channels": list(self.channels) if self.channels is not None else None,
            "flag": self.flag,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Terminal:
    """A terminal allowed to ask for authorisations, with its credential's hash."""

    id: str
    merchant: str
    mcc: str
    credential_hash: str = field(repr=False)
    status: TerminalStatus
    created_at: str
    country: str = "0250"
    #: The merchant's city and the terminal's currency (ISO 4217 alphabetic) for the QR
    #: codes made for it; ``None``: not recorded (schema migration 10).
    city: str | None = None
    currency: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never the credential or its hash)."""
        return {
            "id": self.id,
            "merchant": self.merchant,
            "mcc": self.mcc,
            "country": self.country,
            "city": self.city,
            "currency": self.currency,
            "status": self.status.value,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class TerminalCertificate:
    """A client certificate issued to a terminal (the ledger's record: serial as
    upper-case hex, SHA-256 fingerprint, validity; never a key). A terminal may hold
    several at once (a renewal does not end the previous one)."""

    serial: str
    terminal_id: str
    fingerprint: str
    not_before: str
    not_after: str
    status: CertificateStatus
    created_at: str
    revoked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "serial": self.serial,
            "terminal_id": self.terminal_id,
            "fingerprint": self.fingerprint,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "status": self.status.value,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class Authorisation:
    """One authorisation record (append-only: only ``status``, ``captured_amount``,
    ``released_amount`` and ``updated_at`` change, each change with an event).

    ``request_id`` is unique per terminal: a retried request finds this record and
    answers ``response`` again (``request_hash`` tells a true retry from a reused id).
    ``card_id`` is the funding card also when a token paid (``token_id`` set), so a
    card's records include its tokens'. ``held_amount`` is what was put on hold.
    """

    id: str
    kind: AuthorisationKind
    terminal_id: str
    request_id: str
    request_hash: str
    amount: int
    currency: str
    approved: bool
    response_code: str
    status: AuthorisationStatus
    created_at: str
    updated_at: str
    card_id: str | None = None
    token_id: str | None = None
    account_id: str | None = None
    parent_id: str | None = None
    mcc: str | None = None
    decline_reason: str | None = None
    atc: int | None = None
    held_amount: int = 0
    captured_amount: int = 0
    released_amount: int = 0
    expires_at: str | None = None
    response: str = ""
    #: How the card's data came (:class:`emvwire.contract.Channel`; schema migration 10).
    channel: str = "contactless"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "channel": self.channel,
            "terminal": self.terminal_id,
            "request_id": self.request_id,
            "card": self.card_id,
            "token": self.token_id,
            "account": self.account_id,
            "parent": self.parent_id,
            "amount": self.amount,
            "currency": self.currency,
            "mcc": self.mcc,
            "approved": self.approved,
            "decline_reason": self.decline_reason,
            "response_code": self.response_code,
            "status": self.status.value,
            "atc": self.atc,
            "held_amount": self.held_amount,
            "captured_amount": self.captured_amount,
            "released_amount": self.released_amount,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class AuthorisationEvent:
    """A change of an authorisation (append-only): created, captured, reversed, ..."""

    transaction_id: str
    kind: str
    amount: int
    created_at: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a journal: a signed amount on one book of one account."""

    account_id: str
    book: Book
    amount: int


@dataclass(frozen=True, slots=True)
class Journal:
    """A balanced set of entries (double entry: each book sums to zero)."""

    id: str
    kind: JournalKind
    entries: tuple[Entry, ...]
    created_at: str
    transaction_id: str | None = None
    memo: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "transaction": self.transaction_id,
            "memo": self.memo,
            "created_at": self.created_at,
            "entries": [
                {"account": e.account_id, "book": e.book.value, "amount": e.amount}
                for e in self.entries
            ],
        }


@dataclass(frozen=True, slots=True)
class Wallet:
    """A phone wallet allowed to pay merchant-presented QR codes (its app instance, as
    a token requestor knows it), with its credential's hash: a wallet proves itself as
    a terminal does (bearer credential and client certificate)."""

    id: str
    name: str
    credential_hash: str = field(repr=False)
    status: TerminalStatus
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (never the credential or its hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "created_at": self.created_at,
        }


class QrSaleStatus(enum.StrEnum):
    """A sale of a dynamic merchant-presented code: open for payment, claimed by a
    payment under way, paid, or ended unpaid (its time passed, or the terminal
    cancelled it)."""

    OPEN = "open"
    PAYING = "paying"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class QrSale:
    """A sale a terminal opened for the dynamic code it shows (bill number unique per
    terminal). ``claim`` is the request id of the payment under way or done;
    ``transaction_id`` the approved authorisation; ``declined`` the declined ones."""

    terminal_id: str
    bill: str
    amount: int
    currency: str
    status: QrSaleStatus
    created_at: str
    updated_at: str
    expires_at: str
    claim: str | None = None
    transaction_id: str | None = None
    declined: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "terminal": self.terminal_id,
            "bill": self.bill,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status.value,
            "transaction": self.transaction_id,
            "declined": list(self.declined),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
        }
