"""The OpenAPI 3.1 document of the authorisation service (served at ``/openapi.json``).

The schemas of every request body and answer are the terminal-issuer contract's
(:func:`emvwire.contract.schemas`) and the operator API's
(:mod:`issuer.service.operator_messages`), so the document cannot drift from what the
API decodes and answers; the descriptions of the errors and the two security schemes
(``terminal``, ``operator``) are written here; the paths,
their parameters, bodies and answers come from the routes as declared
(:data:`issuer.service.routes.ROUTES`), which the router and the API's decoding use
too. Tests check that each documented body and query is what the route accepts.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from emvwire import contract
from issuer.service import operator_messages
from issuer.service.routes import BILL_PATTERN, ID_PATTERN, PREFIX_PATTERN, ROUTES, Route

__all__ = ["ERRORS", "OPENAPI", "OPERATOR_ERRORS"]

_SCHEMAS: Final = {
    **contract.schemas(),
    **msgspec.json.schema_components(
        operator_messages.MESSAGES, ref_template="#/components/schemas/{name}"
    )[1],
}


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
#: The errors every route that needs a credential may answer.
ERRORS: Final = {
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
#: The errors every operator route may answer.
OPERATOR_ERRORS: Final = {
    "400": _answer(
        _ERROR,
        "Broken JSON (invalid_json), a bad field, query or cursor (invalid_request)",
    ),
    "401": _answer(
        _ERROR,
        "No operator credential, an unknown or revoked operator, a wrong credential, or "
        "a client certificate that does not name the operator",
    ),
    "403": _answer(_ERROR, "The operator holds none of the route's scopes (forbidden)"),
    "404": _answer(_ERROR, "No such object"),
    "409": _answer(
        _ERROR,
        "Idempotency-Key reused with another body (idempotency_conflict), a conflict or "
        "a change the object's life cycle forbids (conflict)",
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
_ID: Final = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{ID_PATTERN}$"},
}
_PREFIX: Final = {
    "name": "prefix",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{PREFIX_PATTERN}$"},
}
_BILL: Final = {
    "name": "bill",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{BILL_PATTERN}$"},
}


def _schema_of(answer: Any) -> dict[str, Any]:
    if isinstance(answer, tuple):
        return {"oneOf": [_ref(kind.__name__) for kind in answer]}
    return _ref(answer.__name__)


def _query(kind: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """The query parameters of a route: the fields of its query struct."""
    _, components = msgspec.json.schema_components([kind], ref_template="{name}")
    schema = components[kind.__name__]
    out = []
    for name, prop in schema["properties"].items():
        out.append({"name": name, "in": "query", "schema": _inline(prop, components)})
    return out


def _inline(node: Any, components: dict[str, Any]) -> Any:
    """``node`` with its references to ``components`` replaced by what they name."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(components[node["$ref"]], components)
        return {key: _inline(value, components) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, components) for value in node]
    return node


def _operation(route: Route) -> dict[str, Any]:
    """The OpenAPI operation object of ``route``."""
    operation: dict[str, Any] = {"summary": route.summary, "operationId": route.name}
    if route.description:
        operation["description"] = route.description
    if route.public:
        operation["security"] = []
    elif route.scopes:
        operation["security"] = [{"operator": []}]
        operation["x-scopes"] = list(route.scopes)
    elif route.principal == "wallet":
        operation["security"] = [{"wallet": []}]
    parameters = [_ID] if "{id}" in route.path else [_PREFIX] if "{prefix}" in route.path else []
    if "{bill}" in route.path:
        parameters.append(_BILL)
    if route.idempotency_key:
        parameters.append(_KEY)
    if route.query is not None:
        parameters += _query(route.query)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = _body(route.body.__name__)
    responses: dict[str, Any] = {}
    for status, (answer, description) in route.answers.items():
        responses[str(status)] = (
            {"description": description}
            if answer is None
            else _answer(_schema_of(answer), description)
        )
    if route.scopes:
        responses.update(OPERATOR_ERRORS)
    elif not route.public:
        responses.update(ERRORS)
    operation["responses"] = responses
    return operation


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return paths


#: The document.
OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tapstack issuer authorisation service",
        "version": "1",
        "description": "Online authorisation of contactless EMV transactions. A request "
        "carries ISO 8583 field 55 (the chip data as one BER-TLV blob) and track 2 "
        "equivalent data (57); the issuer verifies the ARQC and answers the response "
        "code (8A) and the ARPC. Amounts are minor units.\n\n"
        "The operator API (/v1/issuing/...) manages accounts, cards, tokens, terminals, "
        "ranges and reads authorisations, for operators only (`issuer operator add`): "
        "lists are newest first, `limit` 1-100 (default 10) and `starting_after` the "
        "last id of the previous page, answered `{object: list, data, has_more}`; a "
        "status changes by POST to the object with `{status}`; every POST takes an "
        "Idempotency-Key; every change and every refused request is audited "
        "(`issuer audit list`). An operator route's scopes are in `x-scopes`: `read`, "
        "`operations` (read, and changes of accounts, cards, tokens, terminals) and "
        "`keys` (ranges).",
    },
    "components": {
        "securitySchemes": {
            "terminal": {
                "type": "http",
                "scheme": "bearer",
                "description": "`<terminal id>:<credential>` as printed by `issuer terminal add`, "
                "over mutual TLS with the terminal's client certificate "
                "(urn:tapstack:terminal:<id>).",
            },
            "operator": {
                "type": "http",
                "scheme": "bearer",
                "description": "`<operator id>:<credential>` as printed by `issuer operator "
                "add`, over mutual TLS with the operator's client certificate "
                "(urn:tapstack:operator:<id>). Terminal credentials are refused here, "
                "operator credentials on the terminal routes.",
            },
            "wallet": {
                "type": "http",
                "scheme": "bearer",
                "description": "`<wallet id>:<credential>` as printed by `issuer wallet add` "
                "(a phone wallet paying merchant-presented QR codes), over mutual TLS with "
                "the wallet's client certificate (urn:tapstack:wallet:<id>).",
            },
        },
        "schemas": _SCHEMAS,
    },
    "security": [{"terminal": []}],
    "paths": _paths(),
}
