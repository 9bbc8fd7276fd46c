"""Spending controls on both ledgers (issuer/domain/controls.py): each control declines
for its reason, naming itself, with nothing held; the controls of a token, its card
and their account all apply; period limits count what was spent (reversals given
back) and hold within one group-commit batch and across concurrent ones; partial
approval; incremental authorisation; controls are met only by a request that proved
its cryptogram."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from emvwire.contract import IncrementDecision
from emvwire.tls import DEV_PLAIN_HTTP
from hostlink import HostClient, HostError
from issuer.bootstrap import IssuerApp
from issuer.domain.authorise import Authoriser
from issuer.domain.controls import (
    Changes,
    applying,
    clear_controls,
    period_start,
    set_controls,
    usage,
)
from issuer.domain.service import IssuerService
from issuer.errors import NotFoundError, ValidationError
from issuer.model.controls import ControlLevel, Period
from tests.issuer.controls_kit import Payer, Shop
from tests.issuer.helpers import edit
from tests.support.asgi import call
from tests.support.servers import asgi_serving


@pytest.fixture
def shop(issuer: IssuerApp) -> Shop:
    return Shop(issuer)


def _set(shop: Shop, level: str, subject: str, **changes: Any) -> None:
    limits = changes.pop("limits", {})
    set_controls(shop.app.ledger, ControlLevel(level), subject, Changes(**changes, limits=limits))


def _declined(
    shop: Shop, payer: Payer, amount: int, control: tuple[str, str], code: str
) -> dict[str, Any]:
    before = shop.balances()
    answer = shop.pay(payer, amount)
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "SPENDING_CONTROL",
        code,
    ), answer
    assert answer["control"] == {"name": control[0], "level": control[1]}
    assert answer["approved_amount"] is None
    assert shop.balances() == before
    return answer


def _events(shop: Shop, txn: str) -> list[tuple[str, int]]:
    with shop.app.ledger.unit_of_work(write=False) as uow:
        return [(e.kind, e.amount) for e in uow.authorisations.events(txn)]


def test_a_blocked_mcc_declines_naming_the_control_after_the_atc(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, blocked_mccs=["7995", "5411"])
    icc = card.blob(500)
    body = {"icc_data": icc.hex(), "track2": card.track2.hex()}
    status, answer = shop.post("/v1/authorisations", body, "k1")
    assert (status, answer["reason"], answer["response_code"]) == (200, "SPENDING_CONTROL", "57")
    assert answer["control"] == {"name": "blocked_mccs", "level": "card"}
    assert len(answer["arpc"]) == 8  # the card is told, authenticated
    # The ATC was recorded before the control declined: the same cryptogram again is
    # a replay, whatever the controls say.
    status, again = shop.post("/v1/authorisations", body, "k2")
    assert (again["reason"], again["control"]) == ("ATC_REPLAYED", None)
    assert shop.balances() == (100_000, 0)
    _set(shop, "card", card.id, blocked_mccs=None)
    assert shop.pay(card, 500)["approved"]


def test_a_request_that_does_not_prove_its_cryptogram_learns_nothing_of_the_controls(
    shop: Shop,
) -> None:
    card = shop.card()
    _set(shop, "card", card.id, blocked_mccs=["5411"], limits={"daily_count": 1})
    forged = edit(card.blob(500), t9F02=bytes.fromhex("000000000005"))
    status, answer = shop.post(
        "/v1/authorisations", {"icc_data": forged.hex(), "track2": card.track2.hex()}
    )
    assert (status, answer["reason"], answer["control"]) == (200, "CRYPTOGRAM_INVALID", None)
    assert answer["response_code"] == "82"


def test_allowed_mccs_of_the_account_apply_to_its_cards_and_tokens(shop: Shop) -> None:
    card = shop.card()
    token = shop.token(card.id)
    _set(shop, "account", shop.account, allowed_mccs=["5812", "5814"])
    for payer in (card, token):
        _declined(shop, payer, 300, ("allowed_mccs", "account"), "57")
    _set(shop, "account", shop.account, allowed_mccs=["5812", "5411"])
    assert shop.pay(token, 300)["approved"]
    assert [c.level for c in applying(shop.app.ledger, ControlLevel.TOKEN, token.id)] == [
        ControlLevel.ACCOUNT
    ]


def test_merchant_countries_allowed_or_blocked(shop: Shop) -> None:
    card = shop.card()
    token = shop.token(card.id)
    _set(shop, "token", token.id, blocked_countries=["250"])  # the terminal's: 0250
    _declined(shop, token, 100, ("blocked_countries", "token"), "57")
    assert shop.pay(card, 100)["approved"]  # a token's control is the token's only
    _set(shop, "card", card.id, allowed_countries=["0276", "0040"])
    _declined(shop, card, 100, ("allowed_countries", "card"), "57")
    # The most specific control is named when several decline.
    _declined(shop, token, 100, ("blocked_countries", "token"), "57")


def test_lists_are_allowed_or_blocked_never_both_and_bad_values_are_refused(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, allowed_mccs=["5411"])
    with pytest.raises(ValidationError, match="never both"):
        _set(shop, "card", card.id, blocked_mccs=["7995"])
    _set(shop, "card", card.id, allowed_mccs=None, blocked_mccs=["7995"])
    with pytest.raises(ValidationError, match="never both"):
        _set(shop, "card", card.id, allowed_countries=["250"], blocked_countries=["276"])
    for bad in (
        {"blocked_mccs": ["54a1"]},
        {"blocked_mccs": []},
        {"allowed_countries": ["25"]},
        {"allowed_countries": ["1250"]},
        {"max_per_transaction": 0},
        {"limits": {"daily_amount": -5}},
        {"limits": {"fortnightly_amount": 5}},
        {"limits": {"daily_count": 10**10}},
    ):
        with pytest.raises(ValidationError):
            _set(shop, "card", card.id, **bad)
    with pytest.raises(NotFoundError):
        _set(shop, "card", "card_aaaaaaaaaaaaaaaa", blocked_mccs=["7995"])
    with pytest.raises(NotFoundError):
        _set(shop, "account", "sys_holds", blocked_mccs=["7995"])
    found = applying(shop.app.ledger, ControlLevel.CARD, card.id)
    assert [(c.blocked_mccs, c.allowed_mccs) for c in found] == [(("7995",), None)]
    assert clear_controls(shop.app.ledger, ControlLevel.CARD, card.id) is True
    assert clear_controls(shop.app.ledger, ControlLevel.CARD, card.id) is False


def test_the_maximum_per_transaction_declines_or_approves_in_part(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, max_per_transaction=1000)
    _declined(shop, card, 1500, ("max_per_transaction", "card"), "61")
    partial = shop.pay(card, 1500, partial=True)
    assert (partial["approved"], partial["response_code"], partial["reason"]) == (True, "10", None)
    assert (partial["amount"], partial["approved_amount"]) == (1500, 1000)
    assert partial["control"] == {"name": "max_per_transaction", "level": "card"}
    assert shop.balances() == (100_000, 1000)
    full = shop.pay(card, 800)
    assert (full["response_code"], full["approved_amount"], full["control"]) == ("00", 800, None)
    status, record = shop.post(f"/v1/authorisations/{partial['id']}/complete", {})
    assert (status, record["captured_amount"]) == (200, 1000)


def test_a_daily_limit_counts_what_is_spent_and_gives_back_a_reversal(shop: Shop) -> None:
    card = shop.card()
    token = shop.token(card.id)
    _set(shop, "card", card.id, limits={"daily_amount": 1000})
    first = shop.pay(card, 600)
    assert first["approved"]
    # The card's limit counts its tokens' spending too.
    _declined(shop, token, 500, ("daily_amount", "card"), "61")
    status, _ = shop.post(f"/v1/authorisations/{first['id']}/reversal", {})
    assert status == 200
    second = shop.pay(token, 500)
    assert second["approved"]
    status, _ = shop.post(f"/v1/authorisations/{second['id']}/complete", {"amount": 200})
    assert status == 200  # 200 spent now, not the 500 held before
    assert shop.pay(card, 800)["approved"]
    _declined(shop, card, 1, ("daily_amount", "card"), "61")
    used = usage(shop.app.ledger, applying(shop.app.ledger, ControlLevel.CARD, card.id))
    assert [(u.limit.name, u.used) for u in used] == [("daily_amount", 1000)]


def test_count_limits_decline_even_a_partial_request(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, limits={"daily_count": 2, "daily_amount": 10_000})
    assert shop.pay(card, 100)["approved"]
    assert shop.pay(card, 100)["approved"]
    before = shop.balances()
    third = shop.pay(card, 100, partial=True)
    assert (third["approved"], third["response_code"]) == (False, "65")
    assert third["control"] == {"name": "daily_count", "level": "card"}
    assert shop.balances() == before


@pytest.mark.parametrize("period", ["weekly", "monthly", "yearly", "all_time"])
def test_each_period_limit_on_the_account_covers_all_its_cards(shop: Shop, period: str) -> None:
    one, two = shop.card(), shop.card()
    _set(shop, "account", shop.account, limits={f"{period}_amount": 1000})
    assert shop.pay(one, 700)["approved"]
    assert shop.pay(two, 300)["approved"]
    _declined(shop, two, 1, (f"{period}_amount", "account"), "61")
    _set(shop, "account", shop.account, limits={f"{period}_amount": None, f"{period}_count": 2})
    _declined(shop, one, 1, (f"{period}_count", "account"), "65")


def test_period_starts_are_calendar_periods_in_utc() -> None:
    wednesday = datetime(2026, 12, 9, 15, 30, tzinfo=UTC)
    assert period_start(Period.DAILY, wednesday) == "2026-12-09T00:00:00.000000Z"
    assert period_start(Period.WEEKLY, wednesday) == "2026-12-07T00:00:00.000000Z"  # Monday
    assert period_start(Period.MONTHLY, wednesday) == "2026-12-01T00:00:00.000000Z"
    assert period_start(Period.YEARLY, wednesday) == "2026-01-01T00:00:00.000000Z"
    assert period_start(Period.ALL_TIME, wednesday) == ""


def test_a_daily_limit_holds_within_one_group_commit_batch(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, limits={"daily_amount": 450})
    authoriser = Authoriser(shop.app)
    batch = [(shop.terminal, shop.request(card, 100)) for _ in range(8)]
    decisions = authoriser.authorise_many(batch)  # one batch: one transaction
    assert all(not isinstance(d, Exception) for d in decisions)
    approved = [d for d in decisions if not isinstance(d, Exception) and d.approved]
    assert len(approved) == 4
    assert {d.control.name for d in decisions if not isinstance(d, Exception) and d.control} == {
        "daily_amount"
    }
    assert shop.balances() == (100_000, 400)
    partial = authoriser.authorise_many(
        [(shop.terminal, shop.request(card, 100, partial=True)) for _ in range(3)]
    )
    assert [(d.approved, d.approved_amount) for d in partial if not isinstance(d, Exception)] == [
        (True, 50),
        (False, None),
        (False, None),
    ]
    assert shop.balances() == (100_000, 450)
    assert shop.app.ledger.check() == []


def test_a_daily_limit_holds_across_concurrent_requests(shop: Shop) -> None:
    cards = [shop.card() for _ in range(4)]
    _set(shop, "account", shop.account, limits={"daily_amount": 1000})
    authoriser = Authoriser(shop.app)
    requests = [(shop.terminal, shop.request(cards[i % 4], 100)) for i in range(16)]
    results: list[Any] = []
    lock = threading.Lock()

    def one(item: Any) -> None:
        decision = authoriser.authorise(*item)
        with lock:
            results.append(decision)

    threads = [threading.Thread(target=one, args=(item,)) for item in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(d.approved for d in results) == 10, [(d.reason, d.control) for d in results]
    assert shop.balances() == (100_000, 1000)
    assert shop.app.ledger.check() == []


def test_a_change_of_controls_reaches_the_running_service(shop: Shop, other: IssuerService) -> None:
    card = shop.card()
    assert shop.pay(card, 100)["approved"]  # the controls (none) are cached now
    # Set through another ledger object (another process's connections: the CLI's).
    set_controls(other.ledger, ControlLevel.CARD, card.id, Changes(blocked_mccs=["5411"]))
    _declined(shop, card, 100, ("blocked_mccs", "card"), "57")


def test_a_resubmission_meets_the_controls(issuer: IssuerApp) -> None:
    shop = Shop(issuer, funds=100)
    card = shop.card()
    declined = shop.pay(card, 500)
    assert declined["reason"] == "INSUFFICIENT_FUNDS"
    issuer.service.credit_account(shop.account, 10_000)
    _set(shop, "card", card.id, blocked_mccs=["5411"])
    status, again = shop.post(f"/v1/authorisations/{declined['id']}/resubmit", {})
    assert (status, again["reason"], again["control"]) == (
        200,
        "SPENDING_CONTROL",
        {"name": "blocked_mccs", "level": "card"},
    )
    _set(shop, "card", card.id, blocked_mccs=None, limits={"daily_amount": 400})
    status, again = shop.post(f"/v1/authorisations/{declined['id']}/resubmit", {})
    assert (again["reason"], again["control"]["name"]) == ("SPENDING_CONTROL", "daily_amount")
    status, again = shop.post(f"/v1/authorisations/{declined['id']}/resubmit", {"amount": 400})
    assert again["approved"] is True


# -- partial approval -----------------------------------------------------------------


def test_partial_approval_for_the_funds_available(issuer: IssuerApp) -> None:
    shop = Shop(issuer, funds=1000)
    card = shop.card()
    body = shop.body(card, 1500, partial=True)
    status, answer = shop.post("/v1/authorisations", body, "p1")
    assert (answer["approved"], answer["response_code"], answer["approved_amount"]) == (
        True,
        "10",
        1000,
    )
    assert (answer["reason"], answer["control"], answer["amount"]) == (None, None, 1500)
    assert shop.balances() == (1000, 1000)
    # A retry gets the stored answer; the same key without partial_allowed is another
    # request.
    status, again = shop.post("/v1/authorisations", body, "p1")
    assert again == {**answer, "replayed": True}
    status, conflict = shop.post("/v1/authorisations", {**body, "partial_allowed": False}, "p1")
    assert status == 409, conflict
    record = call(
        shop.http, "GET", f"/v1/authorisations/{answer['id']}", {"authorization": shop.auth}
    )
    assert b'"amount":1000,' in record.body
    assert b'"held_amount":1000,' in record.body
    # Nothing left: declined for funds, partial or not.
    nothing = shop.pay(card, 100, partial=True)
    assert (nothing["approved"], nothing["reason"]) == (False, "INSUFFICIENT_FUNDS")
    assert issuer.ledger.check() == []


def test_partial_approval_through_the_host_client(issuer: IssuerApp) -> None:
    shop = Shop(issuer, funds=700)
    card = shop.card()
    _set(shop, "card", card.id, limits={"daily_amount": 5000})
    terminal_id, key = shop.auth.removeprefix("Bearer ").split(":", 1)
    with (
        asgi_serving(shop.http) as (host, port),
        HostClient(f"http://{host}:{port}", terminal_id, key, tls=DEV_PLAIN_HTTP) as client,
    ):
        outcome = client.authorise(card.blob(1000), card.track2, partial_allowed=True)
        assert (outcome.approved, outcome.response_code, outcome.approved_amount) == (
            True,
            "10",
            700,
        )
        declined = client.authorise(card.blob(1000), card.track2)
        assert (declined.approved, declined.reason) == (False, "INSUFFICIENT_FUNDS")
        _set(shop, "card", card.id, blocked_mccs=["5411"])
        named = client.authorise(card.blob(10), card.track2)
        assert (named.response_code, named.control) == ("57", "card.blocked_mccs")
        assert named.to_json()["control"] == "card.blocked_mccs"


# -- increments -----------------------------------------------------------------------


def test_an_increment_raises_the_hold_once(shop: Shop) -> None:
    card = shop.card()
    first = shop.pay(card, 1000)
    status, answer = shop.increment(first["id"], 500, key="i1")
    assert status == 200, answer
    assert (answer["approved"], answer["response_code"], answer["approved_amount"]) == (
        True,
        "00",
        500,
    )
    assert (answer["authorised_amount"], answer["amount"]) == (1500, 500)
    assert shop.balances() == (100_000, 1500)
    status, again = shop.increment(first["id"], 500, key="i1")
    assert again == {**answer, "replayed": True}
    assert shop.balances() == (100_000, 1500)
    status, conflict = shop.increment(first["id"], 700, key="i1")
    assert (status, conflict["error"]["code"]) == (409, "conflict")
    assert _events(shop, first["id"]) == [("incremented", 500)]
    with shop.app.ledger.unit_of_work(write=False) as uow:
        outbox, _ = uow.events.list(object_id=first["id"])
    incremented = [e for e in outbox if e.type == "authorisation.incremented"]
    assert len(incremented) == 1  # the replay and the conflict wrote none
    status, record = shop.post(f"/v1/authorisations/{first['id']}/complete", {})
    assert (status, record["captured_amount"], record["amount"]) == (200, 1500, 1500)
    assert shop.balances() == (98_500, 0)
    assert shop.app.ledger.check() == []


def test_a_declined_increment_leaves_the_hold(issuer: IssuerApp) -> None:
    shop = Shop(issuer, funds=1200)
    card = shop.card()
    first = shop.pay(card, 1000)
    _, answer = shop.increment(first["id"], 500)
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "INSUFFICIENT_FUNDS",
        "51",
    )
    assert (answer["approved_amount"], answer["authorised_amount"]) == (0, 1000)
    assert shop.balances() == (1200, 1000)
    _, partial = shop.increment(first["id"], 500, partial=True)
    assert (partial["approved"], partial["response_code"], partial["approved_amount"]) == (
        True,
        "10",
        200,
    )
    assert shop.balances() == (1200, 1200)
    assert _events(shop, first["id"]) == [("increment_declined", 500), ("incremented", 200)]
    assert issuer.ledger.check() == []


def test_increments_meet_the_controls_and_the_cards_status(shop: Shop) -> None:
    card = shop.card()
    _set(shop, "card", card.id, max_per_transaction=1200, limits={"daily_count": 1})
    first = shop.pay(card, 1000)
    _, answer = shop.increment(first["id"], 300)
    assert (answer["reason"], answer["response_code"], answer["control"]) == (
        "SPENDING_CONTROL",
        "61",
        {"name": "max_per_transaction", "level": "card"},
    )
    # An increment is no new approval: the count limit (1 a day, reached) lets it pass.
    _, answer = shop.increment(first["id"], 200)
    assert (answer["approved"], answer["authorised_amount"]) == (True, 1200)
    _set(shop, "card", card.id, max_per_transaction=None, blocked_mccs=["5411"])
    _, answer = shop.increment(first["id"], 100)
    assert answer["control"] == {"name": "blocked_mccs", "level": "card"}
    _set(shop, "card", card.id, blocked_mccs=None)
    shop.app.service.pause_card(card.id)
    _, answer = shop.increment(first["id"], 100)
    assert (answer["approved"], answer["reason"]) == (False, "CARD_PAUSED")
    assert shop.balances() == (100_000, 1200)


def test_only_a_pending_approval_of_the_terminal_is_incremented(issuer: IssuerApp) -> None:
    shop = Shop(issuer, funds=300)
    card = shop.card()
    declined = shop.pay(card, 500)
    status, answer = shop.increment(declined["id"], 100)
    assert (status, answer["error"]["code"]) == (409, "conflict")
    approved = shop.pay(card, 100)
    shop.post(f"/v1/authorisations/{approved['id']}/reversal", {})
    assert shop.increment(approved["id"], 100)[0] == 409
    other = Shop(issuer)
    assert other.increment(approved["id"], 100)[0] == 404
    assert shop.increment("txn_aaaaaaaaaaaaaaaa", 100)[0] == 404
    assert shop.increment(approved["id"], 0)[0] == 400


def test_the_host_client_increments(shop: Shop) -> None:
    card = shop.card()
    terminal_id, key = shop.auth.removeprefix("Bearer ").split(":", 1)
    with (
        asgi_serving(shop.http) as (host, port),
        HostClient(f"http://{host}:{port}", terminal_id, key, tls=DEV_PLAIN_HTTP) as client,
    ):
        outcome = client.authorise(card.blob(700), card.track2)
        answer = client.increment(outcome.transaction_id, 300, request_id="stay-hour-2")
        assert (answer["approved"], answer["authorised_amount"]) == (True, 1000)
        again = client.increment(outcome.transaction_id, 300, request_id="stay-hour-2")
        assert again == {**answer, "replayed": True}
        assert set(answer) == set(IncrementDecision.__struct_fields__)
        client.reverse(outcome.transaction_id)
        with pytest.raises(HostError) as refused:
            client.increment(outcome.transaction_id, 300)
        assert refused.value.status == 409
    assert shop.balances() == (100_000, 0)
