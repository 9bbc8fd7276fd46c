"""The phone wallet's QR codes: a consumer-presented code to show, and the data to pay
a merchant-presented one, from the same application and keys as the phone's taps.

The wallet is its own reader: it runs the card application through the commands of a
contactless transaction (:class:`card.probe.CardProbe`: SELECT, GET PROCESSING
OPTIONS, READ RECORD, GENERATE AC for an ARQC), so the cryptogram comes from the very
code path a tap's does (:mod:`card.visa`'s GPO, :mod:`card.mastercard`'s GENERATE AC),
the ATC moves and persists as a tap's, and the issuer verifies it as it verifies a
tap's. The data the wallet gives the card, as a reader would:

- Terminal Transaction Qualifiers ``9F66`` ``20C04000`` (Book C-3 Annex A: qVSDC;
  online cryptogram required; CVM required; consumer device CVM supported: the phone
  verified its holder before it showed the code);
- the amount ``9F02`` (zero for a consumer-presented code made without one), no other
  amount, the currency ``5F2A`` and country ``9F1A`` (the application's currency
  ``9F42`` and issuer country ``5F28`` for a consumer-presented code; the merchant
  code's for a payment), a zero TVR, a purchase (``9C`` 00);
- the date ``9A`` and unpredictable number ``9F37`` that stamp when the cryptogram was
  made (:func:`emvwire.qr.tapstack.stamp`: the issuer bounds the code's life with
  them; the UN's last two bytes come from the CSPRNG).

A consumer-presented code (EMV QRCPS-CPM, :class:`~emvwire.qr.cpm.ConsumerPresentedCode`)
holds one application template ``61``: the AID, label, track 2 equivalent data (the
token's, on a phone), the token requestor id, PAR and last four digits of the funding
PAN, and in its transparent template ``63`` what the issuer needs to verify the
cryptogram (Book 2 §8.1.1: 9F26, 9F27, 9F10, 9F36, 9F37, 82, the amounts, country,
TVR, currency, date, type) with the CTQ and PAN sequence number when the card has
them. A payment of a merchant's code sends the same data as field 55
(:meth:`~emvwire.qr.cpm.ConsumerPresentedCode.icc_data`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from card.application import int_to_bcd
from card.emv import EmvCard
from card.probe import CardProbe, TapRecord
from emvwire.apdu import ARQC, StatusWordError
from emvwire.country import country_by_alpha2
from emvwire.currency import Currency, currency_by_code
from emvwire.errors import EmvWireError
from emvwire.mask import mask_pan
from emvwire.qr.cpm import Application, ConsumerPresentedCode
from emvwire.qr.tapstack import CODE_LIFETIME, stamp
from emvwire.tags import Tag
from emvwire.track2 import track2_pan

__all__ = ["WALLET_TTQ", "Wallet", "WalletCode", "WalletError"]

#: The wallet's Terminal Transaction Qualifiers (module docstring).
WALLET_TTQ: Final = bytes.fromhex("20C04000")
#: What the cryptogram covers, in the transparent template in this order (Book 2
#: §8.1.1), then what the card adds when it has it.
_COVERED: Final = (
    Tag.APPLICATION_CRYPTOGRAM, Tag.CID, Tag.IAD, Tag.ATC, Tag.UNPREDICTABLE_NUMBER,
    Tag.AIP, Tag.AMOUNT_AUTHORISED, Tag.AMOUNT_OTHER, Tag.TERMINAL_COUNTRY_CODE, Tag.TVR,
    Tag.TRANSACTION_CURRENCY_CODE, Tag.TRANSACTION_DATE, Tag.TRANSACTION_TYPE,
)  # fmt: skip
_IF_HELD: Final = (Tag.CTQ, Tag.PAN_SEQUENCE_NUMBER)
#: Token data objects of template 61 (QRCPS-CPM) taken from the profile when held.
_TOKEN_DATA: Final = (Tag.TOKEN_REQUESTOR_ID, Tag.PAR, Tag.LAST4_OF_PAN)


class WalletError(EmvWireError):
    """The wallet cannot make a code or a payment: the profile is not a phone's, the
    card refused (AAC: blocked, expired) or answered something unusable."""


@dataclass(frozen=True, slots=True)
class WalletCode:
    """A consumer-presented code made by :meth:`Wallet.consumer_code`. ``text`` carries
    the token's track 2: show the code, never log it; the repr shows only the masked
    token and the ATC."""

    code: ConsumerPresentedCode = field(repr=False)
    text: str = field(repr=False)
    token: str
    atc: int
    amount: int | None
    currency: Currency
    made_at: datetime
    valid_until: datetime

    def to_json(self) -> dict[str, object]:
        """JSON-ready data, masked (the code's text is not in it)."""
        return {
            "token": self.token,
            "atc": self.atc,
            "amount": self.amount,
            "currency": self.currency.alpha,
            "made_at": self.made_at.isoformat(timespec="seconds"),
            "valid_until": self.valid_until.isoformat(timespec="seconds"),
        }


class Wallet:
    """The phone wallet of ``card`` (a phone's profile, module docstring). ``clock``
    gives the time (UTC), ``rng(n)`` n random bytes."""

    def __init__(
        self,
        card: EmvCard,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if card.profile.form != "phone":
            raise WalletError("a plastic card shows no code: use a phone's profile")
        self.card = card
        self.clock = clock
        self._rng = rng
        self._app = card.applications[0].app

    @property
    def currency(self) -> Currency:
        """The application's currency (9F42), what a code of its own is made in."""
        held = self._app.data.get(Tag.APPLICATION_CURRENCY_CODE)
        if held is None:
            raise WalletError("the application has no currency (9F42)")
        return currency_by_code(held)

    def _country(self) -> bytes:
        held = self._app.data.get(Tag.ISSUER_COUNTRY_CODE)
        if held is None:
            raise WalletError("the application has no issuer country (5F28)")
        return held

    def _run(self, amount: int, currency: bytes, country: bytes) -> tuple[TapRecord, datetime]:
        """One transaction of the card (module docstring): what it answered, and when."""
        now = self.clock()
        date, un = stamp(now, self._rng(2))
        data: Mapping[int, bytes] = {
            Tag.TTQ: WALLET_TTQ,
            Tag.AMOUNT_AUTHORISED: int_to_bcd(amount, 6),
            Tag.AMOUNT_OTHER: bytes(6),
            Tag.TERMINAL_COUNTRY_CODE: country,
            Tag.TVR: bytes(5),
            Tag.TRANSACTION_CURRENCY_CODE: currency,
            Tag.TRANSACTION_DATE: date,
            Tag.TRANSACTION_TYPE: b"\x00",
            Tag.UNPREDICTABLE_NUMBER: un,
        }
        self.card.power_on()
        try:
            record = CardProbe(self.card).tap(data, aid=self._app.aid, gen_ac=ARQC, errd=False)
        except StatusWordError as exc:
            raise WalletError(f"the card refused: {exc}") from None
        finally:
            self.card.power_off()
        cid = record.data.get(Tag.CID, b"\x00")
        if cid[0] & 0xC0 != ARQC:
            raise WalletError("the card declined (no ARQC: blocked or expired)")
        record.data.update({t: v for t, v in data.items() if t not in record.data})
        return record, now

    def _application(self, record: TapRecord) -> Application:
        """Template 61 of the code (module docstring)."""
        values = record.data
        covered = {t: values[t] for t in _COVERED}
        covered.update({t: values[t] for t in _IF_HELD if t in values})
        more = {t: self._app.data[t] for t in _TOKEN_DATA if t in self._app.data}
        track2 = values.get(Tag.TRACK2_EQUIVALENT) or self._app.data.get(Tag.TRACK2_EQUIVALENT)
        if track2 is None:
            raise WalletError("the card gave no track 2 equivalent data")
        return Application.of(
            self._app.aid, label=self._app.label, track2=track2, data=covered, more=more
        )

    def consumer_code(self, amount: int | None = None) -> WalletCode:
        """A one-time consumer-presented code, for ``amount`` (minor units of the
        application's currency) or for any amount the till asks (``None``)."""
        if amount is not None and amount <= 0:
            raise WalletError("a code's amount is above zero")
        currency = self.currency
        record, made = self._run(amount or 0, currency.code, self._country())
        code = ConsumerPresentedCode((self._application(record),))
        track2 = code.track2() or b""
        return WalletCode(
            code=code,
            text=code.encode(),
            token=mask_pan(track2_pan(track2)),
            atc=int.from_bytes(record.data[Tag.ATC], "big"),
            amount=amount,
            currency=currency,
            made_at=made,
            valid_until=made + CODE_LIFETIME,
        )

    def payment(self, amount: int, currency: Currency, country: str) -> tuple[bytes, bytes]:
        """Field 55 and track 2 to pay a merchant-presented code of ``amount`` minor
        units of ``currency`` in ``country`` (alpha-2; one this table does not know is
        paid as a domestic one)."""
        if amount <= 0:
            raise WalletError("a payment is for an amount above zero")
        try:
            where = country_by_alpha2(country).code
        except ValueError:
            where = self._country()
        record, _ = self._run(amount, currency.code, where)
        code = ConsumerPresentedCode((self._application(record),))
        return code.icc_data(), code.track2() or b""
