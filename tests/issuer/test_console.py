"""The issuer's web console through its ASGI application, on both ledgers, with real
taps decided by the service: signing in with an operator's credential (and out again
once revoked), every page masked, an authorisation arriving in the live fragment, a
card suspended after a confirmation (as the operator, in the audit log) and the next
tap declined, a read operator shown no action and refused (audited), forms without
the session's CSRF token refused, an event resent, spending controls shown."""

from __future__ import annotations

import re
from datetime import date

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.console import IssuerConsole
from issuer.domain.controls import Changes, set_controls
from issuer.domain.webhooks import Webhooks
from issuer.model.controls import ControlLevel
from tests.issuer.helpers import World, make_world, send, tap
from tests.issuer.operator_kit import PAN, audit
from tests.support.console import ConsoleClient

PAGES = (
    "/authorisations", "/accounts", "/cards", "/tokens", "/terminals", "/ranges", "/events",
    "/webhooks", "/controls",
)  # fmt: skip


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.fixture
def console(world: World) -> IssuerConsole:
    return IssuerConsole(world.app)


def signed_in(console: IssuerConsole, *scopes: str) -> tuple[ConsoleClient, str]:
    """A browser signed in as a new operator holding ``scopes``, and its id."""
    made, credential = console.app.service.add_operator("Olga", scopes)
    browser = ConsoleClient(console)
    answer = browser.sign_in(made.id, credential)
    assert answer.status == 303, answer.body
    return browser, made.id


def pay(world: World, amount: int, key: str) -> dict[str, object]:
    """A tap of the world's card, decided by the service."""
    result = tap(world.card, amount)
    return send(world, result.authorisation_data, result.track2, key)


def test_an_operator_signs_in_with_its_credential_until_revoked(
    world: World, console: IssuerConsole
) -> None:
    made, credential = world.app.service.add_operator("Olga", ["read"])
    browser = ConsoleClient(console)
    assert browser.get("/cards").status == 303
    assert browser.sign_in(made.id, credential[:-1] + "x").status == 401
    assert browser.sign_in(world.terminal, credential).status == 401
    assert browser.sign_in(made.id, credential).status == 303
    page = browser.get("/cards").body.decode()
    assert "Olga" in page
    assert world.card_id in page
    world.app.service.revoke_operator(made.id)
    gone = browser.get("/cards")
    assert gone.status == 303
    assert gone.headers["location"].startswith("/sign-in")


def test_no_page_shows_a_full_pan(world: World, console: IssuerConsole) -> None:
    s = world.app.service
    registered = s.register_card(
        world.account, "visa", PAN, psn="01", expiry=date(2030, 12, 31), cvn=18
    )
    pay(world, 700, "m-1")
    browser, _ = signed_in(console, "operations", "keys")
    clear = s.reveal(s.card(world.card_id))
    txn = s.page("authorisations", limit=1).data[0].id
    paths = [*PAGES, f"/cards/{world.card_id}", f"/cards/{registered.id}",
             f"/accounts/{world.account}", f"/authorisations/{txn}",
             f"/cards/{registered.id}/suspend", "/authorisations/live?after="]  # fmt: skip
    for path in paths:
        answer = browser.get(path)
        assert answer.status == 200, (path, answer.body[:400])
        body = answer.body.decode()
        for pan in (PAN, clear):
            assert pan not in body, path
    assert "476173******0010" in browser.get(f"/cards/{registered.id}").body.decode()


def test_a_tap_arrives_live_and_a_suspended_card_declines_the_next(
    world: World, console: IssuerConsole
) -> None:
    browser, op_id = signed_in(console, "operations")
    first = pay(world, 500, "t-1")
    page = browser.get("/authorisations").body.decode()
    assert f'data-live-cursor="{first["id"]}"' in page
    assert browser.get(f"/authorisations/live?after={first['id']}").body == b""
    second = pay(world, 600, "t-2")
    live = browser.get(f"/authorisations/live?after={first['id']}")
    assert live.headers["x-live-cursor"] == second["id"]
    rows = live.body.decode()
    assert second["id"] in rows
    assert first["id"] not in rows
    assert "approved" in rows

    card = f"/cards/{world.card_id}"
    assert f'href="{card}/suspend"' in browser.get(card).body.decode()
    asked = browser.get(f"{card}/suspend").body.decode()
    assert "Suspend this card?" in asked
    assert 'name="confirm" value="yes"' in asked
    unconfirmed = browser.post(f"{card}/suspend", {})
    assert unconfirmed.status == 200
    assert world.app.service.card(world.card_id).status.value == "active"
    done = browser.post(f"{card}/suspend", {"confirm": "yes"})
    assert done.status == 303
    assert world.app.service.card(world.card_id).status.value == "paused"
    assert "suspended" in browser.get(done.headers["location"]).body.decode()
    [record] = [r for r in audit(world.app, actor=f"operator:{op_id}")]
    assert (record.action, record.object_id, record.outcome) == (
        "card.suspend",
        world.card_id,
        "succeeded",
    )

    declined = pay(world, 700, "t-3")
    rows = browser.get(f"/authorisations/live?after={second['id']}").body.decode()
    assert declined["id"] in rows
    assert "declined" in rows
    assert not world.app.service.authorisation(str(declined["id"])).approved
    assert f'href="{card}/resume"' in browser.get(card).body.decode()
    assert browser.post(f"{card}/resume", {"confirm": "yes"}).status == 303
    assert world.app.service.card(world.card_id).status.value == "active"


def test_a_read_operator_sees_no_action_and_is_refused_in_the_audit_log(
    world: World, console: IssuerConsole
) -> None:
    browser, op_id = signed_in(console, "read")
    card = f"/cards/{world.card_id}"
    page = browser.get(card).body.decode()
    assert "/suspend" not in page
    assert browser.get("/ranges").status == 403
    assert browser.post(f"{card}/suspend", {"confirm": "yes"}).status == 403
    assert world.app.service.card(world.card_id).status.value == "active"
    refusals = audit(world.app, actor=f"operator:{op_id}")
    assert [(r.outcome, r.object_id) for r in refusals] == [
        ("refused", f"{card}/suspend"), ("refused", "/ranges"),
    ]  # fmt: skip


def test_a_form_without_the_sessions_token_changes_nothing(
    world: World, console: IssuerConsole
) -> None:
    browser, op_id = signed_in(console, "operations")
    card = f"/cards/{world.card_id}/suspend"
    assert browser.post(card, {"confirm": "yes"}, csrf=False).status == 403
    assert browser.post(card, {"confirm": "yes", "csrf": "guess"}, csrf=False).status == 403
    other, _ = signed_in(console, "operations")
    assert browser.post(card, {"confirm": "yes", "csrf": other.csrf}, csrf=False).status == 403
    assert world.app.service.card(world.card_id).status.value == "active"
    assert audit(world.app, actor=f"operator:{op_id}") == []


def test_an_event_is_resent_after_a_confirmation_and_audited(
    world: World, console: IssuerConsole
) -> None:
    browser, op_id = signed_in(console, "operations")
    pay(world, 500, "e-1")
    found = re.search(r'href="/events/([a-z]+_[a-z2-7]{16})"', browser.get("/events").body.decode())
    assert found is not None
    event_id = found.group(1)
    shown = browser.get(f"/events/{event_id}").body.decode()
    assert "Webhook deliveries" in shown
    # No endpoint yet: the domain refuses, the console says so and audits it failed.
    refused = browser.post(f"/events/{event_id}/resend", {"confirm": "yes"})
    assert refused.status == 409
    assert "no enabled webhook endpoint" in refused.body.decode()
    Webhooks(world.app.ledger, world.app.keys).add("https://hooks.example/tapstack", ["*"])
    assert browser.post(f"/events/{event_id}/resend", {"confirm": "yes"}).status == 303
    shown = browser.get(f"/events/{event_id}").body.decode()
    assert "pending" in shown
    records = audit(world.app, actor=f"operator:{op_id}")
    assert [(r.action, r.outcome) for r in records] == [
        ("event.resend", "succeeded"), ("event.resend", "failed"),
    ]  # fmt: skip


def test_spending_controls_are_listed_and_shown_where_they_apply(
    world: World, console: IssuerConsole
) -> None:
    set_controls(
        world.app.ledger, ControlLevel.ACCOUNT, world.account,
        Changes(allowed_mccs=["5411"], limits={"daily_amount": 5000}),
    )  # fmt: skip
    set_controls(
        world.app.ledger, ControlLevel.CARD, world.card_id, Changes(max_per_transaction=3000)
    )
    browser, _ = signed_in(console, "read")
    listed = browser.get("/controls").body.decode()
    assert f'href="/accounts/{world.account}"' in listed
    assert f'href="/cards/{world.card_id}"' in listed
    card = browser.get(f"/cards/{world.card_id}").body.decode()
    assert "allowed mccs 5411; daily amount 5000" in card  # the account's, applying
    assert "at most 3000 per transaction" in card  # the card's own
