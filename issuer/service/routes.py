"""The routes of the authorisation service, each declared once.

A :class:`Route` names its method and path, the contract message its body decodes to
(:mod:`emvwire.contract`; an operator route's: :mod:`issuer.service.operator_messages`),
its query parameters (a msgspec struct), whether it takes ``Idempotency-Key``, its
answers and its summary; an operator route (``/v1/issuing/...``) also the scopes that
allow it and the action its audit records name. From :data:`ROUTES` come the router
of the HTTP application (:mod:`issuer.service.app`, Starlette's router), the decoding
of each request (:class:`issuer.service.api.Api`) and the paths of the OpenAPI document
(:mod:`issuer.service.openapi`): the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec

from emvwire import contract
from issuer.model.entities import AuthorisationStatus
from issuer.service import operator_messages as op
from issuer.service.qr import SaleQuery

__all__ = ["BILL_PATTERN", "ID_PATTERN", "PREFIX_PATTERN", "ROUTES", "ListQuery", "Route"]

#: A transaction id in a path (``txn_`` and 16 base32 characters, as the issuer makes
#: them; a terminal's, ``term_``, alike): another path segment matches no route (404).
ID_PATTERN: Final = "[a-z]+_[a-z2-7]{16}"
#: A range's prefix in a path (``{prefix}``): its BIN, 6 to 8 digits.
PREFIX_PATTERN: Final = "[0-9]{6,8}"
#: A bill number in a path (``{bill}``: :data:`emvwire.contract.BillNumber`).
BILL_PATTERN: Final = "[A-Za-z0-9._-]{1,25}"


class ListQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The query of ``GET /v1/authorisations``."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=1000, description="at most (1-1000)")] = 100
    status: Annotated[AuthorisationStatus | None, msgspec.Meta(description="only this state")] = (
        None
    )


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API.

    ``name`` is the :class:`~issuer.service.api.Api` handler that answers it; ``path``
    is an OpenAPI path template (``{id}``: an id, :data:`ID_PATTERN`; ``{prefix}``: a
    range's, :data:`PREFIX_PATTERN`; ``{bill}``: a bill number, :data:`BILL_PATTERN`);
    ``answers`` maps a status to the contract message(s) of its body (a tuple: one of
    them; ``None``: not a contract message) and its description. A route that is not
    ``public`` needs a terminal credential and may answer every error of
    :data:`issuer.service.openapi.ERRORS`, unless it has ``scopes``: an operator
    route, for an operator's credential holding one of them
    (:mod:`issuer.service.operator_api`).
    """

    name: str
    method: str
    path: str
    summary: str
    answers: Mapping[int, tuple[Any, str]]
    body: type[Any] | None = None
    query: type[msgspec.Struct] | None = None
    idempotency_key: bool = False
    public: bool = False
    description: str = ""
    #: How the API runs it: ``read`` (answered at once), ``authorise`` (checked at
    #: once, decided in group commit) or ``write`` (run with the group's writes).
    kind: str = "read"
    #: Whose credential it needs: a ``terminal``'s or a phone ``wallet``'s.
    principal: str = "terminal"
    #: An operator route: the scopes any of which allows it (``operations`` includes
    #: ``read``: :func:`issuer.model.operators.granted`).
    scopes: tuple[str, ...] = ()
    #: What the audit log calls a request of it (``card.update``) when it is refused
    #: or fails (a change done is recorded by the domain, under its own name).
    action: str = ""

    @property
    def success(self) -> int:
        """The status of its answer when it succeeds."""
        return min(self.answers)


_READ: Final = ("read",)
_OPERATIONS: Final = ("operations",)
_KEYS: Final = ("keys",)
#: Each resource of the operator API: its object, its list, its list's query, its
#: creation (name, body, summary), its status change (body, summary; ``None``: none),
#: the scopes that read and write it.
_RESOURCES: Final[dict[str, tuple[Any, ...]]] = {
    "accounts": (op.AccountObject, op.AccountList, op.AccountQuery,
                 ("create", op.AccountCreate, "Open an account"),
                 (op.AccountUpdate, "Close an account (its cards close, its tokens are deleted)"),
                 _READ, _OPERATIONS),
    "cards": (op.CardObject, op.CardList, op.CardQuery,
              ("issue", op.CardIssue, "Issue a card: a new PAN (answered masked)"),
              (op.CardUpdate, "Pause, resume or close a card"), _READ, _OPERATIONS),
    "tokens": (op.TokenObject, op.TokenList, op.TokenQuery,
               ("create", op.TokenCreate, "Issue a payment token for a card"),
               (op.TokenUpdate, "Suspend, resume or delete a token"), _READ, _OPERATIONS),
    "terminals": (op.TerminalObject, op.TerminalList, op.TerminalQuery,
                  ("add", op.TerminalCreate, "Register a terminal (its credential: once)"),
                  (op.TerminalUpdate, "Revoke a terminal"), _READ, _OPERATIONS),
    "ranges": (op.RangeObject, op.RangeList, op.RangeQuery,
               ("add", op.RangeCreate, "Add a card or token range"),
               (op.RangeUpdate, "Retire a range"), ("read", "keys"), _KEYS),
    "authorisations": (op.AuthorisationObject, op.AuthorisationList, op.AuthorisationQuery,
                       None, None, _READ, _OPERATIONS),
    "webhook_endpoints": (op.WebhookEndpointObject, op.WebhookEndpointList,
                          op.WebhookEndpointQuery,
                          ("create", op.WebhookEndpointCreate,
                           "Add a webhook endpoint (its signing secret: once)"),
                          (op.WebhookEndpointUpdate, "Disable or enable a webhook endpoint"),
                          _READ, _OPERATIONS),
    "events": (op.EventObject, op.EventList, op.EventQuery, None, None, _READ, _OPERATIONS),
}  # fmt: skip
_UPDATE_DESCRIPTION: Final = (
    "The change of status is the only update; asking for the status the object has is "
    "409 conflict, so is a change its life cycle forbids (a closed card stays closed)."
)
_CREATE_DESCRIPTION: Final = (
    "A retry with the same Idempotency-Key and body answers the object as it is now, "
    "with the first answer's status, and changes nothing; the same key with another "
    "body is 409 idempotency_conflict."
)


def _operator_routes(resource: str) -> tuple[Route, ...]:
    """The routes of one resource of the operator API: list, retrieve, create and
    update (a status), and the accounts' credit, the cards' registration, the webhook
    endpoints' secret rotation and the events' resending."""
    obj, listing, query, create, update, reads, writes = _RESOURCES[resource]
    single = resource.removesuffix("s")
    base = f"/v1/issuing/{resource}"
    item = f"{base}/{{prefix}}" if resource == "ranges" else f"{base}/{{id}}"
    name = f"issuing_{resource}"
    routes = [
        Route(f"{name}_list", "GET", base, f"List {resource}, newest first",
              {200: (listing, "A page")}, query=query, scopes=reads,
              action=f"{single}.list"),
        Route(f"{name}_get", "GET", item, f"Retrieve one of the {resource}",
              {200: (obj, "The object")}, scopes=reads, action=f"{single}.get"),
    ]  # fmt: skip
    if create is not None:
        verb, body, summary = create
        routes.append(
            Route(f"{name}_create", "POST", base, summary, {201: (obj, "Made")}, body=body,
                  idempotency_key=True, kind="write", scopes=writes,
                  action=f"{single}.{verb}", description=_CREATE_DESCRIPTION)
        )  # fmt: skip
    if update is not None:
        body, summary = update
        routes.append(
            Route(f"{name}_update", "POST", item, summary, {200: (obj, "Changed")}, body=body,
                  idempotency_key=True, kind="write", scopes=writes,
                  action=f"{single}.update", description=_UPDATE_DESCRIPTION)
        )  # fmt: skip
    if resource == "accounts":
        routes.append(
            Route("issuing_accounts_credit", "POST", f"{item}/credit", "Credit an account",
                  {200: (obj, "Credited")}, body=op.AccountCredit, idempotency_key=True,
                  kind="write", scopes=writes, action="account.credit",
                  description=_CREATE_DESCRIPTION)
        )  # fmt: skip
    if resource == "cards":
        routes.append(
            Route("issuing_cards_register", "POST", f"{base}/register",
                  "Register a card personalised elsewhere (its PAN answered masked)",
                  {201: (obj, "Registered")}, body=op.CardRegistration,
                  idempotency_key=True, kind="write", scopes=writes,
                  action="card.register", description=_CREATE_DESCRIPTION)
        )  # fmt: skip
    if resource == "webhook_endpoints":
        routes.append(
            Route("issuing_webhook_endpoints_rotate", "POST", f"{item}/rotate_secret",
                  "Rotate a webhook endpoint's signing secret (the new one: once)",
                  {200: (obj, "Rotated")}, body=op.WebhookSecretRotation,
                  idempotency_key=True, kind="write", scopes=writes,
                  action="webhook_endpoint.rotate_secret",
                  description="During the grace period every delivery carries a v1 "
                  "signature of each secret, the new one first. " + _CREATE_DESCRIPTION)
        )  # fmt: skip
    if resource == "events":
        routes.append(
            Route("issuing_events_resend", "POST", f"{item}/resend",
                  "Deliver an event again, due now", {200: (obj, "Scheduled (its deliveries)")},
                  body=op.EventResend, idempotency_key=True, kind="write", scopes=writes,
                  action="event.resend",
                  description="To the endpoint named (enabled), else to every enabled "
                  "endpoint that subscribes to the event; none is 409. " + _CREATE_DESCRIPTION)
        )  # fmt: skip
    return tuple(routes)


_T: Final = contract.Transaction
_D: Final = contract.Decision

#: Every route of the service.
ROUTES: Final[tuple[Route, ...]] = (
    Route("health", "GET", "/health", "Liveness", {200: (contract.Health, "Up")}, public=True),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        "This document",
        {200: (None, "OpenAPI 3.1")},
        public=True,
    ),
    Route(
        "authorise",
        "POST",
        "/v1/authorisations",
        "Authorise (approved or declined: both 200)",
        {200: (_D, "Decision")},
        body=contract.AuthorisationRequest,
        idempotency_key=True,
        kind="authorise",
    ),
    Route(
        "list",
        "GET",
        "/v1/authorisations",
        "This terminal's transactions, newest first",
        {200: (contract.TransactionList, "Newest first")},
        query=ListQuery,
    ),
    Route(
        "get",
        "GET",
        "/v1/authorisations/{id}",
        "One transaction of this terminal",
        {200: (_T, "The transaction")},
    ),
    Route(
        "reverse",
        "POST",
        "/v1/authorisations/{id}/reversal",
        "Reverse: release the hold (exactly once)",
        {200: (_T, "Reversed")},
        body=contract.AuthorisationReversalRequest,
        idempotency_key=True,
        kind="write",
    ),
    Route(
        "complete",
        "POST",
        "/v1/authorisations/{id}/complete",
        "Capture a pending authorisation, wholly or partly",
        {200: (_T, "Closed")},
        body=contract.CompletionRequest,
        idempotency_key=True,
        kind="write",
        description="At most the amount held, except at a terminal of MCC 4111 (transit "
        "aggregation): up to the transit aggregation limit (default 1500 minor units in "
        "total) if the account has the difference available; else 409 "
        "aggregation_limit_exceeded or insufficient_funds, nothing changed.",
    ),
    Route(
        "resubmit",
        "POST",
        "/v1/authorisations/{id}/resubmit",
        "Debt recovery: decide again on a declined authorisation",
        {200: (_D, "Decision")},
        body=contract.ResubmissionRequest,
        idempotency_key=True,
        kind="write",
        description="No new chip data (the cryptogram was verified the first time). Only "
        "for a decline for funds or limits (INSUFFICIENT_FUNDS, VELOCITY_EXCEEDED, "
        "AMOUNT_LIMIT_EXCEEDED), by the same terminal, at most 6 times within 14 days of "
        "the original, and not after an approved resubmission; else 409 "
        "not_resubmittable. Status, expiry, funds and limits are checked now. The answer "
        "is a new authorisation (original_id set); approved, its amount is held (pending) "
        "and completed or reversed as usual.",
    ),
    Route(
        "increment",
        "POST",
        "/v1/authorisations/{id}/increment",
        "Raise a pending authorisation's hold (incremental authorisation)",
        {200: (contract.IncrementDecision, "Increment approved or declined")},
        body=contract.IncrementRequest,
        idempotency_key=True,
        kind="write",
        description="A pending approval of this terminal (a parking stay, a transit day "
        "that grows): the hold is raised by amount if the card and account may still "
        "pay, the spending controls allow it (the maximum per transaction counts the "
        "new total) and funds are available; with partial_allowed, by what is "
        "available. Declined (200, approved false), the authorisation and its hold "
        "stay as they were. Not a pending approval: 409 conflict.",
    ),
    Route(
        "reverse_request",
        "POST",
        "/v1/reversals",
        "Time-out reversal by the original request id",
        {
            200: (
                (_T, contract.ReversalNotFound),
                "Reversed, or status not_found (the request id never arrived)",
            )
        },
        body=contract.ReversalRequest,
        idempotency_key=True,
        kind="write",
    ),
    Route(
        "refund",
        "POST",
        "/v1/refunds",
        "Refund part of a captured authorisation",
        {201: (_T, "Refund record")},
        body=contract.RefundRequest,
        idempotency_key=True,
        kind="write",
    ),
    Route(
        "qr_sale_open",
        "POST",
        "/v1/qr/sales",
        "Open the sale of a dynamic QR code (merchant-presented)",
        {201: (contract.QrSale, "The sale, with the text of the code to show")},
        body=contract.QrSaleRequest,
        idempotency_key=True,
        kind="write",
        description="The code (EMV QRCPS-MPM, point of initiation 12) names this terminal "
        "and carries the amount and the bill number; a phone pays it with POST "
        "/v1/qr/payments. The same bill and amount again is the same sale; another "
        "amount is 409 bill_in_use. A terminal without a city for its codes is 409 "
        "merchant_incomplete.",
    ),
    Route(
        "qr_sale",
        "GET",
        "/v1/qr/sales/{bill}",
        "A sale of this terminal; with wait, a long poll",
        {200: (contract.QrSale, "The sale")},
        query=SaleQuery,
        description="With wait=N (seconds, at most 30) the answer comes as soon as the "
        "sale is paid, expired or cancelled, or a payment of it was declined, else after "
        "N seconds with the sale still open.",
    ),
    Route(
        "qr_sale_cancel",
        "POST",
        "/v1/qr/sales/{bill}/cancel",
        "End an open sale unpaid",
        {200: (contract.QrSale, "Cancelled, or paid first (nothing changed)")},
        body=contract.QrSaleCancelRequest,
        idempotency_key=True,
        kind="write",
        description="A payment of its code is declined QR_CODE_EXPIRED from then on. A "
        "sale whose payment is under way is 409 sale_being_paid: ask again.",
    ),
    Route(
        "qr_merchant",
        "GET",
        "/v1/qr/merchants/{id}",
        "A merchant as the issuer knows it (phone wallets)",
        {200: (contract.QrMerchant, "The merchant")},
        principal="wallet",
    ),
    Route(
        "qr_pay",
        "POST",
        "/v1/qr/payments",
        "Pay a merchant-presented code (phone wallets; approved or declined: both 200)",
        {200: (_D, "Decision")},
        body=contract.QrPaymentRequest,
        idempotency_key=True,
        kind="write",
        principal="wallet",
        description="The card's cryptogram made for the code's amount and currency. "
        "Declined QR_CODE_INVALID (the code does not decode: its CRC) or "
        "UNAUTHORIZED_MERCHANT (it names no merchant of this issuer) without a record; "
        "else recorded as the merchant terminal's authorisation (channel qr_mpm), declined "
        "AMOUNT_MISMATCH, QR_CODE_EXPIRED or QR_CODE_USED as the code and its sale say.",
    ),
    *(
        # The operator API: /v1/issuing/...
        route
        for resource in _RESOURCES
        for route in _operator_routes(resource)
    ),
)
