"""The OpenAPI document against the API it documents: every request body documented
is what its route accepts (each documented field accepted, an undocumented one
refused with 400, the same fields required), and every schema it references exists."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.service import OPENAPI
from tests.issuer.helpers import World, make_world, post, send, tap


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
