"""The EMV data dictionary as data (EMV Book 3 Annex A; EMV Books C-2 and C-3 Annex A).

Each entry says what a tag is called, its format (Book 3 §4.3), its length range in
bytes, who provides it, the templates it appears in, whether its value is cardholder
data to be masked (:mod:`emvwire.mask`) and where it is specified.

(Initial table; the full contactless dictionary follows.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from emvwire.tlv import tag_hex

__all__ = [
    "DICTIONARY",
    "Format",
    "Source",
    "TagInfo",
    "describe",
]


class Format(StrEnum):
    """Data element formats (EMV Book 3 §4.3)."""

    B = "b"
    N = "n"
    CN = "cn"
    AN = "an"
    ANS = "ans"
    A = "a"
    VAR = "var"


class Source(StrEnum):
    """Who provides a data object."""

    CARD = "card"
    TERMINAL = "terminal"
    ISSUER = "issuer"


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One data dictionary entry."""

    tag: int
    name: str
    format: Format
    min_len: int
    max_len: int
    source: Source
    templates: tuple[int, ...] = ()
    sensitive: bool = False
    ref: str = "Book 3 Annex A"

    @property
    def hex(self) -> str:
        """The tag as written in the specifications, e.g. ``9F26``."""
        return tag_hex(self.tag)


_B, _N, _CN, _ANS = Format.B, Format.N, Format.CN, Format.ANS
_CARD = Source.CARD

DICTIONARY: dict[int, TagInfo] = {
    e.tag: e
    for e in (
        TagInfo(0x56, "Track 1 Data", _ANS, 0, 76, _CARD, (0x70,), True, "Book C-2 Annex A"),
        TagInfo(0x57, "Track 2 Equivalent Data", _B, 0, 19, _CARD, (0x70, 0x77), True),
        TagInfo(0x5A, "Application Primary Account Number (PAN)", _CN, 0, 10, _CARD, (0x70,), True),
        TagInfo(0x5F20, "Cardholder Name", _ANS, 2, 26, _CARD, (0x70,), True),
        TagInfo(0x99, "Transaction PIN Data", _B, 0, 255, Source.TERMINAL, (), True),
        TagInfo(0x9F0B, "Cardholder Name Extended", _ANS, 27, 45, _CARD, (0x70,), True),
        TagInfo(0x9F1F, "Track 1 Discretionary Data", _ANS, 0, 255, _CARD, (0x70,), True),
        TagInfo(0x9F20, "Track 2 Discretionary Data", _CN, 0, 255, _CARD, (0x70,), True),
        TagInfo(0x9F6B, "Track 2 Data", _B, 0, 19, _CARD, (0x70,), True, "Book C-2 Annex A"),
    )
}


def describe(tag: int) -> TagInfo | None:
    """The dictionary entry of ``tag``, or ``None`` for a tag not in the dictionary."""
    return DICTIONARY.get(tag)
