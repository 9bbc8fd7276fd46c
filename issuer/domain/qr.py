"""QR code payments at the issuer (EMV QRCPS-MPM and QRCPS-CPM, :mod:`emvwire.qr`).

A QR payment is an authorisation like a tap's (:mod:`issuer.domain.authorise`: ARQC,
ATC window, token domain, funds), recorded with its channel. What is particular to a
code is decided here and handed to the authoriser as the amount to authorise and a
*refusal*, which it declines with once the cryptogram verified (so that the code's
data that says so is the card's, not a forger's):

- **consumer-presented** (``qr_cpm``: a till scanned a phone's code and sent its data
  as a tap's field 55, :func:`cpm_terms`): the time stamped in the cryptogram
  (:mod:`emvwire.qr.tapstack`) within the code's lifetime, else ``QR_CODE_EXPIRED``;
  a code made for an amount (9F02 not zero) pays that amount only (another sale
  amount: ``AMOUNT_MISMATCH``), one made without pays the sale's amount (the
  request's). A code used twice repeats its ATC: ``ATC_REPLAYED``.
- **merchant-presented** (``qr_mpm``: a phone wallet pays a merchant's code,
  :meth:`QrPayments.pay`): the payload decodes strictly (its CRC) and names a tapstack
  merchant the issuer knows, else ``QR_CODE_INVALID`` or ``UNAUTHORIZED_MERCHANT``,
  answered but recorded nowhere (no merchant to record them under); the code's
  currency is the terminal's (``QR_CODE_INVALID``); the cryptogram's amount is the
  code's if it has one (``AMOUNT_MISMATCH``) and its stamp fresh (``QR_CODE_EXPIRED``);
  a dynamic code's sale (by bill number) is open, unexpired and of that amount
  (``QR_CODE_EXPIRED``, ``QR_CODE_USED``, ``AMOUNT_MISMATCH``). The payment *claims*
  the sale before it is authorised (``open`` -> ``paying``, one conditional UPDATE),
  so two phones cannot both pay one code; approved, the sale is ``paid`` by it,
  declined, ``open`` again for another card. The authorisation is the merchant
  terminal's, as its taps are: captured, voided and refunded by it.

A terminal opens the sale of the dynamic code it shows (:meth:`QrPayments.open_sale`;
the code is made here, from the terminal's record, as a static one is by
:func:`terminal_code`) and waits for its payment (the service's long poll).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from emvwire.contract import (
    Channel,
    Decision,
    DeclineReason,
    QrPaymentRequest,
    decode,
    response_code,
)
from emvwire.country import Country, country_by_numeric
from emvwire.currency import Currency, currency_by_code
from emvwire.errors import QrError
from emvwire.mask import mask_pan
from emvwire.qr.mpm import MerchantPresentedCode
from emvwire.qr.tapstack import amount_minor, is_fresh, merchant_code, merchant_id
from emvwire.tags import Tag
from issuer.domain.authorise import AuthorisationRequest, Authoriser
from issuer.domain.credentials import hash_credential, new_credential
from issuer.domain.decisions import Issuing
from issuer.domain.field55 import amount_and_currency, pan_of, parse_field55
from issuer.errors import NotFoundError, RefusedError, ValidationError
from issuer.ledger.qr_sql import qr_tables
from issuer.model.currency import currency as accepted_currency
from issuer.model.entities import (
    AuthorisationStatus,
    QrSale,
    QrSaleStatus,
    Terminal,
    TerminalStatus,
    Token,
    Wallet,
    new_id,
    utc_now,
    utc_text,
)

if TYPE_CHECKING:
    from issuer.ledger.repository import UnitOfWork

__all__ = [
    "CHANNELS",
    "MAX_SALE_SECONDS",
    "Paid",
    "QrPayments",
    "cpm_terms",
    "tap_terms",
    "terminal_code",
    "terminal_currency",
]

#: The channels a token may be restricted to (:class:`emvwire.contract.Channel`).
CHANNELS: Final = tuple(c.value for c in Channel)
#: Longest a sale may stay open (the contract's ``expires_in`` bound).
MAX_SALE_SECONDS: Final = 900
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def terminal_currency(terminal: Terminal) -> Currency:
    """The currency of a terminal's codes: its recorded one, else its country's."""
    if terminal.currency:
        return currency_by_code(terminal.currency)
    return currency_by_code(_country(terminal).currency)


def _country(terminal: Terminal) -> Country:
    try:
        return country_by_numeric(terminal.country)
    except ValueError as exc:
        raise RefusedError("merchant_incomplete", f"terminal {terminal.id}: {exc}") from None


def terminal_code(
    terminal: Terminal,
    *,
    amount: int | None = None,
    bill: str | None = None,
    city: str | None = None,
) -> MerchantPresentedCode:
    """The merchant-presented code of ``terminal`` as the issuer records it (merchant
    name, city, MCC, country, currency): static, or dynamic for ``amount`` and ``bill``
    (:func:`emvwire.qr.tapstack.merchant_code`). ``city`` stands in for a terminal
    with none recorded; without either, :class:`RefusedError` ``merchant_incomplete``."""
    place = city or terminal.city
    if not place:
        raise RefusedError(
            "merchant_incomplete",
            f"terminal {terminal.id} has no city for its QR codes: "
            f"`issuer terminal set {terminal.id} --city CITY`",
        )
    try:
        return merchant_code(
            terminal.id, name=terminal.merchant, city=place, mcc=terminal.mcc,
            currency=terminal_currency(terminal), country=_country(terminal), amount=amount,
            bill=bill,
        )  # fmt: skip
    except QrError as exc:
        raise ValidationError(f"no valid code: {exc}") from None


def cpm_terms(
    icc_data: bytes, amount: int | None, now: datetime
) -> tuple[int | None, DeclineReason | None]:
    """What a consumer-presented code's authorisation is for (module docstring): the
    amount to authorise (``None``: the cryptogram's 9F02) and the refusal, if any.
    ``amount`` is the sale's, as the till sent it (``None``: the code's)."""
    tags = parse_field55(icc_data)
    in_code, _ = amount_and_currency(tags)
    refusal: DeclineReason | None = None
    take: int | None = None
    if amount is not None:
        if in_code > 0 and amount != in_code:
            refusal = DeclineReason.AMOUNT_MISMATCH
        elif in_code == 0:
            take = amount
    stamp = (tags.get(Tag.TRANSACTION_DATE, b""), tags.get(Tag.UNPREDICTABLE_NUMBER, b""))
    if refusal is None and not is_fresh(*stamp, now):
        refusal = DeclineReason.QR_CODE_EXPIRED
    return take, refusal


def tap_terms(icc_data: bytes, amount: int | None) -> DeclineReason | None:
    """The refusal of a tap's authorisation that names an ``amount``: the cryptogram's
    (9F02) it must be, ``AMOUNT_MISMATCH`` else (a tap is never paid for an amount
    its cryptogram does not cover)."""
    if amount is None:
        return None
    in_code, _ = amount_and_currency(parse_field55(icc_data))
    return None if amount == in_code else DeclineReason.AMOUNT_MISMATCH


@dataclass(frozen=True, slots=True)
class Paid:
    """A merchant-presented payment's answer, and the sale it moved (terminal id and
    bill number, for the service to wake its waiters), if any."""

    decision: Decision
    sale: tuple[str, str] | None = None


class QrPayments:
    """Wallets, sales of dynamic codes and merchant-presented payments over an
    :class:`~issuer.domain.decisions.Issuing` and its :class:`Authoriser`.
    ``clock`` gives the time (UTC)."""

    def __init__(
        self,
        issuer: Issuing,
        authoriser: Authoriser,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._issuer = issuer
        self._authoriser = authoriser
        self.clock = clock

    # -- wallets and merchants ---------------------------------------------------------

    def add_wallet(self, name: str) -> tuple[Wallet, str]:
        """Register a phone wallet: its record and its credential (shown once)."""
        name = str(name).strip()
        if not name or len(name) > 100:
            raise ValidationError("a wallet name is 1 to 100 characters")
        credential = new_credential()
        wallet = Wallet(
            new_id("wlt"), name, hash_credential(credential), TerminalStatus.ACTIVE, utc_now()
        )
        with self._issuer.ledger.unit_of_work() as uow:
            qr_tables(uow).wallets.add(wallet)
            uow.commit()
        return wallet, credential

    def wallet(self, wallet_id: str) -> Wallet:
        """One wallet."""
        with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
            return qr_tables(uow).wallets.get(wallet_id)

    def wallets(self) -> list[Wallet]:
        """Every wallet."""
        with self._issuer.ledger.unit_of_work(write=False) as uow:
            return qr_tables(uow).wallets.list()

    def revoke_wallet(self, wallet_id: str) -> Wallet:
        """Refuse a wallet's credential (and so each of its certificates) from now on."""
        with self._issuer.ledger.unit_of_work() as uow:
            tables = qr_tables(uow)
            tables.wallets.revoke(wallet_id)
            wallet = tables.wallets.get(wallet_id)
            uow.commit()
        return wallet

    def set_terminal_place(
        self, terminal_id: str, *, city: str | None, currency: str | None
    ) -> Terminal:
        """Record a terminal's city and currency for its codes (``None``: unchanged)."""
        if city is not None and not 1 <= len(city.strip()) <= 100:
            raise ValidationError("a city is 1 to 100 characters")
        code = None if currency is None else accepted_currency(currency).alpha
        with self._issuer.ledger.unit_of_work() as uow:
            qr_tables(uow).set_terminal_place(
                terminal_id, None if city is None else city.strip(), code
            )
            terminal = uow.terminals.get(terminal_id)
            uow.commit()
        return terminal

    def set_token_channels(self, token_id: str, channels: tuple[str, ...] | None) -> Token:
        """Restrict a token to ``channels`` (:data:`CHANNELS`; ``None``: every one)."""
        if channels is not None:
            unknown = sorted(set(channels) - set(CHANNELS))
            if unknown or not channels:
                raise ValidationError(f"channels are some of {', '.join(CHANNELS)}")
            channels = tuple(c for c in CHANNELS if c in channels)
        with self._issuer.ledger.unit_of_work() as uow:
            qr_tables(uow).set_token_channels(token_id, channels)
            token = uow.tokens.get(token_id)
            uow.commit()
        return token

    def merchant(self, terminal_id: str) -> Terminal:
        """The active terminal ``terminal_id``: a merchant a code may name."""
        try:
            with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
                terminal = uow.terminals.get(terminal_id)
        except NotFoundError:
            raise NotFoundError(f"no merchant {terminal_id}") from None
        if terminal.status is not TerminalStatus.ACTIVE:
            raise NotFoundError(f"no merchant {terminal_id}")
        return terminal

    # -- sales of dynamic codes --------------------------------------------------------

    def open_sale(self, terminal: Terminal, bill: str, amount: int, expires_in: int) -> QrSale:
        """Open the sale of a dynamic code for ``amount`` (minor units of the terminal's
        currency) and ``bill``, payable for ``expires_in`` seconds. The same bill and
        amount again is the same sale (a retry); another amount is
        :class:`RefusedError` ``bill_in_use``."""
        if not 1 <= expires_in <= MAX_SALE_SECONDS:
            raise ValidationError(f"a sale stays open 1 to {MAX_SALE_SECONDS} s")
        terminal_code(terminal, amount=amount, bill=bill)  # the terminal can have codes
        now = self.clock()
        sale = QrSale(
            terminal_id=terminal.id, bill=bill, amount=amount,
            currency=terminal_currency(terminal).alpha, status=QrSaleStatus.OPEN,
            created_at=utc_text(now), updated_at=utc_text(now),
            expires_at=utc_text(now + timedelta(seconds=expires_in)),
        )  # fmt: skip

        def work(uow: UnitOfWork) -> QrSale:
            tables = qr_tables(uow)
            if tables.sales.add(sale):
                return sale
            found = tables.sales.get(terminal.id, bill)
            assert found is not None
            if found.amount != amount:
                raise RefusedError("bill_in_use", f"bill {bill} is a sale of another amount")
            return found

        return self._issuer.writes.run(work)

    def sale(self, terminal: Terminal, bill: str) -> QrSale:
        """The terminal's sale ``bill`` as it stands now: an open one past its time is
        shown ``expired``."""
        with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
            found = qr_tables(uow).sales.get(terminal.id, bill)
        if found is None:
            raise NotFoundError(f"no sale {bill} of this terminal")
        return self._as_now(found)

    def _as_now(self, sale: QrSale) -> QrSale:
        if sale.status is QrSaleStatus.OPEN and self.clock() > _parse_time(sale.expires_at):
            return QrSale(
                sale.terminal_id, sale.bill, sale.amount, sale.currency, QrSaleStatus.EXPIRED,
                sale.created_at, sale.updated_at, sale.expires_at, sale.claim,
                sale.transaction_id, sale.declined,
            )  # fmt: skip
        return sale

    def cancel_sale(self, terminal: Terminal, bill: str) -> QrSale:
        """End an open sale unpaid (its code is then declined ``QR_CODE_EXPIRED``). A
        paid or ended sale is answered as it is; one being paid is
        :class:`RefusedError` ``sale_being_paid`` (ask again in a moment)."""

        def work(uow: UnitOfWork) -> QrSale:
            sales = qr_tables(uow).sales
            found = sales.get(terminal.id, bill, for_update=True)
            if found is None:
                raise NotFoundError(f"no sale {bill} of this terminal")
            if found.status is QrSaleStatus.PAYING:
                raise RefusedError("sale_being_paid", f"a payment of sale {bill} is under way")
            if found.status is QrSaleStatus.OPEN:
                sales.end(found, QrSaleStatus.CANCELLED)
                found = sales.get(terminal.id, bill)
                assert found is not None
            return found

        return self._issuer.writes.run(work)

    def payment_of(self, sale: QrSale) -> Decision | None:
        """The decision that paid ``sale`` (its masked card and response code)."""
        if sale.transaction_id is None:
            return None
        with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
            record = uow.authorisations.get(sale.transaction_id)
        return decode(record.response.encode(), Decision)  # the record keeps the answer

    # -- merchant-presented payments ---------------------------------------------------

    def pay(self, wallet: Wallet, message: QrPaymentRequest, key: str) -> Paid:
        """A wallet's payment of a merchant-presented code (module docstring): the
        decision, recorded as the merchant terminal's authorisation unless the code
        names no merchant. Idempotent per (wallet, ``key``)."""
        if not key or len(key) > 255:
            raise ValidationError("a request id is 1 to 255 characters")
        icc_data = bytes.fromhex(message.icc_data)
        track2 = bytes.fromhex(message.track2)
        tags = parse_field55(icc_data)
        pan = pan_of(track2)
        request_id = "qr_" + hashlib.sha256(f"{wallet.id}:{key}".encode()).hexdigest()[:40]
        try:
            code = MerchantPresentedCode.decode(message.payload)
        except QrError:
            return Paid(_unrecorded(DeclineReason.QR_CODE_INVALID, tags, pan))
        terminal_id = merchant_id(code)
        try:
            terminal = self.merchant(terminal_id or "")
        except NotFoundError:
            return Paid(_unrecorded(DeclineReason.UNAUTHORIZED_MERCHANT, tags, pan))
        refusal = self._code_refusal(code, terminal, tags)
        sale: QrSale | None = None
        claimed = False
        if code.dynamic:
            bill = code.additional_data.bill_number if code.additional_data else None
            if bill is None:
                refusal = refusal or DeclineReason.QR_CODE_INVALID
            elif refusal is None:
                sale, refusal = self._claim(terminal, bill, request_id, tags)
                claimed = refusal is None
            else:  # refused already: the sale only hears of the declined attempt
                with self._issuer.ledger.unit_of_work(write=False, snapshot=False) as uow:
                    sale = qr_tables(uow).sales.get(terminal.id, bill)
        request = AuthorisationRequest(
            request_id, icc_data, track2, channel=Channel.QR_MPM.value, refusal=refusal
        )
        try:
            decision = self._authoriser.authorise(terminal, request)
        except Exception:
            if sale is not None and claimed:
                self._release(sale, request_id)
            raise
        if sale is None:
            return Paid(decision)
        self._settle(sale, request_id, decision)
        return Paid(decision, (terminal.id, sale.bill))

    def _code_refusal(
        self, code: MerchantPresentedCode, terminal: Terminal, tags: dict[int, bytes]
    ) -> DeclineReason | None:
        """Why a decoded code of a known merchant may not be paid with this cryptogram."""
        currency = terminal_currency(terminal)
        if code.currency != currency.number:
            return DeclineReason.QR_CODE_INVALID
        paid, _ = amount_and_currency(tags)
        try:
            wanted = amount_minor(code, currency)
        except QrError:
            return DeclineReason.QR_CODE_INVALID
        if wanted is not None and paid != wanted:
            return DeclineReason.AMOUNT_MISMATCH
        stamp = (tags.get(Tag.TRANSACTION_DATE, b""), tags.get(Tag.UNPREDICTABLE_NUMBER, b""))
        if not is_fresh(*stamp, self.clock()):
            return DeclineReason.QR_CODE_EXPIRED
        return None

    def _claim(
        self, terminal: Terminal, bill: str, request_id: str, tags: dict[int, bytes]
    ) -> tuple[QrSale | None, DeclineReason | None]:
        """Claim the sale ``bill`` for this payment (module docstring): the sale (when
        one exists) and the refusal, if any. A retry of the claiming request finds its
        own claim."""
        paid, _ = amount_and_currency(tags)
        now = self.clock()

        def work(uow: UnitOfWork) -> tuple[QrSale | None, DeclineReason | None]:
            sales = qr_tables(uow).sales
            sale = sales.get(terminal.id, bill, for_update=True)
            if sale is None:
                return None, DeclineReason.QR_CODE_INVALID
            if sale.claim == request_id:
                return sale, None
            if sale.status in (QrSaleStatus.PAYING, QrSaleStatus.PAID):
                return sale, DeclineReason.QR_CODE_USED
            if sale.status is not QrSaleStatus.OPEN:
                return sale, DeclineReason.QR_CODE_EXPIRED
            if now > _parse_time(sale.expires_at):
                sales.end(sale, QrSaleStatus.EXPIRED)
                return sale, DeclineReason.QR_CODE_EXPIRED
            if paid != sale.amount:
                return sale, DeclineReason.AMOUNT_MISMATCH
            sales.claim(sale, request_id)
            return sale, None

        return self._issuer.writes.run(work)

    def _settle(self, sale: QrSale, request_id: str, decision: Decision) -> None:
        """After the authorisation: the claimed sale paid or open again; a declined
        attempt listed on the sale."""

        def work(uow: UnitOfWork) -> None:
            sales = qr_tables(uow).sales
            now = sales.get(sale.terminal_id, sale.bill, for_update=True)
            if now is None:
                return
            mine = now.claim == request_id and now.status is QrSaleStatus.PAYING
            if decision.approved and mine:
                sales.paid(now, decision.id)
                return
            if mine:
                sales.reopen(now)
            if not decision.approved and decision.id and decision.id not in now.declined:
                sales.note_declined(now, decision.id)

        self._issuer.writes.run(work)

    def _release(self, sale: QrSale, request_id: str) -> None:
        """Give back a claim whose payment failed before a decision (open again)."""

        def work(uow: UnitOfWork) -> None:
            sales = qr_tables(uow).sales
            now = sales.get(sale.terminal_id, sale.bill, for_update=True)
            if now is not None and now.claim == request_id:
                sales.reopen(now)

        self._issuer.writes.run(work)


def _unrecorded(reason: DeclineReason, tags: dict[int, bytes], pan: str) -> Decision:
    """A decline recorded nowhere (a code naming no merchant to record it under)."""
    amount, currency = amount_and_currency(tags)
    return Decision(
        id="",
        approved=False,
        response_code=response_code(reason),
        reason=reason,
        amount=max(amount, 0),
        currency=currency,
        status=AuthorisationStatus.CLOSED,
        card=mask_pan(pan),
    )
