"""Masking of cardholder data for every repr, log line and CLI output of tapstack.

One family of functions decides what of a PAN, a track image or another sensitive
data object may be shown. Everything else in the project calls these; nothing formats
a PAN itself.

PAN rule (:func:`mask_pan`), following PCI DSS v4.0 Requirement 3.4.1 ("BIN and last
four digits" is the most that may be displayed) and tightened for short PANs:

================  =====================  ==========================================
PAN length L      shown                  why
================  =====================  ==========================================
16 digits and up  first 6, last 4        PCI DSS maximum; at least 6 digits hidden
13 to 15 digits   first L//2-4, last 4   never more than half the digits
1 to 12 digits    last min(4, L//2)      never more than half, no leading digits
================  =====================  ==========================================

So a masked PAN never shows more than 10 digits, never a digit from position 7 to
L-4 (the individual account identification, ISO/IEC 7812-1), and below 16 digits never more
than half of them. Hidden digits become ``*``; the length is kept. A string that is
not a PAN (non-digits after the ``F`` padding of format ``cn`` is removed) is masked
entirely.

Track images (:func:`mask_track2`, :func:`mask_track1`) keep the field separators
(``D`` or ``=``, ``^``) and the format code, mask the PAN by the rule above, and hide
every other field: expiry date, service code, cardholder name and discretionary data
(EMV Book 3 Annex A, tags 56, 57, 9F6B; ISO/IEC 7813 track layouts).

:func:`mask_value` masks a data object value by tag, driven by the ``sensitive`` flag
of :mod:`emvwire.dictionary`; :func:`scrub` is a last line of defence for free text,
masking any run of 12 or more digits as if it were a PAN.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from emvwire.dictionary import format_of, sensitive_tags
from emvwire.tags import Tag

__all__ = [
    "MASK_CHAR",
    "MASK_STRATEGIES",
    "is_sensitive",
    "mask_digits",
    "mask_hex",
    "mask_pan",
    "mask_text",
    "mask_track1",
    "mask_track2",
    "mask_value",
    "pan_reveal",
    "scrub",
]

#: The character standing for every hidden digit or character.
MASK_CHAR = "*"

_TRACK2_SEPARATORS = "D="
_PAN_RUN = re.compile(r"\d{12,}")
_TRACK2_RUN = re.compile(r"(?<![0-9A-Fa-f])(\d{12,19})([D=])([0-9A-Fa-f]*)", re.ASCII)


def pan_reveal(length: int) -> tuple[int, int]:
    """How many leading and trailing digits of a PAN of ``length`` digits may be shown.

    The rule of this module's table: ``(6, 4)`` from 16 digits (PCI DSS v4.0 Req. 3.4.1),
    ``(L//2 - 4, 4)`` for 13 to 15 digits, ``(0, min(4, L//2))`` below 13.
    """
    if length >= 16:
        return 6, 4
    if length >= 13:
        return length // 2 - 4, 4
    return 0, min(4, length // 2)


def mask_digits(count: int) -> str:
    """``count`` mask characters."""
    return MASK_CHAR * max(0, count)


def _pan_text(pan: str | bytes) -> str:
    """The PAN as text: ``bytes`` are the cn-format value of tag 5A (Book 3 Annex A)."""
    if isinstance(pan, bytes | bytearray | memoryview):
        return bytes(pan).hex().upper()
    return pan.strip()


def mask_pan(pan: str | bytes) -> str:
    """Mask a PAN by the rule of the module table.

    ``pan`` is the digit string or the raw value of tag 5A (compressed numeric, padded
    with ``F``). Trailing ``F`` padding is dropped. Anything that is not one to 19+
    decimal digits after that is replaced by mask characters throughout, so a malformed
    value never leaks.
    """
    text = _pan_text(pan).rstrip("Ff")
    if not text:
        return ""
    if not (text.isascii() and text.isdigit()):
        return mask_digits(len(text))
    first, last = pan_reveal(len(text))
    hidden = len(text) - first - last
    return text[:first] + mask_digits(hidden) + (text[-last:] if last else "")


def mask_track2(track2: str | bytes) -> str:
    """Mask Track 2 Equivalent Data (tag 57) or Track 2 Data (9F6B).

    ``bytes`` are the tag value (nibbles: PAN, separator ``D``, YYMM, service code,
    discretionary data, ``F`` pad; Book 3 Annex A). ``str`` may also be a magnetic
    track image with ``=`` as separator. The separator is kept, the PAN masked by
    :func:`mask_pan`, every later character replaced by ``*``. Without a separator,
    or with a PAN that is not digits, everything is masked.
    """
    if isinstance(track2, bytes | bytearray | memoryview):
        text = bytes(track2).hex().upper()
        if text.endswith("F"):
            text = text[:-1]
    else:
        text = track2.strip().upper()
        text = text.removeprefix(";").removesuffix("?")
    cut = min((i for i in (text.find(s) for s in _TRACK2_SEPARATORS) if i >= 0), default=-1)
    if cut < 0:
        return mask_digits(len(text))
    pan = text[:cut]
    if not (pan.isascii() and pan.isdigit()):
        return mask_digits(len(text))
    return mask_pan(pan) + text[cut] + mask_digits(len(text) - cut - 1)


def mask_track1(track1: str | bytes) -> str:
    """Mask Track 1 Data (tag 56) or a track 1 image (ISO/IEC 7813 format B).

    Layout ``[%]B PAN ^ NAME ^ YYMM SVC DISCRETIONARY [?]``: the format code and the
    two ``^`` separators are kept, the PAN masked by :func:`mask_pan`, the name and
    everything after the second separator replaced by ``*``. Any other shape is
    masked entirely.
    """
    text = (
        bytes(track1).decode("latin-1")
        if isinstance(track1, bytes | bytearray | memoryview)
        else track1
    )
    body = text.removeprefix("%").removesuffix("?")
    parts = body.split("^")
    if len(parts) < 3 or not parts[0] or not parts[0][0].isalpha():
        return mask_digits(len(body))
    code, pan = parts[0][0], parts[0][1:]
    if not (pan.isascii() and pan.isdigit()):
        return mask_digits(len(body))
    rest = "^".join(parts[2:])
    return code + mask_pan(pan) + "^" + mask_digits(len(parts[1])) + "^" + mask_digits(len(rest))


def mask_text(value: bytes) -> str:
    """An alphanumeric value (format a, an, ans) hidden character for character."""
    return mask_digits(len(value))


def mask_hex(value: bytes) -> str:
    """A binary or numeric value hidden as its hex digits would be (two per byte)."""
    return mask_digits(2 * len(value))


#: How each sensitive tag with a structure of its own is masked (EMV Book 3 Annex A,
#: EMV Book C-2 Annex A). A tag here is always masked, whatever the dictionary says;
#: other tags flagged ``sensitive`` in :mod:`emvwire.dictionary` are masked as hex.
MASK_STRATEGIES: dict[int, Callable[[bytes], str]] = {
    Tag.PAN: mask_pan,  # Application Primary Account Number (PAN)
    Tag.TRACK2_EQUIVALENT: mask_track2,  # Track 2 Equivalent Data
    Tag.TRACK2_DATA: mask_track2,  # Track 2 Data (kernel 2 mag-stripe mode)
    Tag.TRACK1_DATA: mask_track1,  # Track 1 Data (kernel 2 mag-stripe mode)
    Tag.CARDHOLDER_NAME: mask_text,  # Cardholder Name
    Tag.CARDHOLDER_NAME_EXTENDED: mask_text,  # Cardholder Name Extended
    Tag.TRACK1_DISCRETIONARY_DATA: mask_text,  # Track 1 Discretionary Data
    Tag.TRACK2_DISCRETIONARY_DATA: mask_hex,  # Track 2 Discretionary Data
    Tag.TRANSACTION_PIN_DATA: mask_hex,  # Transaction Personal Identification Number (PIN) Data
}


def is_sensitive(tag: int) -> bool:
    """Whether values of ``tag`` are masked: listed here or flagged in the dictionary.

    A tag counts as sensitive if any kernel's meaning of it is flagged.
    """
    return tag in MASK_STRATEGIES or tag in sensitive_tags()


def mask_value(tag: int, value: bytes) -> str:
    """The displayable form of a data object value.

    A sensitive tag (see :func:`is_sensitive`) is masked by its strategy, or else
    character for character if its format is text and as hex digits otherwise; other
    values are returned as upper-case hex. Never raises on any ``value``.
    """
    value = bytes(value)
    strategy = MASK_STRATEGIES.get(tag)
    if strategy is not None:
        return strategy(value)
    if is_sensitive(tag):
        return mask_text(value) if format_of(tag).is_text else mask_hex(value)
    return value.hex().upper()


def _mask_track2_match(match: re.Match[str]) -> str:
    return mask_pan(match.group(1)) + match.group(2) + mask_digits(len(match.group(3)))


def scrub(text: str) -> str:
    """Mask anything in free ``text`` that may be a PAN or a track 2 image.

    Track-2-shaped runs (12 to 19 digits, ``D`` or ``=``, hex digits) are masked by
    :func:`mask_track2`; then every remaining run of 12 or more decimal digits by
    :func:`mask_pan`. This over-masks (any long number is hidden) on purpose: it is a
    backstop for log lines, not a substitute for :func:`mask_value`.
    """
    text = _TRACK2_RUN.sub(_mask_track2_match, text)
    return _PAN_RUN.sub(lambda m: mask_pan(m.group(0)), text)
