"""Countries as EMV and the QR codes carry them: ISO 3166-1 numeric and alpha-2.

A terminal's country travels as its ISO 3166-1 numeric code in the Terminal Country
Code 9F1A (format n 3 in two bytes, EMV Book 3 Annex A); a merchant-presented QR code
names it with the alpha-2 code in ID 58 (EMV QRCPS-MPM, "Country Code"). The issuer
records a terminal's country as four digits (``0250``), the 9F1A value in hex. This one
table turns one into the other, with the country's currency (ISO 4217), the default
of a terminal registered without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["COUNTRIES", "Country", "country_by_alpha2", "country_by_numeric"]


@dataclass(frozen=True, slots=True)
class Country:
    """An ISO 3166-1 country: alpha-2 code, numeric code, and its currency (ISO 4217
    alphabetic)."""

    alpha2: str
    numeric: int
    currency: str

    @property
    def code(self) -> bytes:
        """The 9F1A value: the numeric code as n 3 in two bytes (``02 50``)."""
        return bytes.fromhex(f"{self.numeric:04d}")


#: The countries tapstack knows by name: those of the currencies it knows
#: (:data:`emvwire.currency.CURRENCIES`) and the euro area's largest members.
COUNTRIES: Final[Mapping[str, Country]] = {
    c.alpha2: c
    for c in (
        Country("FR", 250, "EUR"),
        Country("DE", 276, "EUR"),
        Country("IT", 380, "EUR"),
        Country("ES", 724, "EUR"),
        Country("NL", 528, "EUR"),
        Country("BE", 56, "EUR"),
        Country("AT", 40, "EUR"),
        Country("IE", 372, "EUR"),
        Country("PT", 620, "EUR"),
        Country("FI", 246, "EUR"),
        Country("US", 840, "USD"),
        Country("GB", 826, "GBP"),
        Country("CH", 756, "CHF"),
        Country("SE", 752, "SEK"),
        Country("NO", 578, "NOK"),
        Country("DK", 208, "DKK"),
        Country("PL", 616, "PLN"),
        Country("CZ", 203, "CZK"),
        Country("CA", 124, "CAD"),
        Country("AU", 36, "AUD"),
        Country("JP", 392, "JPY"),
        Country("KR", 410, "KRW"),
        Country("CN", 156, "CNY"),
        Country("IN", 356, "INR"),
        Country("BR", 76, "BRL"),
        Country("MX", 484, "MXN"),
        Country("SG", 702, "SGD"),
        Country("HK", 344, "HKD"),
        Country("ZA", 710, "ZAR"),
        Country("TN", 788, "TND"),
        Country("KW", 414, "KWD"),
    )
}
_BY_NUMBER: Final[Mapping[int, Country]] = {c.numeric: c for c in COUNTRIES.values()}


def country_by_numeric(code: str | bytes | int) -> Country:
    """A country by its numeric code: ``250``, ``"0250"`` (as the issuer records it) or
    the 9F1A bytes; ``ValueError`` for one this table does not know.

    >>> country_by_numeric("0250").alpha2
    'FR'
    """
    if isinstance(code, bytes):
        code = code.hex()
    text = str(code).strip()
    if not text.isdigit() or not 1 <= len(text) <= 4:
        raise ValueError(f"{code!r} is not an ISO 3166-1 numeric code")
    found = _BY_NUMBER.get(int(text))
    if found is None:
        raise ValueError(f"country {text} is not one tapstack knows")
    return found


def country_by_alpha2(code: str) -> Country:
    """A country by its alpha-2 code (``FR``); ``ValueError`` for one this table does not
    know."""
    found = COUNTRIES.get(str(code).strip().upper())
    if found is None:
        raise ValueError(f"country {code!r} is not one tapstack knows")
    return found
