"""The parking gate (terminal.apps.parking) with the software cards in process (the
emulated reader and the real kernels), a fake issuer and a fake clock: the tariff,
entry pre-authorisation, exit completion and every defined outcome of the module
docstring of terminal/apps/parking.py. Through pcscd + vpcd against ``issuer serve``:
tests/e2e/test_parking_pcsc.py."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emvwire.tlv import decode_flat
from hostlink.client import HostOutcome, HostUnreachableError
from terminal.apps.parking import (
    ISSUER_DOWN_TEXT,
    NO_ENTRY_TEXT,
    ParkingGate,
    TariffError,
    load_tariff,
    parse_tariff,
)
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult, build_result
from terminal.readers import Reader, open_reader

CARDS = Path(__file__).resolve().parents[3] / "fixtures" / "cards"
START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeIssuer:
    """The issuer's answers as hostlink.HostClient returns them."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.down = False
        self.decline: str | None = None
        self.calls: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1)

    def authorise(
        self, icc_data: bytes, track2: bytes, *, request_id: str | None = None
    ) -> HostOutcome:
        assert request_id
        amount = int(decode_flat(icc_data)[0x9F02].hex())
        self.calls.append(("authorise", request_id, amount))
        if self.down:
            return HostOutcome(False, "Z3", "NO_ANSWER", request_id, answered=False)
        txn = f"txn_{next(self._ids):04d}"
        approved = self.decline is None
        self.records[txn] = {"id": txn, "amount": amount, "approved": approved,
                             "status": "pending" if approved else "closed"}  # fmt: skip
        return HostOutcome(approved, "00" if approved else "05", self.decline, request_id,
                           transaction_id=txn)  # fmt: skip

    def complete(
        self, transaction_id: str, amount: int | None = None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(("complete", str(request_id), amount))
        if self.down:
            raise HostUnreachableError
        record = self.records[transaction_id]
        if record["status"] == "pending":
            assert amount is not None
            assert amount <= record["amount"]
            record.update(status="closed", captured_amount=amount)
        return dict(record)

    def reverse(self, transaction_id: str, *, request_id: str | None = None) -> dict[str, Any]:
        self.calls.append(("reverse", str(request_id), None))
        if self.down:
            raise HostUnreachableError
        self.records[transaction_id]["status"] = "reversed"
        return dict(self.records[transaction_id])


def _copy(tmp_path: Path, name: str) -> str:
    shutil.copy(CARDS / f"{name}.json", tmp_path / f"{name}.json")
    return f"emulated:{tmp_path / f'{name}.json'}"


class Rig:
    def __init__(self, tmp_path: Path, lane: str = "auto") -> None:
        self.issuer = FakeIssuer()
        self.clock = Clock()
        self.tariff = load_tariff()
        self.home = tmp_path / "gate"
        self.gates: list[ParkingGate] = []
        self.gate = self.make_gate(lane)
        base = default_config()
        self.config = replace(base, terminal_data={**base.terminal_data, 0x9F15: b"\x75\x23"})
        self.readers: dict[str, Reader] = {}
        self.tmp = tmp_path

    def make_gate(self, lane: str) -> ParkingGate:
        gate = ParkingGate(self.home, self.issuer, self.tariff, lane=lane, clock=self.clock,
                           durable=False)  # fmt: skip
        self.gates.append(gate)
        return gate

    def kernel(self, name: str, transaction: Transaction) -> TransactionResult:
        if name not in self.readers:
            self.readers[name] = open_reader(_copy(self.tmp, name))
        reader = self.readers[name]
        reader.wait_for_card(1)
        return EntryPoint(self.config).run(reader, transaction, wait=False)

    def tap(self, name: str = "visa-card", gate: ParkingGate | None = None) -> Any:
        gate = gate or self.gate
        return gate.decide(self.kernel(name, gate.transaction))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    for reader in made.readers.values():
        reader.close()
    for gate in made.gates:
        gate.close()


# -- tariff ---------------------------------------------------------------------------


def test_default_tariff_free_half_hour_then_per_started_hour_capped_daily() -> None:
    tariff = load_tariff()
    assert (tariff.free_minutes, tariff.per_started_hour, tariff.daily_maximum) == (30, 250, 2000)
    assert tariff.pre_authorisation == 2000

    def fee(**delta: float) -> int:
        return tariff.fee(timedelta(**delta))

    assert fee(minutes=30) == 0
    assert fee(minutes=31) == 250  # a started hour
    assert fee(hours=2, minutes=10) == 750
    assert fee(hours=10) == 2000  # the daily maximum
    assert fee(hours=24) == 2000
    assert fee(hours=24, minutes=5) == 2250  # a new day started
    assert fee(days=2, hours=3) == 4750


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"per_started_hour": 2.5, "daily_maximum": "20.00"}, "per_started_hour"),
        ({"per_started_hour": "2.50", "daily_maximum": "0"}, "daily_maximum"),
        ({"per_started_hour": "2.50", "daily_maximum": "1.234"}, "daily_maximum"),
        ({"per_started_hour": "2.50", "daily_maximum": "9", "free_minutes": -1}, "free_minutes"),
        ({"per_started_hour": "1", "daily_maximum": "9", "currency": "XXX"}, "currency"),
        ({"schema": "other/1", "per_started_hour": "1", "daily_maximum": "9"}, "schema"),
    ],
)
def test_a_bad_tariff_names_its_problem(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(TariffError, match=problem):
        parse_tariff(doc)


def test_an_unreadable_tariff_file_is_a_tariff_error(tmp_path: Path) -> None:
    with pytest.raises(TariffError, match="cannot read"):
        load_tariff(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TariffError, match="not JSON"):
        load_tariff(tmp_path / "bad.json")


# -- entry and exit -------------------------------------------------------------------


def test_entry_pre_authorises_the_maximum_and_exit_completes_the_fee(rig: Rig) -> None:
    entry = rig.tap()
    assert (entry.action, entry.open) == ("entry", True)
    assert entry.amount == 2000
    assert rig.issuer.calls[0][0] == "authorise"
    assert rig.issuer.calls[0][2] == 2000  # the kernel ran for the pre-authorisation
    assert entry.card == "476173******0010"
    assert list(rig.gate.open_sessions()) == [entry.card_reference]
    rig.clock.advance(hours=2, minutes=10)
    leave = rig.tap()
    assert (leave.action, leave.open, leave.queued) == ("exit", True, False)
    assert (leave.amount, leave.captured, leave.overstay) == (750, 750, 0)
    assert leave.duration_s == 2 * 3600 + 600
    assert leave.session == entry.session
    assert ("complete", f"park:{entry.session}", 750) in rig.issuer.calls
    record = rig.issuer.records[entry.transaction_id]
    assert (record["status"], record["captured_amount"]) == ("closed", 750)
    assert rig.gate.open_sessions() == {}
    assert rig.gate.pending() == {}
    # The same card comes again: a new stay.
    again = rig.tap()
    assert (again.action, again.open) == ("entry", True)
    assert again.session != entry.session


def test_a_free_stay_reverses_the_pre_authorisation(rig: Rig) -> None:
    entry = rig.tap()
    rig.clock.advance(minutes=20)
    leave = rig.tap()
    assert (leave.action, leave.amount, leave.captured) == ("exit", 0, 0)
    assert rig.issuer.records[entry.transaction_id]["status"] == "reversed"
    assert not [c for c in rig.issuer.calls if c[0] == "complete"]


def test_exit_with_no_entry_is_denied_see_attendant(rig: Rig) -> None:
    exit_lane = rig.make_gate("exit")
    denied = rig.tap(gate=exit_lane)
    assert (denied.action, denied.open) == ("deny", False)
    assert denied.message == NO_ENTRY_TEXT == "no entry found: see attendant"
    assert [c[0] for c in rig.issuer.calls] == []  # nothing sent
    assert rig.gate.open_sessions() == {}


def test_a_phone_of_the_same_account_is_another_card_reference(rig: Rig) -> None:
    """A phone pays with a token: its card reference is not the card's. Leave with the
    one you entered with (module docstring)."""
    entry = rig.tap("visa-card")
    exit_lane = rig.make_gate("exit")
    by_phone = rig.tap("visa-phone", gate=exit_lane)
    assert by_phone.card_reference != entry.card_reference
    assert (by_phone.action, by_phone.message) == ("deny", NO_ENTRY_TEXT)
    by_card = rig.tap("visa-card", gate=exit_lane)
    assert (by_card.action, by_card.open) == ("exit", True)


def test_entry_and_exit_lanes_share_the_sessions(rig: Rig) -> None:
    entry_lane, exit_lane = rig.make_gate("entry"), rig.make_gate("exit")
    entry = rig.tap("mastercard-card", gate=entry_lane)
    assert entry.open
    twice = rig.tap("mastercard-card", gate=entry_lane)
    assert (twice.action, twice.open) == ("deny", False)
    assert "already open" in twice.reason
    rig.clock.advance(hours=1)
    leave = rig.tap("mastercard-card", gate=exit_lane)
    assert (leave.action, leave.amount) == ("exit", 250)


def test_a_declined_pre_authorisation_keeps_the_barrier_closed(rig: Rig) -> None:
    rig.issuer.decline = "INSUFFICIENT_FUNDS"
    denied = rig.tap()
    assert (denied.action, denied.open, denied.message) == ("deny", False, "Not authorised")
    assert "INSUFFICIENT_FUNDS" in denied.reason
    assert rig.gate.open_sessions() == {}
    # No session: this card at an exit lane has no entry.
    assert rig.tap(gate=rig.make_gate("exit")).message == NO_ENTRY_TEXT


def test_a_stay_over_the_maximum_captures_it_and_flags_the_overstay(rig: Rig) -> None:
    entry = rig.tap()
    rig.clock.advance(days=2, hours=3)
    leave = rig.tap()
    assert (leave.action, leave.open) == ("exit", True)
    assert (leave.amount, leave.captured, leave.overstay) == (4750, 2000, 2750)
    assert "overstay" in leave.message
    assert "OVERSTAY 27.50 EUR owed" in leave.text()
    assert rig.issuer.records[entry.transaction_id]["captured_amount"] == 2000
    assert rig.gate.pending() == {}  # settled; the flag is in the journal's exit record
    journal = (rig.home / "sessions" / "journal.jsonl").read_text()
    assert '"overstay":2750' in journal


def test_issuer_down_at_entry_keeps_the_barrier_closed(rig: Rig) -> None:
    rig.issuer.down = True
    denied = rig.tap()
    assert (denied.action, denied.open) == ("deny", False)
    assert denied.message == ISSUER_DOWN_TEXT
    assert rig.gate.open_sessions() == {}


def test_issuer_down_at_exit_opens_queues_the_completion_and_retries_it(rig: Rig) -> None:
    entry = rig.tap()
    rig.clock.advance(hours=3)
    rig.issuer.down = True
    leave = rig.tap()
    assert (leave.action, leave.open, leave.queued) == ("exit", True, True)
    assert leave.captured == 750
    assert rig.issuer.records[entry.transaction_id]["status"] == "pending"
    assert rig.gate.settle_pending() == 0  # still down: still queued
    # A restarted gate (new process) still has the completion queued.
    restarted = rig.make_gate("auto")
    assert list(restarted.pending()) == [entry.session]
    assert restarted.open_sessions() == {}
    rig.issuer.down = False
    assert restarted.settle_pending() == 1
    assert restarted.pending() == {}
    record = rig.issuer.records[entry.transaction_id]
    assert (record["status"], record["captured_amount"]) == ("closed", 750)
    keys = {c[1] for c in rig.issuer.calls if c[0] == "complete"}
    assert keys == {f"park:{entry.session}"}  # every attempt the same request id
    assert restarted.settle_pending() == 0


def test_a_card_pulled_away_decides_nothing(rig: Rig) -> None:
    pulled = build_result(Outcome.TRY_AGAIN, config=rig.config, transaction=Transaction(2000))
    decision = rig.gate.decide(pulled)
    assert (decision.action, decision.open) == ("try again", False)
    assert rig.issuer.calls == []
    assert rig.gate.open_sessions() == {}
    assert not (rig.home / "sessions" / "journal.jsonl").read_bytes()


def test_an_unknown_lane_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lane"):
        ParkingGate(tmp_path, FakeIssuer(), load_tariff(), lane="sideways")
