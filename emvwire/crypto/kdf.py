"""EMV key derivation: ICC master keys and session keys.

ICC master key derivation (EMV 4.3 Book 2 Annex A1.4):

* Option A (§A1.4.1): ``Y`` is the rightmost 16 digits of ``PAN || PSN`` (left
  padded with zeros when shorter), and ``MK = TDES_IMK(Y) || TDES_IMK(Y xor FF..FF)``
  with odd parity.
* Option B (§A1.4.2), for PANs longer than 16 digits: ``Y`` is 16 decimal digits
  taken from ``SHA-1(PAN || PSN)`` (decimal digits first, then the letters ``a``-``f``
  decimalised to ``0``-``5``); the rest is Option A. For PANs of 16 digits or fewer
  Option B *is* Option A.
* AES (tapstack's reading, see :func:`derive_icc_mk_aes`).

Session key derivation:

* EMV Common Session Key Derivation (EMV 4.3 Book 2 §A1.3.1): for a block cipher
  of ``n``-byte blocks and an ``n``-byte diversification value ``R``,
  ``F1 = R0 || R1 || F0 || R3 .. Rn-1`` and ``F2 = R0 || R1 || 0F || R3 .. Rn-1``;
  the session key is the leftmost ``k`` bits of ``ALG_MK(F1) || ALG_MK(F2)``
  (TDES: both halves, odd parity; AES-128: ``AES_MK(F1)``). For application
  cryptograms ``R = ATC || 00 .. 00``.
* Mastercard proprietary SKD (M/Chip 4 and M/Chip Advance, CVN 16/17): the same
  function with ``R = ATC || 00 00 || UN``.

>>> imk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
>>> from emvwire.crypto.des import kcv
>>> mk = derive_icc_mk_a(imk, "9901234567890123", "45")
>>> kcv(mk, 2).hex().upper()
'1DA5'
>>> kcv(derive_common_sk(mk, bytes.fromhex("1234567890123456")), 2).hex().upper()
'0995'
"""

from __future__ import annotations

import functools
import hashlib

from emvwire.crypto import _ctx
from emvwire.crypto.des import adjust_odd_parity
from emvwire.errors import CryptoError

__all__ = [
    "derive_common_sk",
    "derive_common_sk_aes",
    "derive_icc_mk_a",
    "derive_icc_mk_aes",
    "derive_icc_mk_b",
    "derive_mastercard_sk",
    "option_a_y",
    "option_b_y",
]

_DIGITS = frozenset("0123456789")
_FF8 = (1 << 64) - 1
#: Option B decimalisation of the hexadecimal letters of the SHA-1 digest.
_DECIMALISE = str.maketrans("abcdef", "012345")


def _check_pan_psn(pan: str, psn: str) -> None:
    if not isinstance(pan, str) or not 1 <= len(pan) <= 19 or not _DIGITS.issuperset(pan):
        raise CryptoError("the PAN must be 1 to 19 decimal digits")
    if not isinstance(psn, str) or len(psn) != 2 or not _DIGITS.issuperset(psn):
        raise CryptoError("the PAN sequence number must be 2 decimal digits")


def option_a_y(pan: str, psn: str = "00") -> bytes:
    """The 8-byte ``Y`` of Option A: the rightmost 16 digits of ``PAN || PSN``.

    >>> option_a_y("9901234567890123", "45").hex()
    '0123456789012345'
    """
    _check_pan_psn(pan, psn)
    return bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))


def option_b_y(pan: str, psn: str = "00") -> bytes:
    """The 8-byte ``Y`` of Option B (EMV 4.3 Book 2 §A1.4.2).

    PANs of 16 digits or fewer use Option A's ``Y``. Otherwise ``PAN || PSN``
    (left padded with one ``0`` to an even number of digits) is hashed with SHA-1
    and the 40 hex digits of the digest give 16 decimal digits: first the decimal
    digits in order, then, if fewer than 16, the letters ``a``-``f`` in order,
    decimalised to ``0``-``5``.
    """
    _check_pan_psn(pan, psn)
    if len(pan) <= 16:
        return option_a_y(pan, psn)
    x = pan + psn
    padded = bytes.fromhex(x.rjust(len(x) + len(x) % 2, "0"))
    digest = hashlib.sha1(padded).hexdigest()  # noqa: S324 - SHA-1 is what §A1.4.2 specifies
    digits = "".join(c for c in digest if c in _DIGITS)
    if len(digits) < 16:
        letters = "".join(c for c in digest if c not in _DIGITS)
        digits += letters[: 16 - len(digits)].translate(_DECIMALISE)
    return bytes.fromhex(digits[:16])


def _check_tdes_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) not in (16, 24):
        raise CryptoError(f"the {what} must be a 16- or 24-byte TDES key")


def _tdes_mk_from_y(imk: bytes, y: bytes) -> bytes:
    _check_tdes_key(imk, "issuer master key")
    yy = y + (int.from_bytes(y) ^ _FF8).to_bytes(8)
    return adjust_odd_parity(_ctx.tdes_ecb_encryptor(imk, _ctx.get_ident()).update(yy))


def derive_icc_mk_a(imk: bytes, pan: str, psn: str = "00") -> bytes:
    """ICC master key, EMV 4.3 Book 2 §A1.4.1 Option A (TDES, 16-byte result).

    ``pan`` and ``psn`` are decimal digit strings; a missing PSN is ``"00"``.
    """
    return _tdes_mk_from_y(imk, option_a_y(pan, psn))


def derive_icc_mk_b(imk: bytes, pan: str, psn: str = "00") -> bytes:
    """ICC master key, EMV 4.3 Book 2 §A1.4.2 Option B (TDES, 16-byte result)."""
    return _tdes_mk_from_y(imk, option_b_y(pan, psn))


def derive_icc_mk_aes(imk: bytes, pan: str, psn: str = "00") -> bytes:
    """AES-128 ICC master key: Option A/B's ``Y`` under AES (tapstack's reading).

    EMV 4.3 Book 2 §A1.4 specifies master key derivation for TDES only. For AES
    tapstack applies the same construction with the AES block size, in the way
    §A1.3.1 generalises session key derivation to an ``n``-byte block:

    * ``Y`` is Option B's 8-byte value (which is Option A's for PANs of 16 digits
      or fewer), right-justified in a 16-byte block: ``Y' = 00 * 8 || Y``;
    * ``MK`` is the leftmost 128 bits of ``AES_IMK(Y') || AES_IMK(Y' xor FF * 16)``,
      that is ``AES_IMK(Y')``. No parity adjustment (AES keys have none).

    No published vector for this derivation was found; the tests check it against
    an independent step-by-step computation. Only 16-byte (AES-128) issuer master
    keys are accepted.
    """
    if not isinstance(imk, bytes) or len(imk) != 16:
        raise CryptoError("the AES issuer master key must be 16 bytes (AES-128)")
    y = bytes(8) + option_b_y(pan, psn)
    return _ctx.aes_ecb_encryptor(imk, _ctx.get_ident()).update(y)


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _common_sk(mk: bytes, r: bytes) -> bytes:
    f = r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:]
    return adjust_odd_parity(_ctx.tdes_ecb_encryptor(mk, _ctx.get_ident()).update(f))


_ctx.register(_common_sk)


def derive_common_sk(icc_mk: bytes, r: bytes) -> bytes:
    """EMV Common Session Key Derivation, TDES (EMV 4.3 Book 2 §A1.3.1).

    ``icc_mk`` is the 16-byte ICC master key and ``r`` the 8-byte diversification
    value (``ATC || 00 * 6`` for application cryptograms). Returns the 16-byte
    session key ``TDES_MK(F1) || TDES_MK(F2)`` with odd parity.
    """
    if not isinstance(icc_mk, bytes) or len(icc_mk) != 16:
        raise CryptoError("the ICC master key must be a 16-byte TDES key")
    if not isinstance(r, bytes) or len(r) != 8:
        raise CryptoError("the TDES diversification value R must be 8 bytes")
    return _common_sk(icc_mk, r)


def derive_mastercard_sk(icc_mk: bytes, atc: bytes, un: bytes) -> bytes:
    """Mastercard proprietary session key derivation (M/Chip, CVN 16 and 17).

    The EMV common derivation with ``R = ATC || 00 00 || UN``, so that
    ``SK = TDES_MK(ATC || F0 00 || UN) || TDES_MK(ATC || 0F 00 || UN)``.
    """
    if not isinstance(atc, bytes) or len(atc) != 2:
        raise CryptoError("the ATC must be 2 bytes")
    if not isinstance(un, bytes) or len(un) != 4:
        raise CryptoError("the unpredictable number must be 4 bytes")
    return derive_common_sk(icc_mk, atc + b"\x00\x00" + un)


@functools.lru_cache(maxsize=_ctx.CACHE_SIZE)
def _common_sk_aes(mk: bytes, r: bytes) -> bytes:
    f1 = r[:2] + b"\xf0" + r[3:]
    enc = _ctx.aes_ecb_encryptor(mk, _ctx.get_ident())
    if len(mk) == 16:
        return enc.update(f1)
    f2 = r[:2] + b"\x0f" + r[3:]
    return enc.update(f1 + f2)[: len(mk)]


_ctx.register(_common_sk_aes)


def derive_common_sk_aes(icc_mk: bytes, r: bytes) -> bytes:
    """EMV Common Session Key Derivation with AES (EMV 4.3 Book 2 §A1.3.1, n = 16).

    ``r`` is the 16-byte diversification value (``ATC || 00 * 14`` for application
    cryptograms). The session key is the leftmost ``k`` bits of
    ``AES_MK(F1) || AES_MK(F2)``: ``AES_MK(F1)`` for an AES-128 master key.
    """
    if not isinstance(icc_mk, bytes) or len(icc_mk) not in (16, 24, 32):
        raise CryptoError("the ICC master key must be a 16-, 24- or 32-byte AES key")
    if not isinstance(r, bytes) or len(r) != 16:
        raise CryptoError("the AES diversification value R must be 16 bytes")
    return _common_sk_aes(icc_mk, r)
