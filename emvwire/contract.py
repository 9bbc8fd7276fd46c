# ruff: noqa: S105 - decline reason names, not passwords
"""The terminal-issuer contract: the messages of online authorisation, written once.

The issuer's HTTP API decodes its requests and encodes its answers with these types,
its OpenAPI document takes their JSON schemas from them (:func:`schemas`), and the
host client (``hostlink``) reads the answers with them: the three cannot drift apart.
Pure: bytes in, bytes out (msgspec structs, JSON).

What travels (ISO 8583 names in brackets):

- an authorisation request: field 55 as one BER-TLV blob (ICC system related data,
  EMV Book 3 Annex B; the data objects :data:`FIELD_55_TAGS`) and track 2 equivalent
  data (tag 57, field 35);
- a decision: approved or not, the authorisation response code (tag 8A, field 39;
  EMV Book 4 §A6) with a reason from a closed set (:class:`DeclineReason`), the
  spending control that declined it (:class:`SpendingControl`), the amount approved
  (less than asked: a partial approval, code ``10``, when the request allowed one), the
  ARPC and issuer authentication data (tag 91, Book 2 §8.2), the masked card and its
  payment account reference (EMVCo PAR, tag 9F24);
- the operations after it: completion (capture), reversal by transaction or by the
  request id of a time-out (field 90's role), resubmission (debt recovery), refund,
  incremental authorisation (a pending hold raised: a parking stay that grows);
- QR code payments (EMV QRCPS, :mod:`emvwire.qr`): an authorisation names its
  :class:`Channel` (a consumer-presented code's data is sent as a tap's field 55 is);
  a terminal opens a sale for the dynamic merchant-presented code it shows
  (:class:`QrSaleRequest`) and waits for its payment (:class:`QrSale`); a phone
  wallet looks a merchant up (:class:`QrMerchant`) and pays its code
  (:class:`QrPaymentRequest`);
- every error as ``{"error": {"code", "message"}}``.

Requests are strict: an unknown field, a wrong type or a value out of range is a
:class:`ContractError` naming the field (``$.icc_data``); a body that is not a JSON
object at all is a :class:`MalformedError`. Answers are read leniently (a field the
reader does not know is skipped), so that the issuer may add one. Fields added to a
message are optional and absent (or null) by default, so a terminal that does not
know them reads the answer as before and sends the request it sent before. A decline
reason added to :class:`DeclineReason` is the exception: a reader that predates it
cannot decode the answer and takes it as no answer (the host client then declines the
payment with ``Z3`` and sends a time-out reversal, which releases nothing: safe, but
update terminals before issuers use new reasons).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeVar

import msgspec

from emvwire.errors import EmvWireError
from emvwire.tags import FIELD_55_TAGS, Tag

__all__ = [
    "APPROVED",
    "CONTROL_RESPONSE_CODES",
    "FIELD_55_REQUIRED",
    "FIELD_55_TAGS",
    "MESSAGES",
    "NO_ANSWER_CODE",
    "PARTIAL_APPROVAL",
    "RESPONSE_CODES",
    "AuthorisationRequest",
    "AuthorisationReversalRequest",
    "Channel",
    "CompletionRequest",
    "ContractError",
    "Decision",
    "DeclineReason",
    "Error",
    "ErrorBody",
    "Health",
    "IncrementDecision",
    "IncrementRequest",
    "MalformedError",
    "QrMerchant",
    "QrPaymentRequest",
    "QrSale",
    "QrSaleCancelRequest",
    "QrSaleRequest",
    "RefundRequest",
    "ResubmissionRequest",
    "ReversalNotFound",
    "ReversalRequest",
    "SpendingControl",
    "Transaction",
    "TransactionList",
    "control_response_code",
    "decode",
    "encode",
    "response_code",
    "schemas",
]

#: Authorisation response code (8A, field 39) of an approval.
APPROVED: Final = "00"
#: Authorisation response code of a partial approval: "approved for partial amount"
#: (ISO 8583:1987 field 39 ``10``): the decision's ``approved_amount`` is held, less
#: than the amount asked.
PARTIAL_APPROVAL: Final = "10"
#: Authorisation response code of a terminal that could not go online: "unable to go
#: online, offline declined" (EMV Book 4 §A6).
NO_ANSWER_CODE: Final = "Z3"


class DeclineReason(enum.StrEnum):
    """Why an authorisation is declined: a closed set of names (those of the issuing
    platforms: Lithic's ``INSUFFICIENT_FUNDS``, ``CARD_PAUSED``, ...), each with its
    response code in :data:`RESPONSE_CODES`."""

    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    CARD_NOT_FOUND = "CARD_NOT_FOUND"
    CARD_PAUSED = "CARD_PAUSED"
    CARD_CLOSED = "CARD_CLOSED"
    CARD_EXPIRED = "CARD_EXPIRED"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    TOKEN_SUSPENDED = "TOKEN_SUSPENDED"
    TOKEN_DELETED = "TOKEN_DELETED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_DOMAIN_VIOLATION = "TOKEN_DOMAIN_VIOLATION"
    UNAUTHORIZED_MERCHANT = "UNAUTHORIZED_MERCHANT"
    CRYPTOGRAM_INVALID = "CRYPTOGRAM_INVALID"
    KEY_RETIRED = "KEY_RETIRED"
    ATC_REPLAYED = "ATC_REPLAYED"
    ATC_ROLLED_BACK = "ATC_ROLLED_BACK"
    CVM_MISMATCH = "CVM_MISMATCH"
    SUSPECTED_FRAUD = "SUSPECTED_FRAUD"
    VELOCITY_EXCEEDED = "VELOCITY_EXCEEDED"
    AMOUNT_LIMIT_EXCEEDED = "AMOUNT_LIMIT_EXCEEDED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    TRANSIT_NOT_ALLOWED = "TRANSIT_NOT_ALLOWED"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    QR_CODE_INVALID = "QR_CODE_INVALID"
    QR_CODE_EXPIRED = "QR_CODE_EXPIRED"
    QR_CODE_USED = "QR_CODE_USED"
    FORMAT_ERROR = "FORMAT_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    #: A spending control of the account, card or token (the decision's ``control``
    #: names it): its response code is the control's (:func:`control_response_code`).
    SPENDING_CONTROL = "SPENDING_CONTROL"
    #: The program's decision endpoint declined (or asked for less than the amount, the
    #: request not allowing a partial approval).
    PROGRAM_DECLINED = "PROGRAM_DECLINED"
    #: The program's decision endpoint gave no usable answer in time and its fallback
    #: is to decline.
    PROGRAM_UNAVAILABLE = "PROGRAM_UNAVAILABLE"


#: ISO 8583:1987 field 39 / EMV tag 8A (in ASCII, EMV Book 4 §A6) per decline reason;
#: ``82`` is Visa's "negative online CAM" (a cryptogram that does not verify).
RESPONSE_CODES: Final[Mapping[DeclineReason, str]] = {
    DeclineReason.INSUFFICIENT_FUNDS: "51",  # not sufficient funds
    DeclineReason.CARD_NOT_FOUND: "14",  # invalid card number
    DeclineReason.CARD_PAUSED: "62",  # restricted card
    DeclineReason.CARD_CLOSED: "62",
    DeclineReason.CARD_EXPIRED: "54",  # expired card
    DeclineReason.ACCOUNT_CLOSED: "62",
    DeclineReason.TOKEN_SUSPENDED: "62",
    DeclineReason.TOKEN_DELETED: "14",
    DeclineReason.TOKEN_EXPIRED: "54",
    DeclineReason.TOKEN_DOMAIN_VIOLATION: "57",  # transaction not permitted to cardholder
    DeclineReason.UNAUTHORIZED_MERCHANT: "57",
    DeclineReason.CRYPTOGRAM_INVALID: "82",  # Visa: negative online CAM
    DeclineReason.KEY_RETIRED: "62",  # restricted card: its issuer master keys are retired
    DeclineReason.ATC_REPLAYED: "59",  # suspected fraud
    DeclineReason.ATC_ROLLED_BACK: "59",
    DeclineReason.CVM_MISMATCH: "59",
    DeclineReason.SUSPECTED_FRAUD: "59",
    DeclineReason.VELOCITY_EXCEEDED: "65",  # exceeds withdrawal frequency limit
    DeclineReason.AMOUNT_LIMIT_EXCEEDED: "61",  # exceeds withdrawal amount limit
    DeclineReason.CURRENCY_MISMATCH: "12",  # invalid transaction
    DeclineReason.TRANSIT_NOT_ALLOWED: "58",  # transaction not permitted to terminal
    DeclineReason.INVALID_AMOUNT: "13",  # invalid amount
    # QR code payments (EMV QRCPS): the amount paid is not the code's; the code does
    # not decode (its CRC) or names no merchant; made too long ago, or its sale ended;
    # its sale was paid already (a duplicate).
    DeclineReason.AMOUNT_MISMATCH: "13",  # invalid amount
    DeclineReason.QR_CODE_INVALID: "30",  # format error
    DeclineReason.QR_CODE_EXPIRED: "12",  # invalid transaction
    DeclineReason.QR_CODE_USED: "94",  # duplicate transmission
    DeclineReason.FORMAT_ERROR: "30",  # format error
    DeclineReason.SYSTEM_ERROR: "96",  # system malfunction
    # A merchant category or country control; an amount or count limit has its own
    # code (CONTROL_RESPONSE_CODES).
    DeclineReason.SPENDING_CONTROL: "57",  # transaction not permitted to cardholder
    DeclineReason.PROGRAM_DECLINED: "05",  # do not honour
    DeclineReason.PROGRAM_UNAVAILABLE: "05",
}

#: The response code of a :data:`DeclineReason.SPENDING_CONTROL` decline per control
#: (ISO 8583:1987 field 39): an amount limit exceeds the "withdrawal amount limit"
#: (``61``), a count limit the "withdrawal frequency limit" (``65``); a merchant
#: category or country control is "transaction not permitted to cardholder" (``57``).
CONTROL_RESPONSE_CODES: Final[Mapping[str, str]] = {
    "allowed_mccs": "57",
    "blocked_mccs": "57",
    "allowed_countries": "57",
    "blocked_countries": "57",
    "max_per_transaction": "61",
    "daily_amount": "61",
    "weekly_amount": "61",
    "monthly_amount": "61",
    "yearly_amount": "61",
    "all_time_amount": "61",
    "daily_count": "65",
    "weekly_count": "65",
    "monthly_count": "65",
    "yearly_count": "65",
    "all_time_count": "65",
}


def response_code(reason: DeclineReason | None) -> str:
    """The response code of a decline, or ``00`` for an approval (``None``)."""
    return APPROVED if reason is None else RESPONSE_CODES[reason]


def control_response_code(control: str) -> str:
    """The response code of a decline by the spending control named ``control``
    (:data:`CONTROL_RESPONSE_CODES`; ``57`` for a name it does not list)."""
    return CONTROL_RESPONSE_CODES.get(control, RESPONSE_CODES[DeclineReason.SPENDING_CONTROL])


#: What field 55 must hold for the issuer to verify the cryptogram: the ARQC, its CID
#: and IAD, and the Book 2 §8.1.1 minimum data set it covers, each with its length
#: range in bytes (Book 3 Annex A).
FIELD_55_REQUIRED: Final[Mapping[int, tuple[int, int]]] = {
    Tag.APPLICATION_CRYPTOGRAM: (8, 8),
    Tag.CID: (1, 1),
    Tag.IAD: (1, 32),
    Tag.UNPREDICTABLE_NUMBER: (4, 4),
    Tag.ATC: (2, 2),
    Tag.TVR: (5, 5),
    Tag.TRANSACTION_DATE: (3, 3),
    Tag.TRANSACTION_TYPE: (1, 1),
    Tag.AMOUNT_AUTHORISED: (6, 6),
    Tag.AMOUNT_OTHER: (6, 6),
    Tag.TRANSACTION_CURRENCY_CODE: (2, 2),
    Tag.AIP: (2, 2),
    Tag.TERMINAL_COUNTRY_CODE: (2, 2),
}

# --- field types ------------------------------------------------------------------------

# Python's ``$`` also matches before a final newline; ``(?!\n)`` refuses that (an
# ECMA-262 pattern, as JSON Schema reads it, means the same with or without it).
_HEX_PATTERN: Final = "^(?:[0-9A-Fa-f]{2})+$(?!\n)"
_HEX_OR_EMPTY_PATTERN: Final = "^(?:[0-9A-Fa-f]{2})*$(?!\n)"
#: Field 55 is at most 255 bytes (ISO 8583 LLLVAR, 510 hex digits).
Field55Hex = Annotated[
    str,
    msgspec.Meta(pattern=_HEX_PATTERN, max_length=510, description="field 55 (BER-TLV), hex"),
]
#: Track 2 equivalent data is at most 19 bytes (Book 3 Annex A, tag 57).
Track2Hex = Annotated[
    str, msgspec.Meta(pattern=_HEX_PATTERN, max_length=38, description="tag 57, hex")
]
#: A transaction id as the issuer makes them (``txn_`` and 16 base32 characters).
TransactionId = Annotated[
    str, msgspec.Meta(pattern="^[a-z]+_[a-z2-7]{16}$(?!\n)", description="a transaction id")
]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
#: Minor units of the transaction currency.
Amount = Annotated[int, msgspec.Meta(gt=0, lt=10**12, description="minor units")]


#: A QR code's text: a merchant-presented payload is at most 512 characters
#: (QRCPS-MPM), a consumer-presented one is Base64 (:data:`emvwire.qr.cpm.MAX_DATA`).
QrText = Annotated[str, msgspec.Meta(min_length=1, max_length=2732, description="QR code text")]
#: A bill number of a merchant-presented code (QRCPS-MPM ``62.01``, ans 1-25), kept to
#: characters safe in a URL path.
BillNumber = Annotated[
    str,
    msgspec.Meta(pattern="^[A-Za-z0-9._-]{1,25}$(?!\n)", description="bill number (62.01)"),
]


class Channel(enum.StrEnum):
    """How the card's data reached the issuer: tapped on a reader (``contactless``), a
    phone's code scanned by the till (``qr_cpm``, EMV QRCPS-CPM), or a phone paying a
    merchant's code (``qr_mpm``, EMV QRCPS-MPM). A token may be allowed on some only."""

    CONTACTLESS = "contactless"
    QR_CPM = "qr_cpm"
    QR_MPM = "qr_mpm"


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A request of the contract: strict, keyword-only; an absent optional field is
    left out of the JSON."""


# --- requests ---------------------------------------------------------------------------


class AuthorisationRequest(_Request):
    """``POST /v1/authorisations`` (with ``Idempotency-Key``: the request id)."""

    icc_data: Field55Hex
    track2: Track2Hex
    channel: Annotated[
        Channel,
        msgspec.Meta(description="contactless (a tap) or qr_cpm (a phone's code scanned)"),
    ] = Channel.CONTACTLESS
    amount: Annotated[
        Amount | None,
        msgspec.Meta(
            description="qr_cpm only: the sale's amount when the code was made without "
            "one (its 9F02 is zero); with an amount in the code, equal to it"
        ),
    ] = None
    partial_allowed: Annotated[
        bool,
        msgspec.Meta(
            description="the terminal accepts a partial approval: when funds or a limit "
            "allow less than the amount, that much is approved (code 10, approved_amount)"
        ),
    ] = False


class CompletionRequest(_Request):
    """``POST /v1/authorisations/{id}/complete``: capture wholly (no amount) or part."""

    amount: Amount | None = None


class ResubmissionRequest(_Request):
    """``POST /v1/authorisations/{id}/resubmit``: debt recovery, at most the original."""

    amount: Annotated[Amount | None, msgspec.Meta(description="<= the original's")] = None


class IncrementRequest(_Request):
    """``POST /v1/authorisations/{id}/increment``: raise a pending authorisation's hold
    by ``amount`` (a parking stay or a transit day that grows)."""

    amount: Annotated[Amount, msgspec.Meta(description="the increase, minor units")]
    partial_allowed: Annotated[
        bool, msgspec.Meta(description="approve less than the increase if that is all")
    ] = False


class AuthorisationReversalRequest(_Request):
    """``POST /v1/authorisations/{id}/reversal``: no fields (the path names it)."""


class ReversalRequest(_Request):
    """``POST /v1/reversals``: a time-out reversal by the original request id."""

    request_id: RequestId


class RefundRequest(_Request):
    """``POST /v1/refunds``: refund part of a captured authorisation."""

    authorisation: TransactionId
    amount: Amount


class QrSaleRequest(_Request):
    """``POST /v1/qr/sales``: a sale paid by a dynamic merchant-presented code, open for
    ``expires_in`` seconds (then a payment of its code is declined QR_CODE_EXPIRED)."""

    bill: BillNumber
    amount: Amount
    expires_in: Annotated[int, msgspec.Meta(ge=10, le=900, description="seconds")] = 120


class QrSaleCancelRequest(_Request):
    """``POST /v1/qr/sales/{bill}/cancel``: no fields (the path names it)."""


class QrPaymentRequest(_Request):
    """``POST /v1/qr/payments`` (a phone wallet, with ``Idempotency-Key``): a merchant's
    code paid with the card's cryptogram, made for the code's amount and currency."""

    payload: QrText
    icc_data: Field55Hex
    track2: Track2Hex


# --- answers ----------------------------------------------------------------------------


class SpendingControl(msgspec.Struct, kw_only=True):
    """The spending control that declined (or limited) an authorisation."""

    name: Annotated[
        str,
        msgspec.Meta(
            description="allowed_mccs, blocked_mccs, allowed_countries, blocked_countries, "
            "max_per_transaction, or a limit: daily, weekly, monthly, yearly or all_time, "
            "then _amount or _count (daily_amount)"
        ),
    ]
    level: Annotated[str, msgspec.Meta(description="account, card or token")]


class Decision(msgspec.Struct, kw_only=True):
    """The answer to an authorisation (or resubmission): approved and declined alike."""

    id: str
    approved: bool
    response_code: Annotated[str, msgspec.Meta(description="8A, ISO 8583 field 39")]
    amount: int
    currency: str
    status: Annotated[str, msgspec.Meta(description="pending (approved) or closed")]
    reason: Annotated[DeclineReason | None, msgspec.Meta(description="decline reason")] = None
    arpc: Annotated[str, msgspec.Meta(pattern=_HEX_OR_EMPTY_PATTERN, description="hex")] = ""
    issuer_authentication_data: Annotated[
        str, msgspec.Meta(pattern=_HEX_OR_EMPTY_PATTERN, description="91, hex")
    ] = ""
    card: Annotated[str, msgspec.Meta(description="masked PAN or token")] = ""
    par: Annotated[
        str | None,
        msgspec.Meta(
            description="payment account reference (EMVCo PAR, 9F24) of the card or "
            "token: the same for a card and the phone tokens of one account's card"
        ),
    ] = None
    original_id: Annotated[
        str | None,
        msgspec.Meta(description="a resubmission: the declined authorisation it recovers"),
    ] = None
    replayed: Annotated[bool, msgspec.Meta(description="a stored answer")] = False
    approved_amount: Annotated[
        int | None,
        msgspec.Meta(
            description="approved: the amount held (less than amount in a partial "
            "approval, response code 10); null when declined"
        ),
    ] = None
    control: Annotated[
        SpendingControl | None,
        msgspec.Meta(description="the spending control that declined or limited it"),
    ] = None


class IncrementDecision(msgspec.Struct, kw_only=True):
    """The answer to an increment: approved (the hold raised by ``approved_amount``)
    or declined (the authorisation and its hold unchanged)."""

    id: Annotated[str, msgspec.Meta(description="the authorisation")]
    approved: bool
    response_code: Annotated[str, msgspec.Meta(description="ISO 8583 field 39")]
    amount: Annotated[int, msgspec.Meta(description="the increase asked")]
    approved_amount: Annotated[int, msgspec.Meta(description="the increase held (0: none)")]
    authorised_amount: Annotated[
        int, msgspec.Meta(description="the authorisation's amount after this increment")
    ]
    currency: str
    reason: Annotated[DeclineReason | None, msgspec.Meta(description="decline reason")] = None
    control: SpendingControl | None = None
    replayed: Annotated[bool, msgspec.Meta(description="a stored answer")] = False


class Transaction(msgspec.Struct, kw_only=True):
    """An authorisation or refund of the calling terminal as the issuer keeps it."""

    id: str
    kind: Annotated[str, msgspec.Meta(description="authorisation or refund")]
    channel: Annotated[str, msgspec.Meta(description="contactless, qr_cpm or qr_mpm")] = (
        "contactless"
    )
    amount: int
    currency: str
    approved: bool
    status: Annotated[str, msgspec.Meta(description="pending, closed, reversed or expired")]
    request_id: str | None = None
    card: str | None = None
    token: str | None = None
    account: str | None = None
    parent: str | None = None
    mcc: str | None = None
    decline_reason: str | None = None
    response_code: str | None = None
    atc: int | None = None
    held_amount: int = 0
    captured_amount: int = 0
    released_amount: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None


class TransactionList(msgspec.Struct, kw_only=True):
    """``GET /v1/authorisations``: the calling terminal's transactions, newest first."""

    data: list[Transaction]


class QrSale(msgspec.Struct, kw_only=True):
    """A sale of a dynamic merchant-presented code (``/v1/qr/sales``): ``open`` (waiting
    for a payment, or one under way: ``paying``), ``paid`` (``transaction`` is the
    approved authorisation, the terminal's to capture, void or refund like a tap's),
    ``expired`` or ``cancelled``. ``declined`` lists the declined attempts to pay it."""

    bill: str
    amount: int
    currency: str
    status: Annotated[str, msgspec.Meta(description="open, paying, paid, expired, cancelled")]
    payload: Annotated[str, msgspec.Meta(description="the dynamic code's text (QRCPS-MPM)")]
    expires_at: str
    created_at: str
    transaction: str | None = None
    card: Annotated[str, msgspec.Meta(description="masked PAN or token that paid")] = ""
    response_code: str = ""
    declined: list[str] = msgspec.field(default_factory=list)


class QrMerchant(msgspec.Struct, kw_only=True):
    """``GET /v1/qr/merchants/{id}``: a merchant as the issuer knows it, for a phone to
    show before it pays the code naming it."""

    id: str
    name: str
    city: str | None
    mcc: str
    country: Annotated[str, msgspec.Meta(description="ISO 3166-1 alpha-2")]
    currency: Annotated[str, msgspec.Meta(description="ISO 4217 alphabetic")]
    status: str


class ReversalNotFound(msgspec.Struct, kw_only=True):
    """A time-out reversal of a request id the issuer never saw: nothing to release."""

    request_id: str
    status: str = "not_found"


class ErrorBody(msgspec.Struct, kw_only=True):
    """What went wrong: a code from a closed set and a readable message."""

    code: str
    message: str


class Error(msgspec.Struct, kw_only=True):
    """Every error answer."""

    error: ErrorBody


class Health(msgspec.Struct, kw_only=True):
    """``GET /health``."""

    status: str
    ledger: str | None = None


# --- the codec ----------------------------------------------------------------------------


class ContractError(EmvWireError, ValueError):
    """A message that does not follow the contract; the text names the field."""


class MalformedError(ContractError):
    """Not a message at all: broken JSON, or JSON that is not an object."""


M = TypeVar("M")

_ENCODER: Final = msgspec.json.Encoder()
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(message: Any) -> bytes:
    """A message (or a plain JSON-ready value) as compact UTF-8 JSON."""
    return _ENCODER.encode(message)


def decode(data: bytes, kind: type[M]) -> M:
    """A message of type ``kind`` from JSON; :class:`ContractError` names what is wrong
    (an unknown field, a field missing, of the wrong type or out of range), its
    :class:`MalformedError` says the data is not a JSON object."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        result: M = decoder.decode(data)
    except msgspec.ValidationError as exc:
        if data.lstrip()[:1] != b"{":
            raise MalformedError("the body must be a JSON object") from None
        raise ContractError(str(exc)) from None
    except msgspec.DecodeError:
        raise MalformedError("the body is not valid JSON") from None
    return result


#: Every type of the contract, in the order the OpenAPI document lists them.
MESSAGES: Final[tuple[type[Any], ...]] = (
    AuthorisationRequest,
    AuthorisationReversalRequest,
    CompletionRequest,
    IncrementRequest,
    ResubmissionRequest,
    ReversalRequest,
    RefundRequest,
    QrSaleRequest,
    QrSaleCancelRequest,
    QrPaymentRequest,
    Decision,
    IncrementDecision,
    SpendingControl,
    Transaction,
    TransactionList,
    QrSale,
    QrMerchant,
    ReversalNotFound,
    Error,
    Health,
)


def schemas(ref_template: str = "#/components/schemas/{name}") -> dict[str, Any]:
    """The JSON schema of every message, by name (OpenAPI 3.1 ``components.schemas``)."""
    _, components = msgspec.json.schema_components(MESSAGES, ref_template=ref_template)
    return components
