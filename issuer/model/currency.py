"""The currencies this issuer keeps accounts in, and amounts written in major units.

The ISO 4217 table is emvwire's (:mod:`emvwire.currency`, the same one the terminal
reads 5F2A with); an account is in one of :data:`ACCEPTED` only. Amounts typed by an
operator are plain decimals (``12.50``): no exponent, no sign.
"""

from __future__ import annotations

from typing import Final

from emvwire import currency as iso4217
from emvwire.currency import Currency
from issuer.errors import ValidationError

__all__ = [
    "ACCEPTED",
    "Currency",
    "currency",
    "currency_by_numeric",
    "format_amount",
    "parse_amount",
]

#: The alphabetic codes of the currencies accounts may be kept in.
ACCEPTED: Final = ("AUD", "CAD", "CHF", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD")
_BY_NUMBER: Final = {iso4217.CURRENCIES[code].number: iso4217.CURRENCIES[code] for code in ACCEPTED}


def currency(code: str) -> Currency:
    """The currency of an alphabetic code (case-insensitive), if accepted."""
    key = str(code).upper()
    if key not in ACCEPTED:
        raise ValidationError(f"unknown currency {code!r}; one of {', '.join(ACCEPTED)}")
    return iso4217.CURRENCIES[key]


def currency_by_numeric(numeric: str | bytes) -> Currency:
    """The currency of a numeric code: ``"978"`` or the 2-byte value of tag 5F2A."""
    text = numeric.hex()[-3:] if isinstance(numeric, bytes) else str(numeric).zfill(3)
    found = _BY_NUMBER.get(text)
    if found is None:
        raise ValidationError(f"unknown currency number {text}")
    return found


def parse_amount(text: str, code: str) -> int:
    """``"12.34"`` EUR -> 1234 (minor units), read as every tool reads an amount
    (:func:`emvwire.currency.parse_amount`: digits, at most the currency's decimals)."""
    cur = currency(code)
    try:
        return iso4217.parse_amount(str(text), cur.exponent)
    except ValueError as exc:  # not digits, more decimals than the currency has, too large
        raise ValidationError(f"{exc} ({cur.alpha})") from None


def format_amount(minor: int, code: str) -> str:
    """1234 EUR -> ``"12.34 EUR"`` (an unknown code with two decimals)."""
    cur = iso4217.CURRENCIES.get(code) or Currency(code, 0, 2)
    return iso4217.format_amount(minor, cur)
