"""Offline data authentication: the full chain a terminal runs per tap (EMV Book 2 §6).

Full chain = issuer certificate recovery + ICC certificate recovery (with the static
data to be authenticated) + CDA verification of the GENERATE AC response. Run on the
public Mastercard transcript (1152-bit CA, 896-bit issuer, 768-bit ICC key, e=3) and
on generated 1984-bit keys (the EMV maximum) with e=3 and e=65537; plus the card's
side, producing the CDA signature with a 1984-bit key. And SM2 on its own: one
verification and one signature.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from emvwire import tlv
from emvwire.crypto.sm2 import Sm2PrivateKey
from emvwire.oda import (
    CaKey,
    CaKeyStore,
    SigningKey,
    build_static_data,
    issue_icc_certificate,
    issue_issuer_certificate,
    oda_records,
    parse_terminal_config,
    recover_icc_key,
    recover_issuer_key,
    sign_cda,
    verify_cda,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"


def _transcript() -> dict[str, Any]:
    doc = json.loads((FIXTURES / "mock-msc-online.json").read_text())
    data: dict[int, bytes] = {}
    records: dict[tuple[int, int], bytes] = {}
    out: dict[str, Any] = {"un": bytes.fromhex(doc["randoms"]), "today": date(2020, 3, 16)}
    for apdu in doc["apdus"]:
        cmd, body = bytes.fromhex(apdu["cmd"]), bytes.fromhex(apdu["resp"])[:-2]
        if cmd[1] == 0xB2:
            records[(cmd[3] >> 3, cmd[2])] = body
        elif cmd[1] == 0xA8:
            out["pdol"] = tlv.decode_one(cmd[5 : 5 + cmd[4]], 0x83).value
        elif cmd[1] == 0xAE:
            out["cdol1"], out["response"] = cmd[5 : 5 + cmd[4]], body
        for tag, value in tlv.flatten(tlv.decode(body)).items():
            data.setdefault(tag, value)
    out["data"], out["records"] = data, records
    keys, _ = parse_terminal_config(
        (FIXTURES / "cfg_test_cert_override.json").read_text(), skip_invalid=True
    )
    out["ca"] = next(k for k in keys if k.label == "A000000004/FA")
    return out


def _full_chain(t: dict[str, Any]) -> bytes:
    d: dict[int, bytes] = t["data"]
    records: dict[tuple[int, int], bytes] = t["records"]
    today: date = t["today"]
    issuer = recover_issuer_key(t["ca"], d[0x90], d.get(0x92), d[0x9F32], d[0x5A], today)
    static = build_static_data(
        [(sfi, records[(sfi, n)]) for sfi, n in oda_records(d[0x94])],
        aip=d[0x82],
        sda_tag_list=d.get(0x9F4A),
    )
    icc = recover_icc_key(issuer, d[0x9F46], d.get(0x9F48), d[0x9F47], d[0x5A], static, today)
    result = verify_cda(
        icc,
        t["response"],
        unpredictable_number=t["un"],
        pdol_data=t["pdol"],
        cdol1_data=t["cdol1"],
    )
    return result.cryptogram


def test_transcript_full_chain_cda(benchmark) -> None:
    t = _transcript()
    assert benchmark(_full_chain, t).hex().upper() == "675B759BB5350F8C"


PAN = "5413330089601034"
TODAY = date(2025, 6, 15)
UN = bytes.fromhex("11223344")
PDOL = bytes.fromhex("3600C000000000001000084011223344")
CDOL1 = bytes.fromhex("000000001000000000000000084000000000000840250615 00 11223344")


def _synthetic(exponent: int) -> dict[str, Any]:
    ca_signer = SigningKey.generate(1984, exponent)
    issuer = SigningKey.generate(1984, exponent)
    icc = SigningKey.generate(1984, exponent)
    ca = CaKey(
        rid=bytes.fromhex("A000000004"),
        index=0x99,
        modulus=ca_signer.public.modulus,
        exponent=exponent,
    )
    record = tlv.encode(0x70, tlv.encode(0x5A, bytes.fromhex(PAN)))
    static = build_static_data([(1, record)], aip=b"\x39\x80", sda_tag_list=b"\x82")
    issuer_cert = issue_issuer_certificate(
        ca_signer, issuer.public, issuer_identifier=PAN[:6], expiry=date(2030, 12, 31)
    )
    icc_cert = issue_icc_certificate(
        issuer, icc.public, pan=PAN, static_data=static, expiry=date(2030, 12, 31)
    )
    before = tlv.encode(0x9F27, b"\x80") + tlv.encode(0x9F36, b"\x00\x01")
    sign_args = {
        "icc_dynamic_number": bytes(8),
        "cid": 0x80,
        "cryptogram": bytes.fromhex("0123456789ABCDEF"),
        "unpredictable_number": UN,
        "pdol_data": PDOL,
        "cdol1_data": CDOL1,
        "response_tlvs": before,
    }
    sdad = sign_cda(icc, **sign_args)
    return {
        "ca": ca,
        "issuer_cert": issuer_cert,
        "icc_cert": icc_cert,
        "static": static,
        "response": tlv.encode(0x77, before + tlv.encode(0x9F4B, sdad)),
        "icc": icc,
        "sign_args": sign_args,
    }


def _synthetic_chain(s: dict[str, Any]) -> int:
    issuer = recover_issuer_key(s["ca"], *s["issuer_cert"], PAN, TODAY)
    icc = recover_icc_key(issuer, *s["icc_cert"], PAN, s["static"], TODAY)
    return verify_cda(
        icc,
        s["response"],
        unpredictable_number=UN,
        pdol_data=PDOL,
        cdol1_data=CDOL1,
    ).cid


@pytest.fixture(scope="module", params=[3, 65537], ids=["e3", "e65537"])
def synthetic(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _synthetic(request.param)


def test_1984_bit_full_chain_cda(benchmark, synthetic: dict[str, Any]) -> None:
    assert benchmark(_synthetic_chain, synthetic) == 0x80


def test_1984_bit_card_signs_cda(benchmark, synthetic: dict[str, Any]) -> None:
    icc: SigningKey = synthetic["icc"]
    sdad = benchmark(lambda: sign_cda(icc, **synthetic["sign_args"]))
    assert len(sdad) == 248


def test_store_load_fixtures(benchmark) -> None:
    store = benchmark(CaKeyStore.load, FIXTURES.parent / "ca")
    assert len(store) == 6


# ---------------------------------------------------------------------------------------
# SM2 (UnionPay's SM suite, emvwire/crypto/sm2.py): one verification (a terminal makes
# three per SM2 fDDA tap) and one signature (the card's fDDA), pure Python.

_SM2_KEY = Sm2PrivateKey.generate()
_SM2_MESSAGE = bytes(range(64))


def test_sm2_verify(benchmark) -> None:
    signature = _SM2_KEY.sign(_SM2_MESSAGE)
    assert benchmark(_SM2_KEY.public.verify, _SM2_MESSAGE, signature)


def test_sm2_sign(benchmark) -> None:
    assert len(benchmark(_SM2_KEY.sign, _SM2_MESSAGE)) == 64
