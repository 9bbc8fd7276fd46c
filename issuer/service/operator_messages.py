"""The messages of the operator API (``/v1/issuing/...``), as msgspec structs.

Only the issuer serves them, so they live here rather than in the terminal-issuer
contract (:mod:`emvwire.contract`). Request bodies refuse unknown fields; an answer is
one object (``"object": "account"``...) or a list, ``{"object": "list", "data": [...],
"has_more": bool}`` (Stripe's shape), newest first. A PAN or token number is only ever
answered masked (first 6, last 4: :func:`emvwire.mask.mask_pan`), the PAN of a card
registered included. Amounts are minor units.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

__all__ = [
    "MESSAGES",
    "AccountCreate",
    "AccountCredit",
    "AccountList",
    "AccountObject",
    "AccountQuery",
    "AccountUpdate",
    "AuthorisationList",
    "AuthorisationObject",
    "AuthorisationQuery",
    "CardIssue",
    "CardList",
    "CardObject",
    "CardQuery",
    "CardRegistration",
    "CardUpdate",
    "RangeCreate",
    "RangeList",
    "RangeObject",
    "RangeQuery",
    "RangeUpdate",
    "TerminalCreate",
    "TerminalList",
    "TerminalObject",
    "TerminalQuery",
    "TerminalUpdate",
    "TokenCreate",
    "TokenList",
    "TokenObject",
    "TokenQuery",
    "TokenUpdate",
]

_Id = Annotated[str, msgspec.Meta(pattern="^[a-z]+_[a-z2-7]{16}$", description="an id")]
_Scheme = Annotated[Literal["visa", "mastercard"], msgspec.Meta(description="payment scheme")]
_Expiry = Annotated[
    str, msgspec.Meta(pattern="^[0-9]{4}-[0-9]{2}$", description="YYYY-MM (the month's end)")
]
_Psn = Annotated[str, msgspec.Meta(pattern="^[0-9]{2}$", description="PAN sequence number")]
_Mcc = Annotated[str, msgspec.Meta(pattern="^[0-9]{4}$", description="merchant category code")]
_Prefix = Annotated[str, msgspec.Meta(pattern="^[0-9]{6,8}$", description="BIN (6-8 digits)")]
_Cvn = Annotated[int, msgspec.Meta(ge=0, le=255, description="cryptogram version number")]


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are refused (400 invalid_request)."""


class AccountCreate(_Body):
    """``POST /v1/issuing/accounts``."""

    holder: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    kind: Literal["debit", "credit"] = "debit"
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{3}$", description="ISO 4217")] = "EUR"
    credit_limit: Annotated[int, msgspec.Meta(ge=0, description="credit accounts only")] = 0


class AccountUpdate(_Body):
    """``POST /v1/issuing/accounts/{id}``: close it (its cards close, its tokens are
    deleted; for good)."""

    status: Literal["closed"]


class AccountCredit(_Body):
    """``POST /v1/issuing/accounts/{id}/credit``: money in."""

    amount: Annotated[int, msgspec.Meta(ge=1, le=10**15, description="minor units")]
    memo: Annotated[str, msgspec.Meta(max_length=200)] = ""


class CardIssue(_Body):
    """``POST /v1/issuing/cards``: a new PAN in one of the scheme's card ranges, for
    a card personalised from this issuer's master keys (answered masked only)."""

    account: _Id
    scheme: _Scheme
    prefix: _Prefix | None = None
    cvn: _Cvn | None = None
    expiry: _Expiry | None = None
    psn: _Psn = "00"


class CardRegistration(_Body):
    """``POST /v1/issuing/cards/register``: a card personalised elsewhere whose keys
    derive from this issuer's master keys (its PAN in an active card range)."""

    account: _Id
    scheme: _Scheme
    pan: Annotated[str, msgspec.Meta(pattern="^[0-9]{12,19}$", description="never answered")]
    expiry: _Expiry
    cvn: _Cvn
    psn: _Psn = "00"
    key_version: Annotated[int, msgspec.Meta(ge=1)] | None = None


class CardUpdate(_Body):
    """``POST /v1/issuing/cards/{id}``: ``paused`` (its authorisations decline),
    ``active`` (resumed) or ``closed`` (for good; its tokens are deleted)."""

    status: Literal["active", "paused", "closed"]


class TokenCreate(_Body):
    """``POST /v1/issuing/tokens``: a payment token of an active card, with its domain
    controls (allowed or blocked MCCs, never both)."""

    card: _Id
    requestor_id: Annotated[str, msgspec.Meta(pattern="^[0-9]{11}$", description="9F19")]
    expiry: _Expiry | None = None
    contactless_only: bool = True
    allowed_mccs: Annotated[list[_Mcc], msgspec.Meta(max_length=100)] | None = None
    blocked_mccs: Annotated[list[_Mcc], msgspec.Meta(max_length=100)] | None = None


class TokenUpdate(_Body):
    """``POST /v1/issuing/tokens/{id}``: ``suspended``, ``active`` or ``deleted``."""

    status: Literal["active", "suspended", "deleted"]


class TerminalCreate(_Body):
    """``POST /v1/issuing/terminals``. With ``csr`` (PEM, ECDSA P-256) the answer
    carries the terminal's client certificate, which it needs on a mutual TLS server."""

    merchant: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    mcc: _Mcc
    country: Annotated[str, msgspec.Meta(pattern="^[0-9]{4}$", description="ISO 3166")] = "0250"
    csr: Annotated[str, msgspec.Meta(max_length=8000, description="PEM request")] | None = None


class TerminalUpdate(_Body):
    """``POST /v1/issuing/terminals/{id}``: revoke its credential and certificates."""

    status: Literal["revoked"]


class RangeCreate(_Body):
    """``POST /v1/issuing/ranges`` (scope ``keys``): no master keys are made unless
    ``generate_keys``."""

    scheme: _Scheme
    prefix: _Prefix
    cvn: _Cvn
    pan_length: Annotated[int, msgspec.Meta(ge=12, le=19)] = 16
    kind: Literal["card", "token"] = "card"
    generate_keys: bool = False


class RangeUpdate(_Body):
    """``POST /v1/issuing/ranges/{prefix}`` (scope ``keys``): retire it."""

    status: Literal["retired"]


# -- answers -------------------------------------------------------------------------


class AccountObject(msgspec.Struct, kw_only=True):
    """A cardholder account."""

    object: Literal["account"] = "account"
    id: str
    holder: str
    kind: str
    currency: str
    credit_limit: int
    status: Annotated[str, msgspec.Meta(description="open or closed")]
    balance: int
    held: int
    available: int
    created_at: str


class CardObject(msgspec.Struct, kw_only=True):
    """A card, its PAN masked."""

    object: Literal["card"] = "card"
    id: str
    account: str
    scheme: str
    pan: Annotated[str, msgspec.Meta(description="masked")]
    last4: str
    psn: str
    expiry: str
    cvn: int
    key_version: int
    par: str
    status: Annotated[str, msgspec.Meta(description="active, paused or closed")]
    origin: Annotated[str, msgspec.Meta(description="provisioned, registered or funding")]
    flag: str | None = None
    created_at: str


class TokenObject(msgspec.Struct, kw_only=True):
    """A payment token, its number masked."""

    object: Literal["token"] = "token"
    id: str
    card: str
    account: str
    scheme: str
    token: Annotated[str, msgspec.Meta(description="masked")]
    last4: str
    psn: str
    expiry: str
    cvn: int
    key_version: int
    par: str
    requestor_id: str
    status: Annotated[str, msgspec.Meta(description="active, suspended or deleted")]
    contactless_only: bool
    allowed_mccs: list[str] | None = None
    blocked_mccs: list[str] | None = None
    flag: str | None = None
    created_at: str


class TerminalObject(msgspec.Struct, kw_only=True):
    """A terminal. ``credential`` only in the answer that made it (a retry with the
    same Idempotency-Key does not repeat it); ``certificate`` (PEM) when made with a
    certificate request."""

    object: Literal["terminal"] = "terminal"
    id: str
    merchant: str
    mcc: str
    country: str
    status: Annotated[str, msgspec.Meta(description="active or revoked")]
    created_at: str
    credential: str | None = None
    certificate: str | None = None


class RangeObject(msgspec.Struct, kw_only=True):
    """A card or token range."""

    object: Literal["range"] = "range"
    prefix: str
    scheme: str
    kind: str
    cvn: int
    pan_length: int
    issuer_key: str
    ca: str
    status: Annotated[str, msgspec.Meta(description="active or retired")]
    created_at: str
    retired_at: str | None = None


class AuthorisationObject(msgspec.Struct, kw_only=True):
    """An authorisation or refund record, as the issuer decided it."""

    object: Literal["authorisation"] = "authorisation"
    id: str
    kind: str
    terminal: str
    request_id: str | None = None
    card: str | None = None
    token: str | None = None
    account: str | None = None
    parent: str | None = None
    amount: int
    currency: str
    mcc: str | None = None
    approved: bool
    decline_reason: str | None = None
    response_code: str | None = None
    status: Annotated[str, msgspec.Meta(description="pending, closed, reversed or expired")]
    atc: int | None = None
    held_amount: int = 0
    captured_amount: int = 0
    released_amount: int = 0
    created_at: str
    updated_at: str | None = None
    expires_at: str | None = None


class _List(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    has_more: Annotated[bool, msgspec.Meta(description="another page follows")]


class AccountList(_List):
    """A page of accounts, newest first."""

    data: list[AccountObject]


class CardList(_List):
    """A page of cards, newest first."""

    data: list[CardObject]


class TokenList(_List):
    """A page of tokens, newest first."""

    data: list[TokenObject]


class TerminalList(_List):
    """A page of terminals, newest first."""

    data: list[TerminalObject]


class RangeList(_List):
    """A page of ranges, newest first."""

    data: list[RangeObject]


class AuthorisationList(_List):
    """A page of authorisation records, newest first."""

    data: list[AuthorisationObject]


# -- queries ---------------------------------------------------------------------------

_Limit = Annotated[int, msgspec.Meta(ge=1, le=100, description="objects per page (1-100)")]
_After = Annotated[str, msgspec.Meta(max_length=64, description="the last id of the previous page")]


class _Page(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    limit: _Limit = 10
    starting_after: _After | None = None


class AccountQuery(_Page):
    """The query of ``GET /v1/issuing/accounts``."""

    status: Literal["open", "closed"] | None = None


class CardQuery(_Page):
    """The query of ``GET /v1/issuing/cards``."""

    account: _Id | None = None
    status: Literal["active", "paused", "closed"] | None = None


class TokenQuery(_Page):
    """The query of ``GET /v1/issuing/tokens``."""

    card: _Id | None = None
    account: _Id | None = None
    status: Literal["active", "suspended", "deleted"] | None = None


class TerminalQuery(_Page):
    """The query of ``GET /v1/issuing/terminals``."""

    status: Literal["active", "revoked"] | None = None


class RangeQuery(_Page):
    """The query of ``GET /v1/issuing/ranges`` (``starting_after``: a prefix)."""

    status: Literal["active", "retired"] | None = None


class AuthorisationQuery(_Page):
    """The query of ``GET /v1/issuing/authorisations``."""

    card: _Id | None = None
    account: _Id | None = None
    terminal: _Id | None = None
    status: Literal["pending", "closed", "reversed", "expired"] | None = None


#: Every body and answer, in the order the OpenAPI document lists them.
MESSAGES: Final[tuple[type[Any], ...]] = (
    AccountCreate,
    AccountUpdate,
    AccountCredit,
    CardIssue,
    CardRegistration,
    CardUpdate,
    TokenCreate,
    TokenUpdate,
    TerminalCreate,
    TerminalUpdate,
    RangeCreate,
    RangeUpdate,
    AccountObject,
    CardObject,
    TokenObject,
    TerminalObject,
    RangeObject,
    AuthorisationObject,
    AccountList,
    CardList,
    TokenList,
    TerminalList,
    RangeList,
    AuthorisationList,
)
