"""The operator API's webhook endpoints and events (/v1/issuing/webhook_endpoints,
/v1/issuing/events) on both ledgers, through the domain the CLI uses: an endpoint
made (its signing secret answered once, never on retrieve or list, and the one that
signs), listed page by page, disabled and enabled, its secret rotated with a grace
period; the events of a card after its status changes listed and filtered, one
retrieved with its deliveries and resent; a reader refused every write with 403,
audited; no secret in any audit record and no full PAN in any answer."""

from __future__ import annotations

import json
import re

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.domain.webhooks import Webhooks
from issuer.model.entities import utc_now
from tests.issuer.helpers import World, make_world
from tests.issuer.operator_kit import audit, operator, send

_HOOKS = "/v1/issuing/webhook_endpoints"
_URL = "https://hooks.example.org/tapstack"


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.fixture
def ops(world: World) -> tuple[str, str]:
    """An operator of scope operations: its id and Authorization header."""
    return operator(world.app, "operations")


def _signing(app: IssuerApp, endpoint_id: str) -> list[str]:
    """The secrets that sign the endpoint's deliveries now, as the delivery worker
    opens them."""
    with app.ledger.unit_of_work(write=False) as uow:
        sealed = uow.webhooks.sealed_secrets(endpoint_id)
    return Webhooks(app.ledger, app.keys).signing_secrets(endpoint_id, sealed, utc_now())


def test_an_endpoint_made_shows_its_secret_once_then_pages_disables_and_rotates(
    world: World, ops: tuple[str, str]
) -> None:
    op_id, auth = ops
    body = {"url": _URL, "events": ["card.status_changed", "refund.created"]}
    status, made, _ = send(world, "POST", _HOOKS, auth, body, key="hook-1")
    assert status == 201, made
    assert (made["object"], made["url"], made["status"]) == ("webhook_endpoint", _URL, "enabled")
    assert made["events"] == ["card.status_changed", "refund.created"]
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert _signing(world.app, made["id"]) == [secret]

    status, got, _ = send(world, "GET", f"{_HOOKS}/{made['id']}", auth)
    assert (status, got["id"], got["secret"]) == (200, made["id"], None)
    status, replay, headers = send(world, "POST", _HOOKS, auth, body, key="hook-1")
    assert (status, replay["id"], replay["secret"]) == (201, made["id"], None)
    assert headers["idempotent-replayed"] == "true"

    ids = [made["id"]]
    for n in range(2):
        status, more, _ = send(world, "POST", _HOOKS, auth, {"url": f"{_URL}/{n}", "events": ["*"]})
        assert status == 201
        ids.append(more["id"])
    status, page, _ = send(world, "GET", f"{_HOOKS}?limit=2", auth)
    assert status == 200
    assert ([e["id"] for e in page["data"]], page["has_more"]) == ([ids[2], ids[1]], True)
    status, rest, _ = send(world, "GET", f"{_HOOKS}?limit=2&starting_after={ids[1]}", auth)
    assert ([e["id"] for e in rest["data"]], rest["has_more"]) == ([ids[0]], False)
    assert all(e["secret"] is None for e in page["data"] + rest["data"])
    status, bad, _ = send(world, "GET", f"{_HOOKS}?starting_after=we_aaaaaaaaaaaaaaaa", auth)
    assert (status, bad["error"]["code"]) == (400, "invalid_request")

    status, off, _ = send(world, "POST", f"{_HOOKS}/{ids[0]}", auth, {"status": "disabled"})
    assert (status, off["status"], off["secret"]) == (200, "disabled", None)
    status, again, _ = send(world, "POST", f"{_HOOKS}/{ids[0]}", auth, {"status": "disabled"})
    assert (status, again["error"]["code"]) == (409, "conflict")
    status, on, _ = send(world, "POST", f"{_HOOKS}/{ids[0]}", auth, {"status": "enabled"})
    assert (status, on["status"]) == (200, "enabled")

    status, rotated, _ = send(
        world, "POST", f"{_HOOKS}/{ids[0]}/rotate_secret", auth, {"grace": 3600}
    )
    assert status == 200, rotated
    new = rotated["secret"]
    assert new.startswith("whsec_")
    assert new != secret
    assert rotated["previous_secret_until"] > utc_now()
    assert _signing(world.app, ids[0]) == [new, secret]  # both sign during the grace period
    status, now_only, _ = send(
        world, "POST", f"{_HOOKS}/{ids[0]}/rotate_secret", auth, {"grace": 0}
    )
    assert _signing(world.app, ids[0]) == [now_only["secret"]]
    status, long, _ = send(
        world, "POST", f"{_HOOKS}/{ids[0]}/rotate_secret", auth, {"grace": 604801}
    )
    assert (status, long["error"]["code"]) == (400, "invalid_request")
    status, gone, _ = send(world, "GET", f"{_HOOKS}/we_aaaaaaaaaaaaaaaa", auth)
    assert (status, gone["error"]["code"]) == (404, "not_found")

    records = audit(world.app, actor=f"operator:{op_id}")
    assert [(r.action, r.object_id, r.outcome) for r in records[:4]] == [
        ("webhook_endpoint.rotate_secret", ids[0], "succeeded"),
        ("webhook_endpoint.rotate_secret", ids[0], "succeeded"),
        ("webhook_endpoint.enable", ids[0], "succeeded"),
        ("webhook_endpoint.update", ids[0], "failed"),  # disabled already
    ]
    assert ("webhook_endpoint.create", ids[0], "succeeded") in [
        (r.action, r.object_id, r.outcome) for r in records
    ]
    logged = json.dumps([r.to_json() for r in records])
    for shown in (secret, new, now_only["secret"]):
        assert shown not in logged


def test_bad_endpoints_are_clean_400s(world: World, ops: tuple[str, str]) -> None:
    _, auth = ops
    for body in (
        {"url": "http://hooks.example.org/x", "events": ["*"]},
        {"url": "https://user:pw@hooks.example.org/x", "events": ["*"]},
        {"url": _URL, "events": ["no.such"]},
        {"url": _URL, "events": []},
        {"url": _URL, "events": ["*", "refund.created"]},
        {"url": _URL, "events": ["*"], "secret": "whsec_mine"},
    ):
        status, answer, _ = send(world, "POST", _HOOKS, auth, body)
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), body
    status, answer, _ = send(
        world,
        "POST",
        _HOOKS,
        auth,
        {"url": _URL, "events": ["*"], "terminal": "term_aaaaaaaaaaaaaaaa"},
    )
    assert (status, answer["error"]["code"]) == (404, "not_found")
    assert send(world, "GET", _HOOKS, auth)[1]["data"] == []


def test_a_card_s_events_listed_retrieved_and_resent(world: World, ops: tuple[str, str]) -> None:
    op_id, auth = ops
    card = world.card_id
    for change in ("paused", "active"):
        status, _, _ = send(world, "POST", f"/v1/issuing/cards/{card}", auth, {"status": change})
        assert status == 200
    status, page, _ = send(world, "GET", f"/v1/issuing/events?object={card}", auth)
    assert status == 200
    assert [(e["type"], e["sequence"], e["data"]["object"]["status"]) for e in page["data"]] == [
        ("card.status_changed", 2, "active"),
        ("card.status_changed", 1, "paused"),
    ]
    assert page["data"][0]["data"]["previous_attributes"] == {"status": "paused"}
    assert all(e["deliveries"] is None for e in page["data"])
    status, one, _ = send(world, "GET", f"/v1/issuing/events?object={card}&limit=1", auth)
    assert (len(one["data"]), one["has_more"]) == (1, True)
    after = one["data"][0]["id"]
    status, rest, _ = send(
        world, "GET", f"/v1/issuing/events?object={card}&limit=1&starting_after={after}", auth
    )
    assert ([e["sequence"] for e in rest["data"]], rest["has_more"]) == ([1], False)
    status, typed, _ = send(world, "GET", "/v1/issuing/events?type=account.created", auth)
    assert [e["object_id"] for e in typed["data"]] == [world.account]
    status, bad, _ = send(world, "GET", "/v1/issuing/events?type=no.such", auth)
    assert (status, bad["error"]["code"]) == (400, "invalid_request")

    event_id = page["data"][0]["id"]
    status, event, _ = send(world, "GET", f"/v1/issuing/events/{event_id}", auth)
    assert (status, event["object"], event["deliveries"]) == (200, "event", [])
    status, none, _ = send(world, "POST", f"/v1/issuing/events/{event_id}/resend", auth, {})
    assert (status, none["error"]["code"]) == (409, "conflict")  # no endpoint subscribes

    status, hook, _ = send(world, "POST", _HOOKS, auth, {"url": _URL, "events": ["refund.created"]})
    status, sent, _ = send(
        world, "POST", f"/v1/issuing/events/{event_id}/resend", auth, {"endpoint": hook["id"]}
    )
    assert status == 200, sent
    assert [(d["endpoint"], d["status"]) for d in sent["deliveries"]] == [(hook["id"], "pending")]
    records = audit(world.app, object_id=event_id)
    assert [(r.action, r.actor, r.outcome) for r in records] == [
        ("event.resend", f"operator:{op_id}", "succeeded"),
        ("event.resend", f"operator:{op_id}", "failed"),
    ]
    status, missing, _ = send(world, "GET", "/v1/issuing/events/evt_aaaaaaaaaaaaaaaa", auth)
    assert (status, missing["error"]["code"]) == (404, "not_found")
    assert not re.search(r"[0-9]{12,}", json.dumps([page, event, sent]))  # no full PAN


def test_a_reader_reads_and_is_refused_every_write_audited(world: World) -> None:
    reader_id, reader = operator(world.app, "read")
    _, writer = operator(world.app, "operations")
    status, hook, _ = send(world, "POST", _HOOKS, writer, {"url": _URL, "events": ["*"]})
    assert status == 201
    assert send(world, "GET", _HOOKS, reader)[0] == 200
    assert send(world, "GET", f"{_HOOKS}/{hook['id']}", reader)[0] == 200
    status, events, _ = send(world, "GET", "/v1/issuing/events", reader)
    assert status == 200
    event_id = events["data"][0]["id"]
    assert send(world, "GET", f"/v1/issuing/events/{event_id}", reader)[0] == 200
    writes = [
        (_HOOKS, {"url": _URL, "events": ["*"]}, "webhook_endpoint.create", "-"),
        (f"{_HOOKS}/{hook['id']}", {"status": "disabled"}, "webhook_endpoint.update", hook["id"]),
        (f"{_HOOKS}/{hook['id']}/rotate_secret", {}, "webhook_endpoint.rotate_secret", hook["id"]),
        (f"/v1/issuing/events/{event_id}/resend", {}, "event.resend", event_id),
    ]
    for path, body, _, _ in writes:
        status, refused, _ = send(world, "POST", path, reader, body)
        assert (status, refused["error"]["code"]) == (403, "forbidden"), path
        assert "operations" in refused["error"]["message"]
    records = audit(world.app, actor=f"operator:{reader_id}")
    assert [(r.action, r.object_id, r.outcome) for r in records] == [
        (action, ident, "refused") for _, _, action, ident in reversed(writes)
    ]
    status, still, _ = send(world, "GET", f"{_HOOKS}/{hook['id']}", reader)
    assert (still["status"], still["previous_secret_until"]) == ("enabled", None)
    assert len(send(world, "GET", _HOOKS, reader)[1]["data"]) == 1
    with world.app.ledger.unit_of_work(write=False) as uow:
        assert uow.webhooks.deliveries(event_id) == []
