"""Pieces shared by the ODA modules: block framing, dates, PAN digits (EMV Book 2 §5-§6).

Every recovered block of Book 2 (Tables 2, 3, 13, 14, 17, 22) starts with the
Recovered Data Header ``6A``, ends with the Recovered Data Trailer ``BC`` and carries
a 20-byte hash result just before the trailer.
"""

from __future__ import annotations

import calendar
import hmac
from collections.abc import Callable
from datetime import date

from emvwire.errors import CryptoError, OdaError
from emvwire.oda.rsa import HASH_ALGORITHMS, RsaPublicKey

__all__ = [
    "HASH_LENGTH",
    "HEADER",
    "TRAILER",
    "bcd_digits",
    "check_expiry",
    "check_hash",
    "encode_mmyy",
    "hash_function",
    "key_from_parts",
    "pad_digits",
    "parse_mmyy",
    "recover_block",
]

#: Recovered Data Header (Book 2 Tables 2, 3, 13, 14, 17, 22).
HEADER = 0x6A
#: Recovered Data Trailer (same tables).
TRAILER = 0xBC
#: Length of the hash result of hash algorithm 01, SHA-1 (Book 2 Annex B3).
HASH_LENGTH = 20


def recover_block(key: RsaPublicKey, signed: bytes, what: str, fmt: int, minimum: int) -> bytes:
    """Recover ``signed`` and check length, trailer, header and format in Book 2's order.

    ``minimum`` is the smallest block the format allows; a shorter key cannot carry it.
    """
    if len(key.modulus) < minimum:
        raise OdaError(f"{what}: key of {len(key.modulus)} bytes is too short for the format")
    block = key.recover(bytes(signed), what)
    if block[-1] != TRAILER:
        raise OdaError(f"{what} trailer is not BC")
    if block[0] != HEADER:
        raise OdaError(f"{what} header is not 6A")
    if block[1] != fmt:
        raise OdaError(f"{what} format is not {fmt:02X}")
    return block


def hash_function(indicator: int, what: str) -> Callable[[bytes], bytes]:
    """The hash function of a hash algorithm indicator, or :class:`OdaError`."""
    func = HASH_ALGORITHMS.get(indicator)
    if func is None:
        raise OdaError(f"{what} hash algorithm {indicator:02X} is not supported")
    return func


def check_hash(block: bytes, data_tail: bytes, indicator: int, what: str) -> None:
    """Compare the block's hash result with the hash of block[1:-21] || ``data_tail``."""
    func = hash_function(indicator, what)
    expected = func(block[1 : -1 - HASH_LENGTH] + data_tail)
    if not hmac.compare_digest(expected, block[-1 - HASH_LENGTH : -1]):
        raise OdaError(f"{what} hash does not match")


def bcd_digits(value: bytes) -> str:
    """Hex digits of ``value`` with trailing ``F`` padding removed (upper case)."""
    return value.hex().upper().rstrip("F")


def pad_digits(digits: str, length: int) -> bytes:
    """``digits`` packed two per byte, padded on the right with ``F`` to ``length`` bytes."""
    if not digits.isdigit() or len(digits) > 2 * length:
        raise CryptoError("digits do not fit the field")
    return bytes.fromhex(digits.ljust(2 * length, "F"))


def _year(yy: int) -> int:
    # Two-digit years as EMV terminals read them: 00-49 are 20YY, 50-99 are 19YY.
    return 2000 + yy if yy < 50 else 1900 + yy


def parse_mmyy(value: bytes) -> date | None:
    """The last day of the month of an ``n4`` MMYY date, or ``None`` if it is not one."""
    text = value.hex()
    if len(value) != 2 or not text.isdigit():
        return None
    month, yy = int(text[:2]), int(text[2:])
    if not 1 <= month <= 12:
        return None
    year = _year(yy)
    return date(year, month, calendar.monthrange(year, month)[1])


def encode_mmyy(when: date) -> bytes:
    """``when`` as an ``n4`` MMYY date."""
    return bytes.fromhex(f"{when.month:02d}{when.year % 100:02d}")


def check_expiry(value: bytes, today: date, what: str) -> date:
    """Book 2 §5.3 step 9 / §6.4 step 8: the last day of MMYY must be today or later."""
    expiry = parse_mmyy(value)
    if expiry is None:
        raise OdaError(f"{what} expiration date is not a valid MMYY")
    if expiry < today:
        raise OdaError(f"{what} has expired")
    return expiry


def key_from_parts(modulus: bytes, exponent: bytes, what: str) -> RsaPublicKey:
    """A recovered public key, or :class:`OdaError` if the parts are not a usable key."""
    value = int.from_bytes(exponent, "big")
    try:
        return RsaPublicKey(modulus=modulus, exponent=value)
    except CryptoError as exc:
        raise OdaError(f"{what}: {exc}") from None
