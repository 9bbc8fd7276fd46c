"""The rows the authorisation service keeps between requests (issuer.domain.cache:
status checked, unknown or wrong credentials answered 401) never outlive a change:
the ledger's cache generation moves with every status or credential change, whoever
commits it, and not with the hot path's writes; a card paused, an account closed, a
token suspended or a terminal revoked by another process is seen by the next request,
on both ledgers, and by a running ``issuer serve`` at once after the CLI's change."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from emvwire.oda import SigningKey
from hostlink import HostRefusedError
from issuer.bootstrap import IssuerApp
from issuer.domain.cache import ReadCache
from issuer.domain.service import IssuerService
from issuer.ledger.repository import Ledger
from issuer.ledger.schema import GENERATION_COLUMNS
from issuer.personalisation import provision
from tests.issuer.helpers import World, balances, get, make_world, post, send, tap
from tests.support.asgi import Call, call_many
from tests.support.e2e import BIN
from tests.support.issuer_home import PASS, IssuerHome, arqc_request, stop_service


def _moves(ledger: Ledger, change: Any) -> bool:
    before = ledger.generation()
    change()
    return ledger.generation() != before


def test_the_generation_moves_with_status_changes_not_with_payments(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], other: IssuerService
) -> None:
    w = make_world(issuer, rsa_keys)
    ledger = issuer.ledger
    result = tap(w.card, 300)
    # The hot path (ATC, velocity, hold, record, journal) and new rows leave it.
    assert not _moves(ledger, lambda: send(w, result.authorisation_data, result.track2, "a"))
    assert not _moves(ledger, lambda: issuer.service.credit_account(w.account, 5))
    assert not _moves(ledger, lambda: issuer.service.add_terminal("Second shop", "5411"))

    # A fraud flag is not read by the read phase: it leaves it too.
    def flag() -> None:
        with ledger.unit_of_work() as uow:
            uow.cards.set_flag(w.card_id, "SUSPECTED_FRAUD")
            uow.commit()

    assert not _moves(ledger, flag)
    assert ledger.generation() == other.ledger.generation()
    # Every status change moves it, committed by this or another ledger object.
    phone = provision(issuer.service, w.account, "visa", "phone", icc_key=rsa_keys["icc/visa"])
    assert phone.token is not None
    token_id = phone.token.id
    for change in (
        lambda: other.pause_card(w.card_id),
        lambda: issuer.service.resume_card(w.card_id),
        lambda: other.suspend_token(token_id),
        lambda: other.resume_token(token_id),
        lambda: other.revoke_terminal(w.terminal),
        lambda: other.close_account(w.account),
    ):
        assert _moves(ledger, change)
    # A rolled-back change does not.
    status = issuer.service.card(w.card_id).status
    before = ledger.generation()
    with ledger.unit_of_work() as uow:
        uow.cards.set_status(w.card_id, status)  # not committed
    assert ledger.generation() == before
    assert set(GENERATION_COLUMNS) == {"cards", "tokens", "accounts", "terminals"}


def test_a_row_read_before_a_change_is_never_kept_after_it(issuer: IssuerApp) -> None:
    cache = ReadCache(issuer.ledger)
    seen = cache.refresh()
    cache.put("row", "old", seen)
    assert cache.get("row") == "old"
    terminal, _ = issuer.service.add_terminal("Shop", "5411")
    issuer.service.revoke_terminal(terminal.id)  # moves the generation
    # A row read under the old generation, stored after another turn's refresh: dropped.
    assert cache.refresh() != seen
    assert cache.get("row") is None
    cache.put("late", "read before the change", seen)
    assert cache.get("late") is None
    cache.put("fresh", "read after", cache.refresh())
    assert cache.get("fresh") == "read after"
    small = ReadCache(issuer.ledger, size=2)
    now = small.refresh()
    for key in ("a", "b", "c"):
        small.put(key, key, now)
    assert len(small) <= 2
    assert small.get("c") == "c"


def _declined(w: World, key: str, reason: str, amount: int = 100) -> None:
    result = tap(w.card, amount)
    answer = send(w, result.authorisation_data, result.track2, key)
    assert (answer["approved"], answer["reason"]) == (False, reason), answer


def _approved(w: World, key: str, amount: int = 100) -> None:
    result = tap(w.card, amount)
    assert send(w, result.authorisation_data, result.track2, key)["approved"] is True


def test_changes_by_another_process_are_seen_by_the_next_request(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], other: IssuerService
) -> None:
    w = make_world(issuer, rsa_keys)
    _approved(w, "warm", 100)
    # The terminal and the card's instrument are cached now.
    assert w.api.cache.get(("terminal", w.terminal)) is not None
    assert len(w.api.cache) >= 2
    other.pause_card(w.card_id)
    _declined(w, "paused", "CARD_PAUSED")
    other.resume_card(w.card_id)
    _approved(w, "resumed", 200)
    other.close_account(w.account)
    _declined(w, "closed", "ACCOUNT_CLOSED")
    assert balances(w) == (10_000, 300)
    assert issuer.ledger.check() == []


def test_a_token_suspended_elsewhere_declines_at_once(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], other: IssuerService
) -> None:
    w = make_world(issuer, rsa_keys)
    phone = provision(issuer.service, w.account, "visa", "phone", icc_key=rsa_keys["icc/visa"])
    assert phone.token is not None
    wallet = EmvCard(phone.profile)
    first = tap(wallet, 100)
    assert send(w, first.authorisation_data, first.track2, "t1")["approved"] is True
    other.suspend_token(phone.token.id)
    second = tap(wallet, 100)
    answer = send(w, second.authorisation_data, second.track2, "t2")
    assert (answer["approved"], answer["reason"]) == (False, "TOKEN_SUSPENDED")
    _approved(w, "card-still-works")  # the card of the suspended token goes on working
    assert balances(w) == (10_000, 200)


def test_a_terminal_revoked_elsewhere_is_refused_at_once(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], other: IssuerService
) -> None:
    w = make_world(issuer, rsa_keys)
    _approved(w, "before")
    other.revoke_terminal(w.terminal)
    result = tap(w.card, 100)
    body = {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()}
    status, answer = post(w, "/v1/authorisations", body, "after")
    assert status == 401, answer
    # A GET of the revoked terminal is refused as well, and nothing more was held.
    assert get(w, "/v1/authorisations")[0] == 401
    assert balances(w) == (10_000, 100)


def test_a_running_service_sees_the_cli_changes_at_once(tmp_path: Path) -> None:
    """``issuer serve`` (a real process, its rows cached by a first tap) and the
    ``issuer`` CLI in another process: a card suspended declines the very next request,
    resumed is approved again, a terminal revoked gets 401 on its open connection."""
    setup = IssuerHome(tmp_path / "home", None, terminals=1, cards=1)
    env = {**os.environ, "TAPSTACK_ISSUER_HOME": str(setup.home), "TAPSTACK_KEYSTORE_KEY": PASS}

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [str(BIN / "issuer"), *args, "--json"], env=env, capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)

    card_id = cli("card", "list")[0]["id"]
    proc, url = setup.serve()
    try:
        mk, track2 = setup.cards[0]
        with setup.client(url, 0, timeout=10, retries=0) as host:
            assert host.authorise(arqc_request(mk, 1, 100), track2).approved
            cli("card", "suspend", card_id)
            paused = host.authorise(arqc_request(mk, 2, 100), track2)
            assert (paused.approved, paused.reason) == (False, "CARD_PAUSED")
            cli("card", "resume", card_id)
            assert host.authorise(arqc_request(mk, 3, 100), track2).approved
            cli("terminal", "revoke", setup.terminals[0][0].id)
            with pytest.raises(HostRefusedError):
                host.authorise(arqc_request(mk, 4, 100), track2)
    finally:
        stop_service(proc)
    with setup.open() as app:
        assert app.service.account(setup.account).held == 200
        assert app.ledger.check() == []


def test_a_retry_is_answered_from_its_record_and_flags_nothing(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    """No idempotency read precedes a request: a retry's write finds its request id
    taken (its ATC seen, which alone would decline and flag the card), is rolled back
    and answers the stored decision; alone or in the batch of its original."""
    w = make_world(issuer, rsa_keys)
    result = tap(w.card, 400)
    first = send(w, result.authorisation_data, result.track2, "r1")
    assert send(w, result.authorisation_data, result.track2, "r1") == {**first, "replayed": True}
    again = tap(w.card, 50)
    body = json.dumps(
        {"icc_data": again.authorisation_data.hex(), "track2": again.track2.hex()}
    ).encode()
    headers = {"authorization": w.auth, "idempotency-key": "r2"}
    request = Call("POST", "/v1/authorisations", headers, body)
    answers = call_many(w.http, [request, request])  # one batch
    assert [a.status for a in answers] == [200, 200]
    one, two = (json.loads(a.body) for a in answers)
    assert one["approved"] is True
    assert two == {**one, "replayed": True}
    assert issuer.service.card(w.card_id).flag is None
    assert balances(w) == (10_000, 450)
    assert len(issuer.service.transactions(card_id=w.card_id)) == 2
    assert issuer.ledger.check() == []
