"""The issuer's domain on both ledgers: PANs, life-cycle rules, the token vault,
PANs at rest, terminal credentials, currencies and decline codes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvwire.contract import RESPONSE_CODES, DeclineReason, response_code
from issuer.bootstrap import IssuerApp
from issuer.domain.credentials import (
    CredentialCache,
    hash_credential,
    new_credential,
    verify_credential,
)
from issuer.domain.service import parse_expiry
from issuer.domain.vault import DeclinedError
from issuer.errors import (
    ConflictError,
    InvalidStateError,
    KeyStoreError,
    NotFoundError,
    ValidationError,
)
from issuer.ledger.sql import SqlUnitOfWork
from issuer.model.currency import currency_by_numeric, format_amount, parse_amount
from issuer.model.entities import CardOrigin, CardStatus, TokenStatus
from issuer.model.pan import (
    check_pan,
    generate_pan,
    generate_par,
    luhn_check_digit,
    luhn_valid,
)

TODAY = date(2026, 6, 1)

# -- PANs ------------------------------------------------------------------------------


def test_luhn_known_numbers() -> None:
    # ISO/IEC 7812-1 Annex B worked example and well-known test PANs.
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_valid("79927398713")
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5413330089601034")  # fixtures/cards/mastercard-card.json
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111111111a1")


@given(
    st.text(alphabet="0123456789", min_size=11, max_size=18), st.integers(0, 17), st.integers(1, 9)
)
def test_luhn_catches_every_single_digit_error(body: str, where: int, delta: int) -> None:
    pan = body + luhn_check_digit(body)
    assert luhn_valid(pan)
    i = where % len(pan)
    changed = pan[:i] + str((int(pan[i]) + delta) % 10) + pan[i + 1 :]
    assert not luhn_valid(changed)


def test_generated_pans_are_in_range_and_valid() -> None:
    pans = {generate_pan("476173") for _ in range(200)}
    assert len(pans) == 200
    for pan in pans:
        assert len(pan) == 16
        assert pan.startswith("476173")
        assert luhn_valid(pan)
    assert len(generate_pan("52047412", 19)) == 19
    with pytest.raises(ValidationError):
        generate_pan("4761730000000", 16)  # too few account digits


def test_par_and_pan_checks() -> None:
    par = generate_par("visa")
    assert len(par) == 29
    assert par.startswith("V001")
    assert par.isalnum()
    assert par.isupper() or par[4:].isdigit()
    assert check_pan(" 4111 1111 1111 1111 ") == "4111111111111111"
    with pytest.raises(ValidationError, match="Luhn") as err:
        check_pan("4111111111111112")
    assert "4111111111111112" not in str(err.value)
    with pytest.raises(ValidationError, match="12 to 19"):
        check_pan("41111")


def test_expiry_parsing() -> None:
    assert parse_expiry("2030-02") == date(2030, 2, 28)
    assert parse_expiry("12/29") == date(2029, 12, 31)
    for bad in ("2030-13", "2030/01", "soon"):
        with pytest.raises(ValidationError):
            parse_expiry(bad)


# -- accounts, cards, tokens -----------------------------------------------------------


def _funded(issuer: IssuerApp, amount: int = 10_000) -> str:
    account = issuer.service.create_account("Ada Lovelace")
    issuer.service.credit_account(account.id, amount)
    return account.id


def test_accounts(issuer: IssuerApp) -> None:
    s = issuer.service
    credit = s.create_account("Grace", kind="credit", currency_code="usd", credit_limit=50_000)
    assert (credit.currency, credit.available) == ("USD", 50_000)
    assert [a.id for a in s.accounts()] == [credit.id]
    with pytest.raises(ValidationError):
        s.create_account("Bob", kind="debit", credit_limit=5)
    with pytest.raises(ValidationError):
        s.create_account("")
    with pytest.raises(ValidationError):
        s.create_account("Bob", currency_code="XYZ")
    with pytest.raises(NotFoundError):
        s.account("sys_funding")  # system accounts are not cardholders'
    with pytest.raises(ValidationError):
        s.credit_account(credit.id, 0)


def test_card_life_cycle(issuer: IssuerApp) -> None:
    s = issuer.service
    account = _funded(issuer)
    issued = s.issue_card(account, "visa")
    card = issued.card
    assert card.bin == "476173"
    assert issued.pan.startswith("476173")
    assert luhn_valid(issued.pan)
    assert (card.cvn, card.status, card.origin) == (18, CardStatus.ACTIVE, CardOrigin.PROVISIONED)
    assert card.pan_masked == issued.pan[:6] + "******" + issued.pan[-4:]
    assert issued.pan not in repr(issued)
    assert s.pause_card(card.id).status is CardStatus.PAUSED
    with pytest.raises(InvalidStateError):
        s.pause_card(card.id)
    assert s.resume_card(card.id).status is CardStatus.ACTIVE
    with pytest.raises(InvalidStateError):
        s.resume_card(card.id)
    assert s.close_card(card.id).status is CardStatus.CLOSED
    for change in (s.resume_card, s.pause_card, s.close_card):
        with pytest.raises(InvalidStateError, match="closed"):
            change(card.id)
    assert s.reveal(s.card(card.id)) == issued.pan


def test_suspending_a_token_leaves_the_card_working(issuer: IssuerApp) -> None:
    s, vault = issuer.service, issuer.vault
    account = _funded(issuer)
    issued = s.issue_card(account, "mastercard")
    token = s.issue_token(issued.card.id, requestor_id="50110030273")
    assert token.token.bin == "520474"
    assert token.token.par == issued.card.par  # the PAR links the PAN and its tokens
    assert token.token.cvn == 21
    s.suspend_token(token.token.id)
    with issuer.ledger.unit_of_work(write=False) as uow:
        by_card = vault.lookup(uow, issued.pan)
        by_token = vault.lookup(uow, token.token_pan)
    assert by_card is not None
    assert by_token is not None
    assert by_token.token is not None
    assert by_token.card.id == issued.card.id
    assert vault.check(by_card, today=TODAY) is None
    assert vault.check(by_token, today=TODAY) is DeclineReason.TOKEN_SUSPENDED
    # A token cannot be resumed while its card is paused.
    s.pause_card(issued.card.id)
    with pytest.raises(InvalidStateError, match="resume it first"):
        s.resume_token(token.token.id)
    s.resume_card(issued.card.id)
    assert s.resume_token(token.token.id).status is TokenStatus.ACTIVE
    assert s.delete_token(token.token.id).status is TokenStatus.DELETED
    with pytest.raises(InvalidStateError):
        s.resume_token(token.token.id)


def test_closing_a_card_deletes_its_tokens(issuer: IssuerApp) -> None:
    s = issuer.service
    card = s.issue_card(_funded(issuer), "visa").card
    tokens = [s.issue_token(card.id, requestor_id="40010030273").token for _ in range(2)]
    s.close_card(card.id)
    assert {s.token(t.id).status for t in tokens} == {TokenStatus.DELETED}
    with pytest.raises(InvalidStateError, match="closed"):
        s.issue_token(card.id, requestor_id="40010030273")


def test_closing_an_account_stops_all_its_cards_and_tokens(issuer: IssuerApp) -> None:
    s, vault = issuer.service, issuer.vault
    account = _funded(issuer)
    visa = s.issue_card(account, "visa")
    mc = s.issue_card(account, "mastercard")
    token = s.issue_token(mc.card.id, requestor_id="50110030273")
    s.close_account(account)
    assert {c.status for c in s.cards(account_id=account)} == {CardStatus.CLOSED}
    assert s.token(token.token.id).status is TokenStatus.DELETED
    with issuer.ledger.unit_of_work(write=False) as uow:
        for pan in (visa.pan, token.token_pan):
            inst = vault.lookup(uow, pan)
            assert inst is not None
            assert vault.check(inst, today=TODAY) is DeclineReason.ACCOUNT_CLOSED
    with pytest.raises(InvalidStateError):
        s.issue_card(account, "visa")
    with pytest.raises(InvalidStateError):
        s.credit_account(account, 100)
    with pytest.raises(InvalidStateError):
        s.close_account(account)


def test_token_domain_controls(issuer: IssuerApp) -> None:
    s, vault = issuer.service, issuer.vault
    card = s.issue_card(_funded(issuer), "visa").card
    transit = s.issue_token(card.id, requestor_id="40010030273", allowed_mccs=["4111", "4131"])
    anywhere = s.issue_token(
        card.id, requestor_id="40010030273", contactless_only=False, blocked_mccs=["7995"]
    )
    with pytest.raises(ValidationError, match="not both"):
        s.issue_token(
            card.id, requestor_id="40010030273", allowed_mccs=["4111"], blocked_mccs=["7995"]
        )
    with pytest.raises(ValidationError, match="11 digits"):
        s.issue_token(card.id, requestor_id="123")
    with issuer.ledger.unit_of_work(write=False) as uow:
        t = vault.detokenise(uow, transit.token_pan, today=TODAY, mcc="4111")
        assert t.token is not None
        assert t.instrument_id == transit.token.id
        assert t.key_ref.bin == "489537"
        assert t.key_ref.cvn == 22
        cases: list[tuple[str, dict[str, Any], DeclineReason | None]] = [
            (transit.token_pan, {"mcc": "5814"}, DeclineReason.TOKEN_DOMAIN_VIOLATION),
            (
                transit.token_pan,
                {"mcc": "4111", "contactless": False},
                DeclineReason.TOKEN_DOMAIN_VIOLATION,
            ),
            (transit.token_pan, {}, DeclineReason.TOKEN_DOMAIN_VIOLATION),  # no MCC given
            (anywhere.token_pan, {"mcc": "7995"}, DeclineReason.TOKEN_DOMAIN_VIOLATION),
            (anywhere.token_pan, {"mcc": "5814", "contactless": False}, None),
            (
                transit.token_pan,
                {"mcc": "4111", "today": date(2099, 1, 1)},
                DeclineReason.TOKEN_EXPIRED,
            ),
        ]
        for pan, kwargs, expected in cases:
            inst = vault.lookup(uow, pan)
            assert inst is not None
            today = kwargs.pop("today", TODAY)
            assert vault.check(inst, today=today, **kwargs) is expected
        with pytest.raises(DeclinedError, match="no card or token") as err:
            vault.detokenise(uow, generate_pan("476173"), today=TODAY)
        assert err.value.reason is DeclineReason.CARD_NOT_FOUND
    s.suspend_token(transit.token.id)
    with issuer.ledger.unit_of_work(write=False) as uow:
        with pytest.raises(DeclinedError) as err:
            vault.detokenise(uow, transit.token_pan, today=TODAY, mcc="4111")
        assert err.value.reason is DeclineReason.TOKEN_SUSPENDED


def test_register_a_card_personalised_elsewhere(issuer: IssuerApp) -> None:
    s = issuer.service
    account = _funded(issuer)
    pan = generate_pan("476173")
    card = s.register_card(account, "visa", pan, psn="01", expiry=date(2030, 12, 31), cvn=18)
    assert (card.origin, card.psn, card.bin) == (CardOrigin.REGISTERED, "01", "476173")
    with pytest.raises(ConflictError):
        s.register_card(account, "visa", pan, psn="01", expiry=date(2030, 12, 31), cvn=18)
    with pytest.raises(ValidationError, match="ranges"):
        s.register_card(
            account, "visa", generate_pan("400000"), psn="00", expiry=date(2030, 12, 31), cvn=18
        )
    with pytest.raises(ValidationError, match="Luhn"):
        s.register_card(
            account,
            "visa",
            pan[:-1] + str((int(pan[-1]) + 1) % 10),
            psn="00",
            expiry=date(2030, 12, 31),
            cvn=18,
        )
    with pytest.raises(KeyStoreError, match="keys generate"):  # no CVN 10 master keys yet
        s.register_card(
            account, "visa", generate_pan("476173"), psn="00", expiry=date(2030, 12, 31), cvn=10
        )
    with pytest.raises(ValidationError, match="passed"):
        s.register_card(
            account, "visa", generate_pan("476173"), psn="00", expiry=date(2020, 1, 31), cvn=18
        )


def test_pans_are_never_stored_in_clear(issuer: IssuerApp) -> None:
    s = issuer.service
    account = _funded(issuer)
    issued = s.issue_card(account, "visa")
    token = s.issue_token(issued.card.id, requestor_id="40010030273")
    secrets_ = [issued.pan, token.token_pan]
    with issuer.ledger.unit_of_work(write=False) as uow:
        assert isinstance(uow, SqlUnitOfWork)
        rows = uow.db.all("SELECT * FROM cards") + uow.db.all("SELECT * FROM tokens")
    for row in rows:
        for value in row:
            raw = bytes(value) if isinstance(value, bytes | memoryview) else b""
            text = raw.decode("latin-1") if raw else str(value)
            for pan in secrets_:
                assert pan not in text
                assert bytes.fromhex(pan) not in raw
    db_file = getattr(issuer.ledger, "path", None)
    if isinstance(db_file, Path):  # SQLite: not in the file or its WAL either
        for path in db_file.parent.glob(db_file.name + "*"):
            raw = path.read_bytes()
            for pan in secrets_:
                assert pan.encode() not in raw
    assert s.reveal(s.token(token.token.id)) == token.token_pan


def test_terminals_and_credentials(issuer: IssuerApp) -> None:
    s = issuer.service
    terminal, credential = s.add_terminal("Cafe de Flore", "5814")
    assert credential.startswith("tsk_")
    assert len(credential) > 40
    assert credential not in repr(terminal)
    assert credential not in str(terminal.to_json())
    stored = s.terminal(terminal.id)
    assert stored.credential_hash.startswith("$argon2id$v=19$")
    assert verify_credential(stored.credential_hash, credential)
    assert not verify_credential(stored.credential_hash, credential + "x")
    assert not verify_credential("garbage", credential)
    cache = CredentialCache()
    assert cache.verify(terminal.id, stored.credential_hash, credential)
    assert cache.verify(terminal.id, stored.credential_hash, credential)  # cached
    assert not cache.verify(terminal.id, stored.credential_hash, new_credential())
    assert s.revoke_terminal(terminal.id).status.value == "revoked"
    with pytest.raises(InvalidStateError):
        s.revoke_terminal(terminal.id)
    with pytest.raises(ValidationError):
        s.add_terminal("Cafe", "58")
    assert hash_credential(credential) != hash_credential(credential)  # salted


# -- tables ------------------------------------------------------------------------------


def test_amounts_and_currencies() -> None:
    assert parse_amount("12.34", "EUR") == 1234
    assert parse_amount("7", "jpy") == 7
    assert format_amount(-1234, "EUR") == "-12.34 EUR"
    assert format_amount(5, "JPY") == "5 JPY"
    assert currency_by_numeric(bytes.fromhex("0978")).alpha == "EUR"
    for bad in ("1.234", "-1", "1e3", ""):
        with pytest.raises(ValidationError):
            parse_amount(bad, "EUR")


def test_every_decline_reason_has_an_iso_8583_code() -> None:
    assert set(RESPONSE_CODES) == set(DeclineReason)
    assert response_code(None) == "00"
    assert response_code(DeclineReason.INSUFFICIENT_FUNDS) == "51"
    assert response_code(DeclineReason.CARD_EXPIRED) == "54"
    for code in RESPONSE_CODES.values():
        assert len(code) == 2
        assert code != "00"
