"""emvwire.crypto refuses bad input with CryptoError and wrong MACs with VerificationError."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

import pytest

from emvwire.crypto import (
    CVN_TABLE,
    CryptogramData,
    Cvn,
    MacAlgorithm,
    aes_cmac,
    arpc_method_1,
    arpc_method_2,
    build_cryptogram_input,
    cvn_spec,
    derive_common_sk,
    derive_common_sk_aes,
    derive_icc_mk_a,
    derive_icc_mk_aes,
    derive_icc_mk_b,
    derive_mastercard_sk,
    generate_arpc,
    generate_arqc,
    mac_iso9797_alg3,
    pad_iso9797_1,
    pad_iso9797_2,
    verify_arpc,
    verify_arqc,
    verify_mac,
)
from emvwire.crypto import cryptogram as cryptogram_module
from emvwire.errors import CryptoError, EmvWireError, VerificationError

H = bytes.fromhex
IMK = H("0123456789ABCDEFFEDCBA9876543210")
PAN = "5413330089012345"
DATA = CryptogramData(
    tag_9f02=H("000000001000"),
    tag_9f03=bytes(6),
    tag_9f1a=H("0826"),
    tag_95=H("0000008000"),
    tag_5f2a=H("0826"),
    tag_9a=H("260115"),
    tag_9c=b"\x00",
    tag_9f37=H("11223344"),
    tag_82=H("3900"),
    tag_9f36=H("0042"),
    tag_9f10=H("0110A00003220000000000000000000000FF"),
    cvr=H("A00003220000"),
    counters=H("00000000000000FF"),
)
ALL_CVNS = list(CVN_TABLE)


def _mk(cvn: Cvn) -> bytes:
    if cvn is Cvn.EMV_CCD_AES:
        return derive_icc_mk_aes(IMK, PAN)
    return derive_icc_mk_a(IMK, PAN)


def _arpc_kwargs(cvn: Cvn) -> dict[str, bytes]:
    if CVN_TABLE[cvn].arpc_method == 1:
        return {"arc": b"00"}
    return {"csu": H("00800000"), "proprietary": H("0102")}


def _flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


@pytest.mark.parametrize("cvn", ALL_CVNS, ids=lambda c: c.name)
def test_wrong_key_or_tampered_data_fails(cvn: Cvn) -> None:
    mk = _mk(cvn)
    arqc = generate_arqc(cvn, mk, DATA)
    verify_arqc(cvn, mk, DATA, arqc)
    # DES ignores the low (parity) bit of each key byte: change a key bit it uses.
    wrong = mk[:3] + bytes([mk[3] ^ 0x10]) + mk[4:]
    with pytest.raises(VerificationError):
        verify_arqc(cvn, wrong, DATA, arqc)
    for i in range(len(arqc)):
        with pytest.raises(VerificationError):
            verify_arqc(cvn, mk, DATA, _flip(arqc, i))
    # Each data element the CVN covers changes the cryptogram.
    for name in CVN_TABLE[cvn].data_elements:
        tampered = dataclasses.replace(DATA, **{name: _flip(getattr(DATA, name))})
        with pytest.raises(VerificationError):
            verify_arqc(cvn, mk, tampered, arqc)
    with pytest.raises(VerificationError):
        verify_arqc(cvn, mk, DATA, arqc[:4])

    kwargs = _arpc_kwargs(cvn)
    arpc = generate_arpc(cvn, mk, DATA, arqc, **kwargs)
    verify_arpc(cvn, mk, DATA, arqc, arpc, **kwargs)
    with pytest.raises(VerificationError):
        verify_arpc(cvn, mk, DATA, arqc, _flip(arpc, len(arpc) - 1), **kwargs)
    with pytest.raises(VerificationError):
        verify_arpc(cvn, mk, DATA, _flip(arqc), arpc, **kwargs)
    changed = {k: _flip(v) for k, v in kwargs.items()}
    with pytest.raises(VerificationError):
        verify_arpc(cvn, mk, DATA, arqc, arpc, **changed)


def _last_byte_changed(mac: bytes) -> list[bytes]:
    """``mac`` with its last byte replaced by each of the 255 other values."""
    return [mac[:-1] + bytes((b,)) for b in range(256) if b != mac[-1]]


def test_full_8_byte_macs_that_differ_only_in_their_last_byte_never_verify() -> None:
    """A comparison of a prefix (the 4 bytes some MACs carry) would accept these."""
    data = b"issuer script command" * 3
    retail = mac_iso9797_alg3(IMK, data)
    cmac = aes_cmac(bytes(range(16)), data, 8)
    for mac in (retail, cmac):
        assert len(mac) == 8
        verify_mac(mac, mac)
        for forged in _last_byte_changed(mac):
            assert forged[:7] == mac[:7]
            with pytest.raises(VerificationError):
                verify_mac(mac, forged)


@pytest.mark.parametrize("cvn", ALL_CVNS, ids=lambda c: c.name)
def test_an_arqc_differing_only_in_its_last_byte_never_verifies(cvn: Cvn) -> None:
    mk = _mk(cvn)
    arqc = generate_arqc(cvn, mk, DATA)
    assert len(arqc) == 8
    for forged in _last_byte_changed(arqc):
        with pytest.raises(VerificationError):
            verify_arqc(cvn, mk, DATA, forged)
    kwargs = _arpc_kwargs(cvn)
    arpc = generate_arpc(cvn, mk, DATA, arqc, **kwargs)
    for forged in _last_byte_changed(arpc):  # 8 bytes (method 1) or 4 (method 2)
        with pytest.raises(VerificationError):
            verify_arpc(cvn, mk, DATA, arqc, forged, **kwargs)


def test_verification_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(cryptogram_module.hmac, "compare_digest", spy)
    mk = _mk(Cvn.VISA_18)
    arqc = generate_arqc(Cvn.VISA_18, mk, DATA)
    verify_arqc(Cvn.VISA_18, mk, DATA, arqc)
    arpc = generate_arpc(Cvn.VISA_18, mk, DATA, arqc, csu=bytes(4))
    verify_arpc(Cvn.VISA_18, mk, DATA, arqc, arpc, csu=bytes(4))
    assert calls == [(arqc, arqc), (arpc, arpc)]


def test_errors_are_emvwire_errors_and_name_no_secret() -> None:
    with pytest.raises(EmvWireError) as info:
        derive_icc_mk_a(IMK[:15], PAN)
    assert IMK[:15].hex() not in str(info.value).lower()
    with pytest.raises(CryptoError) as info2:
        derive_icc_mk_a(IMK, PAN + "X")
    assert PAN not in str(info2.value)


@pytest.mark.parametrize("cvn", [0, 11, 19, 99, 0xA4, -1, "18", None, 18.0])
def test_unknown_cvn(cvn: Any) -> None:
    with pytest.raises(CryptoError):
        cvn_spec(cvn)
    with pytest.raises(CryptoError):
        generate_arqc(cvn, IMK, DATA)


@pytest.mark.parametrize(
    "call",
    [
        lambda: derive_icc_mk_a(IMK[:8], PAN),
        lambda: derive_icc_mk_a(IMK + IMK, PAN),
        lambda: derive_icc_mk_a(IMK, "54133300890123A5"),
        lambda: derive_icc_mk_a(IMK, ""),
        lambda: derive_icc_mk_a(IMK, "1" * 20),
        lambda: derive_icc_mk_a(IMK, " 5413330089012345"),
        lambda: derive_icc_mk_a(IMK, "\uff15\uff14\uff11\uff13"),  # full-width digits
        lambda: derive_icc_mk_a(IMK, PAN, "1"),
        lambda: derive_icc_mk_a(IMK, PAN, "0A"),
        lambda: derive_icc_mk_b(IMK, "1234567890123456789X"),
        lambda: derive_icc_mk_a(IMK, 5413330089012345),  # type: ignore[arg-type]
        lambda: derive_icc_mk_aes(IMK + IMK[:8], PAN),
        lambda: derive_common_sk(IMK + IMK[:8], bytes(8)),
        lambda: derive_common_sk(IMK, bytes(16)),
        lambda: derive_common_sk_aes(IMK, bytes(8)),
        lambda: derive_common_sk_aes(IMK[:10], bytes(16)),
        lambda: derive_mastercard_sk(IMK, b"\x00", bytes(4)),
        lambda: derive_mastercard_sk(IMK, bytes(2), bytes(3)),
        lambda: generate_arqc(Cvn.VISA_10, IMK[:15], DATA),
        lambda: generate_arqc(Cvn.MASTERCARD_20, IMK + IMK[:8], DATA),
        lambda: arpc_method_1(IMK, bytes(7), bytes(2)),
        lambda: arpc_method_1(IMK, bytes(8), bytes(3)),
        lambda: arpc_method_1(IMK[:8], bytes(8), bytes(2)),
        lambda: arpc_method_2(IMK, bytes(8), bytes(3)),
        lambda: arpc_method_2(IMK, bytes(8), bytes(4), bytes(9)),
        lambda: arpc_method_2(IMK[:12], bytes(8), bytes(4)),
        lambda: arpc_method_2(IMK[:12], bytes(8), bytes(4), mac=MacAlgorithm.AES_CMAC),
        lambda: generate_arpc(Cvn.VISA_10, IMK, DATA, bytes(8)),
        lambda: generate_arpc(Cvn.VISA_18, IMK, DATA, bytes(8), arc=b"00"),
        lambda: dataclasses.replace(DATA, tag_9f02=bytes(5)),
        lambda: dataclasses.replace(DATA, tag_9f36=bytes(3)),
        lambda: dataclasses.replace(DATA, tag_9f10=bytes(33)),
        lambda: dataclasses.replace(DATA, tag_9c="00"),
        lambda: build_cryptogram_input(
            Cvn.VISA_10, dataclasses.replace(DATA, cvr=b"", tag_9f10=b"")
        ),
        lambda: build_cryptogram_input(
            Cvn.MASTERCARD_17, dataclasses.replace(DATA, counters=b"", tag_9f10=bytes(12))
        ),
    ],
)
def test_bad_input_raises_crypto_error(call: Any) -> None:
    with pytest.raises(CryptoError):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: mac_iso9797_alg3(IMK, "text"),  # type: ignore[arg-type]
        lambda: mac_iso9797_alg3(IMK, bytearray(8)),  # type: ignore[arg-type]
        lambda: aes_cmac(IMK, "text"),  # type: ignore[arg-type]
        lambda: pad_iso9797_2([1, 2]),  # type: ignore[arg-type]
        lambda: pad_iso9797_1(b"", 0),
        lambda: verify_mac("a", "a"),  # type: ignore[arg-type]
        lambda: generate_arqc(Cvn.VISA_18, IMK, {"tag_9f02": b""}),  # type: ignore[arg-type]
        lambda: build_cryptogram_input(Cvn.VISA_18, None),  # type: ignore[arg-type]
        lambda: verify_arqc(Cvn.VISA_18, IMK, DATA, "00" * 8),  # type: ignore[arg-type]
        lambda: verify_arpc(Cvn.VISA_18, IMK, DATA, bytes(8), 1, csu=bytes(4)),  # type: ignore[arg-type]
        lambda: derive_icc_mk_a(bytearray(IMK), PAN),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_raise_crypto_error(call: Any) -> None:
    with pytest.raises(CryptoError):
        call()


def test_visa_22_needs_no_cvr_since_it_macs_the_whole_iad() -> None:
    mk = _mk(Cvn.VISA_22)
    bare = dataclasses.replace(DATA, cvr=b"", counters=b"")
    assert generate_arqc(Cvn.VISA_22, mk, bare) == generate_arqc(Cvn.VISA_22, mk, DATA)


def test_custom_spec_is_not_served_from_the_table_cache() -> None:
    mk = _mk(Cvn.MASTERCARD_16)
    arqc16 = generate_arqc(Cvn.MASTERCARD_16, mk, DATA)
    custom = dataclasses.replace(CVN_TABLE[Cvn.MASTERCARD_16], padding=1)
    assert generate_arqc(custom, mk, DATA) != arqc16
    assert generate_arqc(Cvn.MASTERCARD_16, mk, DATA) == arqc16
