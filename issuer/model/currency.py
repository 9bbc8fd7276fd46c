"""Currencies: ISO 4217 alphabetic code, numeric code (the EMV tags 5F2A, 9F42) and
minor unit, and amounts written in major units.

Only the currencies listed here are accepted; the table is ISO 4217's (List One) for
them.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple

from issuer.errors import ValidationError

__all__ = [
    "CURRENCIES",
    "Currency",
    "currency",
    "currency_by_numeric",
    "format_amount",
    "parse_amount",
]


class Currency(NamedTuple):
    """An ISO 4217 currency."""

    code: str
    numeric: str
    exponent: int


#: ISO 4217 List One entries of the currencies tapstack accepts.
CURRENCIES: Final = {
    c.code: c
    for c in (
        Currency("EUR", "978", 2),
        Currency("USD", "840", 2),
        Currency("GBP", "826", 2),
        Currency("CHF", "756", 2),
        Currency("SEK", "752", 2),
        Currency("NOK", "578", 2),
        Currency("DKK", "208", 2),
        Currency("PLN", "985", 2),
        Currency("CAD", "124", 2),
        Currency("AUD", "036", 2),
        Currency("JPY", "392", 0),
    )
}
_BY_NUMERIC: Final = {c.numeric: c for c in CURRENCIES.values()}


def currency(code: str) -> Currency:
    """The currency of an alphabetic code (case-insensitive)."""
    found = CURRENCIES.get(str(code).upper())
    if found is None:
        raise ValidationError(f"unknown currency {code!r}; one of {', '.join(sorted(CURRENCIES))}")
    return found


def currency_by_numeric(numeric: str | bytes) -> Currency:
    """The currency of a numeric code: ``"978"`` or the 2-byte value of tag 5F2A."""
    text = numeric.hex()[-3:] if isinstance(numeric, bytes) else str(numeric).zfill(3)
    found = _BY_NUMERIC.get(text)
    if found is None:
        raise ValidationError(f"unknown currency number {text}")
    return found


def parse_amount(text: str, code: str) -> int:
    """``"12.34"`` EUR -> 1234 (minor units). Refuses more decimals than the currency has."""
    cur = currency(code)
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", str(text).strip()):
        raise ValidationError("an amount is a positive decimal number, e.g. 12.50")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:  # pragma: no cover - the pattern excludes it
        raise ValidationError("an amount is a decimal number") from None
    minor = value.scaleb(cur.exponent)
    if minor != minor.to_integral_value():
        raise ValidationError(f"{cur.code} has {cur.exponent} decimals")
    return int(minor)


def format_amount(minor: int, code: str) -> str:
    """1234 EUR -> ``"12.34 EUR"``."""
    cur = currency(code) if code in CURRENCIES else Currency(code, "000", 2)
    sign = "-" if minor < 0 else ""
    digits = abs(minor)
    if cur.exponent == 0:
        return f"{sign}{digits} {cur.code}"
    unit = 10**cur.exponent
    return f"{sign}{digits // unit}.{digits % unit:0{cur.exponent}d} {cur.code}"
