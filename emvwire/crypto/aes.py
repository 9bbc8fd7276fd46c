"""AES helpers: ECB encipherment, AES-CMAC and AES key check values.

AES-CMAC is NIST SP 800-38B (equivalently ISO/IEC 9797-1 MAC algorithm 5, the
MAC EMV Book 2 §A1.2.2 prescribes for 128-bit block ciphers). The AES key check
value here is, by default, the CMAC method: the leftmost three bytes of
``AES-CMAC(key)[00 * 16]``. That is the method ANSI X9.24-1:2017 gives for AES
keys and the one AWS Payment Cryptography documents ("For AES keys, the KCV is
computed using a CMAC algorithm where the input data is 16 bytes of zero and
retaining the 3 highest order bytes", AWS Payment Cryptography API reference,
``KeyCheckValueAlgorithm``). The older "encipher zeros" method (``AES-ECB(key)
[00 * 16]``, as for TDES) is available with ``method="ecb"``.

>>> key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")  # RFC 4493 §4
>>> aes_cmac(key, b"").hex()
'bb1d6929e95937287fa37d129b756746'
"""

from __future__ import annotations

import functools
from typing import Literal

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from emvwire.crypto import _ctx
from emvwire.errors import CryptoError

__all__ = [
    "AES_BLOCK",
    "aes_cmac",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "kcv_aes",
]

#: The AES block size in bytes.
AES_BLOCK = 16


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
        raise CryptoError("an AES key must be 16, 24 or 32 bytes")


def _check_blocks(data: bytes) -> None:
    if not isinstance(data, bytes) or len(data) % AES_BLOCK:
        raise CryptoError("data must be bytes, a multiple of 16 bytes long")


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """AES ECB encipherment of whole 16-byte blocks."""
    _check_key(key)
    _check_blocks(data)
    return _ctx.aes_ecb_encryptor(key, _ctx.get_ident()).update(data)


def aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """AES ECB decipherment of whole 16-byte blocks."""
    _check_key(key)
    _check_blocks(data)
    return _ctx.aes_ecb_decryptor(key, _ctx.get_ident()).update(data)


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _cmac_prototype(key: bytes, tid: int) -> cmac.CMAC:
    # A keyed CMAC that is never updated itself: each MAC works on a copy.
    return cmac.CMAC(algorithms.AES(key))


_ctx.register(_cmac_prototype)


def aes_cmac(key: bytes, data: bytes, length: int = AES_BLOCK) -> bytes:
    """AES-CMAC (NIST SP 800-38B), truncated to the leftmost ``length`` bytes."""
    _check_key(key)
    if type(data) is not bytes:
        raise CryptoError("data must be bytes")
    if not 4 <= length <= AES_BLOCK:
        raise CryptoError("an AES-CMAC is 4 to 16 bytes")
    mac = _cmac_prototype(key, _ctx.get_ident()).copy()
    mac.update(data)
    return mac.finalize()[:length]


def kcv_aes(key: bytes, length: int = 3, method: Literal["cmac", "ecb"] = "cmac") -> bytes:
    """AES key check value, by the CMAC method (default) or the ECB method.

    ``"cmac"``: leftmost ``length`` bytes of ``AES-CMAC(key)[00 * 16]``
    (ANSI X9.24-1:2017; AWS Payment Cryptography ``KeyCheckValueAlgorithm=CMAC``).
    ``"ecb"``: leftmost ``length`` bytes of ``AES(key)[00 * 16]``.
    """
    if not 1 <= length <= AES_BLOCK:
        raise CryptoError("an AES KCV is 1 to 16 bytes")
    if method == "cmac":
        return aes_cmac(key, bytes(AES_BLOCK))[:length]
    if method == "ecb":
        return aes_ecb_encrypt(key, bytes(AES_BLOCK))[:length]
    raise CryptoError("the AES KCV method must be 'cmac' or 'ecb'")
