"""Known-answer vectors for EMV key derivation, cryptograms and ARPCs.

Every step is checked by its KCV: IMK, ICC master key, session key, then the
cryptogram and the ARPC. Vectors and their sources: fixtures/vectors/*.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from emvwire.crypto import (
    CVN_TABLE,
    CryptogramData,
    Cvn,
    MasterKeyDerivation,
    arpc_method_1,
    arpc_method_2,
    build_cryptogram_input,
    derive_ac_session_key,
    derive_common_sk,
    derive_icc_mk_a,
    derive_icc_mk_aes,
    derive_icc_mk_b,
    generate_arpc,
    generate_arqc,
    kcv,
    kcv_aes,
    mac_iso9797_alg3,
    option_b_y,
    verify_arpc,
    verify_arqc,
)

FIXTURES = Path(__file__).parents[2] / "fixtures/vectors"
KD = json.loads((FIXTURES / "emv_key_derivation_and_ac.json").read_text())
CVNS = json.loads((FIXTURES / "emv_cvn.json").read_text())["vectors"]
AES_CVN = json.loads((FIXTURES / "aes_and_primitives.json").read_text())["aes_cvn"]
H = bytes.fromhex


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _data(fields: dict[str, str]) -> CryptogramData:
    return CryptogramData(**{k: H(v) for k, v in fields.items()})


@pytest.mark.parametrize("v", KD["vectors"], ids=lambda v: v["name"])
def test_derivation_cryptogram_arpc(v: dict[str, Any]) -> None:
    imk = H(v["imk"])
    assert _hex(kcv(imk, 2)) == v["imk_kcv"]
    derive = derive_icc_mk_a if v["master_key_derivation"] == "A" else derive_icc_mk_b
    mk = derive(imk, v["pan"], v["psn"])
    if v["icc_mk_kcv"] is not None:
        assert _hex(kcv(mk, 2)) == v["icc_mk_kcv"]
    sk = derive_common_sk(mk, H(v["r"]))
    assert _hex(kcv(sk, 2)) == v["sk_kcv"]
    arqc = mac_iso9797_alg3(sk, H(v["ac_input"]), padding=v["padding"])
    assert _hex(arqc) == v["arqc"]
    a = v["arpc"]
    key = mk if a["key"] == "icc_mk" else sk
    if a["method"] == 1:
        arpc = arpc_method_1(key, arqc, H(a["arc"]))
    else:
        arpc = arpc_method_2(key, arqc, H(a["csu"]), H(a["proprietary"]))
    assert _hex(arpc) == a["value"]


@pytest.mark.parametrize("v", KD["full_value_vectors"], ids=lambda v: v["name"])
def test_full_value_derivations(v: dict[str, Any]) -> None:
    if v["function"] == "derive_common_sk":
        got = derive_common_sk(H(v["icc_mk"]), H(v["r"]))
    elif v["function"] == "derive_icc_mk_a":
        got = derive_icc_mk_a(H(v["imk"]), v["pan"], v["psn"])
    else:
        got = derive_icc_mk_b(H(v["imk"]), v["pan"], v["psn"])
    assert _hex(got) == v["value"]


def test_option_b_is_option_a_up_to_16_digits() -> None:
    imk = H(KD["vectors"][0]["imk"])
    for pan in ("4", "123456789012", "1234567890123456"):
        assert derive_icc_mk_b(imk, pan, "07") == derive_icc_mk_a(imk, pan, "07")
    assert derive_icc_mk_b(imk, "12345678901234567") != derive_icc_mk_a(imk, "12345678901234567")


def test_option_b_decimalisation_step() -> None:
    # 000000000000000005 || 23: the SHA-1 digest has fewer than 16 decimal digits.
    digest = hashlib.sha1(H("00000000000000000523")).hexdigest()
    digits = [c for c in digest if c.isdigit()]
    assert len(digits) < 16
    y = option_b_y("000000000000000005", "23").hex()
    assert y[: len(digits)] == "".join(digits)
    assert set(y[len(digits) :]) <= set("012345")


@pytest.mark.parametrize("v", CVNS, ids=lambda v: v["name"])
def test_cvn_vectors(v: dict[str, Any]) -> None:
    cvn = Cvn(v["cvn"])
    spec = CVN_TABLE[cvn]
    imk = H(v["imk_ac"])
    assert _hex(kcv(imk, 2)) == v["imk_kcv"]
    derive = derive_icc_mk_a if spec.master_key is MasterKeyDerivation.OPTION_A else derive_icc_mk_b
    mk = derive(imk, v["pan"], v["psn"])
    assert _hex(kcv(mk, 2)) == v["icc_mk_kcv"]
    data = _data(v["data"])
    assert _hex(kcv(derive_ac_session_key(cvn, mk, data), 2)) == v["sk_kcv"]
    arqc = generate_arqc(cvn, mk, data)
    assert _hex(arqc) == v["arqc"]
    verify_arqc(cvn, mk, data, arqc)
    a = v["arpc"]
    if "arc" in a:
        kwargs = {"arc": H(a["arc"])}
    else:
        kwargs = {"csu": H(a["csu"]), "proprietary": H(a["proprietary"])}
    arpc = generate_arpc(cvn, mk, data, arqc, **kwargs)
    assert _hex(arpc) == a["value"]
    verify_arpc(cvn, mk, data, arqc, arpc, **kwargs)
    # Calling by CVN number gives the same answer.
    assert generate_arqc(v["cvn"], mk, data) == arqc


@pytest.mark.parametrize("v", [v for v in CVNS if "tag_9f10" in v["data"] and "cvr" in v["data"]])
def test_cvr_and_counters_come_from_the_iad(v: dict[str, Any]) -> None:
    """Leaving cvr/counters empty takes them from 9F10 at the CVN's position."""
    cvn = Cvn(v["cvn"])
    given = _data(v["data"])
    bare = _data({k: x for k, x in v["data"].items() if k not in ("cvr", "counters")})
    assert build_cryptogram_input(cvn, bare) == build_cryptogram_input(cvn, given)
    mk = derive_icc_mk_a(H(v["imk_ac"]), v["pan"], v["psn"])
    assert _hex(generate_arqc(cvn, mk, bare)) == v["arqc"]


def test_cryptogram_input_layout() -> None:
    v = next(v for v in CVNS if v["cvn"] == 17)
    d = v["data"]
    order = ("tag_9f02", "tag_9f03", "tag_9f1a", "tag_95", "tag_5f2a", "tag_9a", "tag_9c")
    expected = "".join(d[k] for k in order) + d["tag_9f37"] + d["tag_82"] + d["tag_9f36"]
    expected += d["cvr"] + d["counters"]
    assert _hex(build_cryptogram_input(Cvn.MASTERCARD_17, _data(d))) == expected.upper()


def _aes(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def _cmac(key: bytes, msg: bytes) -> bytes:
    c = cmac.CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


@pytest.mark.parametrize("v", AES_CVN, ids=lambda v: v["name"])
def test_aes_cvn(v: dict[str, Any]) -> None:
    """The AES CVN, checked against the fixture and an independent recomputation."""
    imk = H(v["imk_ac"])
    data = _data(v["data"])
    # Independent: Y, MK = AES_IMK(00*8 || Y), SK = AES_MK(ATC || F0 || 00*13), CMAC.
    assert option_b_y(v["pan"], v["psn"]) == H(v["y"])
    mk_ref = _aes(imk, bytes(8) + H(v["y"]))
    sk_ref = _aes(mk_ref, data.tag_9f36 + b"\xf0" + bytes(13))
    arqc_ref = _cmac(sk_ref, build_cryptogram_input(Cvn.EMV_CCD_AES, data))[:8]
    assert _hex(mk_ref) == v["icc_mk"]
    assert _hex(sk_ref) == v["sk"]
    assert _hex(arqc_ref) == v["arqc"]

    mk = derive_icc_mk_aes(imk, v["pan"], v["psn"])
    assert _hex(kcv_aes(mk)) == v["icc_mk_kcv_cmac"]
    sk = derive_ac_session_key(Cvn.EMV_CCD_AES, mk, data)
    assert _hex(kcv_aes(sk)) == v["sk_kcv_cmac"]
    arqc = generate_arqc(Cvn.EMV_CCD_AES, mk, data)
    assert _hex(arqc) == v["arqc"]
    verify_arqc(Cvn.EMV_CCD_AES, mk, data, arqc)
    a = v["arpc"]
    arpc = generate_arpc(
        Cvn.EMV_CCD_AES, mk, data, arqc, csu=H(a["csu"]), proprietary=H(a["proprietary"])
    )
    assert _hex(arpc) == a["value"]
    assert arpc == _cmac(sk_ref, arqc + H(a["csu"]) + H(a["proprietary"]))[:4]
