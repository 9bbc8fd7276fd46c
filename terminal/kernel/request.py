"""A transaction request (EMV Book A §5.5; the data of Book 3 Annex A): the amount,
other amount, currency, type, date and time the payment application asks a kernel for,
as the data objects 9F02, 9F03, 5F2A, 9C, 9A and 9F21.

Apart from :mod:`terminal.kernel.transaction` (results, outcomes, field 55), which
re-exports it: a card reading that only fills a PDOL for a zero amount
(:mod:`terminal.kernel.reading`) loads this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from emvwire.currency import MAX_AMOUNT
from emvwire.tags import Tag

__all__ = ["Transaction", "bcd"]


def bcd(value: int, length: int) -> bytes:
    """``value`` as ``length`` bytes of packed BCD (format n, Book 3 §4.3)."""
    if value < 0 or value >= 10 ** (2 * length):
        raise ValueError(f"{value} does not fit {length} BCD bytes")
    return bytes.fromhex(f"{value:0{2 * length}d}")


@dataclass(frozen=True, slots=True)
class Transaction:
    """One transaction request (Book A §5.5; the data of Book 3 Annex A).

    ``amount`` and ``other_amount`` are minor units (9F02, 9F03); ``currency`` the 5F2A
    value (``None``: the terminal's); ``type`` the 9C value (00 purchase, 01 cash
    advance, 09 purchase with cashback, 20 refund); ``when`` the date and time (``None``:
    the clock's at the start of the transaction).
    """

    amount: int
    other_amount: int = 0
    currency: bytes | None = None
    type: int = 0x00
    when: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("amount", "other_amount"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} is an int of minor units")
            if not 0 <= value <= MAX_AMOUNT:
                raise ValueError(f"{name} must be 0 to {MAX_AMOUNT} minor units")
        if self.currency is not None and len(self.currency) != 2:
            raise ValueError("currency is the two-byte 5F2A value (n 3)")
        if not 0 <= self.type <= 0xFF:
            raise ValueError("type is the one-byte 9C value")

    def at(self, when: datetime) -> Transaction:
        """The same request dated ``when``."""
        return replace(self, when=when)

    def data(self, terminal_currency: bytes) -> dict[int, bytes]:
        """The transaction data objects: 9F02, 9F03, 5F2A, 9C and, when dated, 9A, 9F21."""
        out = {
            Tag.AMOUNT_AUTHORISED: bcd(self.amount, 6),
            Tag.AMOUNT_OTHER: bcd(self.other_amount, 6),
            Tag.TRANSACTION_CURRENCY_CODE: self.currency
            if self.currency is not None
            else terminal_currency,
            Tag.TRANSACTION_TYPE: bytes((self.type,)),
        }
        if self.when is not None:
            w = self.when
            out[Tag.TRANSACTION_DATE] = bcd(w.year % 100 * 10000 + w.month * 100 + w.day, 3)
            out[Tag.TRANSACTION_TIME] = bcd(w.hour * 10000 + w.minute * 100 + w.second, 3)
        return out
