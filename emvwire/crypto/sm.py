"""The Chinese commercial algorithms SM4 and SM3, as EMV-style building blocks.

- SM4 (GB/T 32907-2016, ISO/IEC 18033-3:2010/Amd 1): a 128-bit block cipher with
  128-bit keys, from ``cryptography`` (``algorithms.SM4``, OpenSSL's implementation).
  Known answer, GB/T 32907 Appendix A.1: key = plaintext =
  ``0123456789abcdeffedcba9876543210`` gives ``681edf34d206965e86b3e94f536e4246``.
- SM3 (GB/T 32905-2016, ISO/IEC 10118-3:2018): a 256-bit hash, from ``cryptography``
  (``hashes.SM3``). Known answer, GB/T 32905 Appendix A.1: ``"abc"`` gives
  ``66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0``.

What UnionPay's own card specifications (PBOC 3.0 / UICS with the SM suite) do with
them is not public in a form tapstack could check, so the EMV constructions for a
128-bit block cipher are used with SM4 in AES's place (EMV 4.3 Book 2 §A1.2.2 MAC,
§A1.3.1 session keys, n = 16), and the ICC master key is derived as
:func:`emvwire.crypto.kdf.derive_icc_mk_aes` derives an AES one (tapstack's reading):

- :func:`derive_icc_mk_sm4`: ``MK = SM4_IMK(00 * 8 || Y)``, ``Y`` option B's (option
  A's for PANs of 16 digits or fewer);
- :func:`derive_common_sk_sm4`: ``SK = SM4_MK(F1)``, ``F1`` = ``R`` with byte 3 = ``F0``
  (``R = ATC || 00 * 14`` for application cryptograms);
- :func:`sm4_cmac`: CMAC (ISO/IEC 9797-1 MAC algorithm 5) with SM4, the MAC of §A1.2.2.

SM2 signatures (GB/T 32918) are in :mod:`emvwire.crypto.sm2`, written for tapstack:
SM2's curve is not in ``cryptography``, and what the package registry offers for it is
either unmaintained (``gmssl`` 3.2.2, pure Python, and ``tongsuopy`` 1.0.1, both last
released in February 2023), new and single-release (``gmssl-fast`` 0.1.0, 2026) or pure
Python from a single author (``gmalg`` 1.1.2, 2026), so no faster and no better
checked than the few hundred lines tested here against the standards' worked examples
and OpenSSL.

>>> sm4_ecb_encrypt(bytes.fromhex("0123456789abcdeffedcba9876543210"),
...                 bytes.fromhex("0123456789abcdeffedcba9876543210")).hex()
'681edf34d206965e86b3e94f536e4246'
>>> sm3(b"abc").hex()[:16]
'66c7f0f462eeedd9'
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from emvwire.crypto import _ctx
from emvwire.crypto.kdf import option_b_y
from emvwire.errors import CryptoError

__all__ = [
    "SM4_BLOCK",
    "derive_common_sk_sm4",
    "derive_icc_mk_sm4",
    "kcv_sm4",
    "sm3",
    "sm4_cmac",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
]

#: The SM4 block and key size in bytes.
SM4_BLOCK = 16
_ECB = modes.ECB()  # noqa: S305 - keys and MACs encipher single blocks (Book 2 §A1.1)


def _check_key(key: bytes, what: str = "an SM4 key") -> None:
    if type(key) is not bytes or len(key) != SM4_BLOCK:
        raise CryptoError(f"{what} must be 16 bytes")


def _check_blocks(data: bytes) -> None:
    if type(data) is not bytes or len(data) % SM4_BLOCK:
        raise CryptoError("data must be bytes, a multiple of 16 bytes long")


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _encryptor(key: bytes, tid: int) -> CipherContext:
    return Cipher(algorithms.SM4(key), _ECB).encryptor()


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _cmac_prototype(key: bytes, tid: int) -> cmac.CMAC:
    # A keyed CMAC that is never updated itself: each MAC works on a copy.
    return cmac.CMAC(algorithms.SM4(key))


_ctx.register(_encryptor)
_ctx.register(_cmac_prototype)


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """SM4 ECB encipherment of whole 16-byte blocks (GB/T 32907)."""
    _check_key(key)
    _check_blocks(data)
    return _encryptor(key, _ctx.get_ident()).update(data)


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """SM4 ECB decipherment of whole 16-byte blocks."""
    _check_key(key)
    _check_blocks(data)
    return Cipher(algorithms.SM4(key), _ECB).decryptor().update(data)


def sm4_cmac(key: bytes, data: bytes, length: int = SM4_BLOCK) -> bytes:
    """CMAC with SM4 (ISO/IEC 9797-1 MAC algorithm 5), leftmost ``length`` bytes."""
    _check_key(key)
    if type(data) is not bytes:
        raise CryptoError("data must be bytes")
    if not 4 <= length <= SM4_BLOCK:
        raise CryptoError("an SM4 CMAC is 4 to 16 bytes")
    mac = _cmac_prototype(key, _ctx.get_ident()).copy()
    mac.update(data)
    return mac.finalize()[:length]


def sm3(data: bytes) -> bytes:
    """The SM3 digest of ``data`` (GB/T 32905), 32 bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CryptoError("data must be bytes")
    digest = hashes.Hash(hashes.SM3())
    digest.update(bytes(data))
    return digest.finalize()


def kcv_sm4(key: bytes, length: int = 3) -> bytes:
    """SM4 key check value: the leftmost ``length`` bytes of ``SM4(key)[00 * 16]`` (the
    encipher-zeros method of TDES and AES keys)."""
    if not 1 <= length <= SM4_BLOCK:
        raise CryptoError("an SM4 KCV is 1 to 16 bytes")
    return sm4_ecb_encrypt(key, bytes(SM4_BLOCK))[:length]


def derive_icc_mk_sm4(imk: bytes, pan: str, psn: str = "00") -> bytes:
    """The SM4 ICC master key (module docstring): ``SM4_IMK(00 * 8 || Y)``."""
    _check_key(imk, "the SM4 issuer master key")
    return sm4_ecb_encrypt(imk, bytes(8) + option_b_y(pan, psn))


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _common_sk_sm4(mk: bytes, r: bytes) -> bytes:
    return _encryptor(mk, _ctx.get_ident()).update(r[:2] + b"\xf0" + r[3:])


_ctx.register(_common_sk_sm4)


def derive_common_sk_sm4(icc_mk: bytes, r: bytes) -> bytes:
    """EMV common session key derivation with SM4 (Book 2 §A1.3.1, n = 16): ``r`` is
    the 16-byte diversification value; the session key is ``SM4_MK(F1)``."""
    _check_key(icc_mk, "the ICC master key")
    if type(r) is not bytes or len(r) != SM4_BLOCK:
        raise CryptoError("the SM4 diversification value R must be 16 bytes")
    return _common_sk_sm4(icc_mk, r)
