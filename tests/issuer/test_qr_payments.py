"""QR code payments at the issuer, through its HTTP API on both ledgers (SQLite,
PostgreSQL): a consumer-presented code's data authorised as a tap's and recorded
``qr_cpm``; a merchant-presented code paid by a phone wallet, recorded ``qr_mpm`` as
the merchant terminal's; the terminal told by its long poll; and the attacks
declined with their reasons: a code used twice, an expired code, a tampered CRC or
cryptogram, an amount that is not the code's, a token kept off a channel."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from emvwire.currency import currency_by_code
from emvwire.oda import SigningKey
from emvwire.qr.cpm import Application, ConsumerPresentedCode
from emvwire.qr.mpm import MerchantPresentedCode
from issuer.bootstrap import IssuerApp
from issuer.domain.qr import terminal_code
from tests.issuer.helpers import tap
from tests.issuer.qr_helpers import QrWorld, make_qr_world

KEYS = (f"k{n}" for n in itertools.count())


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> QrWorld:
    return make_qr_world(issuer, rsa_keys)


def _balances(w: QrWorld) -> tuple[int, int]:
    account = w.app.service.account(w.account)
    return account.balance, account.held


# --- consumer-presented --------------------------------------------------------------------


def test_a_consumer_presented_code_is_authorised_and_recorded_qr_cpm(world: QrWorld) -> None:
    code = world.wallet().consumer_code()
    answer = world.scan(1250, next(KEYS), code.text)
    assert (answer["approved"], answer["response_code"], answer["amount"]) == (True, "00", 1250)
    assert answer["card"] == code.token
    status, record = world.get(f"/v1/authorisations/{answer['id']}")
    assert (status, record["channel"], record["atc"]) == (200, "qr_cpm", code.atc)
    assert _balances(world) == (10_000, 1250)


def test_a_code_made_for_an_amount_pays_that_amount_only(world: QrWorld) -> None:
    code = world.wallet().consumer_code(800)
    other = world.scan(900, next(KEYS), code.text)
    assert (other["approved"], other["reason"], other["response_code"]) == (
        False,
        "AMOUNT_MISMATCH",
        "13",
    )
    same = world.scan(800, next(KEYS), code.text)
    assert (same["approved"], same["amount"]) == (True, 800)
    assert _balances(world) == (10_000, 800)


def test_a_code_used_twice_is_an_atc_replay(world: QrWorld) -> None:
    code = world.wallet().consumer_code()
    assert world.scan(500, next(KEYS), code.text)["approved"]
    again = world.scan(500, next(KEYS), code.text)
    assert (again["approved"], again["reason"], again["response_code"]) == (
        False,
        "ATC_REPLAYED",
        "59",
    )
    assert _balances(world) == (10_000, 500)


def test_an_expired_code_is_declined(world: QrWorld) -> None:
    made = datetime.now(UTC) - timedelta(minutes=5)
    code = world.wallet(clock=made).consumer_code()
    answer = world.scan(500, next(KEYS), code.text)
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "QR_CODE_EXPIRED",
        "12",
    )
    ahead = world.wallet(clock=datetime.now(UTC) + timedelta(minutes=5)).consumer_code()
    assert world.scan(500, next(KEYS), ahead.text)["reason"] == "QR_CODE_EXPIRED"
    assert _balances(world) == (10_000, 0)


def _with(code: ConsumerPresentedCode, **changes: bytes) -> str:
    """The text of ``code`` with data objects of its transparent template replaced
    (``t9F26=...``): a forged code, valid as a code."""
    app = code.applications[0]
    data = {**app.data, **{int(k[1:], 16): v for k, v in changes.items()}}
    twin = Application.of(app.aid, label=app.label, track2=code.track2(), data=data)
    return ConsumerPresentedCode((twin,)).encode()


def test_a_tampered_cryptogram_or_stamp_is_declined(world: QrWorld) -> None:
    code = world.wallet().consumer_code()
    ac = code.code.applications[0].data[0x9F26]
    bad = world.scan(500, next(KEYS), _with(code.code, t9F26=bytes([ac[0] ^ 1]) + ac[1:]))
    assert (bad["approved"], bad["reason"], bad["response_code"]) == (
        False,
        "CRYPTOGRAM_INVALID",
        "82",
    )
    # An old code's stamp moved into the lifetime: its cryptogram no longer verifies.
    old = world.wallet(clock=datetime.now(UTC) - timedelta(minutes=5)).consumer_code()
    un = old.code.applications[0].data[0x9F37]
    fresh = code.code.applications[0].data[0x9F37][:2] + un[2:]
    replay = world.scan(500, next(KEYS), _with(old.code, t9F37=fresh))
    assert (replay["approved"], replay["reason"]) == (False, "CRYPTOGRAM_INVALID")
    assert _balances(world) == (10_000, 0)


def test_a_token_is_kept_to_its_channels(world: QrWorld) -> None:
    payments = world.api.qr.payments
    payments.set_token_channels(world.token_id, ("contactless",))
    code = world.wallet().consumer_code()
    answer = world.scan(500, next(KEYS), code.text)
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "TOKEN_DOMAIN_VIOLATION",
        "57",
    )
    result = tap(world.phone, 300)
    status, tapped = world.post(
        "/v1/authorisations",
        {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()},
        next(KEYS),
    )
    assert (status, tapped["approved"]) == (200, True)
    # The reverse: QR only, taps refused.
    payments.set_token_channels(world.token_id, ("qr_cpm", "qr_mpm"))
    assert world.scan(500, next(KEYS), world.wallet().consumer_code().text)["approved"]
    result = tap(world.phone, 300)
    status, refused = world.post(
        "/v1/authorisations",
        {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()},
        next(KEYS),
    )
    assert (refused["approved"], refused["reason"]) == (False, "TOKEN_DOMAIN_VIOLATION")
    assert world.app.service.token(world.token_id).channels == ("qr_cpm", "qr_mpm")


def test_a_tap_is_paid_for_its_cryptograms_amount_only(world: QrWorld) -> None:
    result = tap(world.phone, 300)
    body = {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()}
    status, answer = world.post("/v1/authorisations", {**body, "amount": 3000}, next(KEYS))
    assert (status, answer["approved"], answer["reason"]) == (200, False, "AMOUNT_MISMATCH")
    # A wallet's channel from a till's credential is no request at all.
    status, answer = world.post("/v1/authorisations", {**body, "channel": "qr_mpm"}, next(KEYS))
    assert (status, answer["error"]["code"]) == (400, "invalid_request")
    status, answer = world.post("/v1/authorisations", {**body, "amount": 300}, next(KEYS))
    assert (status, answer["approved"], answer["amount"]) == (200, True, 300)


# --- merchant-presented ----------------------------------------------------------------------


def test_a_dynamic_code_paid_by_the_wallet_tells_the_terminal(world: QrWorld) -> None:
    sale = world.open_sale("B-1", 1999)
    code = MerchantPresentedCode.decode(sale["payload"])
    assert (code.dynamic, code.amount, code.merchant_name, code.merchant_city) == (
        True,
        "19.99",
        "Corner shop",
        "Paris",
    )
    assert code.additional_data is not None
    assert code.additional_data.bill_number == "B-1"
    polled, paid = world.pay_and_wait(sale["payload"], 1999, "B-1", next(KEYS))
    assert (paid["approved"], paid["amount"]) == (True, 1999)
    assert (polled["status"], polled["transaction"], polled["card"]) == (
        "paid",
        paid["id"],
        paid["card"],
    )
    status, record = world.get(f"/v1/authorisations/{paid['id']}")
    assert (status, record["channel"], record["status"]) == (200, "qr_mpm", "pending")
    # The terminal captures it like a tap.
    status, done = world.post(f"/v1/authorisations/{paid['id']}/complete", {}, next(KEYS))
    assert (status, done["status"], done["captured_amount"]) == (200, "closed", 1999)
    assert _balances(world) == (10_000 - 1999, 0)


def test_a_dynamic_code_paid_twice_is_declined_as_used(world: QrWorld) -> None:
    sale = world.open_sale("B-2", 700)
    status, first = world.pay(sale["payload"], 700, next(KEYS))
    assert (status, first["approved"]) == (200, True)
    status, second = world.pay(sale["payload"], 700, next(KEYS))
    assert (second["approved"], second["reason"], second["response_code"]) == (
        False,
        "QR_CODE_USED",
        "94",
    )
    status, now = world.get("/v1/qr/sales/B-2")
    assert (now["status"], now["transaction"], now["declined"]) == (
        "paid",
        first["id"],
        [second["id"]],
    )
    assert _balances(world) == (10_000, 700)


def test_a_retried_payment_gets_the_same_answer(world: QrWorld) -> None:
    sale = world.open_sale("B-3", 450)
    icc, track2 = world.wallet().payment(450, currency_by_code("EUR"), "FR")
    body = {"payload": sale["payload"], "icc_data": icc.hex(), "track2": track2.hex()}
    first = world.request("POST", "/v1/qr/payments", world.wallet_auth, body, "same")[1]
    again = world.request("POST", "/v1/qr/payments", world.wallet_auth, body, "same")[1]
    assert first["approved"]
    assert (again["id"], again["replayed"]) == (first["id"], True)
    assert _balances(world) == (10_000, 450)


def test_a_tampered_crc_is_declined_and_recorded_nowhere(world: QrWorld) -> None:
    sale = world.open_sale("B-4", 300)
    payload = sale["payload"]
    tampered = payload[:-4] + ("0000" if payload[-4:] != "0000" else "1111")
    status, answer = world.pay(tampered, 300, next(KEYS))
    assert (status, answer["approved"], answer["reason"], answer["response_code"]) == (
        200,
        False,
        "QR_CODE_INVALID",
        "30",
    )
    assert answer["id"] == ""
    assert world.get("/v1/authorisations") == (200, {"data": []})
    assert world.get("/v1/qr/sales/B-4")[1]["status"] == "open"


def test_an_amount_differing_from_the_dynamic_codes_is_declined(world: QrWorld) -> None:
    sale = world.open_sale("B-5", 1500)
    status, answer = world.pay(sale["payload"], 150, next(KEYS))
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "AMOUNT_MISMATCH",
        "13",
    )
    # A code re-made with another amount (a valid CRC) is held to the sale's amount.
    forged = replace(MerchantPresentedCode.decode(sale["payload"]), amount="1.50").encode()
    status, answer = world.pay(forged, 150, next(KEYS))
    assert (status, answer["approved"], answer["reason"]) == (200, False, "AMOUNT_MISMATCH")
    status, now = world.get("/v1/qr/sales/B-5")
    assert (status, now["status"], len(now["declined"])) == (200, "open", 2)
    assert _balances(world) == (10_000, 0)


def test_a_cancelled_or_expired_sale_is_declined_as_expired(world: QrWorld) -> None:
    sale = world.open_sale("B-6", 500)
    status, cancelled = world.post("/v1/qr/sales/B-6/cancel", {}, next(KEYS))
    assert (status, cancelled["status"]) == (200, "cancelled")
    status, answer = world.pay(sale["payload"], 500, next(KEYS))
    assert (answer["approved"], answer["reason"], answer["response_code"]) == (
        False,
        "QR_CODE_EXPIRED",
        "12",
    )
    short = world.open_sale("B-7", 500, expires_in=10)
    # 11 s later at the issuer: the sale has expired, the wallet's stamp is still fresh.
    world.api.qr.payments.clock = lambda: datetime.now(UTC) + timedelta(seconds=11)
    assert world.get("/v1/qr/sales/B-7")[1]["status"] == "expired"
    status, late = world.pay(short["payload"], 500, next(KEYS))
    assert (status, late["approved"], late["reason"]) == (200, False, "QR_CODE_EXPIRED")
    assert _balances(world) == (10_000, 0)


def test_a_static_code_is_paid_for_the_amount_asked(world: QrWorld) -> None:
    code = terminal_code(world.app.service.terminal(world.terminal))
    assert (code.dynamic, code.amount, code.point_of_initiation) == (False, None, "11")
    status, answer = world.pay(code.encode(), 2345, next(KEYS))
    assert (status, answer["approved"], answer["amount"]) == (200, True, 2345)
    status, listed = world.get("/v1/authorisations")
    assert [(r["id"], r["channel"]) for r in listed["data"]] == [(answer["id"], "qr_mpm")]


def test_a_token_kept_off_merchant_codes_cannot_pay_one(world: QrWorld) -> None:
    world.api.qr.payments.set_token_channels(world.token_id, ("contactless", "qr_cpm"))
    sale = world.open_sale("B-8", 400)
    status, answer = world.pay(sale["payload"], 400, next(KEYS))
    assert (status, answer["approved"], answer["reason"]) == (200, False, "TOKEN_DOMAIN_VIOLATION")
    assert world.get("/v1/qr/sales/B-8")[1]["status"] == "open"


def test_the_long_poll_answers_open_after_its_wait(world: QrWorld) -> None:
    world.open_sale("B-9", 100)
    status, sale = world.get("/v1/qr/sales/B-9?wait=0.3")
    assert (status, sale["status"]) == (200, "open")
    status, answer = world.get("/v1/qr/sales/NOPE?wait=1")
    assert (status, answer["error"]["code"]) == (404, "not_found")


def test_a_bill_is_one_sale(world: QrWorld) -> None:
    first = world.open_sale("B-10", 100)
    assert world.open_sale("B-10", 100)["created_at"] == first["created_at"]
    status, answer = world.post("/v1/qr/sales", {"bill": "B-10", "amount": 101}, next(KEYS))
    assert (status, answer["error"]["code"]) == (409, "bill_in_use")


def test_a_merchant_is_shown_as_the_issuer_knows_it(world: QrWorld) -> None:
    status, merchant = world.request("GET", f"/v1/qr/merchants/{world.terminal}", world.wallet_auth)
    assert status == 200
    assert merchant == {
        "id": world.terminal,
        "name": "Corner shop",
        "city": "Paris",
        "mcc": "5411",
        "country": "FR",
        "currency": "EUR",
        "status": "active",
    }
    unknown = "/v1/qr/merchants/term_aaaaaaaaaaaaaaaa"
    status, answer = world.request("GET", unknown, world.wallet_auth)
    assert (status, answer["error"]["code"]) == (404, "not_found")


def test_wallet_routes_need_a_wallet_credential(world: QrWorld) -> None:
    path = f"/v1/qr/merchants/{world.terminal}"
    assert world.request("GET", path, world.terminal_auth)[0] == 401
    wrong = world.wallet_auth.rsplit(":", 1)[0] + ":tsk_wrong"
    assert world.request("GET", path, wrong)[0] == 401
    assert world.get("/v1/qr/sales/B-1")[0] == 404  # a terminal route: the terminal's
    status, _ = world.request("GET", "/v1/qr/sales/B-1", world.wallet_auth)
    assert status == 401
    world.api.qr.payments.revoke_wallet(world.wallet_id)
    world.app.cache.refresh()
    assert world.request("GET", path, world.wallet_auth)[0] == 401
