"""The OpenAPI 3.1 document of the authorisation service (served at ``/openapi.json``).

Hand-written: the service runs on the standard library (no framework to generate it).
A test checks that every route :class:`issuer.service.api.Api` serves is documented.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPENAPI"]

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_AUTH: Final = {"$ref": "#/components/schemas/Authorisation"}


def _answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS: Final = {
    "400": _answer(_ERROR, "Broken JSON or a bad field"),
    "401": _answer(_ERROR, "Unknown terminal, wrong or revoked credential"),
    "404": _answer(_ERROR, "No such transaction of this terminal"),
    "409": _answer(
        _ERROR,
        "Idempotency-Key reused for another request (code conflict), a wrong state "
        "(conflict), or a rule refused it: not_resubmittable, insufficient_funds, "
        "aggregation_limit_exceeded (the message says why; nothing changed)",
    ),
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


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


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
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "Decision": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "approved": {"type": "boolean"},
                    "response_code": {"type": "string", "description": "8A, ISO 8583 field 39"},
                    "reason": {"type": ["string", "null"], "description": "decline reason"},
                    "amount": {"type": "integer"},
                    "currency": {"type": "string"},
                    "status": {"enum": ["pending", "closed"]},
                    "arpc": {"type": "string", "description": "hex"},
                    "issuer_authentication_data": {"type": "string", "description": "91, hex"},
                    "card": {"type": "string", "description": "masked PAN or token"},
                    "par": {
                        "type": ["string", "null"],
                        "description": "payment account reference (EMVCo PAR, 9F24) of the "
                        "card or token: the same for a card and the phone tokens of one "
                        "account's card; null if unknown",
                    },
                    "original_id": {
                        "type": ["string", "null"],
                        "description": "a resubmission: the declined authorisation it recovers",
                    },
                    "replayed": {"type": "boolean", "description": "a stored answer"},
                },
            },
            "Authorisation": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"enum": ["authorisation", "refund"]},
                    "status": {"enum": ["pending", "closed", "reversed", "expired"]},
                    "approved": {"type": "boolean"},
                    "decline_reason": {"type": ["string", "null"]},
                    "amount": {"type": "integer"},
                    "held_amount": {"type": "integer"},
                    "captured_amount": {"type": "integer"},
                    "released_amount": {"type": "integer"},
                },
            },
        },
    },
    "security": [{"terminal": []}],
    "paths": {
        "/health": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "Up"}},
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
                "requestBody": _body(
                    {
                        "icc_data": {"type": "string", "description": "field 55, hex"},
                        "track2": {"type": "string", "description": "tag 57, hex"},
                    },
                    ["icc_data", "track2"],
                ),
                "responses": {
                    "200": _answer({"$ref": "#/components/schemas/Decision"}, "Decision"),
                    **_ERRORS,
                },
            },
            "get": {
                "summary": "This terminal's transactions, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "status", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _answer({"type": "object"}, "{data: [Authorisation]}")},
            },
        },
        "/v1/authorisations/{id}": {
            "get": {
                "summary": "One transaction of this terminal",
                "parameters": [_ID],
                "responses": {"200": _answer(_AUTH, "Authorisation"), **_ERRORS},
            }
        },
        "/v1/authorisations/{id}/reversal": {
            "post": {
                "summary": "Reverse: release the hold (exactly once)",
                "parameters": [_ID, _KEY],
                "responses": {"200": _answer(_AUTH, "Reversed"), **_ERRORS},
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
                "requestBody": _body({"amount": {"type": "integer"}}, []),
                "responses": {"200": _answer(_AUTH, "Closed"), **_ERRORS},
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
                "requestBody": _body(
                    {"amount": {"type": "integer", "description": "<= the original's"}}, []
                ),
                "responses": {
                    "200": _answer({"$ref": "#/components/schemas/Decision"}, "Decision"),
                    **_ERRORS,
                },
            }
        },
        "/v1/reversals": {
            "post": {
                "summary": "Time-out reversal by the original request id",
                "parameters": [_KEY],
                "requestBody": _body({"request_id": {"type": "string"}}, ["request_id"]),
                "responses": {"200": _answer(_AUTH, "Reversed, or status not_found")},
            }
        },
        "/v1/refunds": {
            "post": {
                "summary": "Refund part of a captured authorisation",
                "parameters": [_KEY],
                "requestBody": _body(
                    {"authorisation": {"type": "string"}, "amount": {"type": "integer"}},
                    ["authorisation", "amount"],
                ),
                "responses": {"201": _answer(_AUTH, "Refund record"), **_ERRORS},
            }
        },
    },
}
