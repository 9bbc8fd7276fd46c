"""Triple DES helpers: ECB/CBC encipherment, DES key parity and key check values.

EMV uses two-key Triple DES (EMV Book 2 §A1.1, ISO/IEC 18033-3 TDEA keying option
2): a 16-byte key ``K1 || K2`` is used as the 24-byte key ``K1 || K2 || K1``. Every
function here accepts a 16- or 24-byte key and normalises it internally, so
callers never meet ``cryptography``'s two-key deprecation warning.

>>> key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
>>> kcv(key).hex().upper()
'08D7B4'
>>> tdes_ecb_decrypt(key, tdes_ecb_encrypt(key, b"8 bytes!"))
b'8 bytes!'
>>> adjust_odd_parity(bytes.fromhex("0000FFFE")).hex().upper()
'0101FEFE'
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from emvwire.crypto import _ctx
from emvwire.errors import CryptoError

__all__ = [
    "TDES_BLOCK",
    "adjust_odd_parity",
    "has_odd_parity",
    "kcv",
    "normalise_tdes_key",
    "tdes_cbc_decrypt",
    "tdes_cbc_encrypt",
    "tdes_ecb_decrypt",
    "tdes_ecb_encrypt",
]

#: The DES block size in bytes.
TDES_BLOCK = 8

#: Byte -> the same byte with its least significant bit set for odd parity
#: (FIPS 46-3 §2: each byte of a DES key has an odd number of one bits).
_ODD_PARITY = bytes((b & 0xFE) | ((bin(b & 0xFE).count("1") + 1) & 1) for b in range(256))


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) not in (16, 24):
        raise CryptoError("a TDES key must be 16 or 24 bytes")


def _check_blocks(data: bytes, what: str = "data") -> None:
    if not isinstance(data, bytes) or len(data) % TDES_BLOCK:
        raise CryptoError(f"{what} must be bytes, a multiple of 8 bytes long")


def normalise_tdes_key(key: bytes) -> bytes:
    """Return the 24-byte form of a TDES key: ``K1K2`` becomes ``K1K2K1``.

    >>> normalise_tdes_key(bytes(range(16)))[16:] == bytes(range(8))
    True
    """
    _check_key(key)
    return key + key[:8] if len(key) == 16 else key


def adjust_odd_parity(key: bytes) -> bytes:
    """Set the low bit of every byte so that each byte has odd parity (FIPS 46-3)."""
    return bytes(key).translate(_ODD_PARITY)


def has_odd_parity(key: bytes) -> bool:
    """Whether every byte of ``key`` has an odd number of one bits."""
    return bytes(key).translate(_ODD_PARITY) == key


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """TDES ECB encipherment of whole blocks (EMV Book 2 §A1.1)."""
    _check_key(key)
    _check_blocks(data)
    return _ctx.tdes_ecb_encryptor(key, _ctx.get_ident()).update(data)


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """TDES ECB decipherment of whole blocks (EMV Book 2 §A1.1)."""
    _check_key(key)
    _check_blocks(data)
    return _ctx.tdes_ecb_decryptor(key, _ctx.get_ident()).update(data)


def _cbc(key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    _check_key(key)
    _check_blocks(iv, "the IV")
    if len(iv) != TDES_BLOCK:
        raise CryptoError("a TDES IV must be 8 bytes")
    return Cipher(TripleDES(normalise_tdes_key(key)), modes.CBC(iv))


def tdes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = bytes(TDES_BLOCK)) -> bytes:
    """TDES CBC encipherment of whole blocks, zero IV by default (EMV Book 2 §A1.1)."""
    _check_blocks(data)
    return _cbc(key, iv).encryptor().update(data)


def tdes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = bytes(TDES_BLOCK)) -> bytes:
    """TDES CBC decipherment of whole blocks, zero IV by default (EMV Book 2 §A1.1)."""
    _check_blocks(data)
    return _cbc(key, iv).decryptor().update(data)


def kcv(key: bytes, length: int = 3) -> bytes:
    """TDES key check value: the leftmost ``length`` bytes of ``TDES(key)[00 * 8]``.

    This is the ANSI X9.24-1 check value for TDES keys (encipher a block of
    zeros and keep the leftmost bytes; three bytes are usual, two are common in
    HSM output and in pyemv's tests).
    """
    if not 1 <= length <= TDES_BLOCK:
        raise CryptoError("a TDES KCV is 1 to 8 bytes")
    return tdes_ecb_encrypt(key, bytes(TDES_BLOCK))[:length]
