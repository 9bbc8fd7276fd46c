"""No card holds the terminal hostage (in process, the emulated driver).

Every command has a deadline and every pass of a transaction a time budget (the
configuration's ``timing``), and the records a kernel reads from one card are bounded
(``records``): each hostile card of tests/support/hostile_cards.py ends in an outcome
with its reason, never a hang or an exception, and the reader serves the next tap. The
configurations are short so that each test finishes fast; no test asserts a time.
Data after the FCI template is the other side: tolerated, not a reason to drop the card.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from terminal.kernel.config import RecordLimits, TerminalConfig
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.reading import read_card
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader
from tests.support.hostile_cards import (
    HugeRecordCard,
    SilentCard,
    SlowCard,
    afl_of,
    afl_rewrite,
    after_fci,
    short_timing,
)
from tests.support.kernel import WHEN, LoggingCard, MitmCard, card, config, tap


def _run(reader: EmulatedReader, cfg: TerminalConfig, amount: int = 1234) -> TransactionResult:
    return EntryPoint(cfg, clock=lambda: WHEN).run(reader, Transaction(amount))


def _why(result: TransactionResult) -> str:
    return "; ".join(result.reasons)


def _next_tap_works(reader: EmulatedReader, cfg: TerminalConfig, name: str) -> None:
    """The same reader, the hostile card gone and a good one presented: a normal tap."""
    reader.take_away()
    reader.card = card(name)
    reader.present()
    assert _run(reader, cfg).outcome is Outcome.ONLINE_REQUEST


# --- a card that never answers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("visa-card", 0),  # silent from SELECT PPSE on
        ("visa-card", 2),  # answers the SELECTs, then not GET PROCESSING OPTIONS
        ("mastercard-card", 2),  # kernel 2: silent at GPO
        ("mastercard-card", 4),  # kernel 2: silent in the records
    ],
)
def test_a_silent_card_ends_in_try_again_and_the_reader_serves_the_next_tap(
    name: str, answers: int
) -> None:
    silent = SilentCard(card(name), answers=answers)
    reader = EmulatedReader(silent)
    cfg = short_timing()
    result = _run(reader, cfg)
    assert result.outcome is Outcome.TRY_AGAIN, _why(result)
    assert "did not answer" in _why(result)
    assert silent.unanswered == 1  # one command kept unanswered, nothing sent after it
    assert len(silent.commands) == answers + 1
    _next_tap_works(reader, cfg, name)


def test_a_silent_card_through_outcome_processing_ends_at_the_restart_limit() -> None:
    silent = SilentCard(card("visa-card"))
    reader = EmulatedReader(silent)
    record = EntryPoint(short_timing(), clock=lambda: WHEN).process(
        reader, Transaction(1234), timeout=1.0
    )
    assert record.result is not None
    assert record.result.outcome is Outcome.TRY_AGAIN
    assert record.restarts == 4  # every restart met the same silent card; the last stands
    assert silent.unanswered == 5
    assert silent.field_off  # the field went off at the end


def test_terminal_read_of_a_silent_card_is_a_reader_error_not_a_hang() -> None:
    from terminal.readers.base import CardTimeoutError

    reader = EmulatedReader(SilentCard(card("visa-card"), answers=1))
    reader.wait_for_card(0)
    with pytest.raises(CardTimeoutError, match="did not answer"):
        read_card(reader, short_timing())


# --- slow cards --------------------------------------------------------------------------


def test_a_slow_card_under_the_deadline_is_served() -> None:
    slow = SlowCard(card("visa-card"), delay=0.1)
    result = _run(EmulatedReader(slow), short_timing(command_ms=1000, transaction_ms=5000))
    assert result.outcome is Outcome.ONLINE_REQUEST, _why(result)
    assert len(slow.commands) == 3


@pytest.mark.parametrize("name", ["visa-card", "mastercard-card"])
def test_a_card_slower_than_the_deadline_ends_in_try_again(name: str) -> None:
    slow = SlowCard(card(name), delay=0.6)
    reader = EmulatedReader(slow)
    cfg = short_timing(command_ms=150, transaction_ms=5000)
    result = _run(reader, cfg)
    assert result.outcome is Outcome.TRY_AGAIN, _why(result)
    assert "did not answer" in _why(result)
    assert len(slow.commands) == 1  # its late answer was thrown away, nothing else sent
    _next_tap_works(reader, cfg, name)


@pytest.mark.parametrize(("name", "transaction_ms"), [("visa-card", 300), ("mastercard-card", 700)])
def test_a_card_just_under_each_deadline_spends_the_budget_and_ends(
    name: str, transaction_ms: int
) -> None:
    """Each answer comes before its command's deadline, but they add up: the pass's
    budget (shorter than what the card would take) ends the application."""
    slow = SlowCard(card(name), delay=0.2)
    reader = EmulatedReader(slow)
    cfg = short_timing(command_ms=500, transaction_ms=transaction_ms)
    result = _run(reader, cfg)
    assert result.outcome is Outcome.END_APPLICATION, _why(result)
    assert f"time budget of {transaction_ms} ms" in _why(result)
    _next_tap_works(reader, short_timing(), name)


# --- a card that leaves mid-transaction -------------------------------------------------


@pytest.mark.parametrize(("name", "pull_after"), [("visa-card", 2), ("mastercard-card", 4)])
def test_a_card_that_leaves_mid_transaction_is_try_again_then_the_next_is_served(
    name: str, pull_after: int
) -> None:
    reader = EmulatedReader(card(name, pull_after=pull_after))
    cfg = short_timing()
    result = _run(reader, cfg)
    assert result.outcome is Outcome.TRY_AGAIN, _why(result)
    assert "left the field" in _why(result)
    assert not reader.card_present()
    _next_tap_works(reader, cfg, name)


# --- record bounds -----------------------------------------------------------------------


def _reads(log: LoggingCard) -> int:
    return sum(1 for c in log.commands if c[1] == 0xB2)


@pytest.mark.parametrize(
    ("entries", "records", "named"),
    [
        (30, 255, "7650 records in 30 entries"),  # the whole of what EMV allows
        (17, 1, "17 records in 17 entries"),  # one entry too many
        (4, 17, "68 records in 4 entries"),  # few entries, too many records
    ],
)
@pytest.mark.parametrize("name", ["visa-card", "mastercard-card"])
def test_an_afl_past_the_bounds_ends_before_any_read_record(
    name: str, entries: int, records: int, named: str
) -> None:
    log = MitmCard(card(name), afl_rewrite(afl_of(entries, records)))
    # kernel 3 reads records for an offline approval only: a floor limit above the amount
    result = tap(log, 1234, cfg=config(floor_limit=5000))
    assert result.outcome is Outcome.END_APPLICATION, _why(result)
    assert named in _why(result)
    assert "at most 64 records in 16 entries" in _why(result)
    assert _reads(log) == 0


def test_an_afl_within_the_bounds_is_read() -> None:
    """The fixture cards' own AFLs are far inside the bounds, and a configuration can
    narrow them: 4 records in 2 entries read, one record fewer refused."""
    log = LoggingCard(card("visa-card"))
    assert tap(log, 1234, cfg=config(floor_limit=5000)).outcome is Outcome.APPROVED
    assert _reads(log) == 4
    narrow = replace(config(floor_limit=5000), records=RecordLimits(afl_entries=2, records=3))
    log = LoggingCard(card("visa-card"))
    result = tap(log, 1234, cfg=narrow)
    assert result.outcome is Outcome.END_APPLICATION
    assert "4 records in 2 entries" in _why(result)


@pytest.mark.parametrize("name", ["visa-card", "mastercard-card"])
def test_huge_records_end_the_transaction_at_the_byte_bound(name: str) -> None:
    huge = HugeRecordCard(card(name), size=9000)  # two of them pass 16 KiB
    result = tap(huge, 1234, cfg=config(floor_limit=5000))
    assert result.outcome is Outcome.END_APPLICATION, _why(result)
    assert "passed 16384 bytes" in _why(result)
    assert huge.read_records() == 2  # stopped at the second record


def test_terminal_read_keeps_to_the_bounds_and_says_why() -> None:
    log = MitmCard(card("visa-card"), afl_rewrite(afl_of(30, 255)))
    reader = EmulatedReader(log)
    reader.wait_for_card(0)
    reading = read_card(reader, short_timing())
    problems = [p for a in reading.applications for p in a.problems]
    assert any("7650 records in 30 entries" in p for p in problems), problems
    assert _reads(log) == 0

    reader = EmulatedReader(HugeRecordCard(card("visa-card"), size=9000))
    reader.wait_for_card(0)
    reading = read_card(reader, short_timing())
    problems = [p for a in reading.applications for p in a.problems]
    assert any("passed 16384 bytes" in p for p in problems), problems


def test_terminal_read_of_a_slow_card_stops_at_the_budget() -> None:
    reader = EmulatedReader(SlowCard(card("visa-card"), delay=0.2))
    reader.wait_for_card(0)
    reading = read_card(reader, short_timing(command_ms=500, transaction_ms=300))
    assert any("time budget of 300 ms" in p for p in reading.problems), reading.problems


# --- tolerance: data after the FCI template ------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        bytes.fromhex("9F0A0400010101"),  # another data object after the template
        bytes.fromhex("DEADBEEF"),  # bytes that are not BER-TLV at all
        bytes.fromhex("0000"),  # padding
    ],
    ids=["object", "junk", "padding"],
)
@pytest.mark.parametrize(
    ("ppse", "adf"), [(True, False), (False, True), (True, True)], ids=["ppse", "adf", "both"]
)
@pytest.mark.parametrize(
    ("name", "amount", "expected"),
    [
        ("visa-card", 1234, Outcome.ONLINE_REQUEST),
        ("visa-card", 6000, Outcome.ONLINE_REQUEST),
        ("mastercard-card", 1234, Outcome.ONLINE_REQUEST),
    ],
)
def test_data_after_the_fci_template_is_ignored(
    tail: bytes, ppse: bool, adf: bool, name: str, amount: int, expected: Outcome
) -> None:
    plain = tap(card(name), amount)
    mitm = MitmCard(card(name), after_fci(tail, ppse=ppse, adf=adf))
    result = tap(mitm, amount)
    assert result.outcome is expected is plain.outcome, _why(result)
    assert result.aid == plain.aid
    assert result.cvm is plain.cvm
    assert len(mitm.commands) == plain.apdu_count


def test_terminal_read_lists_the_applications_of_a_ppse_with_data_after_it() -> None:
    reader = EmulatedReader(MitmCard(card("visa-card"), after_fci(bytes.fromhex("DEADBEEF"))))
    reader.wait_for_card(0)
    reading = read_card(reader, short_timing())
    assert [a.aid.hex().upper() for a in reading.applications] == ["A0000000031010"]
    app: Any = reading.applications[0]
    assert app.gpo_sw == 0x9000  # the PDOL of the FCI was found and filled
    assert app.records
