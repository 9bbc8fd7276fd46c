"""What the EMVCo QR specifications leave to the payment system, as tapstack does it.

**Merchant-presented codes** (QRCPS-MPM). A tapstack merchant is named in the merchant
account information template ``26`` (the first of 26-51, "Merchant Account
Information") whose globally unique identifier (sub-ID ``00``) is :data:`GUI`
(``org.tapstack``, a reverse domain name as the specification suggests) and whose
sub-ID ``01`` is the id the issuer gave the merchant's terminal. Everything else a
phone shows (name, city, category) is the code's word only: a wallet looks the id up
at the issuer before paying, so a tampered or look-alike code shows the merchant the
issuer knows. :func:`merchant_code` makes a static code (point of initiation ``11``:
no amount, for every payment) or a dynamic one (``12``: the amount in ``54`` and the
sale's bill number in ``62.01``).

**Consumer-presented codes** (QRCPS-CPM) carry no time: a code is made once, its
cryptogram over the transaction data the phone chose, and the specification leaves it
to the issuer to bound its life. tapstack stamps the time the cryptogram was made into
the cryptogram's own input (:func:`stamp`): the transaction date ``9A`` is the UTC
date, the first two bytes of the unpredictable number ``9F37`` the time of day in
2-second units (0 to 43,199), the last two random (CSPRNG). The ARQC covers both
(EMV Book 2 §8.1.1), so once it verifies the issuer can trust :func:`stamped_at`; it
refuses a code made more than :data:`CODE_LIFETIME` ago or more than
:data:`CLOCK_SKEW` ahead of its clock (:func:`is_fresh`). The ATC makes each code
one-time: a code used twice is an ATC replay. A phone paying a merchant's code stamps
its cryptogram the same way.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Final

from emvwire.country import Country
from emvwire.currency import Currency, parse_amount
from emvwire.errors import QrError
from emvwire.qr.mpm import AdditionalData, MerchantPresentedCode, Template

__all__ = [
    "ACCOUNT_TEMPLATE",
    "CLOCK_SKEW",
    "CODE_LIFETIME",
    "GUI",
    "MERCHANT_ID",
    "amount_minor",
    "amount_text",
    "ans_text",
    "is_fresh",
    "merchant_code",
    "merchant_id",
    "stamp",
    "stamped_at",
]

#: The globally unique identifier of tapstack's merchant account information.
GUI: Final = "org.tapstack"
#: The merchant account information template tapstack writes (QRCPS-MPM 26-51).
ACCOUNT_TEMPLATE: Final = "26"
#: Its sub-ID holding the merchant's terminal id.
MERCHANT_ID: Final = "01"
#: How long a consumer-presented code is good for after its cryptogram was made.
CODE_LIFETIME: Final = timedelta(seconds=120)
#: How far ahead of the issuer's clock a phone's clock may run.
CLOCK_SKEW: Final = timedelta(seconds=30)
#: Resolution of the time stamped in the unpredictable number (2 s: a day in 16 bits).
_TICK: Final = 2
_TICKS_PER_DAY: Final = 86_400 // _TICK


def ans_text(text: str, limit: int) -> str:
    """``text`` in the EMV common character set (ans: 0x20-0x7E), accents taken off
    (Unicode NFKD, combining marks dropped), other characters as ``?``, at most
    ``limit`` characters (QRCPS-MPM: a merchant name is 25, a city 15).

    >>> ans_text("Café de la Gare, Besançon", 25)
    'Cafe de la Gare, Besancon'
    """
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    out = "".join(c if " " <= c <= "~" else "?" for c in plain).strip()
    return out[:limit].rstrip() or "?"


def amount_text(minor: int, currency: Currency) -> str:
    """An amount in minor units as QRCPS-MPM writes it (``54``: digits, ``.`` as the
    decimal mark, as many decimals as the currency has): 1250 EUR -> ``"12.50"``."""
    if minor <= 0:
        raise QrError("an amount is above zero", field="54")
    if currency.exponent == 0:
        return str(minor)
    unit = 10**currency.exponent
    return f"{minor // unit}.{minor % unit:0{currency.exponent}d}"


def amount_minor(code: MerchantPresentedCode, currency: Currency) -> int | None:
    """The code's amount (``54``) in minor units of ``currency``, ``None`` without one;
    :class:`~emvwire.errors.QrError` naming ``54`` if it has more decimals than the
    currency."""
    if code.amount is None:
        return None
    try:
        return parse_amount(code.amount, currency.exponent)
    except ValueError as exc:
        raise QrError(str(exc), field="54") from None


def merchant_code(
    terminal_id: str,
    *,
    name: str,
    city: str,
    mcc: str,
    currency: Currency,
    country: Country,
    amount: int | None = None,
    bill: str | None = None,
) -> MerchantPresentedCode:
    """A merchant-presented code for terminal ``terminal_id`` (module docstring): static
    without ``amount`` and ``bill``, dynamic with both (minor units, bill number);
    :class:`~emvwire.errors.QrError` for values no valid code can hold."""
    if (amount is None) != (bill is None):
        raise QrError("a dynamic code has an amount and a bill number", field="01")
    account = Template.of(ACCOUNT_TEMPLATE, GUI, {MERCHANT_ID: terminal_id})
    return MerchantPresentedCode(
        accounts=(account,),
        merchant_category_code=mcc,
        currency=currency.number,
        country=country.alpha2,
        merchant_name=ans_text(name, 25),
        merchant_city=ans_text(city, 15),
        point_of_initiation="11" if amount is None else "12",
        amount=None if amount is None else amount_text(amount, currency),
        additional_data=None if bill is None else AdditionalData.of(bill_number=bill),
    )


def merchant_id(code: MerchantPresentedCode) -> str | None:
    """The terminal id of the code's tapstack merchant account (the first template
    26-51 whose GUI is :data:`GUI`), ``None`` if it names no tapstack merchant."""
    for account in code.accounts:
        if isinstance(account, Template) and account.gui == GUI:
            return account.get(MERCHANT_ID)
    return None


def stamp(now: datetime, random: bytes) -> tuple[bytes, bytes]:
    """The transaction date ``9A`` and unpredictable number ``9F37`` of a cryptogram
    made at ``now`` (module docstring); ``random`` is two bytes of a CSPRNG."""
    if len(random) != 2:
        raise ValueError("two random bytes")
    utc = now.astimezone(UTC)
    ticks = (utc.hour * 3600 + utc.minute * 60 + utc.second) // _TICK
    return bytes.fromhex(utc.strftime("%y%m%d")), ticks.to_bytes(2, "big") + random


def stamped_at(tag_9a: bytes, tag_9f37: bytes) -> datetime | None:
    """When a cryptogram stamped by :func:`stamp` was made (UTC); ``None`` if the date
    or the time is not one (a cryptogram that was not stamped)."""
    if len(tag_9a) != 3 or len(tag_9f37) != 4:
        return None
    ticks = int.from_bytes(tag_9f37[:2], "big")
    if ticks >= _TICKS_PER_DAY:
        return None
    try:
        day = datetime.strptime(tag_9a.hex(), "%y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(seconds=ticks * _TICK)


def is_fresh(
    tag_9a: bytes,
    tag_9f37: bytes,
    now: datetime,
    *,
    lifetime: timedelta = CODE_LIFETIME,
    skew: timedelta = CLOCK_SKEW,
) -> bool:
    """Whether a stamped cryptogram is still good at ``now``: made at most ``lifetime``
    ago (less the stamp's 2-second resolution) and at most ``skew`` ahead."""
    made = stamped_at(tag_9a, tag_9f37)
    if made is None:
        return False
    return now - lifetime - timedelta(seconds=_TICK) <= made <= now + skew
