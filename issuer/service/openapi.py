"""The OpenAPI 3.1 document of the authorisation service (served at ``/openapi.json``).

The schemas of every request body and answer are the terminal-issuer contract's
(:func:`emvwire.contract.schemas`), so the document cannot drift from what the API
decodes and answers; only the paths, their parameters and the descriptions are
written here. Tests check that every route :class:`issuer.service.api.Api` serves is
documented and that each documented body is what the route accepts.
"""

from __future__ import annotations

from typing import Any, Final

from emvwire import contract

__all__ = ["OPENAPI"]

_SCHEMAS: Final = contract.schemas()


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(name: str) -> dict[str, Any]:
    """A request body of the contract message ``name``: required if it has required
    fields (an empty body is ``{}``)."""
    return {
        "required": bool(_SCHEMAS[name].get("required")),
        "content": {"application/json": {"schema": _ref(name)}},
    }


_ERROR: Final = _ref("Error")
_TRANSACTION: Final = _ref("Transaction")
_DECISION: Final = _ref("Decision")
_ERRORS: Final = {
    "400": _answer(_ERROR, "Broken JSON (invalid_json) or a bad field (invalid_request)"),
    "401": _answer(_ERROR, "Unknown terminal, wrong or revoked credential"),
    "404": _answer(_ERROR, "No such transaction of this terminal"),
    "409": _answer(
        _ERROR,
        "Idempotency-Key reused for another request (code conflict), a wrong state "
        "(conflict), or a rule refused it: not_resubmittable, insufficient_funds, "
        "aggregation_limit_exceeded (the message says why; nothing changed)",
    ),
    "413": _answer(_ERROR, "The request body is too large"),
    "503": _answer(_ERROR, "Ledger busy: retry with the same Idempotency-Key"),
}
_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "The request id (1-255 characters): a retry with the same key and "
    "body gets the same answer and changes nothing.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_ID: Final = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


#: The document.
OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tapstack issuer authorisation service",
        "version": "1",
        "description": "Online authorisation of contactless EMV transactions. A request "
        "carries ISO 8583 field 55 (the chip data as one BER-TLV blob) and track 2 "
        "equivalent data (57); the issuer verifies the ARQC and answers the response "
        "code (8A) and the ARPC. Amounts are minor units.",
    },
    "components": {
        "securitySchemes": {
            "terminal": {
                "type": "http",
                "scheme": "bearer",
                "description": "`<terminal id>:<credential>` as printed by `issuer terminal add`.",
            }
        },
        "schemas": _SCHEMAS,
    },
    "security": [{"terminal": []}],
    "paths": {
        "/health": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _answer(_ref("Health"), "Up")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/v1/authorisations": {
            "post": {
                "summary": "Authorise (approved or declined: both 200)",
                "parameters": [_KEY],
                "requestBody": _body("AuthorisationRequest"),
                "responses": {"200": _answer(_DECISION, "Decision"), **_ERRORS},
            },
            "get": {
                "summary": "This terminal's transactions, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _answer(_ref("TransactionList"), "Newest first"),
                    **_ERRORS,
                },
            },
        },
        "/v1/authorisations/{id}": {
            "get": {
                "summary": "One transaction of this terminal",
                "parameters": [_ID],
                "responses": {"200": _answer(_TRANSACTION, "The transaction"), **_ERRORS},
            }
        },
        "/v1/authorisations/{id}/reversal": {
            "post": {
                "summary": "Reverse: release the hold (exactly once)",
                "parameters": [_ID, _KEY],
                "requestBody": _body("AuthorisationReversalRequest"),
                "responses": {"200": _answer(_TRANSACTION, "Reversed"), **_ERRORS},
            }
        },
        "/v1/authorisations/{id}/complete": {
            "post": {
                "summary": "Capture a pending authorisation, wholly or partly",
                "description": "At most the amount held, except at a terminal of MCC "
                "4111 (transit aggregation): up to the transit aggregation limit (default "
                "1500 minor units in total) if the account has the difference available; "
                "else 409 aggregation_limit_exceeded or insufficient_funds, nothing "
                "changed.",
                "parameters": [_ID, _KEY],
                "requestBody": _body("CompletionRequest"),
                "responses": {"200": _answer(_TRANSACTION, "Closed"), **_ERRORS},
            }
        },
        "/v1/authorisations/{id}/resubmit": {
            "post": {
                "summary": "Debt recovery: decide again on a declined authorisation",
                "description": "No new chip data (the cryptogram was verified the first "
                "time). Only for a decline for funds or limits (INSUFFICIENT_FUNDS, "
                "VELOCITY_EXCEEDED, AMOUNT_LIMIT_EXCEEDED), by the same terminal, at most 6 "
                "times within 14 days of the original, and not after an approved "
                "resubmission; else 409 not_resubmittable. Status, expiry, funds and limits "
                "are checked now. The answer is a new authorisation (original_id set); "
                "approved, its amount is held (pending) and completed or reversed as usual.",
                "parameters": [_ID, _KEY],
                "requestBody": _body("ResubmissionRequest"),
                "responses": {"200": _answer(_DECISION, "Decision"), **_ERRORS},
            }
        },
        "/v1/reversals": {
            "post": {
                "summary": "Time-out reversal by the original request id",
                "parameters": [_KEY],
                "requestBody": _body("ReversalRequest"),
                "responses": {
                    "200": _answer(
                        {"oneOf": [_TRANSACTION, _ref("ReversalNotFound")]},
                        "Reversed, or status not_found (the request id never arrived)",
                    ),
                    **_ERRORS,
                },
            }
        },
        "/v1/refunds": {
            "post": {
                "summary": "Refund part of a captured authorisation",
                "parameters": [_KEY],
                "requestBody": _body("RefundRequest"),
                "responses": {"201": _answer(_TRANSACTION, "Refund record"), **_ERRORS},
            }
        },
    },
}
