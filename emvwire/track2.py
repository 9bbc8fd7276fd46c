"""Track 2 equivalent data (tag 57): the PAN and expiry date it carries.

Format (EMV Book 3 Annex A, tag 57; ISO/IEC 7813 track 2): the PAN digits, the field
separator ``D``, the expiry date YYMM, the service code and discretionary data, padded
with ``F`` to whole bytes, each digit a nibble.
"""

from __future__ import annotations

__all__ = ["track2_expiry", "track2_pan"]


def track2_pan(track2: bytes) -> str:
    """The PAN digits of Track 2 Equivalent Data (57): the nibbles before ``D``.

    A value without separator, with non-digits before it or with more than 19 digits
    gives ``""``.
    """
    pan, sep, _ = track2.hex().upper().partition("D")
    return pan if sep and pan.isdigit() and 1 <= len(pan) <= 19 else ""


def track2_expiry(track2: bytes) -> bytes:
    """The expiry date YYMM (two BCD bytes) after the separator of 57, or ``b""``."""
    _, sep, rest = track2.hex().upper().partition("D")
    if not sep or len(rest) < 4 or not rest[:4].isdigit():
        return b""
    return bytes.fromhex(rest[:4])
