"""The SM suite (emvwire/crypto/sm.py) and the cryptogram versions of kernels 4 and 7.

SM4 and SM3 against the known answers of their standards (GB/T 32907-2016 Appendix A,
GB/T 32905-2016 Appendix A); the SM4 cryptogram version (UnionPay CVN 04) against an
independent step-by-step computation with ``cryptography``'s own SM4 and CMAC, with
its result pinned; every new CVN refuses a cryptogram that differs only in its last
byte (a full 8-byte MAC compared whole, in constant time)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from emvwire.crypto import CryptogramData, generate_arpc, generate_arqc, verify_arpc, verify_arqc
from emvwire.crypto.cryptogram import Cvn, build_cryptogram_input, derive_ac_session_key
from emvwire.crypto.kdf import option_b_y
from emvwire.crypto.sm import (
    derive_common_sk_sm4,
    derive_icc_mk_sm4,
    kcv_sm4,
    sm3,
    sm4_cmac,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
)
from emvwire.errors import CryptoError, VerificationError

H = bytes.fromhex
IMK = H("0123456789ABCDEFFEDCBA9876543210")
DATA = CryptogramData(
    tag_9f02=H("000000004000"), tag_9f03=bytes(6), tag_9f1a=H("0156"), tag_95=H("8000048000"),
    tag_5f2a=H("0156"), tag_9a=H("191105"), tag_9c=b"\x00", tag_9f37=H("52BF4585"),
    tag_82=H("2000"), tag_9f36=H("001C"), tag_9f10=H("0701040390100000"),
)  # fmt: skip

#: kcv(MK), ARQC, ARPC of the SM4 step by step below (UnionPay CVN 04).
PINNED = ("68E823", "639A84E7DDE8DD56", "63F9B9F3")


def test_sm4_known_answer_of_gb_t_32907() -> None:
    key = H("0123456789abcdeffedcba9876543210")
    assert sm4_ecb_encrypt(key, key).hex() == "681edf34d206965e86b3e94f536e4246"
    assert sm4_ecb_decrypt(key, H("681edf34d206965e86b3e94f536e4246")) == key


def test_sm3_known_answers_of_gb_t_32905() -> None:
    assert sm3(b"abc").hex() == ("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    assert sm3(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def _independent_sm4(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.SM4(key), modes.ECB()).encryptor().update(block)


def test_the_sm4_cvn_step_by_step() -> None:
    pan, psn = "6258010000000013", "00"
    mk = _independent_sm4(IMK, bytes(8) + option_b_y(pan, psn))
    assert derive_icc_mk_sm4(IMK, pan, psn) == mk
    sk = _independent_sm4(mk, H("001C") + b"\xf0" + bytes(13))
    assert derive_common_sk_sm4(mk, H("001C") + bytes(14)) == sk
    assert derive_ac_session_key(Cvn.UNIONPAY_SM4, mk, DATA) == sk
    mac = cmac.CMAC(algorithms.SM4(sk))
    mac.update(build_cryptogram_input(Cvn.UNIONPAY_SM4, DATA))
    arqc = mac.finalize()[:8]
    assert generate_arqc(Cvn.UNIONPAY_SM4, mk, DATA) == arqc
    csu = H("00800000")
    arpc_mac = cmac.CMAC(algorithms.SM4(sk))
    arpc_mac.update(arqc + csu)
    arpc = arpc_mac.finalize()[:4]
    assert generate_arpc(Cvn.UNIONPAY_SM4, mk, DATA, arqc, csu=csu) == arpc
    verify_arpc(Cvn.UNIONPAY_SM4, mk, DATA, arqc, arpc, csu=csu)
    # Pinned, so that a change of any step shows.
    assert (kcv_sm4(mk).hex().upper(), arqc.hex().upper(), arpc.hex().upper()) == PINNED


def test_sm4_cmac_and_key_lengths_are_checked() -> None:
    with pytest.raises(CryptoError):
        sm4_cmac(bytes(15), b"x")
    with pytest.raises(CryptoError):
        sm4_cmac(bytes(16), b"x", 3)
    with pytest.raises(CryptoError):
        derive_common_sk_sm4(bytes(16), bytes(8))
    with pytest.raises(CryptoError):
        sm4_ecb_encrypt(bytes(16), bytes(15))


@pytest.mark.parametrize("cvn", [Cvn.EMV_CCD_TDES, Cvn.UNIONPAY_TDES, Cvn.UNIONPAY_SM4])
def test_a_cryptogram_differing_in_its_last_byte_is_refused(cvn: Cvn) -> None:
    mk = derive_icc_mk_sm4(IMK, "6258010000000013") if cvn is Cvn.UNIONPAY_SM4 else IMK
    arqc = generate_arqc(cvn, mk, DATA)
    assert len(arqc) == 8
    verify_arqc(cvn, mk, DATA, arqc)
    for flip in (0x01, 0x80):
        with pytest.raises(VerificationError):
            verify_arqc(cvn, mk, DATA, arqc[:7] + bytes((arqc[7] ^ flip,)))
