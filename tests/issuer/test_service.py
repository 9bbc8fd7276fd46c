"""The authorisation service on both ledgers: a software card tapped on the terminal
kernel, its field 55 sent through the HTTP API handler (no socket), and the published
attacks the issuer defends against (issuer/domain/field55.py, the ATC window) each
declined for its reason with balances unchanged."""

from __future__ import annotations

import json

import pytest

from card.emv import EmvCard
from emvwire import tlv
from emvwire.oda import SigningKey
from emvwire.tags import Tag
from emvwire.tlv import decode_flat
from issuer.bootstrap import IssuerApp, add_range
from issuer.domain.authorise import Authoriser
from issuer.errors import KeyStoreError
from issuer.keys.base import MasterKeyRef
from issuer.keys.pkcs11 import Pkcs11KeyStore
from issuer.personalisation import RangeSpec, provision
from issuer.service import OPENAPI
from tests.issuer.helpers import (
    World,
    balances,
    edit,
    get,
    make_world,
    post,
    request,
    send,
    tap,
)


@pytest.fixture
def world(issuer: IssuerApp, rsa_keys: dict[str, SigningKey]) -> World:
    return make_world(issuer, rsa_keys)


@pytest.mark.parametrize("scheme", ["visa", "mastercard", "amex", "unionpay"])
def test_a_tap_is_approved_held_and_retried_idempotently(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey], scheme: str
) -> None:
    w = make_world(issuer, rsa_keys, scheme)
    result = tap(w.card, 1234)
    first = send(w, result.authorisation_data, result.track2, "req-1")
    assert first["approved"] is True
    assert first["response_code"] == "00"
    assert first["reason"] is None
    assert first["status"] == "pending"
    # ARPC method 1 (8 bytes) or 2 (4 bytes) by CVN (Book 2 §8.2).
    assert len(first["arpc"]) == (16 if scheme in ("mastercard", "unionpay") else 8)
    # emvwire.mask: the first six and last four digits of 16, fewer of 15 (Amex); the
    # UnionPay card range has PANs of 19 digits.
    assert first["card"].count("*") == {"amex": 8, "unionpay": 9}.get(scheme, 6)
    assert balances(w) == (10_000, 1234)
    again = send(w, result.authorisation_data, result.track2, "req-1")
    assert again == {**first, "replayed": True}
    assert balances(w) == (10_000, 1234)
    other = edit(result.authorisation_data, t9F02=bytes.fromhex("000000000001"))
    status, body = post(
        w, "/v1/authorisations", {"icc_data": other.hex(), "track2": result.track2.hex()}, "req-1"
    )
    assert status == 409, body
    assert issuer.ledger.check() == []


def _declined(w: World, blob: bytes, track2: bytes, key: str, reason: str) -> None:
    before = balances(w)
    answer = send(w, blob, track2, key)
    assert (answer["approved"], answer["reason"]) == (False, reason)
    assert answer["status"] == "closed"
    assert balances(w) == before
    assert w.app.ledger.check() == []


def test_a_replayed_cryptogram_declines_and_flags_the_card(world: World) -> None:
    result = tap(world.card, 500)
    assert send(world, result.authorisation_data, result.track2, "a")["approved"]
    _declined(world, result.authorisation_data, result.track2, "b", "ATC_REPLAYED")
    assert world.app.service.card(world.card_id).flag == "ATC_REPLAYED"
    assert send(world, result.authorisation_data, result.track2, "b")["response_code"] == "59"


def test_a_tampered_amount_fails_the_cryptogram(world: World) -> None:
    result = tap(world.card, 500)
    forged = edit(result.authorisation_data, t9F02=bytes.fromhex("000000000005"))
    _declined(world, forged, result.track2, "a", "CRYPTOGRAM_INVALID")
    assert send(world, forged, result.track2, "a")["response_code"] == "82"


def test_an_arqc_differing_only_in_its_last_byte_is_declined(world: World) -> None:
    """A full 8-byte cryptogram with one bit of its last byte changed: a verifier that
    compared a prefix would take it."""
    result = tap(world.card, 500)
    arqc = decode_flat(result.authorisation_data)[0x9F26]
    assert len(arqc) == 8
    forged = edit(result.authorisation_data, t9F26=arqc[:-1] + bytes((arqc[-1] ^ 0x01,)))
    _declined(world, forged, result.track2, "a", "CRYPTOGRAM_INVALID")
    assert send(world, result.authorisation_data, result.track2, "b")["approved"]


def test_a_ctq_whose_cdcvm_bit_alone_is_set_is_a_cvm_mismatch(world: World) -> None:
    """Byte 2 bit 8 of the CTQ set on its way to the issuer, byte 1 as the card sent it:
    the card's CVR (in its MAC'd IAD) says no consumer device CVM was performed."""
    result = tap(world.card, 6000)
    ctq = decode_flat(result.authorisation_data)[0x9F6C]
    assert ctq == bytes.fromhex("8000")  # online PIN required, no CDCVM
    forged = edit(result.authorisation_data, t9F6C=ctq[:1] + bytes((ctq[1] | 0x80,)))
    _declined(world, forged, result.track2, "ctq", "CVM_MISMATCH")


def test_a_rolled_back_atc_declines(world: World) -> None:
    world.api.authoriser = Authoriser(world.app, atc_window=2)
    taps = [tap(world.card, 100) for _ in range(4)]
    assert send(world, taps[3].authorisation_data, taps[3].track2, "late")["approved"]
    assert send(world, taps[2].authorisation_data, taps[2].track2, "inwindow")["approved"]
    _declined(world, taps[0].authorisation_data, taps[0].track2, "old", "ATC_ROLLED_BACK")


def test_token_status_and_domain_controls(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    w = make_world(issuer, rsa_keys)
    s = issuer.service
    phone = provision(s, w.account, "visa", "phone", icc_key=rsa_keys["icc/visa"])
    assert phone.token is not None
    wallet = EmvCard(phone.profile)
    result = tap(wallet, 700)
    s.suspend_token(phone.token.id)
    _declined(w, result.authorisation_data, result.track2, "s", "TOKEN_SUSPENDED")
    s.resume_token(phone.token.id)
    assert send(w, result.authorisation_data, result.track2, "ok")["approved"]
    transit_only = provision(
        s, w.account, "visa", "phone", card_id=phone.card.id, allowed_mccs=["4111"],
        icc_key=rsa_keys["icc/visa"],
    )  # fmt: skip
    result = tap(EmvCard(transit_only.profile), 700)
    _declined(w, result.authorisation_data, result.track2, "d", "TOKEN_DOMAIN_VIOLATION")


def test_terminal_credentials(world: World) -> None:
    result = tap(world.card, 100)
    body = {"icc_data": result.authorisation_data.hex(), "track2": result.track2.hex()}
    wrong = world.auth[:-2] + ("AA" if not world.auth.endswith("AA") else "BB")
    for auth in (wrong, "Bearer term_aaaaaaaaaaaaaaaa:tsk_x", "Basic abc", "Bearer nocolon"):
        status, answer = post(world, "/v1/authorisations", body, "k", auth=auth)
        assert status == 401, auth
        assert "error" in answer
    assert balances(world) == (10_000, 0)
    world.app.service.revoke_terminal(world.terminal)
    assert post(world, "/v1/authorisations", body, "k")[0] == 401


def test_insufficient_funds_and_cvm_mismatch(world: World) -> None:
    big = tap(world.card, 20_000)
    _declined(world, big.authorisation_data, big.track2, "big", "INSUFFICIENT_FUNDS")
    assert send(world, big.authorisation_data, big.track2, "big")["response_code"] == "51"
    # Chip and PIN is broken: the terminal claims the card verified the cardholder.
    result = tap(world.card, 100)
    claimed = edit(result.authorisation_data, t9F34=bytes.fromhex("010002"))
    _declined(world, claimed, result.track2, "cvm", "CVM_MISMATCH")
    # CTQ downgrade: the CTQ says consumer device CVM, the card's CVR does not.
    result = tap(world.card, 100)
    ctq = edit(result.authorisation_data, t9F6C=bytes.fromhex("0080"))
    _declined(world, ctq, result.track2, "ctq", "CVM_MISMATCH")


def test_amex_declines_insufficient_funds_a_cvm_claim_and_a_forged_amount(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    """Kernel 4's field 55 (the CCD cryptogram, CVR in the MAC'd IAD) meets the same
    rules as the other schemes'."""
    w = make_world(issuer, rsa_keys, "amex")
    big = tap(w.card, 20_000)
    _declined(w, big.authorisation_data, big.track2, "big", "INSUFFICIENT_FUNDS")
    result = tap(w.card, 100)
    claimed = edit(result.authorisation_data, t9F34=bytes.fromhex("010002"))
    _declined(w, claimed, result.track2, "cvm", "CVM_MISMATCH")
    result = tap(w.card, 100)
    forged = edit(result.authorisation_data, t9F02=bytes.fromhex("000000000001"))
    _declined(w, forged, result.track2, "forged", "CRYPTOGRAM_INVALID")
    result = tap(w.card, 100)
    assert send(w, result.authorisation_data, result.track2, "ok")["approved"] is True


def test_unionpay_declines_a_ctq_changed_in_byte_2_only(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    """The terminal's 9F6C says consumer device CVM (byte 2 bit 8 alone); the card's
    MAC'd CVR does not: declined and flagged, as for Visa."""
    w = make_world(issuer, rsa_keys, "unionpay")
    result = tap(w.card, 100)
    ctq = edit(result.authorisation_data, t9F6C=bytes.fromhex("0080"))
    _declined(w, ctq, result.track2, "ctq", "CVM_MISMATCH")
    assert w.app.service.card(w.card_id).flag == "CVM_MISMATCH"


def test_an_sm4_unionpay_range_issues_cards_the_issuer_verifies(
    issuer: IssuerApp, rsa_keys: dict[str, SigningKey]
) -> None:
    """The SM suite is chosen per card range: a range of CVN 04 gets SM4 master keys,
    its cards SM4 ICC keys and cryptograms, and the ARPC is SM4's method 2. A PKCS#11
    key store (SoftHSM has no SM4) refuses the range's keys, saying where they can be."""
    spec = RangeSpec("625802", "unionpay", "card", 0x04)
    if isinstance(issuer.keys, Pkcs11KeyStore):
        with pytest.raises(KeyStoreError, match="use the file key store"):
            add_range(issuer, spec, generate_keys=True)
        return
    add_range(issuer, spec, generate_keys=True)
    info = issuer.keys.info(MasterKeyRef("unionpay", "625802", 0x04).key_id)
    assert info.algorithm == "SM4-128"
    w = make_world(issuer, rsa_keys, "unionpay")
    made = provision(issuer.service, w.account, "unionpay", "card", prefix="625802",
                     icc_key=rsa_keys["icc/unionpay"])  # fmt: skip
    app = made.profile.applications[0]
    assert (app.pan[:6], app.cvn) == ("625802", 0x04)
    result = tap(EmvCard(made.profile), 250)
    assert tlv.decode_flat(result.authorisation_data)[Tag.IAD][:3] == bytes.fromhex("070104")
    answer = send(w, result.authorisation_data, result.track2, "sm4")
    assert answer["approved"] is True
    assert len(answer["arpc"]) == 8  # method 2: 4 bytes


def test_transit_mcc_named_in_field_55_elsewhere_declines(world: World) -> None:
    result = tap(world.card, 100)
    named = edit(result.authorisation_data, t9F15=bytes.fromhex("4111"))
    _declined(world, named, result.track2, "t", "UNAUTHORIZED_MERCHANT")


def test_reversal_releases_once_then_complete_and_refund(world: World) -> None:
    first = send(world, *_tap_data(world, 1000), key="one")
    txn = first["id"]
    for key in ("r1", "r2", "r1"):
        status, body = post(world, f"/v1/authorisations/{txn}/reversal", {}, key)
        assert (status, body["status"], body["released_amount"]) == (200, "reversed", 1000)
    assert balances(world) == (10_000, 0)
    releases = [j for j in world.app.service.journals(world.account) if j.kind.value == "release"]
    assert len(releases) == 1
    assert post(world, f"/v1/authorisations/{txn}/complete", {}, "c0")[0] == 409
    second = send(world, *_tap_data(world, 1000), key="two")
    status, body = post(world, f"/v1/authorisations/{second['id']}/complete", {"amount": 400}, "c")
    assert (status, body["status"], body["captured_amount"]) == (200, "closed", 400)
    assert (
        post(world, f"/v1/authorisations/{second['id']}/complete", {"amount": 400}, "c")[0] == 200
    )
    assert balances(world) == (9_600, 0)
    refund = {"authorisation": second["id"], "amount": 150}
    assert post(world, "/v1/refunds", refund, "f")[0] == 201
    assert post(world, "/v1/refunds", refund, "f")[0] == 201  # retried: once
    assert balances(world) == (9_750, 0)
    assert post(world, "/v1/refunds", {**refund, "amount": 300}, "g")[0] == 400
    assert world.app.ledger.check() == []


def _tap_data(w: World, amount: int) -> tuple[bytes, bytes]:
    result = tap(w.card, amount)
    return result.authorisation_data, result.track2


def test_time_out_reversal_by_request_id(world: World) -> None:
    blob, track2 = _tap_data(world, 800)
    status, body = post(world, "/v1/reversals", {"request_id": "never-sent"}, "x")
    assert (status, body["status"]) == (200, "not_found")
    send(world, blob, track2, "lost")
    assert balances(world) == (10_000, 800)
    status, body = post(world, "/v1/reversals", {"request_id": "lost"}, "rx")
    assert (status, body["status"]) == (200, "reversed")
    assert post(world, "/v1/reversals", {"request_id": "lost"}, "ry")[1]["status"] == "reversed"
    assert balances(world) == (10_000, 0)


def test_bad_requests_are_readable_errors(world: World) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"{broken", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (json.dumps({"icc_data": "zz", "track2": "00"}).encode(), "invalid_request"),
        (json.dumps({"icc_data": "9F2601", "track2": "4761D2"}).encode(), "invalid_request"),
    ]
    for body, code in cases:
        status, answer = post(world, "/v1/authorisations", body, "k")
        assert (status, answer["error"]["code"]) == (400, code), body
        assert "Traceback" not in answer["error"]["message"]
    status, _ = request(world, "POST", "/v1/authorisations", {"authorization": world.auth}, b"{}")
    assert status == 400
    assert request(world, "DELETE", "/v1/authorisations")[0] == 405
    assert request(world, "GET", "/v2/nothing")[0] == 404


def test_a_terminal_sees_only_its_own(
    world: World,
) -> None:
    mine = send(world, *_tap_data(world, 100), key="m")
    other, credential = world.app.service.add_terminal("Other shop", "5411")
    other_auth = f"Bearer {other.id}:{credential}"
    assert get(world, f"/v1/authorisations/{mine['id']}", auth=other_auth)[0] == 404
    assert get(world, "/v1/authorisations", auth=other_auth)[1] == {"data": []}
    status, listing = get(world, "/v1/authorisations?limit=5")
    assert status == 200
    assert [a["id"] for a in listing["data"]] == [mine["id"]]
    assert post(world, f"/v1/authorisations/{mine['id']}/reversal", {}, "r", other_auth)[0] == 404
    assert get(world, "/v1/authorisations?limit=0")[0] == 400


def test_openapi_documents_every_route_and_no_deny_list(world: World) -> None:
    assert request(world, "GET", "/openapi.json") == (200, OPENAPI)
    paths = set(OPENAPI["paths"])
    assert paths == {
        "/v1/authorisations", "/v1/authorisations/{id}", "/v1/authorisations/{id}/reversal",
        "/v1/authorisations/{id}/complete", "/v1/authorisations/{id}/resubmit", "/v1/refunds",
        "/v1/reversals", "/health", "/openapi.json", "/v1/qr/sales", "/v1/qr/sales/{bill}",
        "/v1/qr/sales/{bill}/cancel", "/v1/qr/merchants/{id}", "/v1/qr/payments",
        "/v1/authorisations/{id}/increment",
        *(f"/v1/issuing/{r}" for r in ("accounts", "cards", "tokens", "terminals", "ranges",
                                       "authorisations", "webhook_endpoints", "events")),
        *(f"/v1/issuing/{r}/{{id}}" for r in ("accounts", "cards", "tokens", "terminals",
                                              "authorisations", "webhook_endpoints", "events")),
        "/v1/issuing/ranges/{prefix}", "/v1/issuing/accounts/{id}/credit",
        "/v1/issuing/cards/register", "/v1/issuing/webhook_endpoints/{id}/rotate_secret",
        "/v1/issuing/events/{id}/resend",
    }  # fmt: skip
    # The deny list belongs to the transit back office, not to the issuer.
    assert get(world, "/v1/deny-list")[0] == 404


def test_velocity_then_funds_decide_in_the_hold(world: World) -> None:
    """The velocity rule and the funds check run in the statement that holds the money
    (AccountRepository.reserve with the velocity rule): over the limit of approvals in the period a
    tap declines VELOCITY_EXCEEDED even with money; under it, one above the balance
    declines INSUFFICIENT_FUNDS; neither holds anything."""
    world.api.authoriser = Authoriser(world.app, velocity_limit=2)
    big = tap(world.card, 20_000)
    _declined(world, big.authorisation_data, big.track2, "big", "INSUFFICIENT_FUNDS")
    for key in ("v1", "v2"):
        result = tap(world.card, 100)
        assert send(world, result.authorisation_data, result.track2, key)["approved"]
    third = tap(world.card, 100)
    _declined(world, third.authorisation_data, third.track2, "v3", "VELOCITY_EXCEEDED")
    assert balances(world) == (10_000, 200)
