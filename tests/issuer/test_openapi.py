"""The OpenAPI document against the API it documents: every request body documented
is what its route accepts (each documented field accepted, an undocumented one
refused with 400, the same fields required), so is every query, the router serves
exactly the documented paths and methods, and every schema it references exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.service import OPENAPI
from tests.issuer.helpers import World, get, make_world, post, request, send, tap


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


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
        "partial_allowed": True,
    }
    routes = [
        (path, operation["requestBody"])
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method == "post" and "requestBody" in operation
    ]
    assert {path for path, _ in routes} == {
        p for p, item in OPENAPI["paths"].items() if "post" in item
    }, "every POST route documents its body"
    for path, request_body in routes:
        schema = _schema(request_body["content"]["application/json"]["schema"]["$ref"])
        properties = set(schema["properties"])
        required = set(schema.get("required", []))
        assert request_body["required"] == bool(required), path
        assert schema["additionalProperties"] is False, path
        url = path.replace("{id}", txn)
        body = {name: samples[name] for name in properties}

        status, answer = post(world, url, body, next(keys))
        assert status != 400, (path, answer)  # every documented field accepted
        status, answer = post(world, url, {**body, "undocumented": 1}, next(keys))
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
        assert "undocumented" in answer["error"]["message"]
        for name in properties:
            less = {k: v for k, v in body.items() if k != name}
            status, answer = post(world, url, less, next(keys))
            if name in required:
                assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
                assert name in answer["error"]["message"]
            else:
                assert status != 400, (path, name, answer)


def test_the_router_serves_exactly_the_documented_operations(world: World) -> None:
    headers = {"authorization": world.auth, "idempotency-key": "r1"}
    for path, item in OPENAPI["paths"].items():
        url = path.replace("{id}", "txn_aaaaaaaaaaaaaaaa")
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
    samples = {"integer": "5", "string": "x"}
    checked = 0
    for path, item in OPENAPI["paths"].items():
        for operation in item.values():
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            for parameter in query:
                schema = parameter["schema"]
                kinds = [schema, *schema.get("anyOf", [])]
                value = next(
                    (k["enum"][0] for k in kinds if "enum" in k),
                    samples.get(str(schema.get("type")), "x"),
                )
                status, answer = get(world, f"{path}?{parameter['name']}={value}")
                assert status == 200, (path, parameter, answer)
                checked += 1
            if query:
                status, answer = get(world, f"{path}?undocumented=1")
                assert (status, answer["error"]["code"]) == (400, "invalid_request")
                assert "undocumented" in answer["error"]["message"]
    assert checked == 2
