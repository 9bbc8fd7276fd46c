"""QR code sales at the retail till (terminal.apps.retail, terminal.apps.qr) with a fake
issuer: a consumer-presented code (made by the phone wallet, card.wallet) scanned and
authorised as a tap's field 55 marked qr_cpm; codes refused before anything is sent; a
merchant-presented sale shown, waited for, paid or ended at its time; declined attempts
and static code payments in the close; voids and refunds of QR sales. Against the real
issuer: tests/e2e/test_qr_e2e.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from card.emv import EmvCard
from card.wallet import Wallet
from emvwire import contract
from emvwire.contract import Channel
from emvwire.country import country_by_alpha2
from emvwire.currency import currency_by_code
from emvwire.qr.cpm import ConsumerPresentedCode
from emvwire.qr.tapstack import merchant_code
from emvwire.tags import Tag
from emvwire.tlv import decode_flat
from hostlink.client import HostError, HostOutcome, HostUnreachableError
from terminal.apps.journal import Journal
from terminal.apps.qr import NO_CVM_PERFORMED
from terminal.apps.retail import RetailError, Till
from terminal.kernel.config import default_config
from terminal.kernel.outcome import UiMessage
from tests.terminal.apps.retail_helpers import FakeIssuer

CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
EUR = currency_by_code("EUR")
TERMINAL = "term_aaaaaaaaaaaaaaaa"
#: The token of the Visa phone fixture, whole: never on a receipt or in the journal.
FULL_TOKEN = "4895370000000013"


class QrIssuer(FakeIssuer):
    """The fake issuer with QR sales: ``polls`` scripts what each long poll answers
    (status, declined ids), the last repeated; ``being_paid`` makes a cancellation
    answer 409 sale_being_paid once."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: list[tuple[str, int | None]] = []
        self.sale: contract.QrSale | None = None
        self.polls: list[tuple[str, list[str]]] = [("open", [])]
        self.being_paid = False
        self.wait_fails: Exception | None = None

    def authorise(  # type: ignore[override]
        self,
        icc_data: bytes,
        track2: bytes,
        *,
        request_id: str | None = None,
        channel: Channel = Channel.CONTACTLESS,
        amount: int | None = None,
    ) -> HostOutcome:
        self.channels.append((channel.value, amount))
        self.icc_data = icc_data
        outcome = super().authorise(icc_data, track2, request_id=request_id)
        record = self.records[-1]
        record["channel"] = channel.value
        if amount is not None:
            record["amount"] = amount
        return outcome

    def open_sale(self, bill: str, amount: int, *, expires_in: int = 120) -> contract.QrSale:
        self.calls.append(("open_sale", bill))
        code = merchant_code(
            TERMINAL, name="Corner Shop", city="Paris", mcc="5411", currency=EUR,
            country=country_by_alpha2("FR"), amount=amount, bill=bill,
        )  # fmt: skip
        now = datetime.now(UTC)
        self.sale = contract.QrSale(
            bill=bill, amount=amount, currency="EUR", status="open", payload=code.encode(),
            expires_at=(now + timedelta(seconds=expires_in)).isoformat(),
            created_at=now.isoformat(),
        )  # fmt: skip
        return self.sale

    def _paid(self) -> contract.QrSale:
        assert self.sale is not None
        record = self._new(request_id="qr_x", amount=self.sale.amount, approved=True,
                           status="pending", channel="qr_mpm")  # fmt: skip
        return msgspec.structs.replace(
            self.sale, status="paid", transaction=record["id"], card="489537******0013",
            response_code="00",
        )  # fmt: skip

    def wait_sale(self, bill: str, wait: float) -> contract.QrSale:
        self.calls.append(("wait_sale", bill))
        assert self.sale is not None
        if self.wait_fails is not None:
            raise self.wait_fails
        status, declined = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        for txn in declined:
            if not any(r["id"] == txn for r in self.records):
                self.records.append({"id": txn, "kind": "authorisation", "approved": False,
                                     "status": "closed", "amount": self.sale.amount,
                                     "captured_amount": 0, "channel": "qr_mpm",
                                     "created_at": datetime.now(UTC).isoformat()})  # fmt: skip
        self.sale = msgspec.structs.replace(self.sale, declined=self.sale.declined + declined)
        if status == "paid":
            self.sale = self._paid()
            return self.sale
        return msgspec.structs.replace(self.sale, status=status)

    def cancel_sale(self, bill: str) -> contract.QrSale:
        self.calls.append(("cancel_sale", bill))
        assert self.sale is not None
        if self.being_paid:
            self.being_paid = False
            self.polls = [("paid", [])]
            raise HostError(409, "sale_being_paid", "a payment of the sale is under way")
        self.sale = msgspec.structs.replace(self.sale, status="cancelled")
        return self.sale


class QrRig:
    """A till with the fake QR issuer, the display and the codes shown recorded, and
    the phone's wallet (the Visa phone fixture, its counters in the test's folder)."""

    def __init__(self, home: Path) -> None:
        shutil.copy(CARDS / "visa-phone.json", home / "visa-phone.json")
        self.issuer = QrIssuer()
        self.shown: list[tuple[UiMessage, str]] = []
        self.codes: list[str] = []
        self.home = home / "till"
        self.journal = Journal(self.home, durable=False)
        self.phone = EmvCard.from_file(home / "visa-phone.json", state_path=home / "phone.json")
        self.till = Till(
            self.journal, self.issuer, merchant="Corner Shop", terminal_id=TERMINAL,
            currency=EUR, display=lambda m, d: self.shown.append((m, d)), qr_host=self.issuer,
            show_code=self.codes.append, terminal_data=default_config().terminal_data,
        )  # fmt: skip

    def code(self, amount: int | None = None) -> str:
        return Wallet(self.phone).consumer_code(amount).text

    def records(self, kind: str = "sale") -> list[dict[str, Any]]:
        return [r for r in self.journal.records() if r["type"] == kind]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[QrRig]:
    made = QrRig(tmp_path)
    yield made
    made.journal.close()


# --- consumer-presented ----------------------------------------------------------------------


def test_a_scanned_code_is_authorised_as_a_taps_field_55_marked_qr_cpm(rig: QrRig) -> None:
    text = rig.code()
    receipt = rig.till.scan_sale(1250, text + "\n")  # as a scanner types it
    assert (receipt.status, receipt.channel) == ("APPROVED", "qr_cpm")
    assert receipt.amount == "12.50 EUR"
    assert rig.issuer.channels == [("qr_cpm", 1250)]  # a code made for any amount
    sent = decode_flat(rig.issuer.icc_data)
    code_data = ConsumerPresentedCode.decode(text).applications[0].data
    for tag in (Tag.APPLICATION_CRYPTOGRAM, Tag.ATC, Tag.UNPREDICTABLE_NUMBER, Tag.IAD):
        assert sent[tag] == code_data[tag]
    assert sent[Tag.CVM_RESULTS] == NO_CVM_PERFORMED
    assert sent[Tag.TERMINAL_CAPABILITIES] == default_config().data(Tag.TERMINAL_CAPABILITIES)
    assert sent[Tag.DF_NAME] == bytes.fromhex("A0000000031010")
    assert (receipt.card, receipt.cvm, receipt.label) == (
        "489537******0013",
        "consumer device CVM",
        "VISA PHONE",
    )
    assert "paid by QR code (the customer's, scanned)" in receipt.text()
    assert [r["channel"] for r in rig.records()] == ["qr_cpm"]
    assert FULL_TOKEN not in (rig.home / "journal.jsonl").read_text()
    assert FULL_TOKEN not in str(receipt.to_json())


def test_a_code_made_for_the_amount_is_sent_without_one(rig: QrRig) -> None:
    receipt = rig.till.scan_sale(800, rig.code(800))
    assert receipt.approved
    assert rig.issuer.channels == [("qr_cpm", None)]


@pytest.mark.parametrize(
    ("text", "amount", "why"),
    [
        ("not a code", 500, "code not accepted: code is not Base64"),
        ("", 500, "code not accepted"),
    ],
)
def test_an_unreadable_code_sends_nothing(rig: QrRig, text: str, amount: int, why: str) -> None:
    receipt = rig.till.scan_sale(amount, text)
    assert (receipt.status, receipt.channel) == ("NOT COMPLETED", "qr_cpm")
    assert receipt.reason.startswith(why)
    assert rig.issuer.calls == []


def test_a_code_for_another_amount_sends_nothing(rig: QrRig) -> None:
    receipt = rig.till.scan_sale(900, rig.code(800))
    assert receipt.status == "NOT COMPLETED"
    assert "(61.63.9F02)" in receipt.reason
    assert rig.issuer.calls == []


def test_a_code_for_another_currency_sends_nothing(rig: QrRig) -> None:
    till = Till(rig.journal, rig.issuer, merchant="Shop", terminal_id=TERMINAL,
                currency=currency_by_code("GBP"), qr_host=rig.issuer)  # fmt: skip
    receipt = till.scan_sale(500, rig.code())
    assert (receipt.status, receipt.reason) == (
        "NOT COMPLETED",
        "code not accepted (61.63.5F2A): the code is not in GBP",
    )
    assert rig.issuer.calls == []


def test_qr_sales_need_the_https_issuer(rig: QrRig) -> None:
    till = Till(rig.journal, rig.issuer, merchant="Shop", terminal_id=TERMINAL, currency=EUR)
    with pytest.raises(RetailError, match="HTTPS"):
        till.scan_sale(500, rig.code())
    with pytest.raises(RetailError, match="HTTPS"):
        till.show_sale(500)


# --- merchant-presented ----------------------------------------------------------------------


def test_a_shown_code_paid_by_the_phone_is_the_sale(rig: QrRig) -> None:
    rig.issuer.polls = [("open", []), ("open", ["txn_9001"]), ("paid", [])]
    receipt = rig.till.show_sale(1999, wait=30)
    assert (receipt.status, receipt.channel, receipt.card) == (
        "APPROVED",
        "qr_mpm",
        "489537******0013",
    )
    assert rig.codes == [rig.issuer.sale.payload if rig.issuer.sale else ""]
    shown = [m for m, _ in rig.shown]
    assert shown[0] is UiMessage.SEE_PHONE
    assert UiMessage.NOT_AUTHORISED in shown  # the declined attempt, then another card
    assert shown[-1] is UiMessage.APPROVED
    sales = rig.records()
    assert [(r["status"], r["channel"]) for r in sales] == [
        ("DECLINED", "qr_mpm"),
        ("APPROVED", "qr_mpm"),
    ]
    report = rig.till.close()
    assert report.match, report.differences
    assert (report.till.qr, report.issuer.qr, report.till.declined) == ((1, 1999), (1, 1999), 1)


def test_a_shown_code_not_paid_in_time_is_cancelled(rig: QrRig) -> None:
    receipt = rig.till.show_sale(500, wait=0.05)
    assert (receipt.status, receipt.channel) == ("NOT COMPLETED", "qr_mpm")
    assert "the code is cancelled" in receipt.reason
    assert rig.issuer.calls[-1][0] == "cancel_sale"
    report = rig.till.close()
    assert report.match
    assert report.till.sales == (0, 0)


def test_a_payment_under_way_at_the_deadline_is_waited_for(rig: QrRig) -> None:
    rig.issuer.being_paid = True
    receipt = rig.till.show_sale(700, wait=0.05)
    assert receipt.approved
    assert [c[0] for c in rig.issuer.calls][-2:] == ["cancel_sale", "wait_sale"]


def test_void_and_refund_of_qr_sales_are_marked(rig: QrRig) -> None:
    scanned = rig.till.scan_sale(600, rig.code())
    rig.issuer.polls = [("paid", [])]
    shown = rig.till.show_sale(400, wait=30)
    void = rig.till.void(scanned.transaction_id)
    assert (void.kind, void.channel) == ("VOID", "qr_cpm")
    refund = rig.till.refund(shown.transaction_id, 150)
    assert (refund.kind, refund.channel) == ("REFUND", "qr_mpm")
    report = rig.till.close()
    assert report.match, report.differences
    assert (report.till.voids, report.till.refunds, report.till.qr) == (
        (1, 600),
        (1, 150),
        (1, 400),
    )


def test_the_close_takes_in_payments_of_the_static_code(rig: QrRig) -> None:
    rig.issuer._new(request_id="qr_static1", amount=320, approved=True, status="pending",
                    channel="qr_mpm")  # fmt: skip
    rig.issuer._new(request_id="qr_static2", amount=90, approved=False, status="closed",
                    channel="qr_mpm")  # fmt: skip
    report = rig.till.close()
    assert report.match, report.differences
    assert (report.adopted, report.captured) == (2, 1)
    assert (report.till.sales, report.till.qr, report.till.declined) == ((1, 320), (1, 320), 1)
    assert "static QR code payments taken from the issuer: 2" in report.text()
    assert rig.till.close().adopted == 0  # in the journal now, not taken twice


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (HostUnreachableError(), "the issuer did not answer: run close to settle the sale"),
        (HostError(500, "internal", "oops"), "the issuer refused: issuer answered 500"),
    ],
)
def test_a_wait_the_issuer_breaks_ends_the_sale_not_completed(
    rig: QrRig, failure: Exception, why: str
) -> None:
    rig.issuer.wait_fails = failure
    receipt = rig.till.show_sale(500, wait=30)
    assert (receipt.status, receipt.channel) == ("NOT COMPLETED", "qr_mpm")
    assert receipt.reason.startswith(why)
