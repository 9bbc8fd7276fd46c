"""Kernel time per tap, without the card's time: entry point + kernel 3 (EMV Book B, C-3).

Each flow is recorded once from a fixture card (or taken from a public transcript); the
benchmark then replays the recorded answers from a reader whose ``transmit`` only
returns the next answer, so what is measured is the terminal's own work: pre-processing,
PPSE parsing and candidates, DOL building, TLV parsing, the decisions, fDDA (issuer and
ICC key recovery and the SDAD: RSA public operations) and the result with its field 55.
The random source and the clock are fixed, so the replayed answers stay valid.

Goal (BENCHMARKS.md): Visa online under 2 ms per tap. APDUs per flow are
checked (3 for Visa online: PPSE, SELECT, GPO).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.replay import RecordingReader, ReplayReader
from card.emv import EmvCard
from emvwire.profile import load_profile
from terminal.kernel.config import TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.k3.flow import KERNEL
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import KernelRegistry
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.emulated import EmulatedReader

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "fixtures" / "cards"
TRANSCRIPTS = ROOT / "fixtures" / "transcripts"
WHEN = datetime(2026, 3, 1, 12, 30, 0)
UN = bytes.fromhex("A1B2C3D4")


def _rng(n: int) -> bytes:
    return UN[:n]


def _entry(
    cfg: TerminalConfig, when: datetime = WHEN, rng: Callable[[int], bytes] = _rng
) -> EntryPoint:
    return EntryPoint(cfg, KernelRegistry(), rng=rng, clock=lambda: when)


def _visa_entry(cfg: TerminalConfig, **kw: Any) -> EntryPoint:
    entry = _entry(cfg, **kw)
    entry.registry.register(KERNEL)
    return entry


def _record(name: str, amount: int, cfg: TerminalConfig) -> list[bytes]:
    card = EmvCard(load_profile(CARDS / f"{name}.json"))
    reader = RecordingReader(card)
    result = _visa_entry(cfg).run(reader, Transaction(amount))
    assert result.outcome in (Outcome.ONLINE_REQUEST, Outcome.APPROVED), result.reasons
    return reader.answers


def _bench(
    benchmark: Any, entry: EntryPoint, answers: list[bytes], txn: Transaction
) -> TransactionResult:
    reader = ReplayReader(answers)
    result: TransactionResult = benchmark(entry.run, reader, txn)
    benchmark.extra_info["apdus"] = result.apdu_count
    benchmark.extra_info["outcome"] = result.outcome.label
    return result


def _config(**visa: Any) -> TerminalConfig:
    cfg = default_config()
    combos = tuple(replace(c, **visa) if c.kernel_id == b"\x03" else c for c in cfg.combinations)
    return replace(cfg, combinations=combos)


def test_visa_online(benchmark: Any) -> None:
    cfg = _config()
    answers = _record("visa-card", 1234, cfg)
    result = _bench(benchmark, _visa_entry(cfg), answers, Transaction(1234))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 3


def test_visa_online_pin(benchmark: Any) -> None:
    cfg = _config()
    answers = _record("visa-card", 6000, cfg)
    result = _bench(benchmark, _visa_entry(cfg), answers, Transaction(6000))
    assert result.online_pin_required
    assert result.apdu_count == 3


def test_visa_offline_with_fdda(benchmark: Any) -> None:
    cfg = _config(floor_limit=5000)
    answers = _record("visa-card", 1234, cfg)
    result = _bench(benchmark, _visa_entry(cfg), answers, Transaction(1234))
    assert result.outcome is Outcome.APPROVED
    assert result.apdu_count == 7


def test_visa_phone_cdcvm_with_fdda(benchmark: Any) -> None:
    cfg = _config()
    answers = _record("visa-phone", 6000, cfg)
    result = _bench(benchmark, _visa_entry(cfg), answers, Transaction(6000))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 8


def test_visa_offline_transcript(benchmark: Any) -> None:
    doc = json.loads((TRANSCRIPTS / "mock-visa-offline.json").read_text())
    answers = [bytes.fromhex(a["resp"]) for a in doc["apdus"]]
    cfg = default_config()
    combos = tuple(
        replace(c, ttq=bytes.fromhex("24004000"), floor_limit=5000) if c.kernel_id == b"\x03" else c
        for c in cfg.combinations
    )
    usd = {**cfg.terminal_data, 0x9F1A: b"\x08\x40", 0x5F2A: b"\x08\x40"}
    cfg = replace(cfg, terminal_data=usd, combinations=combos)
    entry = _visa_entry(cfg, when=datetime(2019, 8, 19), rng=lambda n: b"\xab" * n)
    result = _bench(benchmark, entry, answers, Transaction(200))
    assert result.outcome is Outcome.APPROVED
    assert result.apdu_count == 6


def test_whole_tap_on_the_emulated_card(benchmark: Any) -> None:
    """For scale: the same Visa online tap with the software card answering (card time
    included: ATC, cryptogram, fDDA signature on the card side)."""
    cfg = _config()
    card = EmvCard(load_profile(CARDS / "visa-card.json"))
    entry = _visa_entry(cfg, rng=secrets.token_bytes)
    reader = EmulatedReader(card)
    result = benchmark(entry.run, reader, Transaction(1234))
    assert result.outcome is Outcome.ONLINE_REQUEST
