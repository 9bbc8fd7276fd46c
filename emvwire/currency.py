"""Currencies and amounts: ISO 4217 codes as EMV carries them.

A transaction's currency travels as its ISO 4217 numeric code in the Transaction
Currency Code 5F2A (format n 3 in two bytes, EMV Book 3 Annex A), its amount in minor
units in 9F02 (n 12: at most :data:`MAX_AMOUNT`). The terminal and the issuer read and
write both with this one table; an issuer that accepts fewer currencies says so
itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CURRENCIES",
    "MAX_AMOUNT",
    "Currency",
    "currency_by_code",
    "format_amount",
    "parse_amount",
]

#: Largest amount 9F02 can carry: n 12 (Book 3 Annex A).
MAX_AMOUNT: Final = 999_999_999_999
#: An amount typed in: ASCII digits, optionally a point and decimals (parse_amount).
_AMOUNT: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency: alphabetic code, numeric code, minor unit digits."""

    alpha: str
    numeric: int
    exponent: int

    @property
    def code(self) -> bytes:
        """The 5F2A value: the numeric code as n 3 in two bytes (``09 78``)."""
        return bytes.fromhex(f"{self.numeric:04d}")

    @property
    def number(self) -> str:
        """The numeric code as three digits (``"978"``, ``"036"``)."""
        return f"{self.numeric:03d}"


#: ISO 4217 (List One) entries of the currencies tapstack knows by name.
CURRENCIES: Final[Mapping[str, Currency]] = {
    c.alpha: c
    for c in (
        Currency("EUR", 978, 2),
        Currency("USD", 840, 2),
        Currency("GBP", 826, 2),
        Currency("CHF", 756, 2),
        Currency("SEK", 752, 2),
        Currency("NOK", 578, 2),
        Currency("DKK", 208, 2),
        Currency("PLN", 985, 2),
        Currency("CZK", 203, 2),
        Currency("CAD", 124, 2),
        Currency("AUD", 36, 2),
        Currency("JPY", 392, 0),
        Currency("KRW", 410, 0),
        Currency("CNY", 156, 2),
        Currency("INR", 356, 2),
        Currency("BRL", 986, 2),
        Currency("MXN", 484, 2),
        Currency("SGD", 702, 2),
        Currency("HKD", 344, 2),
        Currency("ZAR", 710, 2),
        Currency("TND", 788, 3),
        Currency("KWD", 414, 3),
    )
}
_BY_NUMBER: Final[Mapping[int, Currency]] = {c.numeric: c for c in CURRENCIES.values()}


def currency_by_code(text: str | bytes) -> Currency:
    """A currency by alphabetic code (``EUR``), number (``978``) or 5F2A bytes.

    An unknown number is accepted with two decimals (the ISO 4217 default); an unknown
    alphabetic code is a ``ValueError``.
    """
    if isinstance(text, bytes):
        text = text.hex()
    key = text.strip().upper()
    found = CURRENCIES.get(key)
    if found is not None:
        return found
    if key.isdigit() and 1 <= len(key) <= 4 and int(key) < 1000:
        number = int(key)
        return _BY_NUMBER.get(number) or Currency(f"{number:03d}", number, 2)
    known = ", ".join(sorted(CURRENCIES))
    raise ValueError(f"unknown currency {text!r}: use an ISO 4217 number or one of {known}")


def parse_amount(text: str, exponent: int = 2) -> int:
    """``"12.34"`` -> ``1234`` minor units for a currency with ``exponent`` decimals:
    the one reading of an amount typed in, for every tool (``--amount``, a till's
    lines, a tariff's limit).

    An amount is ASCII decimal digits, with a point and at most ``exponent`` decimals
    (``12``, ``12.5``, ``12.34``): no sign, exponent, grouping or other digits, so that
    ``1e3`` is never taken for 1000. Anything else, or more than 9F02 can carry, is a
    ``ValueError`` whose message shows the form.
    """
    body = text.strip()
    example = "12" if exponent == 0 else "12." + "3456789"[:exponent]
    if not _AMOUNT.fullmatch(body):
        raise ValueError(
            f"{text!r} is not an amount: write digits with at most {exponent} decimals, "
            f"e.g. {example}"
        )
    whole, _, decimals = body.partition(".")
    if len(decimals) > exponent:
        raise ValueError(f"{text!r} has more than {exponent} decimals: write e.g. {example}")
    out = int(whole + decimals.ljust(exponent, "0"))
    if out > MAX_AMOUNT:
        raise ValueError(f"{text!r} is more than 9F02 can carry")
    return out


def format_amount(minor: int, currency: Currency) -> str:
    """``1234`` EUR -> ``"12.34 EUR"``."""
    sign = "-" if minor < 0 else ""
    value = abs(minor)
    if currency.exponent == 0:
        return f"{sign}{value} {currency.alpha}"
    unit = 10**currency.exponent
    return f"{sign}{value // unit}.{value % unit:0{currency.exponent}d} {currency.alpha}"
