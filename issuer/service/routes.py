"""The routes of the authorisation service, each declared once.

A :class:`Route` names its method and path, the contract message its body decodes to
(:mod:`emvwire.contract`), its query parameters (a msgspec struct), whether it takes
``Idempotency-Key``, its answers and its summary. From :data:`ROUTES` come the router
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

__all__ = ["ID_PATTERN", "ROUTES", "ListQuery", "Route"]

#: A transaction id in a path (``txn_`` and 16 base32 characters, as the issuer makes
#: them): another path segment matches no route (404).
ID_PATTERN: Final = "[a-z]+_[a-z2-7]{16}"


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
    is an OpenAPI path template (``{id}``: a transaction id, :data:`ID_PATTERN`);
    ``answers`` maps a status to the contract message(s) of its body (a tuple: one of
    them; ``None``: not a contract message) and its description. A route that is not
    ``public`` needs a terminal credential and may answer every error of
    :data:`issuer.service.openapi.ERRORS`.
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
)
