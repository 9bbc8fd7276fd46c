"""The retail till (terminal.apps.retail) with the software card in process (the
emulated reader and the real kernels) and a fake issuer: the till's logic of
terminal/apps/retail.py - receipts, display messages, issuer down, card pulled away,
voids, refunds, recovery and the close of day. The same flows against the real
``issuer serve`` through pcscd + vpcd are in tests/e2e/test_retail_pcsc.py."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from emvwire.currency import currency_by_code
from hostlink.client import HostUnreachableError
from terminal.apps.journal import Journal
from terminal.apps.retail import ISSUER_DOWN_TEXT, RetailError, Till
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome, UiMessage
from terminal.kernel.transaction import (
    Transaction,
    TransactionResult,
    build_result,
)
from terminal.readers import open_reader
from tests.terminal.apps.retail_helpers import FakeIssuer

CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
EUR = currency_by_code("EUR")
FULL_PAN = "4761739001010010"


@pytest.fixture
def card(tmp_path: Path) -> str:
    """The Visa fixture card copied to tmp_path (its counters: the test's state folder)."""
    shutil.copy(CARDS / "visa-card.json", tmp_path / "visa-card.json")
    return str(tmp_path / "visa-card.json")


class Rig:
    """A till on the emulated reader with the fake issuer; the display recorded."""

    def __init__(self, home: Path, card: str) -> None:
        self.issuer = FakeIssuer()
        self.shown: list[tuple[UiMessage, str]] = []
        self.reader = open_reader(f"emulated:{card}")
        self.entry = EntryPoint(default_config())
        self.home = home
        self.journal = Journal(home, durable=False)
        self.scripted: list[TransactionResult] = []
        self.till = self.make_till()

    def make_till(self) -> Till:
        return Till(self.journal, self.issuer, merchant="Corner Shop", terminal_id="term_1",
                    currency=EUR, display=lambda m, d: self.shown.append((m, d)))  # fmt: skip

    def tap(self, transaction: Transaction) -> TransactionResult:
        if self.scripted:
            return self.scripted.pop(0)
        self.reader.wait_for_card(1)
        return self.entry.run(self.reader, transaction, wait=False)

    def messages(self) -> list[UiMessage]:
        return [m for m, _ in self.shown]


@pytest.fixture
def rig(tmp_path: Path, card: str) -> Iterator[Rig]:
    made = Rig(tmp_path / "till", card)
    yield made
    made.journal.close()
    made.reader.close()


def test_an_approved_sale_prints_the_receipt_and_shows_the_book_a_messages(rig: Rig) -> None:
    receipt = rig.till.sale(1234, rig.tap)
    assert receipt.approved
    assert (receipt.kind, receipt.amount, receipt.response_code) == ("SALE", "12.34 EUR", "00")
    assert receipt.merchant == "Corner Shop"
    assert receipt.card == "476173******0010"
    assert receipt.last4 == "0010"
    assert (receipt.aid, receipt.label) == ("A0000000031010", "VISA CREDIT")
    assert len(receipt.cryptogram) == 16
    assert receipt.atc is not None
    assert receipt.atc >= 1
    assert receipt.cvm == "no CVM"
    assert len(receipt.tvr) == 10
    assert receipt.transaction_id == "txn_0001"
    assert rig.messages() == [
        UiMessage.PRESENT_CARD, UiMessage.REMOVE_CARD, UiMessage.PROCESSING, UiMessage.APPROVED,
    ]  # fmt: skip
    text = receipt.text()
    for value in ("Corner Shop", "12.34 EUR", "476173******0010", receipt.cryptogram, "APPROVED"):
        assert value in text
    kinds = [r["type"] for r in rig.journal.records()]
    assert kinds == ["sale_started", "sale"]
    # The journal and the receipt never hold the full PAN.
    assert FULL_PAN not in (rig.home / "journal.jsonl").read_text()
    assert FULL_PAN not in json.dumps(receipt.to_json())


def test_a_decline_shows_not_authorised_and_charges_nothing(rig: Rig) -> None:
    rig.issuer.decline = "INSUFFICIENT_FUNDS"
    receipt = rig.till.sale(500, rig.tap)
    assert (receipt.status, receipt.response_code) == ("DECLINED", "51")
    assert receipt.reason == "INSUFFICIENT_FUNDS"
    assert rig.messages()[-1] is UiMessage.NOT_AUTHORISED
    report = rig.till.close()
    assert report.match, report.differences
    assert (report.till.declined, report.issuer.declined) == (1, 1)
    assert report.till.sales == (0, 0)


def test_issuer_down_says_no_charge_and_reverses_by_request_id(rig: Rig) -> None:
    rig.issuer.down = True
    receipt = rig.till.sale(700, rig.tap)
    assert receipt.status == "NO CHARGE"
    assert receipt.reason == ISSUER_DOWN_TEXT == "issuer unreachable, no charge"
    assert (UiMessage.NOT_AUTHORISED, ISSUER_DOWN_TEXT) in rig.shown
    assert rig.issuer.records == []
    sale = rig.journal.records()[-1]
    assert (sale["type"], sale["status"]) == ("sale", "NO CHARGE")
    rig.issuer.down = False
    report = rig.till.close()
    assert report.match
    assert report.till.no_charge == 1
    assert report.till.net == 0


def test_a_card_pulled_away_is_asked_again_then_paid_once(rig: Rig) -> None:
    config = default_config()
    pulled = build_result(Outcome.TRY_AGAIN, config=config, transaction=Transaction(300))
    rig.scripted = [pulled]
    receipt = rig.till.sale(300, rig.tap)
    assert receipt.approved
    assert rig.messages()[:3] == [
        UiMessage.PRESENT_CARD, UiMessage.PRESENT_CARD_AGAIN, UiMessage.PRESENT_CARD,
    ]  # fmt: skip
    assert len([c for c in rig.issuer.calls if c[0] == "authorise"]) == 1


def test_a_card_pulled_away_every_time_ends_not_completed_with_nothing_sent(rig: Rig) -> None:
    config = default_config()
    pulled = build_result(Outcome.TRY_AGAIN, config=config, transaction=Transaction(300))
    rig.scripted = [pulled, pulled, pulled]
    receipt = rig.till.sale(300, rig.tap)
    assert receipt.status == "NOT COMPLETED"
    assert rig.issuer.calls == []


def test_void_refund_and_close_match_the_issuer(rig: Rig) -> None:
    first = rig.till.sale(1000, rig.tap)
    second = rig.till.sale(2000, rig.tap)
    third = rig.till.sale(450, rig.tap)
    void = rig.till.void(first.transaction_id)
    assert (void.kind, void.status, void.amount) == ("VOID", "APPROVED", "10.00 EUR")
    with pytest.raises(RetailError, match="voided already"):
        rig.till.void(first.transaction_id)
    with pytest.raises(RetailError, match="voided"):
        rig.till.refund(first.transaction_id, 100)
    with pytest.raises(RetailError, match=r"more than the 20\.00 EUR left"):
        rig.till.refund(second.transaction_id, 2001)
    refund = rig.till.refund(second.transaction_id, 500)
    assert (refund.kind, refund.original_id) == ("REFUND", second.transaction_id)
    # The refund captured its sale first (the issuer refunds only what was captured).
    assert rig.issuer._find(second.transaction_id)["status"] == "closed"
    with pytest.raises(RetailError, match="captured: refund it instead"):
        rig.till.void(second.transaction_id)
    with pytest.raises(RetailError, match="no approved sale"):
        rig.till.void("txn_nope")
    report = rig.till.close()
    assert report.match, report.differences
    assert report.closed
    assert report.captured == 1  # the third sale, at close
    assert report.till.sales == (2, 2450) == report.issuer.sales
    assert report.till.refunds == (1, 500) == report.issuer.refunds
    assert report.till.voids == (1, 1000) == report.issuer.voids
    assert report.till.net == 1950
    assert rig.issuer._find(third.transaction_id)["status"] == "closed"
    assert "MATCH" in report.text()
    # A new day: empty, and the earlier sales no longer count.
    again = rig.till.close()
    assert again.match
    assert again.till.sales == (0, 0) == again.issuer.sales
    # After close a sale is captured: it can be refunded, not voided.
    with pytest.raises(RetailError, match="refund it instead"):
        rig.till.void(third.transaction_id)
    assert rig.till.refund(third.transaction_id, 450).approved
    assert rig.till.close().till.refunds == (1, 450)


def test_a_difference_is_reported_and_the_day_stays_open(rig: Rig) -> None:
    rig.till.sale(1000, rig.tap)
    rig.issuer._new(request_id="elsewhere", amount=999, approved=True, status="closed",
                    captured_amount=999)  # fmt: skip
    report = rig.till.close()
    assert not report.match
    assert not report.closed
    assert report.issuer.sales == (2, 1999)
    assert any("unknown to the till" in d for d in report.differences)
    assert "MISMATCH" in report.text()
    assert not any(r["type"] == "close" for r in rig.journal.records())


def test_a_sale_interrupted_before_its_answer_is_reversed_at_close(rig: Rig) -> None:
    """A till that died between asking the issuer and recording the answer: the
    issuer approved, the journal has only sale_started; close reverses it by its
    request id and counts it as no charge."""
    receipt = rig.till.sale(800, rig.tap)
    records = rig.journal.records()
    rig.journal.close()
    (rig.home / "journal.jsonl").write_text(json.dumps(records[0], sort_keys=True) + "\n")
    rig.journal = Journal(rig.home, durable=False)
    rig.till = rig.make_till()
    report = rig.till.close()
    assert ("reverse_request", receipt.request_id) in rig.issuer.calls
    assert rig.issuer._find(receipt.transaction_id)["status"] == "reversed"
    assert report.recovered == 1
    assert report.match, report.differences
    assert report.till.no_charge == report.issuer.no_charge == 1


def test_issuer_down_during_void_or_close_changes_nothing(rig: Rig) -> None:
    sale = rig.till.sale(600, rig.tap)
    rig.issuer.down = True
    with pytest.raises(HostUnreachableError, match="not voided"):
        rig.till.void(sale.transaction_id)
    with pytest.raises(HostUnreachableError, match="not closed"):
        rig.till.close()
    assert [r["type"] for r in rig.journal.records()] == ["sale_started", "sale"]
    rig.issuer.down = False
    assert rig.till.void(sale.transaction_id).approved
    assert rig.till.close().match


def test_a_refund_interrupted_before_its_answer_is_sent_again_once(rig: Rig) -> None:
    """The refund reached the issuer but the till died before recording it: close sends
    it again with the same request id and the issuer answers its stored refund."""
    sale = rig.till.sale(900, rig.tap)
    refund = rig.till.refund(sale.transaction_id, 400)
    records = [r for r in rig.journal.records() if r["type"] != "refund"]
    rig.journal.close()
    lines = [json.dumps({**r, "seq": i}, sort_keys=True) for i, r in enumerate(records, 1)]
    (rig.home / "journal.jsonl").write_text("".join(line + "\n" for line in lines))
    rig.journal = Journal(rig.home, durable=False)
    rig.till = rig.make_till()
    report = rig.till.close()
    assert report.recovered == 1
    assert [r for r in rig.issuer.records if r["kind"] == "refund"] == [
        r for r in rig.issuer.records if r.get("request_id") == refund.request_id
    ]
    assert report.match, report.differences
    assert report.till.refunds == report.issuer.refunds == (1, 400)
