"""emvwire.crypto primitives: TDES, AES, parity, KCVs, ISO/IEC 9797-1 MACs.

Published vectors come from fixtures/vectors/aes_and_primitives.json (FIPS 81,
FIPS 197, ISO/IEC 9797-1 Annex B, FIPS 113, RFC 4493).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from emvwire.crypto import (
    adjust_odd_parity,
    aes_cmac,
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    clear_caches,
    has_odd_parity,
    kcv,
    kcv_aes,
    mac_iso9797_alg3,
    normalise_tdes_key,
    pad_iso9797_1,
    pad_iso9797_2,
    tdes_cbc_decrypt,
    tdes_cbc_encrypt,
    tdes_ecb_decrypt,
    tdes_ecb_encrypt,
    verify_mac,
)
from emvwire.errors import CryptoError, VerificationError

VECTORS = json.loads(
    (Path(__file__).parents[2] / "fixtures/vectors/aes_and_primitives.json").read_text()
)["primitives"]
H = bytes.fromhex
KEY = H("0123456789ABCDEFFEDCBA9876543210")


@pytest.mark.parametrize("v", VECTORS["des_ecb"], ids=lambda v: v["source"][:20])
def test_des_ecb_published(v: dict[str, Any]) -> None:
    assert tdes_ecb_encrypt(H(v["key"]), H(v["plaintext"])) == H(v["ciphertext"])
    assert tdes_ecb_decrypt(H(v["key"]), H(v["ciphertext"])) == H(v["plaintext"])


@pytest.mark.parametrize("v", VECTORS["mac_alg3"], ids=lambda v: v["source"][:20])
def test_mac_algorithm_3_published(v: dict[str, Any]) -> None:
    data = v["data_ascii"].encode("ascii")
    assert mac_iso9797_alg3(H(v["key"]), data, padding=v["padding"]) == H(v["mac"])


@pytest.mark.parametrize("v", VECTORS["aes_ecb"], ids=lambda v: v["source"][:20])
def test_aes_ecb_published(v: dict[str, Any]) -> None:
    assert aes_ecb_encrypt(H(v["key"]), H(v["plaintext"])) == H(v["ciphertext"])
    assert aes_ecb_decrypt(H(v["key"]), H(v["ciphertext"])) == H(v["plaintext"])


@pytest.mark.parametrize("v", VECTORS["aes_cmac"], ids=lambda v: v["source"][-9:])
def test_aes_cmac_published(v: dict[str, Any]) -> None:
    assert aes_cmac(H(v["key"]), H(v["message"])) == H(v["mac"])
    assert aes_cmac(H(v["key"]), H(v["message"]), 8) == H(v["mac"])[:8]


def test_tdes_16_and_24_byte_keys_agree() -> None:
    block = H("1122334455667788")
    assert normalise_tdes_key(KEY) == KEY + KEY[:8]
    assert tdes_ecb_encrypt(KEY, block) == tdes_ecb_encrypt(KEY + KEY[:8], block)
    k24 = bytes(range(24))
    assert normalise_tdes_key(k24) == k24
    assert tdes_ecb_encrypt(k24, block) != tdes_ecb_encrypt(k24[:16], block)


def test_tdes_cbc_round_trip_and_chaining() -> None:
    data = bytes(range(32))
    iv = H("0102030405060708")
    ct = tdes_cbc_encrypt(KEY, data, iv)
    assert tdes_cbc_decrypt(KEY, ct, iv) == data
    # CBC: block 2 is the ECB encipherment of block 2 xor ciphertext block 1.
    x = bytes(a ^ b for a, b in zip(data[8:16], ct[:8], strict=True))
    assert ct[8:16] == tdes_ecb_encrypt(KEY, x)
    assert tdes_cbc_encrypt(KEY, data) != ct  # default IV is zeros


def test_parity() -> None:
    assert adjust_odd_parity(H("00FF0102FE")) == H("01FE0102FE")
    for b in range(256):
        fixed = adjust_odd_parity(bytes([b]))[0]
        assert bin(fixed).count("1") % 2 == 1
        assert fixed >> 1 == b >> 1
    assert has_odd_parity(KEY)
    assert not has_odd_parity(H("00"))


def test_tdes_kcv() -> None:
    assert kcv(KEY) == H("08D7B4")
    assert kcv(KEY, 2) == H("08D7")
    assert kcv(KEY, 8) == tdes_ecb_encrypt(KEY, bytes(8))


def test_aes_kcv_methods_against_independent_computation() -> None:
    key = H("000102030405060708090A0B0C0D0E0F")
    c = cmac.CMAC(algorithms.AES(key))
    c.update(bytes(16))
    assert kcv_aes(key) == c.finalize()[:3]
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(bytes(16))
    assert kcv_aes(key, method="ecb") == ecb[:3]
    assert kcv_aes(key) != kcv_aes(key, method="ecb")


def test_padding_methods() -> None:
    assert pad_iso9797_1(b"") == bytes(8)
    assert pad_iso9797_1(H("1234")) == H("1234000000000000")
    assert pad_iso9797_1(bytes(8)) == bytes(8)
    assert pad_iso9797_2(b"") == H("8000000000000000")
    assert pad_iso9797_2(H("1234")) == H("1234800000000000")
    assert pad_iso9797_2(bytes(8)) == bytes(8) + H("8000000000000000")
    assert pad_iso9797_2(bytes(15), 16) == bytes(15) + b"\x80"


def _retail_mac_reference(key: bytes, padded: bytes) -> bytes:
    """MAC algorithm 3 block by block, straight from ISO/IEC 9797-1."""
    k1, k2 = key[:8] * 3, key[8:] * 3
    h = bytes(8)
    for i in range(0, len(padded), 8):
        x = bytes(a ^ b for a, b in zip(padded[i : i + 8], h, strict=True))
        h = Cipher(_tdes(k1), modes.ECB()).encryptor().update(x)
    h = Cipher(_tdes(k2), modes.ECB()).decryptor().update(h)
    return Cipher(_tdes(k1), modes.ECB()).encryptor().update(h)


def _tdes(key: bytes) -> Any:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

    return TripleDES(key)


def test_mac_algorithm_3_matches_reference_across_lengths_and_reuse() -> None:
    # The cached CBC context is reused between messages; interleave two keys and
    # many lengths to prove the chaining value is cancelled every time.
    other = H("1111111111111111FEDCBA9876543210")
    for n in range(0, 50):
        for key in (KEY, other):
            data = bytes((7 * i + n) & 0xFF for i in range(n))
            assert mac_iso9797_alg3(key, data) == _retail_mac_reference(key, pad_iso9797_2(data))
            assert mac_iso9797_alg3(key, data, 1) == _retail_mac_reference(key, pad_iso9797_1(data))
    assert mac_iso9797_alg3(KEY, b"abc", length=4) == mac_iso9797_alg3(KEY, b"abc")[:4]


def test_mac_is_thread_safe() -> None:
    data = [bytes([i]) * (i % 40) for i in range(200)]
    expected = [mac_iso9797_alg3(KEY, d) for d in data]
    errors: list[int] = []

    def work() -> None:
        for _ in range(20):
            for d, e in zip(data, expected, strict=True):
                if mac_iso9797_alg3(KEY, d) != e:
                    errors.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_clear_caches_keeps_results() -> None:
    before = mac_iso9797_alg3(KEY, b"data")
    clear_caches()
    assert mac_iso9797_alg3(KEY, b"data") == before


def test_verify_mac() -> None:
    verify_mac(b"\x01\x02", b"\x01\x02")
    with pytest.raises(VerificationError):
        verify_mac(b"\x01\x02", b"\x01\x03")


@pytest.mark.parametrize(
    "call",
    [
        lambda: tdes_ecb_encrypt(bytes(8), bytes(8)),
        lambda: tdes_ecb_encrypt(bytes(32), bytes(8)),
        lambda: tdes_ecb_encrypt(KEY, bytes(7)),
        lambda: tdes_ecb_decrypt(KEY, bytes(9)),
        lambda: tdes_cbc_encrypt(KEY, bytes(8), bytes(4)),
        lambda: tdes_cbc_decrypt(KEY, bytes(3)),
        lambda: normalise_tdes_key(bytes(17)),
        lambda: kcv(KEY, 0),
        lambda: kcv(bytes(10)),
        lambda: aes_ecb_encrypt(bytes(15), bytes(16)),
        lambda: aes_ecb_encrypt(bytes(16), bytes(8)),
        lambda: aes_cmac(bytes(20), b""),
        lambda: aes_cmac(bytes(16), b"", 3),
        lambda: kcv_aes(bytes(16), 0),
        lambda: kcv_aes(bytes(16), method="sha"),  # type: ignore[arg-type]
        lambda: mac_iso9797_alg3(bytes(24), b""),
        lambda: mac_iso9797_alg3(KEY, b"", padding=3),
        lambda: mac_iso9797_alg3(KEY, b"", length=9),
    ],
)
def test_bad_input_raises_crypto_error(call: Any) -> None:
    with pytest.raises(CryptoError):
        call()
