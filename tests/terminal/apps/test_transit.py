"""The transit gate's offline decision (terminal.apps.transit) on real kernel results of
the fixture cards (emulated reader, in process): what opens, what is denied and why,
what the journal holds (the contract's TAP, track 2 sealed), the first-ride limit per
card and day, and what a restarted gate remembers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from card.emv import EmvCard
from emvwire.profile import load_profile
from emvwire.seal import generate_keypair, open_box
from terminal.apps.denylist import DenyList
from terminal.apps.journal import JOURNAL_FILE, Journal
from terminal.apps.transit import TransitGate, TransitSettings, kernel_accepts, scheme_of
from terminal.kernel.config import default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import OdaResult, Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[3]
CARDS = ROOT / "fixtures" / "cards"
PRIVATE, PUBLIC = generate_keypair()
#: The keys of the gate protocol's TAP (backoffice/service.py), and the journal's seq.
TAP_KEYS = {
    "tap_id", "gate_id", "time", "mode", "direction", "zone", "card_reference", "masked_pan",
    "token", "scheme", "aid", "outcome", "oda", "decision", "deny_reason", "amount", "currency",
    "icc_data", "track2_sealed",
}  # fmt: skip


def _tap(name: str, amount: int = 100) -> TransactionResult:
    card = EmvCard(load_profile(CARDS / f"{name}.json"))  # counters in memory
    reader = EmulatedReader(card, path=f"emulated:{name}")
    return EntryPoint(default_config()).run(reader, Transaction(amount))


@pytest.fixture(scope="module")
def results() -> dict[str, TransactionResult]:
    names = ("visa-card", "visa-phone", "mastercard-card", "mastercard-phone")
    return {name: _tap(name) for name in names}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 7, 31, 2, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


_OPEN: list[Journal] = []


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    while _OPEN:
        _OPEN.pop().close()


def _gate(home: Path, clock: Clock, limit: int = 2, **extra: object) -> TransitGate:
    settings = TransitSettings("G1", PUBLIC, first_ride_limit=limit, **extra)  # type: ignore[arg-type]
    journal = Journal(home / "journal")
    _OPEN.append(journal)
    return TransitGate(settings, journal, DenyList(home / "deny"), clock=clock)


def test_the_fixture_cards_complete_the_kernel_as_a_gate_needs(
    results: dict[str, TransactionResult],
) -> None:
    # Visa qVSDC: online request with an ARQC, no ODA; Mastercard: CDA passed.
    for name, result in results.items():
        assert result.outcome is Outcome.ONLINE_REQUEST, (name, result.reasons)
        assert kernel_accepts(result), name
        assert result.card_reference
    assert results["mastercard-card"].oda is OdaResult.PASSED
    assert results["visa-card"].oda is OdaResult.NOT_PERFORMED
    assert scheme_of(results["visa-card"].aid) == "visa"
    assert scheme_of(results["mastercard-phone"].aid) == "mastercard"


def test_a_good_card_opens_and_its_tap_is_journaled_as_the_protocol_says(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock, zone="3", direction="on")
    result = results["visa-card"]
    verdict = gate.decide(result)
    assert (verdict.decision, verdict.reason) == ("open", None)
    assert verdict.masked_pan == "476173******0010"
    (record,) = gate.journal.records()
    assert verdict.record == record
    assert set(record) == TAP_KEYS | {"seq"}
    assert record["tap_id"] == "G1:1"
    assert record["time"] == "2026-11-24T07:31:02.123Z"
    assert (record["mode"], record["direction"], record["zone"]) == ("transit", "on", "3")
    assert (record["outcome"], record["oda"], record["scheme"]) == (
        "online_request",
        "not_performed",
        "visa",
    )
    assert (record["amount"], record["currency"]) == (100, "978")
    assert record["card_reference"] == result.card_reference
    assert record["icc_data"] == result.authorisation_data.hex().upper()
    # Track 2 only sealed, bound to the tap id: the back office opens it, nobody else.
    box = bytes.fromhex(record["track2_sealed"])
    assert open_box(PRIVATE, box, b"G1:1") == result.track2
    with pytest.raises(ValueError, match="sealed"):
        open_box(PRIVATE, box, b"G1:2")
    on_disk = (home / "journal" / JOURNAL_FILE).read_text().upper()
    assert result.track2.hex().upper() not in on_disk
    assert "4761739001010010" not in on_disk


def test_a_card_on_the_deny_list_is_denied_and_the_denial_is_journaled_without_track2(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock)
    result = results["mastercard-phone"]
    gate.deny_list.apply({"version": 4, "add": [result.card_reference]})
    verdict = gate.decide(result)
    assert (verdict.decision, verdict.reason) == ("deny", "deny_list")
    (record,) = gate.journal.records()
    assert (record["decision"], record["deny_reason"]) == ("deny", "deny_list")
    assert record["track2_sealed"] is None
    assert gate.decide(results["mastercard-card"]).decision == "open"  # another card rides
    gate.deny_list.apply({"version": 5, "remove": [result.card_reference]})
    assert gate.decide(result).decision == "open"


def test_an_unknown_card_rides_within_the_first_ride_limit_per_day(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock, limit=2)
    card = results["visa-phone"]
    assert [gate.decide(card).decision for _ in range(2)] == ["open", "open"]
    third = gate.decide(card)
    assert (third.decision, third.reason) == ("deny", "first_ride_limit")
    assert gate.decide(results["visa-card"]).decision == "open"  # the limit is per card
    # A new travel day (UTC date): the count starts again.
    clock.now += timedelta(days=1)
    assert gate.decide(card).decision == "open"
    decisions = [r["decision"] for r in gate.journal.records()]
    assert decisions == ["open", "open", "deny", "open", "open"]


def test_a_card_the_back_office_acknowledged_is_known_and_rides_past_the_limit(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock, limit=1)
    card = results["mastercard-card"]
    assert gate.decide(card).decision == "open"
    assert gate.decide(card).reason == "first_ride_limit"
    # The uploader got a 200 for both taps: the card is known.
    records = gate.journal.pending()
    gate.journal.acknowledge(records[-1]["seq"])
    gate.acknowledged(records)
    assert gate.known(card.card_reference)
    assert [gate.decide(card).decision for _ in range(3)] == ["open"] * 3
    # ... and remains subject to the deny list.
    gate.deny_list.apply({"version": 1, "add": [card.card_reference]})
    assert gate.decide(card).reason == "deny_list"


def test_a_restarted_gate_remembers_todays_rides_and_what_the_back_office_holds(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock, limit=1)
    known, unknown = results["mastercard-card"], results["visa-card"]
    gate.decide(known)
    gate.journal.acknowledge(1)
    gate.decide(unknown)
    gate.journal.close()
    again = _gate(home, clock, limit=1)
    assert again.known(known.card_reference)
    assert not again.known(unknown.card_reference)
    assert again.opens_today(unknown.card_reference) == 1
    assert again.decide(unknown).reason == "first_ride_limit"
    assert again.decide(known).decision == "open"
    assert again.journal.records()[-1]["tap_id"] == "G1:4"


def test_a_card_pulled_away_is_try_again_and_nothing_is_journaled(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock)
    pulled = dataclasses.replace(
        results["visa-card"], outcome=Outcome.TRY_AGAIN, reasons=("the card left the field",)
    )
    verdict = gate.decide(pulled)
    assert (verdict.decision, verdict.reason) == ("retry", "try_again")
    assert "left the field" in verdict.detail
    assert len(gate.journal) == 0


@pytest.mark.parametrize(
    ("change", "journaled"),
    [
        ({"outcome": Outcome.DECLINED}, False),  # the card refused (AAC)
        ({"outcome": Outcome.END_APPLICATION}, False),
        ({"card_reference": "", "masked_pan": ""}, False),  # the PAN was never read
        ({"oda": OdaResult.FAILED}, True),  # an ARQC does not excuse a failed ODA
        ({"outcome": Outcome.APPROVED}, True),  # offline approval without ODA
        ({"track2": b""}, True),  # nothing to authorise later
        ({"authorisation_data": b""}, True),
    ],
)
def test_a_kernel_that_did_not_complete_as_a_gate_needs_is_a_card_error(
    home: Path,
    clock: Clock,
    results: dict[str, TransactionResult],
    change: dict[str, object],
    journaled: bool,
) -> None:
    gate = _gate(home, clock)
    verdict = gate.decide(dataclasses.replace(results["visa-card"], **change))  # type: ignore[arg-type]
    assert (verdict.decision, verdict.reason) == ("deny", "card_error")
    assert len(gate.journal) == int(journaled)
    if journaled:
        record = gate.journal.records()[0]
        assert (record["decision"], record["deny_reason"], record["track2_sealed"]) == (
            "deny",
            "card_error",
            None,
        )
        assert record["outcome"] in ("approved", "online_request")


def test_a_journal_that_cannot_be_written_keeps_the_gate_closed(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    class FullDisk(Journal):
        def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
            raise OSError(28, "No space left on device")

    journal = FullDisk(home / "j")
    _OPEN.append(journal)
    gate = TransitGate(TransitSettings("G1", PUBLIC), journal, DenyList(), clock=clock)
    with pytest.raises(OSError, match="No space"):
        gate.decide(results["visa-card"])
    assert gate.opens_today(results["visa-card"].card_reference) == 0


def test_a_journal_of_another_gate_is_refused(home: Path, clock: Clock) -> None:
    with Journal(home / "journal") as journal:
        journal.append({"gate_id": "G7", "decision": "open"})
    with pytest.raises(ValueError, match="G7"):
        _gate(home, clock)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gate_id": "G:1"}, "gate id"),
        ({"seal_key": b"short"}, "32-byte"),
        ({"direction": "sideways"}, "direction"),
        ({"direction": "on"}, "zone"),
        ({"currency": "EUR"}, "numeric"),
        ({"first_ride_limit": -1}, ">= 0"),
    ],
)
def test_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"gate_id": "G1", "seal_key": PUBLIC}
    with pytest.raises(ValueError, match=message):
        TransitSettings(**{**base, **kwargs})


def test_the_journal_lines_are_json_objects_of_one_gate(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    gate = _gate(home, clock)
    for result in results.values():
        gate.decide(result)
    lines = (home / "journal" / JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(line)["tap_id"] for line in lines] == ["G1:1", "G1:2", "G1:3", "G1:4"]


def test_every_tap_the_gate_journals_is_one_the_back_office_accepts(
    home: Path, clock: Clock, results: dict[str, TransactionResult]
) -> None:
    """A tap the back office refused (400) would hold up every later upload: each kind
    the gate writes passes the back office's own validation (backoffice)."""
    from backoffice.fares import load_fares
    from backoffice.store import validate_tap

    gate = _gate(home, clock, limit=1, zone="1", direction="off")
    card = results["mastercard-phone"]
    gate.decide(card)  # open
    gate.decide(card)  # first_ride_limit
    gate.deny_list.apply({"version": 1, "add": [results["visa-phone"].card_reference]})
    gate.decide(results["visa-phone"])  # deny_list
    for change in ({"oda": OdaResult.FAILED}, {"track2": b""}, {"authorisation_data": b""}):
        gate.decide(dataclasses.replace(results["visa-card"], **change))
    records = gate.journal.records()
    assert [r["deny_reason"] for r in records] == [
        None, "first_ride_limit", "deny_list", "card_error", "card_error", "card_error",
    ]  # fmt: skip
    rules = load_fares()
    for record in records:
        tap = {k: v for k, v in record.items() if k != "seq"}
        row = validate_tap(tap, "G1", rules, "2026-11-24T07:31:03.000Z")
        assert row[0] == tap["tap_id"]
