"""Events (the outbox) on both ledgers: each state change writes its event in the
transaction of the change, none for a change that rolled back; events carry their
object masked, numbered per object; listing pages with a cursor."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.domain import events, funds
from issuer.domain.clearing import Clearing
from issuer.domain.events import Events
from issuer.errors import NotFoundError, ValidationError
from issuer.ledger.repository import UnitOfWork
from issuer.model.entities import Account, AccountKind, AccountStatus, new_id, utc_now
from tests.issuer.helpers import World, make_world, send, tap


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


def _of(app: IssuerApp, object_id: str) -> list[dict[str, Any]]:
    """The events of an object, oldest first, as JSON."""
    page = Events(app.ledger).list(object_id=object_id, limit=100)
    return [e.to_json() for e in reversed(page.events)]


def test_an_authorisation_and_its_life_are_events_of_its_transaction(world: World) -> None:
    app = world.app
    result = tap(world.card, 700)
    decision = send(world, result.authorisation_data, result.track2, "k1")
    txn = decision["id"]
    clearing = Clearing(app)
    terminal = app.service.terminal(world.terminal)
    clearing.complete(terminal, txn, 600, "cap-1")
    refund = clearing.refund(terminal, txn, 200, "ref-1")
    found = _of(app, txn)
    assert [(e["type"], e["sequence"]) for e in found] == [
        ("authorisation.approved", 1),
        ("authorisation.captured", 2),
    ]
    approved, captured = (e["data"] for e in found)
    assert approved["object"]["status"] == "pending"
    assert approved["object"]["held_amount"] == 700
    assert captured["object"]["status"] == "closed"
    assert captured["object"]["captured_amount"] == 600
    assert captured["previous_attributes"] == {"status": "pending"}
    assert all(e["terminal"] == world.terminal for e in found)
    (made,) = _of(app, refund.id)
    assert (made["type"], made["sequence"]) == ("refund.created", 1)
    assert made["data"]["object"]["parent"] == txn
    # Masked data only: neither the PAN nor the track 2 of the card is in any event.
    pan = result.track2.hex().upper().split("D")[0]
    every = json.dumps(Events(app.ledger).list(limit=1000).to_json()).upper()
    assert pan not in every
    assert result.track2.hex().upper() not in every


def test_a_decline_a_reversal_and_an_expiry_are_events(world: World) -> None:
    app = world.app
    first = tap(world.card, 300)
    txn = send(world, first.authorisation_data, first.track2, "a")["id"]
    declined = send(world, first.authorisation_data, first.track2, "b")  # the same ATC
    assert declined["approved"] is False
    assert [e["type"] for e in _of(app, declined["id"])] == ["authorisation.declined"]
    assert _of(app, declined["id"])[0]["data"]["object"]["decline_reason"] == "ATC_REPLAYED"
    Clearing(app).reverse(app.service.terminal(world.terminal), txn, "rev-1")
    assert [e["type"] for e in _of(app, txn)][-1] == "authorisation.reversed"
    second = tap(world.card, 400)
    held = send(world, second.authorisation_data, second.track2, "c")["id"]
    with app.ledger.unit_of_work() as uow:
        assert funds.expire_due(uow, "2999-01-01T00:00:00.000000Z") == [held]
        uow.commit()
    expired = _of(app, held)
    assert [(e["type"], e["sequence"]) for e in expired] == [
        ("authorisation.approved", 1),
        ("authorisation.expired", 2),
    ]
    assert expired[1]["data"]["object"]["status"] == "expired"
    assert expired[1]["data"]["previous_attributes"] == {"status": "pending"}
    assert app.ledger.check() == []


def test_the_operators_changes_are_events(world: World) -> None:
    app, s = world.app, world.app.service
    account = s.create_account("Grace Hopper")
    s.credit_account(account.id, 2_500)
    card = s.issue_card(account.id, "visa").card
    s.pause_card(card.id)
    s.close_account(account.id)
    assert [(e["type"], e["sequence"]) for e in _of(app, account.id)] == [
        ("account.created", 1),
        ("account.credited", 2),
        ("account.status_changed", 3),
    ]
    credited = _of(app, account.id)[1]["data"]
    assert (credited["object"]["balance"], credited["previous_attributes"]) == (
        2_500,
        {"balance": 0},
    )
    changes = _of(app, card.id)
    assert [(e["data"]["previous_attributes"]["status"], e["data"]["object"]["status"])
            for e in changes] == [("active", "paused"), ("paused", "closed")]  # fmt: skip
    assert [e["sequence"] for e in changes] == [1, 2]
    assert changes[0]["data"]["object"]["pan"] == card.pan_masked


def _new_account(uow: UnitOfWork, holder: str) -> Account:
    account = Account(
        new_id("acct"), holder, AccountKind.DEBIT, "EUR", 0, AccountStatus.OPEN, utc_now()
    )
    uow.accounts.add(account)
    events.account_created(uow, account)
    return account


def test_no_event_outlives_a_rolled_back_change(issuer: IssuerApp) -> None:
    with issuer.ledger.unit_of_work() as uow:
        gone = _new_account(uow, "Rolled Back")
        uow.rollback()
    with issuer.ledger.unit_of_work() as uow:
        kept = _new_account(uow, "Committed")
        uow.commit()

    def bad(uow: UnitOfWork) -> None:
        _new_account(uow, "Raises")
        raise ValueError("this job fails")

    made: list[Account] = []
    results = issuer.writes.run_batch(
        [(lambda uow: made.append(_new_account(uow, "Batch 1")), "a"), (bad, "b"),
         (lambda uow: made.append(_new_account(uow, "Batch 2")), "c")]
    )  # fmt: skip
    assert isinstance(results[1], ValueError)
    page = Events(issuer.ledger).list(event_type="account.created", limit=100)
    holders = {e.to_json()["data"]["object"]["holder"] for e in page.events}
    assert {"Committed", "Batch 1", "Batch 2"} <= holders
    assert not {"Rolled Back", "Raises"} & holders
    assert _of(issuer, gone.id) == []
    assert len(_of(issuer, kept.id)) == 1


def test_events_page_newest_first_with_a_cursor(issuer: IssuerApp) -> None:
    made = [issuer.service.create_account(f"Holder {i}").id for i in range(5)]
    api = Events(issuer.ledger)
    first = api.list(event_type="account.created", limit=2)
    assert [e.object_id for e in first.events] == made[:-3:-1]
    assert first.has_more
    rest = api.list(event_type="account.created", limit=10, starting_after=first.events[-1].id)
    assert [e.object_id for e in rest.events][:3] == made[2::-1]
    assert not rest.has_more
    with pytest.raises(NotFoundError):
        api.list(starting_after="evt_nosuchevent23456")
    with pytest.raises(ValidationError):
        api.list(event_type="authorisation.requested")
    event, deliveries = api.get(first.events[0].id)
    assert (event.type.value, deliveries) == ("account.created", [])


@pytest.mark.postgres
def test_each_ledger_of_one_database_has_its_own_event_dispatcher(postgres_url: str) -> None:
    """The dispatcher's advisory lock is per schema: the ledgers of two schemas of one
    database each dispatch their events, and a second dispatcher of one ledger waits."""
    import uuid

    import psycopg

    from issuer.ledger.postgres import PostgresLedger

    names = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    a, b = (PostgresLedger(postgres_url, schema=name) for name in names)
    try:
        a.migrate()
        b.migrate()
        with a.unit_of_work() as holder, b.unit_of_work() as neighbour:
            assert holder.events.dispatch_lock()
            assert neighbour.events.dispatch_lock()
            with a.unit_of_work() as rival:
                assert not rival.events.dispatch_lock()
    finally:
        a.close()
        b.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
