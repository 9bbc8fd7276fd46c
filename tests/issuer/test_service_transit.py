"""What the transit back office needs of the issuer, on both ledgers: the PAR in every
answer, debt recovery (resubmission of a declined authorisation without chip data) and
transit over-capture at MCC 4111, through the HTTP API handler."""

from __future__ import annotations

from datetime import timedelta

import pytest

from card.emv import EmvCard
from emvwire.oda import SigningKey
from issuer.bootstrap import IssuerApp
from issuer.domain import clearing
from issuer.personalisation import provision
from tests.issuer.helpers import World, balances, edit, make_world, post, send, tap


def _world(issuer: IssuerApp, rsa: dict[str, SigningKey], mcc: str, funds: int) -> World:
    """A world whose terminal has ``mcc`` and whose account holds ``funds``."""
    w = make_world(issuer, rsa)
    s = issuer.service
    terminal, credential = s.add_terminal("Metro back office", mcc)
    w.terminal, w.auth = terminal.id, f"Bearer {terminal.id}:{credential}"
    account = s.create_account("Grace Hopper")
    if funds:
        s.credit_account(account.id, funds)
    made = provision(s, account.id, "visa", "card", icc_key=rsa["icc/visa"])
    w.account, w.card, w.card_id = account.id, EmvCard(made.profile), made.card.id
    return w


def _pay(w: World, amount: int, key: str) -> dict[str, object]:
    result = tap(w.card, amount)
    return send(w, result.authorisation_data, result.track2, key)


def test_the_answer_carries_the_par_shared_by_a_card_and_its_phone(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    w = make_world(issuer, rsa_keys)
    s = issuer.service
    card_par = s.card(w.card_id).par
    assert card_par
    first = _pay(w, 100, "c")
    assert first["par"] == card_par
    phone = provision(s, w.account, "visa", "phone", icc_key=rsa_keys["icc/visa"])
    assert phone.token is not None
    result = tap(EmvCard(phone.profile), 100)
    by_phone = send(w, result.authorisation_data, result.track2, "p")
    assert by_phone["approved"] is True
    assert by_phone["par"] == phone.token.par == s.card(phone.card.id).par
    # A decline of a known instrument still says whose account it is; a replay too.
    s.suspend_token(phone.token.id)
    result = tap(EmvCard(phone.profile), 100)
    declined = send(w, result.authorisation_data, result.track2, "s")
    assert (declined["reason"], declined["par"]) == ("TOKEN_SUSPENDED", phone.token.par)
    assert send(w, result.authorisation_data, result.track2, "s")["par"] == phone.token.par


def test_debt_recovery_after_insufficient_funds(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    w = _world(issuer, rsa_keys, "4111", 50)
    first = _pay(w, 100, "tap-1")
    assert (first["approved"], first["reason"]) == (False, "INSUFFICIENT_FUNDS")
    original = str(first["id"])
    path = f"/v1/authorisations/{original}/resubmit"
    # Still no money: a new declined authorisation linked to the original.
    status, again = post(w, path, {}, "rs-1")
    assert status == 200, again
    assert (again["approved"], again["reason"], again["response_code"]) == (
        False, "INSUFFICIENT_FUNDS", "51",
    )  # fmt: skip
    assert again["original_id"] == original
    assert again["id"] != original
    assert again["arpc"] == ""
    assert again["par"] == first["par"]
    assert balances(w) == (50, 0)
    assert post(w, path, {"amount": 101}, "rs-big")[0] == 400  # above the original
    issuer.service.credit_account(w.account, 1000)
    status, paid = post(w, path, {"amount": 80}, "rs-2")
    assert status == 200, paid
    assert (paid["approved"], paid["status"], paid["amount"]) == (True, "pending", 80)
    assert paid["original_id"] == original
    assert balances(w) == (1050, 80)
    # An idempotent retry answers the same and holds nothing more; another key with
    # another body is a conflict.
    status, retried = post(w, path, {"amount": 80}, "rs-2")
    assert (status, retried) == (200, {**paid, "replayed": True})
    assert post(w, path, {}, "rs-2")[0] == 409
    assert balances(w) == (1050, 80)
    # Recovered: no further resubmission (of the original or of an attempt).
    for target in (original, str(again["id"])):
        status, body = post(w, f"/v1/authorisations/{target}/resubmit", {}, f"rs-{target}")
        assert (status, body["error"]["code"]) == (409, "not_resubmittable"), body
        assert "recovered" in body["error"]["message"]
    # The approval completes as usual.
    status, done = post(w, f"/v1/authorisations/{paid['id']}/complete", {}, "done")
    assert (status, done["status"], done["captured_amount"]) == (200, "closed", 80)
    assert balances(w) == (970, 0)
    assert issuer.ledger.check() == []


def test_resubmission_rules(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _world(issuer, rsa_keys, "4111", 0)
    # A cryptogram decline is never resubmittable.
    result = tap(w.card, 100)
    forged = edit(result.authorisation_data, t9F02=bytes.fromhex("000000000005"))
    bad = send(w, forged, result.track2, "forged")
    assert bad["reason"] == "CRYPTOGRAM_INVALID"
    status, body = post(w, f"/v1/authorisations/{bad['id']}/resubmit", {}, "x")
    assert (status, body["error"]["code"]) == (409, "not_resubmittable")
    assert "CRYPTOGRAM_INVALID" in body["error"]["message"]
    # An approval is not resubmittable either.
    issuer.service.credit_account(w.account, 100)
    ok = _pay(w, 100, "ok")
    assert ok["approved"] is True
    assert post(w, f"/v1/authorisations/{ok['id']}/resubmit", {}, "y")[0] == 409
    # Another terminal does not see the transaction.
    declined = _pay(w, 500, "poor")
    path = f"/v1/authorisations/{declined['id']}/resubmit"
    other, credential = issuer.service.add_terminal("Other operator", "4111")
    assert post(w, path, {}, "z", auth=f"Bearer {other.id}:{credential}")[0] == 404
    # At most six resubmissions.
    for n in range(clearing.RESUBMIT_MAX):
        status, body = post(w, path, {}, f"try-{n}")
        assert (status, body["approved"]) == (200, False), body
    status, body = post(w, path, {}, "try-7")
    assert (status, body["error"]["code"]) == (409, "not_resubmittable")
    assert "6 times" in body["error"]["message"]
    assert post(w, path, {}, "try-0")[1]["replayed"] is True  # a retry still answers
    # Within 14 days of the original only.
    other_declined = _pay(w, 400, "poor-2")
    monkeypatch.setattr(clearing, "RESUBMIT_PERIOD", timedelta(0))
    status, body = post(w, f"/v1/authorisations/{other_declined['id']}/resubmit", {}, "late")
    assert (status, body["error"]["code"]) == (409, "not_resubmittable")
    assert "older than" in body["error"]["message"]
    assert balances(w) == (100, 100)
    assert issuer.ledger.check() == []


def test_transit_terminal_captures_above_the_authorised_amount(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    w = _world(issuer, rsa_keys, "4111", 1000)
    first = _pay(w, 100, "first-tap")
    assert first["approved"] is True
    path = f"/v1/authorisations/{first['id']}/complete"
    # Above the aggregation limit: refused, nothing changed.
    status, body = post(w, path, {"amount": 1501}, "day-big")
    assert (status, body["error"]["code"]) == (409, "aggregation_limit_exceeded")
    # Above what the account has: refused, nothing changed.
    status, body = post(w, path, {"amount": 1200}, "day-poor")
    assert (status, body["error"]["code"]) == (409, "insufficient_funds")
    assert balances(w) == (1000, 100)
    status, done = post(w, path, {"amount": 950}, "day")
    assert (status, done["status"], done["captured_amount"]) == (200, "closed", 950), done
    assert post(w, path, {"amount": 950}, "day")[0] == 200  # retried: once
    assert balances(w) == (50, 0)
    assert issuer.ledger.check() == []


def test_other_terminals_capture_at_most_the_authorised_amount(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    w = _world(issuer, rsa_keys, "5411", 1000)
    first = _pay(w, 100, "buy")
    status, body = post(w, f"/v1/authorisations/{first['id']}/complete", {"amount": 101}, "c")
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert balances(w) == (1000, 100)
    assert issuer.ledger.check() == []
