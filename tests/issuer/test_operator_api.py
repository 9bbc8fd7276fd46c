"""The operator API (/v1/issuing/...) through the service's ASGI application, on both
ledgers: each resource created, retrieved, listed page by page and its status
changed; scopes refused with 403 and audited; terminal credentials refused on the
operator routes and operator credentials on the terminal routes; a revoked operator
refused from its next request; Idempotency-Key replays; hostile input answered with
clean 400s; every change audited in its transaction; no full PAN in any answer or
audit record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.domain.service import IssuerService
from issuer.errors import IntegrityError
from issuer.ledger.sql import SqlUnitOfWork
from issuer.personalisation.ranges import DEFAULT_RANGES
from tests.issuer.helpers import World, make_world, tap
from tests.issuer.helpers import send as authorise
from tests.issuer.operator_kit import PAN, audit, operator, send
from tests.support.asgi import call


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.fixture
def ops(world: World) -> tuple[str, str]:
    """An operator of scope operations: its id and Authorization header."""
    return operator(world.app, "operations")


def _texts(answers: list[Any]) -> str:
    return json.dumps(answers)


def test_accounts_made_listed_page_by_page_credited_and_closed(
    world: World, ops: tuple[str, str]
) -> None:
    op_id, auth = ops
    made = []
    for holder in ("Ann", "Ben", "Cy"):
        status, body, _ = send(world, "POST", "/v1/issuing/accounts", auth, {"holder": holder})
        assert status == 201, body
        assert (body["object"], body["holder"], body["status"]) == ("account", holder, "open")
        made.append(body["id"])
    status, one, _ = send(world, "GET", f"/v1/issuing/accounts/{made[1]}", auth)
    assert (status, one["holder"]) == (200, "Ben")

    status, page, _ = send(world, "GET", "/v1/issuing/accounts?limit=2", auth)
    assert status == 200
    assert (page["object"], page["has_more"]) == ("list", True)
    assert [a["id"] for a in page["data"]] == [made[2], made[1]]  # newest first
    after = page["data"][-1]["id"]
    status, rest, _ = send(
        world, "GET", f"/v1/issuing/accounts?limit=2&starting_after={after}", auth
    )
    assert [a["id"] for a in rest["data"]] == [made[0], world.account]
    assert rest["has_more"] is False
    status, default, _ = send(world, "GET", "/v1/issuing/accounts", auth)
    assert len(default["data"]) == 4
    assert default["has_more"] is False

    status, credited, _ = send(
        world, "POST", f"/v1/issuing/accounts/{made[0]}/credit", auth, {"amount": 1250}
    )
    assert (status, credited["balance"], credited["available"]) == (200, 1250, 1250)
    status, closed, _ = send(
        world, "POST", f"/v1/issuing/accounts/{made[0]}", auth, {"status": "closed"}
    )
    assert (status, closed["status"]) == (200, "closed")
    status, again, _ = send(
        world, "POST", f"/v1/issuing/accounts/{made[0]}", auth, {"status": "closed"}
    )
    assert (status, again["error"]["code"]) == (409, "conflict")
    status, only, _ = send(world, "GET", "/v1/issuing/accounts?status=closed", auth)
    assert [a["id"] for a in only["data"]] == [made[0]]

    actions = [
        (r.action, r.object_id, r.outcome) for r in audit(world.app, actor=f"operator:{op_id}")
    ]
    assert actions[:3] == [
        ("account.update", made[0], "failed"),
        ("account.close", made[0], "succeeded"),
        ("account.credit", made[0], "succeeded"),
    ]
    assert [a for a in actions if a[0] == "account.create"] == [
        ("account.create", i, "succeeded") for i in reversed(made)
    ]


def test_cards_issued_registered_listed_and_paused_never_unmasked(
    world: World, ops: tuple[str, str]
) -> None:
    _, auth = ops
    answers: list[Any] = []
    status, issued, _ = send(
        world, "POST", "/v1/issuing/cards", auth, {"account": world.account, "scheme": "visa"}
    )
    answers.append(issued)
    assert status == 201, issued
    assert issued["pan"].startswith("476173")
    assert "*" in issued["pan"]
    assert issued["origin"] == "provisioned"
    register = {"account": world.account, "scheme": "visa", "pan": PAN, "expiry": "2031-12",
                "cvn": 18, "psn": "01"}  # fmt: skip
    status, registered, _ = send(world, "POST", "/v1/issuing/cards/register", auth, register)
    answers.append(registered)
    assert status == 201, registered
    assert (registered["pan"], registered["origin"]) == ("476173******0010", "registered")
    status, twice, _ = send(world, "POST", "/v1/issuing/cards/register", auth, register)
    answers.append(twice)
    assert (status, twice["error"]["code"]) == (409, "conflict")

    status, page, _ = send(world, "GET", f"/v1/issuing/cards?account={world.account}&limit=2", auth)
    answers.append(page)
    assert [c["id"] for c in page["data"]] == [registered["id"], issued["id"]]
    assert page["has_more"] is True  # the world's own card
    status, rest, _ = send(world, "GET", f"/v1/issuing/cards?starting_after={issued['id']}", auth)
    assert [c["id"] for c in rest["data"]] == [world.card_id]

    card = registered["id"]
    for wanted in ("paused", "active", "closed"):
        status, changed, _ = send(
            world, "POST", f"/v1/issuing/cards/{card}", auth, {"status": wanted}
        )
        answers.append(changed)
        assert (status, changed["status"]) == (200, wanted)
    status, refused, _ = send(
        world, "POST", f"/v1/issuing/cards/{card}", auth, {"status": "active"}
    )
    assert (status, refused["error"]["code"]) == (409, "conflict")
    status, shown, _ = send(world, "GET", f"/v1/issuing/cards/{card}", auth)
    answers.append(shown)
    assert shown["status"] == "closed"

    records = audit(world.app, object_id=card)
    assert [(r.action, r.outcome) for r in records] == [
        ("card.update", "failed"), ("card.close", "succeeded"), ("card.resume", "succeeded"),
        ("card.suspend", "succeeded"), ("card.register", "succeeded"),
    ]  # fmt: skip
    assert records[-1].to_json()["details"]["pan"] == "476173******0010"
    everything = _texts(answers) + _texts([r.to_json() for r in audit(world.app)])
    assert PAN not in everything


def test_tokens_made_listed_and_suspended(world: World, ops: tuple[str, str]) -> None:
    _, auth = ops
    body = {"card": world.card_id, "requestor_id": "40010030273", "allowed_mccs": ["5411"]}
    status, token, _ = send(world, "POST", "/v1/issuing/tokens", auth, body)
    assert status == 201, token
    assert (token["object"], token["card"], token["allowed_mccs"]) == (
        "token",
        world.card_id,
        ["5411"],
    )
    assert token["token"].count("*") == 6
    status, listed, _ = send(world, "GET", f"/v1/issuing/tokens?card={world.card_id}", auth)
    assert [t["id"] for t in listed["data"]] == [token["id"]]
    status, changed, _ = send(
        world, "POST", f"/v1/issuing/tokens/{token['id']}", auth, {"status": "suspended"}
    )
    assert (status, changed["status"]) == (200, "suspended")
    status, got, _ = send(world, "GET", f"/v1/issuing/tokens/{token['id']}", auth)
    assert got["status"] == "suspended"
    both = {**body, "blocked_mccs": ["4111"]}
    status, refused, _ = send(world, "POST", "/v1/issuing/tokens", auth, both)
    assert (status, refused["error"]["code"]) == (400, "invalid_request")


def test_a_terminal_added_by_api_authorises_until_revoked(
    world: World, ops: tuple[str, str]
) -> None:
    _, auth = ops
    body = {"merchant": "Kiosk", "mcc": "5814"}
    status, added, _ = send(world, "POST", "/v1/issuing/terminals", auth, body, key="t-1")
    assert status == 201, added
    assert added["credential"].startswith("tsk_")
    assert added["certificate"] is None
    terminal_auth = f"Bearer {added['id']}:{added['credential']}"
    status, replayed, headers = send(world, "POST", "/v1/issuing/terminals", auth, body, key="t-1")
    assert (status, replayed["id"], replayed["credential"]) == (201, added["id"], None)
    assert headers["idempotent-replayed"] == "true"
    status, listed, _ = send(world, "GET", "/v1/issuing/terminals", auth)
    assert [t["id"] for t in listed["data"]] == [added["id"], world.terminal]
    assert all(t["credential"] is None for t in listed["data"])

    assert send(world, "GET", "/v1/authorisations", terminal_auth)[0] == 200
    status, revoked, _ = send(
        world, "POST", f"/v1/issuing/terminals/{added['id']}", auth, {"status": "revoked"}
    )
    assert (status, revoked["status"]) == (200, "revoked")
    assert send(world, "GET", "/v1/authorisations", terminal_auth)[0] == 401


def test_ranges_need_the_keys_scope(world: World) -> None:
    _, keys = operator(world.app, "keys")
    _, ops = operator(world.app, "operations")
    _, reader = operator(world.app, "read")
    body = {"scheme": "visa", "prefix": "455123", "cvn": 18}
    status, refused, _ = send(world, "POST", "/v1/issuing/ranges", ops, body)
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    status, added, _ = send(world, "POST", "/v1/issuing/ranges", keys, body)
    assert status == 201, added
    assert (added["object"], added["prefix"], added["status"]) == ("range", "455123", "active")
    status, overlapping, _ = send(
        world, "POST", "/v1/issuing/ranges", keys, {**body, "prefix": "4551234"}
    )
    assert (status, overlapping["error"]["code"]) == (409, "conflict")
    for auth in (keys, reader):
        status, got, _ = send(world, "GET", "/v1/issuing/ranges/455123", auth)
        assert (status, got["scheme"]) == (200, "visa")
    status, page, _ = send(world, "GET", "/v1/issuing/ranges?limit=1", reader)
    assert ([r["prefix"] for r in page["data"]], page["has_more"]) == (["455123"], True)
    status, rest, _ = send(
        world, "GET", "/v1/issuing/ranges?limit=100&starting_after=455123", reader
    )
    assert sorted(r["prefix"] for r in rest["data"]) == sorted(r.prefix for r in DEFAULT_RANGES)
    status, retired, _ = send(
        world, "POST", "/v1/issuing/ranges/455123", keys, {"status": "retired"}
    )
    assert (status, retired["status"]) == (200, "retired")
    status, nothing, _ = send(world, "GET", "/v1/issuing/ranges/999999", keys)
    assert (status, nothing["error"]["code"]) == (404, "not_found")


def test_authorisations_are_read_only(world: World, ops: tuple[str, str]) -> None:
    _, auth = ops
    result = tap(world.card, 700)
    decided = authorise(world, result.authorisation_data, result.track2, "a-1")
    status, listed, _ = send(world, "GET", f"/v1/issuing/authorisations?card={world.card_id}", auth)
    assert status == 200
    assert [(a["id"], a["amount"], a["terminal"]) for a in listed["data"]] == [
        (decided["id"], 700, world.terminal)
    ]
    status, got, _ = send(world, "GET", f"/v1/issuing/authorisations/{decided['id']}", auth)
    assert (status, got["object"], got["status"]) == (200, "authorisation", "pending")
    status, answer, _ = send(world, "POST", f"/v1/issuing/authorisations/{decided['id']}", auth, {})
    assert (status, answer["error"]["code"]) == (405, "method_not_allowed")


def test_a_missing_scope_is_403_and_audited_and_changes_nothing(world: World) -> None:
    reader_id, reader = operator(world.app, "read")
    status, refused, _ = send(world, "POST", "/v1/issuing/accounts", reader, {"holder": "Eve"})
    assert (status, refused["error"]["code"]) == (403, "forbidden")
    assert "operations" in refused["error"]["message"]
    status, refused, _ = send(
        world, "POST", f"/v1/issuing/cards/{world.card_id}", reader, {"status": "closed"}
    )
    assert status == 403
    assert world.app.service.card(world.card_id).status.value == "active"
    assert [a.holder for a in world.app.service.accounts()] == ["Ada Lovelace"]
    records = audit(world.app, actor=f"operator:{reader_id}")
    assert [(r.action, r.object_id, r.outcome) for r in records] == [
        ("card.update", world.card_id, "refused"),
        ("account.create", "-", "refused"),
    ]
    assert records[0].to_json()["details"]["scopes"] == ["operations"]
    assert send(world, "GET", "/v1/issuing/cards", reader)[0] == 200  # read is enough


def test_terminal_and_operator_credentials_never_cross(world: World, ops: tuple[str, str]) -> None:
    _, auth = ops
    for path in ("/v1/issuing/accounts", f"/v1/issuing/cards/{world.card_id}"):
        status, answer, headers = send(world, "GET", path, world.auth)
        assert (status, answer["error"]["code"]) == (401, "unauthorised"), path
        assert headers["www-authenticate"].startswith("Bearer")
    status, _, _ = send(world, "POST", "/v1/issuing/accounts", world.auth, {"holder": "X"})
    assert status == 401
    for path in ("/v1/authorisations", "/v1/authorisations/txn_aaaaaaaaaaaaaaaa"):
        status, answer, _ = send(world, "GET", path, auth)
        assert (status, answer["error"]["code"]) == (401, "unauthorised"), path
    status, _, _ = send(
        world, "POST", "/v1/refunds", auth, {"authorisation": "txn_aaaaaaaaaaaaaaaa", "amount": 1}
    )
    assert status == 401
    op_id = auth.split()[1].partition(":")[0]
    wrong = f"Bearer {op_id}:osk_not-the-credential"
    assert send(world, "GET", "/v1/issuing/accounts", wrong)[0] == 401
    assert send(world, "GET", "/v1/issuing/accounts", "Bearer op_aaaaaaaaaaaaaaaa:osk_x")[0] == 401
    assert send(world, "GET", "/v1/issuing/accounts", "")[0] == 401


def test_a_revoked_operator_is_refused_from_its_next_request(
    world: World, ops: tuple[str, str], other: IssuerService
) -> None:
    op_id, auth = ops
    assert send(world, "GET", "/v1/issuing/accounts", auth)[0] == 200  # cached now
    other.revoke_operator(op_id)  # another process: the CLI
    status, answer, _ = send(world, "GET", "/v1/issuing/accounts", auth)
    assert (status, answer["error"]["code"]) == (401, "unauthorised")


def test_an_idempotency_key_replays_and_refuses_another_body(
    world: World, ops: tuple[str, str]
) -> None:
    _, auth = ops
    path = f"/v1/issuing/accounts/{world.account}/credit"
    first = send(world, "POST", path, auth, {"amount": 500}, key="credit-1")
    again = send(world, "POST", path, auth, {"amount": 500}, key="credit-1")
    assert (first[0], again[0]) == (200, 200)
    assert first[1]["balance"] == again[1]["balance"] == 10_500  # credited once
    assert again[2]["idempotent-replayed"] == "true"
    status, answer, _ = send(world, "POST", path, auth, {"amount": 501}, key="credit-1")
    assert (status, answer["error"]["code"]) == (409, "idempotency_conflict")
    assert world.app.service.account(world.account).balance == 10_500
    credits = [r for r in audit(world.app) if r.action == "account.credit"]
    assert len(credits) == 1


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=" + "9" * 40, "limit"),
        ("limit=ten", "limit"),
        ("starting_after=acct_aaaaaaaaaaaaaaaa", "starting_after"),
        ("starting_after=" + "x" * 5000, "starting_after"),
        ("status=frozen", "status"),
        ("undocumented=1", "undocumented"),
    ],
)
def test_bad_queries_are_clean_400s(
    world: World, ops: tuple[str, str], query: str, word: str
) -> None:
    _, auth = ops
    status, answer, _ = send(world, "GET", f"/v1/issuing/accounts?{query}", auth)
    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert word in answer["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"holder": ""}', "invalid_request"),
        (b'{"holder": "A", "credit_limit": -1}', "invalid_request"),
        (b'{"holder": "A", "kind": "savings"}', "invalid_request"),
        (b'{"holder": "A", "currency": "XYZ"}', "invalid_request"),
        (b'{"holder": "A", "extra": 1}', "invalid_request"),
        (b"{}", "invalid_request"),
    ],
)
def test_bad_bodies_are_clean_400s(
    world: World, ops: tuple[str, str], body: bytes, code: str
) -> None:
    _, auth = ops
    status, answer, _ = send(world, "POST", "/v1/issuing/accounts", auth, body)
    assert (status, answer["error"]["code"]) == (400, code), answer
    assert "Traceback" not in answer["error"]["message"]


def test_a_post_without_an_idempotency_key_and_unknown_objects(
    world: World, ops: tuple[str, str]
) -> None:
    _, auth = ops
    answer = call(
        world.http, "POST", "/v1/issuing/accounts", {"authorization": auth}, b'{"holder": "A"}'
    )
    assert answer.status == 400
    assert b"Idempotency-Key" in answer.body
    for path in ("/v1/issuing/cards/card_aaaaaaaaaaaaaaaa", "/v1/issuing/accounts/sys_funding"):
        status, body, _ = send(world, "GET", path, auth)
        assert status == 404, path
    status, body, _ = send(world, "GET", "/v1/issuing/cards/not-an-id", auth)
    assert (status, body["error"]["message"]) == (404, "no such endpoint")


def test_the_audit_log_refuses_update_and_delete(world: World, ops: tuple[str, str]) -> None:
    _, auth = ops
    send(world, "POST", "/v1/issuing/accounts", auth, {"holder": "Audited"})
    assert audit(world.app)
    statements = ["UPDATE audit_log SET outcome = 'refused'", "DELETE FROM audit_log"]
    if world.app.ledger.dialect == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with world.app.ledger.unit_of_work() as uow:
            assert isinstance(uow, SqlUnitOfWork)
            with pytest.raises(IntegrityError, match="append-only"):
                uow.db.run(statement)
    assert [r.action for r in audit(world.app)] == ["account.create"]  # still there
