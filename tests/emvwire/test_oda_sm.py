"""Offline data authentication with SM2 (emvwire/oda/sm.py) and SM2 CA keys (capk.py).

The fixture card of the whole SM suite (fixtures/cards/unionpay-sm-card.json) is the
known answer: its issuer and ICC certificates verify under the SM2 test CA of
fixtures/ca and its ICC key is the one certified. A chain made here issues, recovers
and signs fDDA; each check the terminal makes fails with its own reason when the one
thing it covers is changed (a signature bit, the format, the algorithms, the PAN, the
static data, the dates, the transaction data). SM2 CA keys round-trip through a key
file with their check sum, and an RSA lookup of an SM2 slot is refused.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from emvwire import tlv
from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.errors import DecodeError, OdaError
from emvwire.oda import (
    CaKeyStore,
    Sm2CaKey,
    build_static_data,
    issue_sm2_icc_certificate,
    issue_sm2_issuer_certificate,
    parse_key_file,
    recover_sm2_icc_key,
    recover_sm2_issuer_key,
    sign_sm2_fdda,
    verify_sm2_fdda,
)
from emvwire.profile import load_profile

FIXTURES = Path(__file__).parents[2] / "fixtures"
RID = bytes.fromhex("A000000333")
TODAY = date(2026, 11, 23)
PAN = "6258020000000000012"
STATIC = bytes.fromhex("5A0A6258020000000000012F5F24033012319F0702FF00") + b"\x20\x00"
TXN = {
    "unpredictable_number": bytes.fromhex("A1B2C3D4"),
    "amount_authorised": bytes.fromhex("000000001000"),
    "currency_code": bytes.fromhex("0978"),
    "card_auth_data": bytes.fromhex("01123456788000"),
}
CA = Sm2PrivateKey.generate()
ISSUER = Sm2PrivateKey.generate()
ICC = Sm2PrivateKey.generate()
CA_KEY = Sm2CaKey(rid=RID, index=0xE8, public=CA.public, expiry=date(2045, 12, 31))


def _chain() -> tuple[bytes, bytes]:
    issuer_cert = issue_sm2_issuer_certificate(
        CA, ISSUER.public, issuer_identifier="625802", expiry=date(2040, 12, 31)
    )
    icc_cert = issue_sm2_icc_certificate(
        ISSUER, ICC.public, pan=PAN, static_data=STATIC, expiry=date(2030, 12, 31)
    )
    return issuer_cert, icc_cert


def test_the_sm_fixture_card_verifies_under_the_sm2_test_ca() -> None:
    app = load_profile(FIXTURES / "cards" / "unionpay-sm-card.json").applications[0]
    assert app.cvn == 0x04
    assert app.rsa is None
    assert app.sm2 is not None
    store = CaKeyStore.load(FIXTURES / "ca")
    ca = store.get_sm2(app.aid[:5], app.data[0x8F][0], today=TODAY)
    assert app.data[0x90][0] == 0x12
    assert 0x9F32 not in app.data
    assert 0x9F47 not in app.data
    issuer = recover_sm2_issuer_key(ca, app.data[0x90], app.pan, TODAY)
    assert issuer.issuer_identifier == "625802"
    oda = [
        (r.sfi, tlv.encode(0x70, b"".join(tlv.encode(t, app.data[t]) for t in r.tags)))
        for r in app.records
        if r.oda
    ]
    static = build_static_data(oda, aip=app.aip, sda_tag_list=app.data.get(0x9F4A))
    icc = recover_sm2_icc_key(issuer, app.data[0x9F46], app.pan, static, TODAY)
    assert icc.public == Sm2PrivateKey.from_bytes(app.sm2.private).public
    assert app.pan not in repr(icc)


def test_a_chain_issues_recovers_and_signs_fdda() -> None:
    issuer_cert, icc_cert = _chain()
    assert (len(issuer_cert), len(icc_cert)) == (141, 147)
    issuer = recover_sm2_issuer_key(CA_KEY, issuer_cert, PAN, TODAY)
    assert issuer.public == ISSUER.public
    icc = recover_sm2_icc_key(issuer, icc_cert, PAN, STATIC, TODAY)
    assert (icc.public, icc.pan, icc.expiry) == (ICC.public, PAN, date(2030, 12, 31))
    sdad = sign_sm2_fdda(ICC, b"\x00\x15", **TXN)
    assert sdad[:3] == bytes((0x15, 0x07, 3))
    result = verify_sm2_fdda(icc, sdad, **TXN)
    assert (result.icc_dynamic_number, result.icc_dynamic_data) == (b"\x00\x15", b"\x02\x00\x15")


def _flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: _flip(c, -1), "issuer certificate SM2 signature does not verify"),
        (lambda c: _flip(c, 20), "issuer certificate SM2 signature does not verify"),
        (lambda c: c[:-1], "issuer certificate is 140 bytes, 141 expected"),
        (lambda c: b"\x02" + c[1:], "issuer certificate format is not 12"),
        (lambda c: c[:10] + b"\x01" + c[11:], "hash algorithm 01 is not 07"),
        (lambda c: c[:11] + b"\x01" + c[12:], "public key algorithm 01 is not 04"),
        (lambda c: c[:12] + b"\x20" + c[13:], "public key length 32 is not 64"),
    ],
    ids=["signature", "key", "length", "format", "hash", "algorithm", "key length"],
)
def test_a_changed_issuer_certificate_is_refused(change: object, reason: str) -> None:
    issuer_cert, _ = _chain()
    with pytest.raises(OdaError, match=reason):
        recover_sm2_issuer_key(CA_KEY, change(issuer_cert), PAN, TODAY)  # type: ignore[operator]


def test_issuer_certificate_checks_identifier_expiry_revocation() -> None:
    issuer_cert, _ = _chain()
    with pytest.raises(OdaError, match="issuer identifier does not match the PAN"):
        recover_sm2_issuer_key(CA_KEY, issuer_cert, "6258030000000000011", TODAY)
    with pytest.raises(OdaError, match="issuer certificate has expired"):
        recover_sm2_issuer_key(CA_KEY, issuer_cert, PAN, date(2041, 1, 1))
    serial = issuer_cert[7:10]
    with pytest.raises(OdaError, match="has been revoked"):
        recover_sm2_issuer_key(CA_KEY, issuer_cert, PAN, TODAY, revoked={(RID, 0xE8, serial)})
    other = Sm2CaKey(rid=RID, index=0xE8, public=ISSUER.public)
    with pytest.raises(OdaError, match="SM2 signature does not verify"):
        recover_sm2_issuer_key(other, issuer_cert, PAN, TODAY)


def test_the_icc_certificate_covers_pan_and_static_data() -> None:
    issuer_cert, icc_cert = _chain()
    issuer = recover_sm2_issuer_key(CA_KEY, issuer_cert, PAN, TODAY)
    with pytest.raises(OdaError, match="ICC certificate SM2 signature does not verify"):
        recover_sm2_icc_key(issuer, icc_cert, PAN, _flip(STATIC, 5), TODAY)
    with pytest.raises(OdaError, match="ICC certificate PAN does not match"):
        recover_sm2_icc_key(issuer, icc_cert, "6258020000000000020", STATIC, TODAY)
    with pytest.raises(OdaError, match="ICC certificate has expired"):
        recover_sm2_icc_key(issuer, icc_cert, PAN, STATIC, date(2031, 1, 1))
    with pytest.raises(OdaError, match="ICC certificate format is not 14"):
        recover_sm2_icc_key(issuer, issuer_cert[:1] + icc_cert[1:], PAN, STATIC, TODAY)


def test_the_dynamic_signature_covers_the_transaction() -> None:
    issuer_cert, icc_cert = _chain()
    issuer = recover_sm2_issuer_key(CA_KEY, issuer_cert, PAN, TODAY)
    icc = recover_sm2_icc_key(issuer, icc_cert, PAN, STATIC, TODAY)
    sdad = sign_sm2_fdda(ICC, b"\x00\x15", **TXN)
    for name in TXN:
        changed = {**TXN, name: _flip(TXN[name], -1)}
        with pytest.raises(OdaError, match="SM2 signature does not verify"):
            verify_sm2_fdda(icc, sdad, **changed)
    for bad, reason in [
        (_flip(sdad, -1), "SM2 signature does not verify"),
        (_flip(sdad, 4), "SM2 signature does not verify"),
        (sdad[:-1], "length does not match"),
        (sdad[:2] + b"\x04" + sdad[3:], "length does not match"),
        (b"\x05" + sdad[1:], "format is not 15"),
        (sdad[:1] + b"\x01" + sdad[2:], "hash algorithm 01 is not 07"),
        (b"", "length does not match"),
    ]:
        with pytest.raises(OdaError, match=reason):
            verify_sm2_fdda(icc, bad, **TXN)


def test_sm2_ca_keys_in_key_files_and_the_store() -> None:
    entry = CA_KEY.to_json_object()
    doc = {"format": "tapstack-capk/1", "keys": [entry]}
    (key,) = parse_key_file(json.dumps(doc))
    assert key == CA_KEY
    store = CaKeyStore([key])
    assert store.get_sm2(RID, 0xE8) == CA_KEY
    with pytest.raises(OdaError, match="is an SM2 key, not RSA"):
        store.get(RID, 0xE8)
    assert CaKeyStore.from_json(store.to_json()).get_sm2(RID, 0xE8) == CA_KEY
    with pytest.raises(OdaError, match="check sum does not match"):
        parse_key_file(json.dumps({**entry, "checksum": "00" * 32}))
    with pytest.raises(DecodeError, match="unknown fields"):
        parse_key_file(json.dumps({**entry, "modulus": "00"}))
    with pytest.raises(DecodeError, match="not a point"):
        parse_key_file(json.dumps({**entry, "public_key": "04" + "00" * 64, "checksum": None}))
    rsa = CaKeyStore.load(FIXTURES / "ca" / "test-ca.json")
    with pytest.raises(OdaError, match="is an RSA key, not SM2"):
        rsa.get_sm2(RID, 0xE7)
    with pytest.raises(OdaError, match="has expired"):
        rsa.get_sm2(RID, 0xE8, today=date(2046, 1, 1))


def test_a_certified_point_off_the_curve_is_refused_even_when_signed() -> None:
    """The CA signs whatever it is given; the terminal still refuses a certified key
    that is not a point of sm2p256v1 (or is the all-zero encoding of infinity)."""
    issuer_cert, _ = _chain()
    good_point = issuer_cert[13:77]
    for point in (good_point[:-1] + bytes((good_point[-1] ^ 1,)), bytes(64)):
        body = issuer_cert[:13] + point
        forged = body + CA.sign(body)
        with pytest.raises(OdaError, match="not a point of sm2p256v1"):
            recover_sm2_issuer_key(CA_KEY, forged, PAN, TODAY)
