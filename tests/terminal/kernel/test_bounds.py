"""What one card may cost the terminal (terminal/kernel/bounds.py): the ``timing`` and
``records`` of the configuration, the pass's time budget, the AFL and record bounds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emvwire.apdu import parse_afl
from terminal.kernel.bounds import Budget, RecordBytes, TransactionTimeoutError, afl_problem
from terminal.kernel.config import (
    CardTiming,
    ConfigError,
    RecordLimits,
    default_config,
    parse_config,
)
from terminal.readers import CardTimeoutError
from terminal.readers.emulated import EmulatedReader
from tests.support.hostile_cards import SilentCard, afl_of
from tests.support.kernel import card

CONFIG = Path(__file__).resolve().parents[3] / "terminal" / "kernel" / "default_config.json"


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(CONFIG.read_text())
    document["ca_keys"] = []
    document.update(changes)
    return document


def test_the_defaults_and_the_built_in_configuration_agree() -> None:
    cfg = default_config()
    assert cfg.timing == CardTiming() == CardTiming(command_ms=2000, transaction_ms=5000)
    assert cfg.records == RecordLimits() == RecordLimits(16, 64, 16384)
    absent = parse_config({k: v for k, v in _document().items() if k not in ("timing", "records")})
    assert (absent.timing, absent.records) == (CardTiming(), RecordLimits())


def test_timing_and_records_are_read_and_checked() -> None:
    cfg = parse_config(
        _document(timing={"command_ms": 250}, records={"records": 8, "total_bytes": 2048})
    )
    assert cfg.timing == CardTiming(command_ms=250, transaction_ms=5000)
    assert (cfg.timing.command, cfg.timing.transaction) == (0.25, 5.0)
    assert cfg.records == RecordLimits(afl_entries=16, records=8, total_bytes=2048)
    bad: list[tuple[str, Any, str]] = [
        ("timing", {"command_ms": 0}, "timing.command_ms"),
        ("timing", {"command_ms": True}, "timing.command_ms"),
        ("timing", {"transaction_ms": "5000"}, "timing.transaction_ms"),
        ("timing", {"deadline": 1}, "timing"),
        ("timing", [2000], "timing"),
        ("records", {"records": -1}, "records.records"),
        ("records", {"afl_entries": 1.5}, "records.afl_entries"),
    ]
    for key, value, path in bad:
        with pytest.raises(ConfigError) as info:
            parse_config(_document(**{key: value}))
        assert info.value.path == path, (key, value)


def test_a_spent_budget_ends_before_the_command() -> None:
    now = [100.0]
    budget = Budget(CardTiming(command_ms=2000, transaction_ms=1000), clock=lambda: now[0])
    reader = EmulatedReader(card("visa-card"))
    reader.wait_for_card(0)
    assert budget.transmit(reader, bytes.fromhex("00A404000E325041592E5359532E444446303100"))
    now[0] += 1.0
    with pytest.raises(TransactionTimeoutError, match="time budget of 1000 ms"):
        budget.transmit(reader, b"\x00\xa4\x04\x00\x00")


def test_a_deadline_the_budget_set_is_the_budget_spent_not_a_card_to_try_again() -> None:
    silent = SilentCard(card("visa-card"))
    reader = EmulatedReader(silent)
    reader.wait_for_card(0)
    # The command time-out (1 s) is longer than what is left of the budget (0.1 s):
    with pytest.raises(TransactionTimeoutError, match="time budget of 100 ms"):
        Budget(CardTiming(command_ms=1000, transaction_ms=100)).transmit(
            reader, b"\x00\xa4\x04\x00"
        )
    reader.wait_for_card(1)
    # The command time-out is the shorter: the card missed its own deadline.
    with pytest.raises(CardTimeoutError):
        Budget(CardTiming(command_ms=100, transaction_ms=5000)).transmit(
            reader, b"\x00\xa4\x04\x00"
        )


def test_the_afl_and_byte_bounds() -> None:
    limits = RecordLimits(afl_entries=2, records=5, total_bytes=100)
    assert afl_problem(parse_afl(afl_of(2, 2)), limits) == ""
    assert "3 records in 3 entries" in afl_problem(parse_afl(afl_of(3, 1)), limits)
    assert "6 records in 2 entries" in afl_problem(parse_afl(afl_of(2, 3)), limits)
    assert "at most 5 records in 2 entries" in afl_problem(parse_afl(afl_of(2, 3)), limits)
    read = RecordBytes(limits)
    assert read.add(bytes(60)) == ""
    assert read.add(bytes(40)) == ""  # exactly the bound
    assert "passed 100 bytes" in read.add(b"\x00")
