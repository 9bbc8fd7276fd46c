"""The retail tap reader's till: sales, voids, refunds and the close of day
(``terminal retail``, :mod:`terminal.commands.retail`).

A :class:`Till` takes a sale the way an attended contactless POS does (EMV Book A §8
"the reader's part", Book B entry point, the kernel chosen by the card): the customer
display shows the Book A §9.4 messages ("Present card", "Please present card again"
after a card pulled away mid-tap, "See phone for instructions" when a phone asks for
on-device verification, "Processing", "Approved" / "Not authorised", "Please remove
card"), an online request goes to the issuer through :class:`~hostlink.HostClient`,
and the receipt carries merchant, masked PAN (or token) and its last 4, AID and label,
cryptogram (9F26), ATC (9F36), response code (8A), amount, CVM, TVR, time and the
issuer's transaction id.

**Capture** (a choice of this till): a sale is an authorisation whose
funds the issuer holds; the till captures (``complete``) every approved sale of the
day at :meth:`Till.close`, as a card-present batch is settled at the end of the day.
Hence a **void** is the reversal of an approved sale of the open batch (the hold is
released, nothing is charged), and a **refund** (``POST /v1/refunds``) gives back part
or all of a captured sale; refunding a sale of the open batch captures it first (the
cardholder then sees the sale and the refund, as with any refund).

**Durability**: every step is in the journal (:class:`~terminal.apps.journal.Journal`,
``fsync``'d) before the issuer is asked, with the request id it will carry
(``sale_started``, ``refund_started``). A till that dies after asking and before
recording the answer finds the started record at the next close: a sale is reversed by
its request id (the time-out reversal: no charge), a refund is sent again with the
same request id (the issuer answers its stored refund: none doubled).

**Issuer down**: the host client retries with the same request id, then sends the
time-out reversal; the customer display says "issuer unreachable, no charge".

**Close** (:meth:`Till.close`): recovers started steps, captures the open sales, then
compares the day's totals (sales, refunds, voids: count and amount; online declines:
count) with the issuer's view of this terminal (``GET /v1/authorisations``), also
transaction by transaction. On a match the batch is closed in the journal; otherwise
the differences are reported and the batch stays open (run close again once they are
explained). A batch is the journal since the last ``close`` record.

**QR codes** (EMV QRCPS, :mod:`terminal.apps.qr`), beside the tap: a consumer-presented
code scanned (:meth:`Till.scan_sale`) is authorised as a tap is, its field 55 marked
``qr_cpm``; a merchant-presented sale (:meth:`Till.show_sale`) opens a sale at the issuer,
shows the dynamic code the issuer made for it and waits for the customer's phone to pay
it (the issuer's long poll), ending "not completed" and the code cancelled after its
time. Either is then a sale like a tap's, its channel on the receipt and in the
journal: voided, refunded, captured and closed as one. Payments of the merchant's
static code (``issuer terminal qr``) reach the issuer without the till: the close takes
those of the batch into the journal (approved ones captured with the rest). The close
counts the QR sales apart too (``qr``), on both sides.

The journal holds no PAN and no track 2: the PAN masked, its last 4, the keyed card
reference of the kernel.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import msgspec

from emvwire import contract
from emvwire.contract import Channel
from emvwire.currency import Currency, format_amount
from emvwire.errors import QrError
from emvwire.tags import Tag
from hostlink.client import UNREACHABLE, HostError, HostOutcome, HostUnreachableError
from terminal.apps.errors import AppError
from terminal.apps.journal import Journal
from terminal.apps.qr import check_sale_code, new_bill, read_consumer_code
from terminal.kernel.outcome import Outcome, UiMessage
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
)

__all__ = [
    "ISSUER_DOWN_TEXT",
    "CloseReport",
    "Display",
    "HostLike",
    "IssuerRefusalError",
    "QrHost",
    "Receipt",
    "RetailError",
    "Tap",
    "Till",
    "Totals",
    "UnknownSaleError",
    "journal_totals",
    "utc_now",
]

#: What the customer display and the receipt say when the issuer cannot be reached.
ISSUER_DOWN_TEXT: Final = "issuer unreachable, no charge"

#: How far before the last close an issuer record may be dated and still belong to the
#: new batch (clock difference between till and issuer).
CLOCK_MARGIN: Final = timedelta(minutes=5)

#: Shows a customer display message (Book A §9.4) with a detail line ("" for none).
Display = Callable[[UiMessage, str], None]

#: Runs the kernel for one transaction on the card presented (waits for it first).
Tap = Callable[[Transaction], TransactionResult]

#: Shows a merchant-presented code's text on the customer display (drawn as a QR code).
ShowCode = Callable[[str], None]

#: How the receipt names each channel of a sale.
CHANNEL_TEXT: Final = {
    Channel.QR_CPM.value: "QR code (the customer's, scanned)",
    Channel.QR_MPM.value: "QR code (the till's, paid by phone)",
}
#: Longest single long poll of a merchant-presented sale (the issuer's limit).
LONG_POLL: Final = 30.0
#: How long after its time a sale whose payment is under way is waited for.
PAYING_GRACE: Final = 15.0


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


class HostLike(Protocol):
    """What the till needs of the issuer (:class:`hostlink.HostClient`)."""

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome: ...

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]: ...

    def reverse_request(self, request_id: str) -> bool: ...

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]: ...

    def refund(
        self, authorisation_id: str, amount: int, *, request_id: str | None = None
    ) -> dict[str, Any]: ...

    def transactions(
        self, *, limit: int = 1000, status: str | None = None
    ) -> list[dict[str, Any]]: ...


class QrHost(HostLike, Protocol):
    """What QR sales need of the issuer besides (:class:`hostlink.HostClient`, over
    HTTPS: the ISO 8583 link carries no QR sale)."""

    def authorise(
        self,
        icc_data: bytes,
        track2: bytes,
        *,
        request_id: str | None = None,
        channel: Channel = Channel.CONTACTLESS,
        amount: int | None = None,
    ) -> HostOutcome: ...

    def open_sale(self, bill: str, amount: int, *, expires_in: int = 120) -> contract.QrSale: ...

    def wait_sale(self, bill: str, wait: float) -> contract.QrSale: ...

    def cancel_sale(self, bill: str) -> contract.QrSale: ...


class RetailError(AppError):
    """A cashier's request the till refuses: unknown transaction, void of a captured
    sale, refund above what is left. Nothing was sent or recorded."""


class UnknownSaleError(RetailError, LookupError):
    """No approved sale of that transaction id in the till's journal."""


class IssuerRefusalError(RetailError):
    """The issuer refused a void, refund or close step (not a decline: the request
    itself, e.g. a credential it does not know)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A sale's, void's or refund's receipt (what the customer gets; masked)."""

    kind: str  # SALE, VOID, REFUND
    status: str  # APPROVED, DECLINED, NO CHARGE, NOT COMPLETED
    merchant: str
    terminal_id: str
    time: str
    amount: str
    amount_minor: int
    transaction_id: str = ""
    request_id: str = ""
    card: str = ""
    last4: str = ""
    token: bool = False
    aid: str = ""
    label: str = ""
    cryptogram: str = ""
    atc: int | None = None
    response_code: str = ""
    reason: str = ""
    cvm: str = ""
    tvr: str = ""
    message: str = ""
    original_id: str = ""
    channel: str = Channel.CONTACTLESS.value

    @property
    def approved(self) -> bool:
        """Whether the transaction went through."""
        return self.status == "APPROVED"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "kind": self.kind,
            "status": self.status,
            "approved": self.approved,
            "merchant": self.merchant,
            "terminal_id": self.terminal_id,
            "time": self.time,
            "amount": self.amount,
            "amount_minor": self.amount_minor,
            "transaction_id": self.transaction_id,
            "request_id": self.request_id,
            "original_id": self.original_id,
            "card": self.card,
            "last4": self.last4,
            "token": self.token,
            "aid": self.aid,
            "label": self.label,
            "cryptogram": self.cryptogram,
            "atc": self.atc,
            "response_code": self.response_code,
            "reason": self.reason,
            "cvm": self.cvm,
            "tvr": self.tvr,
            "message": self.message,
            "channel": self.channel,
        }

    def text(self) -> str:
        """The printed receipt."""
        lines = [
            f"{self.merchant}",
            f"terminal {self.terminal_id}   {self.time}",
            f"{self.kind}   {self.amount}",
        ]
        if self.channel in CHANNEL_TEXT:
            lines.append(f"paid by {CHANNEL_TEXT[self.channel]}")
        if self.card:
            kind = "token" if self.token else "card"
            lines.append(f"{kind} {self.card} (last 4: {self.last4})")
        if self.aid:
            lines.append(f"AID {self.aid} {self.label}")
        if self.cryptogram:
            atc = "" if self.atc is None else f"  ATC {self.atc}"
            lines.append(f"AC {self.cryptogram}{atc}")
        if self.cvm:
            lines.append(f"CVM {self.cvm}   TVR {self.tvr}")
        if self.cvm == "signature" and self.approved:
            lines.append("cardholder signature: ______________________")
        if self.original_id:
            lines.append(f"of transaction {self.original_id}")
        if self.transaction_id:
            lines.append(f"transaction {self.transaction_id}")
        code = f"  response code {self.response_code}" if self.response_code else ""
        lines.append(f"{self.status}{code}")
        if self.reason:
            lines.append(f"reason: {self.reason}")
        if self.message and self.message != self.status.capitalize():
            lines.append(self.message)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Totals:
    """Count and amount per kind of a batch (one side of the close)."""

    sales: tuple[int, int] = (0, 0)
    refunds: tuple[int, int] = (0, 0)
    voids: tuple[int, int] = (0, 0)
    declined: int = 0
    no_charge: int = 0
    uncaptured: tuple[int, int] = (0, 0)
    #: The sales paid by QR code (either face), among ``sales``.
    qr: tuple[int, int] = (0, 0)

    @property
    def net(self) -> int:
        """Sales less refunds (minor units)."""
        return self.sales[1] - self.refunds[1]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "sales": _pair(self.sales),
            "refunds": _pair(self.refunds),
            "voids": _pair(self.voids),
            "declined": self.declined,
            "no_charge": self.no_charge,
            "uncaptured": _pair(self.uncaptured),
            "qr": _pair(self.qr),
            "net": self.net,
        }


@dataclass(frozen=True, slots=True)
class CloseReport:
    """The end-of-day comparison (:meth:`Till.close`)."""

    time: str
    since: str
    till: Totals
    issuer: Totals
    differences: tuple[str, ...]
    captured: int
    recovered: int
    currency: Currency
    closed: bool
    #: Payments of the static code taken into the batch from the issuer.
    adopted: int = 0

    @property
    def match(self) -> bool:
        """Whether till and issuer agree on everything."""
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "time": self.time,
            "since": self.since,
            "currency": self.currency.alpha,
            "till": self.till.to_json(),
            "issuer": self.issuer.to_json(),
            "match": self.match,
            "differences": list(self.differences),
            "captured_at_close": self.captured,
            "recovered": self.recovered,
            "adopted": self.adopted,
            "closed": self.closed,
        }

    def text(self) -> str:
        """The printed end-of-day report."""
        cur = self.currency

        def amount(value: int) -> str:
            return format_amount(value, cur)

        lines = [f"Close of day {self.time} (batch since {self.since or 'the start'})"]
        lines.append(f"{'':12}{'till':>22}{'issuer':>22}")
        for name in ("sales", "refunds", "voids"):
            a, b = getattr(self.till, name), getattr(self.issuer, name)
            lines.append(f"{name:12}{a[0]:>5} {amount(a[1]):>16}{b[0]:>5} {amount(b[1]):>16}")
        a, b = self.till.qr, self.issuer.qr
        lines.append(f"{'  by QR':12}{a[0]:>5} {amount(a[1]):>16}{b[0]:>5} {amount(b[1]):>16}")
        lines.append(f"{'declined':12}{self.till.declined:>5}{'':17}{self.issuer.declined:>5}")
        lines.append(f"{'no charge':12}{self.till.no_charge:>5}{'':17}{self.issuer.no_charge:>5}")
        lines.append(f"{'net':12}{amount(self.till.net):>22}{amount(self.issuer.net):>22}")
        if self.captured or self.recovered:
            lines.append(f"captured at close: {self.captured}; recovered: {self.recovered}")
        if self.adopted:
            lines.append(f"static QR code payments taken from the issuer: {self.adopted}")
        lines.append("MATCH" if self.match else "MISMATCH")
        lines.extend(f"  {d}" for d in self.differences)
        return "\n".join(lines)


@dataclass(slots=True)
class _Batch:
    """The journal folded: what the open batch holds, and what earlier ones knew."""

    since: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    earlier_ids: set[str] = field(default_factory=set)
    sales: dict[str, dict[str, Any]] = field(default_factory=dict)  # every batch, by txn id
    open_ids: set[str] = field(default_factory=set)  # approved sales of the open batch
    voided: set[str] = field(default_factory=set)
    captured: set[str] = field(default_factory=set)
    refunded: dict[str, int] = field(default_factory=dict)
    started: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> record


def _fold(records: Iterable[Mapping[str, Any]], batch: _Batch | None = None) -> _Batch:
    """Fold journal records into ``batch`` (a new one by default)."""
    batch = _Batch() if batch is None else batch
    for record in records:
        kind = record.get("type")
        if kind == "close":
            batch.earlier_ids |= {i for r in batch.records for i in _ids(r)}
            batch.records, batch.open_ids = [], set()
            batch.started = {}
            batch.since = str(record.get("time", ""))
            continue
        batch.records.append(dict(record))
        rid = str(record.get("request_id", ""))
        if kind in ("sale_started", "refund_started"):
            batch.started[rid] = dict(record)
        elif kind == "sale":
            batch.started.pop(rid, None)
            txn = str(record.get("transaction_id", ""))
            if record.get("status") == "APPROVED" and txn:
                batch.sales[txn] = dict(record)
                batch.open_ids.add(txn)
        elif kind == "void":
            batch.voided.add(str(record["transaction_id"]))
        elif kind == "capture":
            batch.captured.add(str(record["transaction_id"]))
        elif kind == "refund":
            batch.started.pop(rid, None)
            parent = str(record["original_id"])
            batch.refunded[parent] = batch.refunded.get(parent, 0) + int(record["amount"])
    return batch


def _ids(record: Mapping[str, Any]) -> Iterator[str]:
    for key in ("transaction_id", "request_id"):
        value = record.get(key)
        if value:
            yield str(value)


class Till:
    """The till of one retail terminal (module docstring).

    ``journal`` is the till's durable journal (one per terminal); ``host`` the issuer
    connection; ``display`` the customer display; ``clock`` gives the time (UTC).
    ``attempts`` is how many presentations one sale allows (a card pulled away, "see
    phone") before it ends not completed. QR sales need ``qr_host`` (the issuer over
    HTTPS: ``host`` itself when it is one), ``show_code`` to draw a code on the
    customer display and ``terminal_data`` (the configuration's terminal data objects,
    which a scanned code's field 55 takes its terminal's from).
    """

    def __init__(
        self,
        journal: Journal,
        host: HostLike,
        *,
        merchant: str,
        terminal_id: str,
        currency: Currency,
        display: Display | None = None,
        clock: Callable[[], datetime] = utc_now,
        attempts: int = 3,
        qr_host: QrHost | None = None,
        show_code: ShowCode | None = None,
        terminal_data: Mapping[int, bytes] | None = None,
    ) -> None:
        self.journal = journal
        self.host = host
        self.merchant = merchant
        self.terminal_id = terminal_id
        self.currency = currency
        self.display: Display = display or (lambda message, detail: None)
        self.clock = clock
        self.attempts = attempts
        self.qr_host = qr_host
        self.show_code: ShowCode = show_code or (lambda text: None)
        self.terminal_data: Mapping[int, bytes] = terminal_data or {}
        self._folded = _Batch()
        self._seen = 0

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="seconds")

    def _show(self, message: UiMessage, detail: str = "") -> None:
        self.display(message, detail)

    def _receipt(self, kind: str, status: str, amount: int, **values: Any) -> Receipt:
        return Receipt(
            kind=kind,
            status=status,
            merchant=self.merchant,
            terminal_id=self.terminal_id,
            time=self._now(),
            amount=format_amount(amount, self.currency),
            amount_minor=amount,
            **values,
        )

    # -- sale --------------------------------------------------------------------------

    def sale(self, amount: int, tap: Tap) -> Receipt:
        """One purchase of ``amount`` minor units (Book A §9.4 messages on the display).

        ``tap`` waits for a card and runs the kernel. A card pulled away mid-tap (Try
        Again) or a phone asking for its own verification (See phone) is asked again,
        up to ``attempts`` presentations. An online request is authorised at the
        issuer; an issuer that does not answer gets the time-out reversal and the sale
        ends "issuer unreachable, no charge".
        """
        if amount <= 0:
            raise RetailError("a sale is for an amount above zero")
        transaction = Transaction(amount, currency=self.currency.code)
        result: TransactionResult | None = None
        for _ in range(self.attempts):
            self._show(UiMessage.PRESENT_CARD, format_amount(amount, self.currency))
            result = tap(transaction)
            if result.outcome is Outcome.TRY_AGAIN:
                self._show(UiMessage.PRESENT_CARD_AGAIN, "try again")
                continue
            if any(r.message is UiMessage.SEE_PHONE for r in result.ui):
                self._show(UiMessage.SEE_PHONE, "then tap again")
                continue
            break
        assert result is not None
        card = _card_values(result)
        if result.outcome is not Outcome.ONLINE_REQUEST or result.online_pin_required:
            return self._not_online(amount, result, card)
        self._show(UiMessage.REMOVE_CARD, "")
        return self._online(
            amount, card, result.card_reference,
            lambda rid: self.host.authorise(
                result.authorisation_data, result.track2, request_id=rid
            ),
        )  # fmt: skip

    def _online(
        self,
        amount: int,
        card: dict[str, Any],
        card_reference: str,
        authorise: Callable[[str], HostOutcome],
        channel: str = Channel.CONTACTLESS.value,
    ) -> Receipt:
        """A sale's online authorisation (``authorise(request id)``), journalled first,
        and its receipt: approved, declined, not completed (the issuer refused the
        request) or no charge (no answer: the host client reversed it)."""
        request_id = "rtl_" + secrets.token_hex(12)
        self.journal.append(
            {"type": "sale_started", "request_id": request_id, "amount": amount,
             "time": self._now(), "card": card["card"], "card_reference": card_reference,
             "channel": channel}
        )  # fmt: skip
        self._show(UiMessage.PROCESSING, "authorising")
        try:
            answer = authorise(request_id)
        except HostError as exc:  # refused (bad credential, bad request): nothing held
            self._journal_sale(
                request_id, amount, "NOT COMPLETED", card, reason=str(exc), channel=channel
            )
            self._show(UiMessage.NOT_AUTHORISED, str(exc))
            return self._receipt(
                "SALE", "NOT COMPLETED", amount, request_id=request_id, reason=str(exc),
                message=UiMessage.NOT_AUTHORISED.text, channel=channel, **card,
            )  # fmt: skip
        if not answer.answered:
            self._journal_sale(
                request_id, amount, "NO CHARGE", card, reason=ISSUER_DOWN_TEXT,
                response_code=answer.response_code, reversed=answer.reversed, channel=channel,
            )  # fmt: skip
            self._show(UiMessage.NOT_AUTHORISED, ISSUER_DOWN_TEXT)
            return self._receipt(
                "SALE", "NO CHARGE", amount, request_id=request_id, reason=ISSUER_DOWN_TEXT,
                response_code=answer.response_code, message=ISSUER_DOWN_TEXT, channel=channel,
                **card,
            )  # fmt: skip
        status = "APPROVED" if answer.approved else "DECLINED"
        shown = UiMessage.APPROVED if answer.approved else UiMessage.NOT_AUTHORISED
        reason = "" if answer.approved else str(answer.reason or "")
        self._journal_sale(
            request_id, amount, status, card, transaction_id=answer.transaction_id,
            response_code=answer.response_code, reason=reason, channel=channel,
        )  # fmt: skip
        self._show(shown, format_amount(amount, self.currency) if answer.approved else reason)
        return self._receipt(
            "SALE", status, amount, transaction_id=answer.transaction_id, request_id=request_id,
            response_code=answer.response_code, reason=reason, message=shown.text,
            channel=channel, **card,
        )  # fmt: skip

    # -- QR code sales -----------------------------------------------------------------

    def _qr_host(self) -> QrHost:
        if self.qr_host is None:
            raise RetailError("QR payments need the issuer's HTTPS API (an https:// issuer)")
        return self.qr_host

    def _qr_refused(self, amount: int, reason: str, channel: str) -> Receipt:
        """A QR sale that ends at the till: nothing sent, or no payment came."""
        self.journal.append(
            {"type": "sale", "request_id": "", "amount": amount, "status": "NOT COMPLETED",
             "reason": reason, "time": self._now(), "card": "", "channel": channel}
        )  # fmt: skip
        self._show(UiMessage.NOT_AUTHORISED, reason)
        return self._receipt(
            "SALE", "NOT COMPLETED", amount, reason=reason,
            message=UiMessage.NOT_AUTHORISED.text, channel=channel,
        )  # fmt: skip

    def scan_sale(self, amount: int, text: str) -> Receipt:
        """A sale paid by the customer's consumer-presented code ``text`` (as the scanner
        read it: :mod:`terminal.apps.qr`): authorised as a tap's field 55 would be,
        marked ``qr_cpm``. A code that does not read, or is for another currency or
        amount, ends the sale "not completed" with nothing sent."""
        if amount <= 0:
            raise RetailError("a sale is for an amount above zero")
        host = self._qr_host()
        channel = Channel.QR_CPM.value
        self._show(UiMessage.PROCESSING, "reading the code")
        try:
            scanned = read_consumer_code(
                text, currency=self.currency, amount=amount, terminal_data=self.terminal_data
            )
        except QrError as exc:
            where = f" ({exc.field})" if exc.field else ""
            return self._qr_refused(amount, f"code not accepted{where}: {exc.message}", channel)
        return self._online(
            amount, scanned.card, "",
            lambda rid: host.authorise(
                scanned.icc_data, scanned.track2, request_id=rid, channel=Channel.QR_CPM,
                amount=None if scanned.amount else amount,
            ),
            channel,
        )  # fmt: skip

    def show_sale(self, amount: int, *, wait: float = 120.0) -> Receipt:
        """A sale paid by the customer's phone scanning the till's dynamic code: the
        issuer opens the sale and makes its code (shown with ``show_code``), the till
        waits for the payment (the issuer's long poll) for ``wait`` seconds, then
        cancels the code and ends the sale "not completed". Declined attempts are
        journalled as the issuer's declines; the approved payment is the sale."""
        if amount <= 0:
            raise RetailError("a sale is for an amount above zero")
        host = self._qr_host()
        channel = Channel.QR_MPM.value
        bill = new_bill()
        try:
            sale = host.open_sale(bill, amount, expires_in=max(10, min(900, round(wait))))
            check_sale_code(
                sale.payload, terminal_id=self.terminal_id, amount=amount, bill=bill,
                currency=self.currency,
            )  # fmt: skip
        except HostError as exc:
            return self._qr_refused(amount, f"the issuer refused the sale: {exc}", channel)
        except QrError as exc:
            why = f"the issuer's code is not this sale's: {exc}"
            return self._qr_refused(amount, why, channel)
        except UNREACHABLE:
            return self._qr_refused(amount, ISSUER_DOWN_TEXT, channel)
        self.show_code(sale.payload)
        self._show(
            UiMessage.SEE_PHONE, f"scan the code to pay {format_amount(amount, self.currency)}"
        )
        try:
            sale = self._await_payment(host, sale, wait)
        except HostError as exc:
            return self._qr_refused(amount, f"the issuer refused: {exc}; run close", channel)
        except UNREACHABLE:
            sale = msgspec.structs.replace(sale, status="unknown")
        self._journal_declines(sale, amount)
        if sale.status != "paid" or sale.transaction is None:
            why = {
                "unknown": "the issuer did not answer: run close to settle the sale",
                "expired": "no payment in time: the code expired",
                "cancelled": f"no payment within {wait:g} s: the code is cancelled",
            }.get(sale.status, f"the sale is {sale.status}")
            return self._qr_refused(amount, why, channel)
        card = {"card": sale.card, "last4": sale.card[-4:] if sale.card else "", "token": False}
        self._journal_sale(
            f"qr:{bill}", amount, "APPROVED", {**card, "aid": ""},
            transaction_id=sale.transaction, response_code=sale.response_code, bill=bill,
            channel=channel,
        )  # fmt: skip
        self._show(UiMessage.APPROVED, format_amount(amount, self.currency))
        return self._receipt(
            "SALE", "APPROVED", amount, transaction_id=sale.transaction, request_id=f"qr:{bill}",
            response_code=sale.response_code, message=UiMessage.APPROVED.text, channel=channel,
            card=card["card"], last4=card["last4"],
        )  # fmt: skip

    def _await_payment(self, host: QrHost, sale: contract.QrSale, wait: float) -> contract.QrSale:
        """Long polls until the sale is paid or ended, or ``wait`` seconds passed (then
        its code cancelled: a payment under way is waited for a little more)."""
        deadline = time.monotonic() + wait
        seen = len(sale.declined)
        while sale.status in ("open", "paying"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sale = host.wait_sale(sale.bill, min(left, LONG_POLL))
            if len(sale.declined) > seen:
                seen = len(sale.declined)
                self._show(UiMessage.NOT_AUTHORISED, "payment declined: try again or another card")
        if sale.status in ("open", "paying"):
            try:
                sale = host.cancel_sale(sale.bill)
            except HostError as exc:
                if exc.status != 409:  # sale_being_paid: its payment decides
                    raise
                sale = host.wait_sale(sale.bill, PAYING_GRACE)
        return sale

    def _journal_declines(self, sale: contract.QrSale, amount: int) -> None:
        """Journal the declined attempts to pay a sale (the issuer's declines of this
        terminal, which the close counts)."""
        known = {i for r in self._batch().records for i in _ids(r)}
        for txn in sale.declined:
            if txn not in known:
                self._journal_sale(
                    "", amount, "DECLINED", {"card": "", "last4": "", "aid": ""},
                    transaction_id=txn, reason="a payment of the code was declined",
                    channel=Channel.QR_MPM.value, bill=sale.bill,
                )  # fmt: skip

    def _not_online(self, amount: int, result: TransactionResult, card: dict[str, Any]) -> Receipt:
        """A sale that ends at the reader: declined offline, ended, tried too often, or
        an online PIN this till cannot take (it has no PIN pad)."""
        if result.outcome is Outcome.DECLINED:
            status, shown = "DECLINED", UiMessage.NOT_AUTHORISED
        else:
            status, shown = "NOT COMPLETED", (result.ui[-1].message if result.ui else UiMessage.NA)
        reasons = list(result.reasons)
        if result.online_pin_required:
            status, shown = "NOT COMPLETED", UiMessage.NOT_AUTHORISED
            reasons.append("online PIN required: this till has no PIN pad")
        elif result.outcome is Outcome.APPROVED:
            status, shown = "NOT COMPLETED", UiMessage.NOT_AUTHORISED
            reasons.append("offline approval: this till takes online authorisations only")
        reason = "; ".join(reasons) or result.outcome.label
        self.journal.append(
            {"type": "sale", "request_id": "", "amount": amount, "status": status,
             "outcome": result.outcome.label, "reason": reason, "time": self._now(),
             "card": card["card"]}
        )  # fmt: skip
        if shown is not UiMessage.NA:
            self._show(shown, reason)
        text = shown.text if shown is not UiMessage.NA else result.outcome.label
        return self._receipt("SALE", status, amount, reason=reason, message=text, **card)

    def _journal_sale(
        self, request_id: str, amount: int, status: str, card: Mapping[str, Any], **more: Any
    ) -> None:
        self.journal.append(
            {"type": "sale", "request_id": request_id, "amount": amount, "status": status,
             "time": self._now(), "card": card["card"], "last4": card["last4"],
             "aid": card["aid"], **more}
        )  # fmt: skip

    # -- void and refund ---------------------------------------------------------------

    def _batch(self) -> _Batch:
        """The journal folded, incrementally (only records new since the last call)."""
        fresh = self.journal.records(after=self._seen)
        self._seen += len(fresh)
        return _fold(fresh, self._folded)

    def void(self, transaction_id: str) -> Receipt:
        """Void an approved sale of the open batch: its authorisation is reversed and
        the hold released; nothing is charged. A captured sale (an earlier batch, or one
        refunded in part) is refunded instead (:class:`RetailError`)."""
        batch = self._batch()
        sale = batch.sales.get(transaction_id)
        if sale is None:
            raise UnknownSaleError(
                f"no approved sale {transaction_id} in this till's journal: check the "
                "transaction id on the sale's receipt"
            )
        if transaction_id in batch.voided:
            raise RetailError(f"sale {transaction_id} is voided already")
        if transaction_id in batch.captured or transaction_id not in batch.open_ids:
            raise RetailError(f"sale {transaction_id} is captured: refund it instead of a void")
        try:
            self.host.reverse(transaction_id, request_id=f"void:{transaction_id}")
        except HostError as exc:
            raise IssuerRefusalError(f"the issuer refused the void: {exc}") from None
        except UNREACHABLE:
            raise HostUnreachableError("issuer unreachable: not voided, try again") from None
        amount = int(sale["amount"])
        self.journal.append(
            {"type": "void", "transaction_id": transaction_id, "amount": amount,
             "request_id": f"void:{transaction_id}", "time": self._now()}
        )  # fmt: skip
        return self._receipt(
            "VOID", "APPROVED", amount, transaction_id=transaction_id,
            original_id=transaction_id, card=str(sale.get("card", "")),
            last4=str(sale.get("last4", "")), message="voided, nothing charged",
            channel=str(sale.get("channel", Channel.CONTACTLESS.value)),
        )  # fmt: skip

    def refund(self, transaction_id: str, amount: int) -> Receipt:
        """Refund ``amount`` of an approved sale of this till (``POST /v1/refunds``),
        capturing it first if its batch is still open. The refunds of a sale never
        exceed it (checked here and by the issuer)."""
        if amount <= 0:
            raise RetailError("a refund is for an amount above zero")
        batch = self._batch()
        sale = batch.sales.get(transaction_id)
        if sale is None:
            raise UnknownSaleError(
                f"no approved sale {transaction_id} in this till's journal: check the "
                "transaction id on the sale's receipt"
            )
        if transaction_id in batch.voided:
            raise RetailError(f"sale {transaction_id} was voided: nothing to refund")
        left = int(sale["amount"]) - batch.refunded.get(transaction_id, 0)
        if amount > left:
            raise RetailError(
                f"refund of {format_amount(amount, self.currency)} is more than the "
                f"{format_amount(left, self.currency)} left of sale {transaction_id}"
            )
        request_id = "rfd_" + secrets.token_hex(12)
        try:
            if transaction_id in batch.open_ids and transaction_id not in batch.captured:
                self._capture(transaction_id, int(sale["amount"]))
            self.journal.append(
                {"type": "refund_started", "request_id": request_id,
                 "original_id": transaction_id, "amount": amount, "time": self._now()}
            )  # fmt: skip
            done = self.host.refund(transaction_id, amount, request_id=request_id)
        except HostError as exc:
            raise IssuerRefusalError(f"the issuer refused the refund: {exc}") from None
        except UNREACHABLE:
            raise HostUnreachableError(
                "issuer unreachable: not refunded yet (sent again at close)"
            ) from None
        refund_id = str(done.get("id", ""))
        self.journal.append(
            {"type": "refund", "request_id": request_id, "original_id": transaction_id,
             "transaction_id": refund_id, "amount": amount, "time": self._now()}
        )  # fmt: skip
        return self._receipt(
            "REFUND", "APPROVED", amount, transaction_id=refund_id, request_id=request_id,
            original_id=transaction_id, card=str(sale.get("card", "")),
            last4=str(sale.get("last4", "")), message="refunded",
            channel=str(sale.get("channel", Channel.CONTACTLESS.value)),
        )  # fmt: skip

    def _capture(self, transaction_id: str, amount: int) -> None:
        self.host.complete(transaction_id, request_id=f"cap:{transaction_id}")
        self.journal.append(
            {"type": "capture", "transaction_id": transaction_id, "amount": amount,
             "request_id": f"cap:{transaction_id}", "time": self._now()}
        )  # fmt: skip

    # -- close -------------------------------------------------------------------------

    def totals(self) -> Totals:
        """The open batch's totals as the journal has them."""
        return _till_totals(self._batch())

    def close(self) -> CloseReport:
        """End of day (module docstring): recover, capture, compare, close on a match.

        :class:`~hostlink.HostUnreachableError` if the issuer cannot be reached: the batch
        stays open, and close may simply be run again.
        """
        try:
            recovered = self._recover()
            adopted = self._adopt(self.host.transactions(limit=1000))
            batch = self._batch()
            captured = 0
            for txn in sorted(batch.open_ids - batch.voided - batch.captured):
                self._capture(txn, int(batch.sales[txn]["amount"]))
                captured += 1
            batch = self._batch()
            issuer = self.host.transactions(limit=1000)
        except HostError as exc:
            raise IssuerRefusalError(f"the issuer refused a close step: {exc}") from None
        except UNREACHABLE:
            raise HostUnreachableError("issuer unreachable: the day is not closed") from None
        till = _till_totals(batch)
        mine = _issuer_records(batch, issuer)
        theirs = _issuer_totals(batch, mine)
        differences = _differences(batch, till, theirs, mine)
        if len(issuer) >= 1000:
            differences.append("the issuer listed 1000 transactions: older ones were not compared")
        now = self._now()
        closed = not differences
        if closed:
            self.journal.append({"type": "close", "time": now, "totals": till.to_json()})
        return CloseReport(now, batch.since, till, theirs, tuple(differences), captured,
                           recovered, self.currency, closed, adopted=adopted)  # fmt: skip

    def _adopt(self, issuer: list[dict[str, Any]]) -> int:
        """Journal the payments of the merchant's static code that reached the issuer
        since the last close without the till (module docstring): approved (pending)
        ones as sales, declined ones as declines; how many."""
        batch = self._batch()
        known = {i for r in batch.records for i in _ids(r)} | batch.earlier_ids
        since = _parse_time(batch.since) if batch.since else None
        done = 0
        for record in reversed(issuer):  # oldest first
            created = _parse_time(str(record.get("created_at", "")))
            if (
                record.get("channel") != Channel.QR_MPM.value
                or record.get("kind") != "authorisation"
                or {str(record.get("id", "")), str(record.get("request_id", ""))} & known
                or (since is not None and (created is None or created < since - CLOCK_MARGIN))
            ):
                continue
            approved = bool(record.get("approved"))
            if approved and record.get("status") != "pending":
                continue  # reversed or expired meanwhile: the close reports it
            self._journal_sale(
                str(record.get("request_id", "")), int(record.get("amount", 0)),
                "APPROVED" if approved else "DECLINED",
                {"card": "", "last4": "", "aid": ""},
                transaction_id=str(record["id"]), response_code=record.get("response_code"),
                reason=record.get("decline_reason") or "", channel=Channel.QR_MPM.value,
                adopted=True,
            )  # fmt: skip
            done += 1
        return done

    def _recover(self) -> int:
        """Finish what a crash interrupted (module docstring); how many steps."""
        batch = self._batch()
        done = 0
        for rid, record in batch.started.items():
            if record["type"] == "sale_started":
                reversed_ = self.host.reverse_request(rid)
                self._journal_sale(
                    rid, int(record["amount"]), "NO CHARGE",
                    {"card": record.get("card", ""), "last4": "", "aid": ""},
                    reason="interrupted: reversed by request id", reversed=reversed_,
                )  # fmt: skip
            else:
                parent = str(record["original_id"])
                answer = self.host.refund(parent, int(record["amount"]), request_id=rid)
                self.journal.append(
                    {"type": "refund", "request_id": rid, "original_id": parent,
                     "transaction_id": str(answer.get("id", "")),
                     "amount": int(record["amount"]), "time": self._now()}
                )  # fmt: skip
            done += 1
        return done


def journal_totals(journal: Journal) -> Totals:
    """The open batch's totals as ``journal`` has them (no issuer needed)."""
    return _till_totals(_fold(journal.records()))


def _card_values(result: TransactionResult) -> dict[str, Any]:
    """The receipt's card fields of a kernel result (masked)."""
    pan = result.masked_pan
    atc = result.data.get(Tag.ATC, b"")
    return {
        "card": pan,
        "last4": pan[-4:] if pan else "",
        "token": result.token,
        "aid": result.aid.hex().upper(),
        "label": result.label,
        "cryptogram": result.cryptogram.hex().upper(),
        "atc": int.from_bytes(atc, "big") if atc else None,
        "cvm": result.cvm.value,
        "tvr": result.tvr.hex().upper(),
    }


def _till_totals(batch: _Batch) -> Totals:
    sales = [batch.sales[t] for t in batch.open_ids if t not in batch.voided]
    voids = [batch.sales[t] for t in batch.open_ids if t in batch.voided]
    refunds = [r for r in batch.records if r.get("type") == "refund"]
    online_declines = [
        r for r in batch.records
        if r.get("type") == "sale" and r.get("status") == "DECLINED" and r.get("transaction_id")
    ]  # fmt: skip
    no_charge = [
        r for r in batch.records if r.get("type") == "sale" and r.get("status") == "NO CHARGE"
    ]
    uncaptured = [s for s in sales if str(s["transaction_id"]) not in batch.captured]
    qr = [s for s in sales if s.get("channel", Channel.CONTACTLESS.value) in CHANNEL_TEXT]
    return Totals(_count(sales), _count(refunds), _count(voids), len(online_declines),
                  len(no_charge), _count(uncaptured), _count(qr))  # fmt: skip


def _count(records: list[dict[str, Any]]) -> tuple[int, int]:
    return len(records), sum(int(r["amount"]) for r in records)


def _pair(value: tuple[int, int]) -> dict[str, int]:
    return {"count": value[0], "amount": value[1]}


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _issuer_records(batch: _Batch, issuer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issuer's records of the open batch: known to it by id or request id, or
    new since the last close and unknown to every earlier batch."""
    known = {i for r in batch.records for i in _ids(r)}
    since = _parse_time(batch.since) if batch.since else None
    mine = []
    for record in issuer:
        ids = {str(record.get("id", "")), str(record.get("request_id", ""))} - {""}
        if ids & batch.earlier_ids:
            continue
        created = _parse_time(str(record.get("created_at", "")))
        if (
            ids & known
            or since is None
            or (created is not None and created >= since - CLOCK_MARGIN)
        ):
            mine.append(record)
    return mine


def _issuer_totals(batch: _Batch, records: list[dict[str, Any]]) -> Totals:
    no_charge_ids = {
        str(r.get("request_id"))
        for r in batch.records
        if r.get("type") == "sale" and r.get("status") == "NO CHARGE"
    }
    sales: list[int] = []
    refunds: list[int] = []
    voids: list[int] = []
    uncaptured: list[int] = []
    qr: list[int] = []
    declined = no_charge = 0
    for r in records:
        if r.get("kind") == "refund":
            refunds.append(int(r.get("amount", 0)))
        elif str(r.get("request_id")) in no_charge_ids:
            no_charge += 1
        elif not r.get("approved"):
            declined += 1
        elif r.get("status") == "closed":
            sales.append(int(r.get("captured_amount", 0)))
            if r.get("channel", Channel.CONTACTLESS.value) in CHANNEL_TEXT:
                qr.append(sales[-1])
        elif r.get("status") == "reversed":
            voids.append(int(r.get("amount", 0)))
        else:
            uncaptured.append(int(r.get("amount", 0)))
    return Totals(
        (len(sales), sum(sales)), (len(refunds), sum(refunds)), (len(voids), sum(voids)),
        declined, no_charge, (len(uncaptured), sum(uncaptured)), (len(qr), sum(qr)),
    )  # fmt: skip


def _differences(
    batch: _Batch, till: Totals, issuer: Totals, records: list[dict[str, Any]]
) -> list[str]:
    out = []
    for name in ("sales", "refunds", "voids", "uncaptured", "qr"):
        a, b = getattr(till, name), getattr(issuer, name)
        if a != b:
            out.append(f"{name}: till {a[0]} for {a[1]}, issuer {b[0]} for {b[1]} (minor units)")
    if till.declined != issuer.declined:
        out.append(f"declined: till {till.declined}, issuer {issuer.declined}")
    known = {i for r in batch.records for i in _ids(r)}
    for r in records:
        if not ({str(r.get("id", "")), str(r.get("request_id", ""))} & known):
            out.append(
                f"unknown to the till: {r.get('kind')} {r.get('id')} {r.get('status')} "
                f"amount {r.get('amount')}"
            )
    at_issuer = {str(r.get("id")) for r in records}
    for txn in sorted(batch.open_ids | {
        str(r["transaction_id"]) for r in batch.records
        if r.get("type") == "refund" and r.get("transaction_id")
    }):  # fmt: skip
        if txn not in at_issuer:
            out.append(f"missing at the issuer: {txn}")
    return out
