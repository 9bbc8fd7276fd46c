"""The OpenAPI document against the API it documents: every request body documented
is what its route accepts (each documented field accepted, an undocumented one
refused with 400, the same fields required), so is every query, the router serves
exactly the documented paths and methods, and every schema it references exists.
The operator routes (``x-scopes``) are called with an operator's credential holding
every scope."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.service import OPENAPI
from tests.issuer.helpers import World, get, make_world, post, request, send, tap
from tests.issuer.operator_kit import PAN, operator


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


#: A bill number of the QR sale routes' paths (``{bill}``).
BILL = "B-1"


def _wallet(world: World) -> str:
    """A phone wallet's credential, for the routes that need one."""
    wallet, key = world.api.qr.payments.add_wallet("phone")
    return f"Bearer {wallet.id}:{key}"


def _auth(world: World, operation: dict[str, Any], wallet: str) -> str:
    """The credential an operation needs: the terminal's, or a wallet's."""
    return wallet if operation.get("security") == [{"wallet": []}] else world.auth


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _schema(ref: str) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    schema: dict[str, Any] = OPENAPI["components"]["schemas"][ref.removeprefix(prefix)]
    return schema


def test_every_referenced_schema_exists() -> None:
    refs = set(_refs(OPENAPI["paths"])) | set(_refs(OPENAPI["components"]["schemas"]))
    assert refs
    for ref in refs:
        assert _schema(ref)["title"] == ref.rpartition("/")[2]


def test_documented_bodies_are_what_the_routes_accept(world: World) -> None:
    keys = (f"k{n}" for n in itertools.count())
    result = tap(world.card, 1000)
    txn = send(world, result.authorisation_data, result.track2, next(keys))["id"]
    assert post(world, f"/v1/authorisations/{txn}/complete", {}, next(keys))[0] == 200
    again = tap(world.card, 100)
    samples: dict[str, Any] = {
        "icc_data": again.authorisation_data.hex(),
        "track2": again.track2.hex(),
        "amount": 1,
        "request_id": "never-sent",
        "authorisation": txn,
        "channel": "qr_cpm",
        "bill": BILL,
        "expires_in": 60,
        "payload": "not a QR code",
        "partial_allowed": True,
    }
    wallet = _wallet(world)
    routes = [
        (path, operation["requestBody"], _auth(world, operation, wallet))
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method == "post" and "requestBody" in operation and "x-scopes" not in operation
    ]
    assert {path for path, _, _ in routes} == {
        p for p, item in OPENAPI["paths"].items() if "post" in item
    } - {p for p in OPENAPI["paths"] if p.startswith("/v1/issuing/")}, (
        "every POST route documents its body"
    )
    for path, request_body, auth in routes:
        schema = _schema(request_body["content"]["application/json"]["schema"]["$ref"])
        properties = set(schema["properties"])
        required = set(schema.get("required", []))
        assert request_body["required"] == bool(required), path
        assert schema["additionalProperties"] is False, path
        url = path.replace("{id}", txn).replace("{bill}", BILL)
        body = {name: samples[name] for name in properties}

        status, answer = post(world, url, body, next(keys), auth)
        assert status != 400, (path, answer)  # every documented field accepted
        status, answer = post(world, url, {**body, "undocumented": 1}, next(keys), auth)
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
        assert "undocumented" in answer["error"]["message"]
        for name in properties:
            less = {k: v for k, v in body.items() if k != name}
            status, answer = post(world, url, less, next(keys), auth)
            if name in required:
                assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
                assert name in answer["error"]["message"]
            else:
                assert status != 400, (path, name, answer)


def test_documented_operator_bodies_are_what_the_routes_accept(world: World) -> None:
    """Each operator route's undocumented field is refused and each required field is
    required, named in the 400; a body of every required field passes the decoding."""
    _, auth = operator(world.app, "read", "operations", "keys")
    samples: dict[str, Any] = {
        "holder": "A", "amount": 1, "account": world.account, "scheme": "visa", "pan": PAN,
        "expiry": "2031-12", "cvn": 18, "card": world.card_id, "requestor_id": "40010030273",
        "merchant": "M", "mcc": "5411", "prefix": "455123",
        "url": "https://hooks.example.org/tapstack", "events": ["*"],
    }  # fmt: skip
    keys = (f"o{n}" for n in itertools.count())
    checked = 0
    for path, item in OPENAPI["paths"].items():
        operation = item.get("post")
        if operation is None or "x-scopes" not in operation:
            continue
        assert "requestBody" in operation, path
        schema = _schema(operation["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        assert schema["additionalProperties"] is False, path
        required = set(schema.get("required", []))
        body = {
            name: schema["properties"][name].get("enum", [samples.get(name)])[0]
            for name in required
        }
        url = path.replace("{id}", world.account).replace("{prefix}", "476173")
        status, answer = post(world, url, {**body, "undocumented": 1}, next(keys), auth)
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
        assert "undocumented" in answer["error"]["message"]
        for name in required:
            less = {k: v for k, v in body.items() if k != name}
            status, answer = post(world, url, less, next(keys), auth)
            assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
            assert name in answer["error"]["message"], path
        status, answer = post(world, url, body, next(keys), auth)
        assert status != 400 or "field" not in answer["error"]["message"], (path, answer)
        checked += 1
    assert checked == 16


def test_the_router_serves_exactly_the_documented_operations(world: World) -> None:
    headers = {"authorization": world.auth, "idempotency-key": "r1"}
    for path, item in OPENAPI["paths"].items():
        url = (
            path.replace("{id}", "txn_aaaaaaaaaaaaaaaa")
            .replace("{prefix}", "476173")
            .replace("{bill}", BILL)
        )
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
            status, answer = request(world, method, url, headers, b"{}")
            if method.lower() in item:
                assert status != 405, (method, path)
                assert answer.get("error", {}).get("message") != "no such endpoint", path
            else:
                assert (status, answer["error"]["code"]) == (405, "method_not_allowed"), path
    for url in ("/v1/authorisations/not-an-id", "/v1/authorisations/", "/v2/authorisations"):
        status, answer = request(world, "GET", url, headers)
        assert (status, answer["error"]["message"]) == (404, "no such endpoint"), url


def test_documented_queries_are_what_the_routes_accept(world: World) -> None:
    samples = {"integer": "5", "string": "x", "number": "0.1"}
    # What the operator lists filter by or start after must exist (else 400).
    named = {"account": world.account, "card": world.card_id, "terminal": world.terminal,
             "object": world.card_id}  # fmt: skip
    cursors = {"/v1/issuing/accounts": world.account, "/v1/issuing/cards": world.card_id,
               "/v1/issuing/terminals": world.terminal, "/v1/issuing/ranges": "476173"}  # fmt: skip
    _, operator_auth = operator(world.app, "read")
    payments = world.api.qr.payments
    payments.set_terminal_place(world.terminal, city="Paris", currency="EUR")
    payments.open_sale(world.app.service.terminal(world.terminal), BILL, 100, 60)
    checked = 0
    for template, item in OPENAPI["paths"].items():
        path = template.replace("{bill}", BILL)
        for operation in item.values():
            auth = operator_auth if "x-scopes" in operation else None
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            for parameter in query:
                if auth is not None and parameter["name"] == "starting_after":
                    cursor = cursors.get(path)
                    if cursor is None:
                        continue  # no object of the kind to start after
                    status, answer = get(world, f"{path}?starting_after={cursor}", auth)
                    assert status == 200, (path, answer)
                    checked += 1
                    continue
                schema = parameter["schema"]
                kinds = [
                    _schema(k["$ref"]) if "$ref" in k else k
                    for k in (schema, *schema.get("anyOf", []))
                ]
                value = next(
                    (k["enum"][0] for k in kinds if "enum" in k),
                    named.get(parameter["name"]) if auth else None,
                ) or samples.get(str(schema.get("type")), "x")
                status, answer = get(world, f"{path}?{parameter['name']}={value}", auth)
                assert status == 200, (path, parameter, answer)
                checked += 1
            if query:
                status, answer = get(world, f"{path}?undocumented=1", auth)
                assert (status, answer["error"]["code"]) == (400, "invalid_request")
                assert "undocumented" in answer["error"]["message"]
    # The terminals' list: 2, a QR sale's wait: 1; the operator lists: 3 + 4 + 4 + 3 + 3 +
    # 5 + 1 + 3 (four cursors skipped).
    assert checked == 3 + 26
