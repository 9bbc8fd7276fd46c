"""Kernel time per tap without the card's time, and APDUs per flow: kernels 4 (American
Express, Book C-4) and 7 (UnionPay, Book C-7) beside kernels 2 and 3
(bench/test_bench_kernel.py, bench/test_bench_kernel2.py).

Each flow is recorded once from a fixture card through the built-in configuration, then
replayed from a reader whose ``transmit`` only returns the next recorded answer: what
is measured is the terminal's own work (entry point, DOLs, TLV, the decisions, CDA or
fDDA with their RSA public operations, field 55). The random source and the clock are fixed, so the
recorded signatures stay valid.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from card.emv import EmvCard
from emvwire.profile import load_profile
from terminal.kernel.config import TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult
from terminal.readers.base import CardInfo, Reader, RecordingFeedback
from terminal.readers.emulated import EmulatedReader

CARDS = Path(__file__).resolve().parents[1] / "fixtures" / "cards"
WHEN = datetime(2026, 3, 1, 12, 30, 0)
UN = bytes.fromhex("A1B2C3D4")


class _Recorder(EmulatedReader):
    """An emulated reader that keeps the answers."""

    def __init__(self, card: Any) -> None:
        super().__init__(card)
        self.answers: list[bytes] = []

    def transmit(self, c_apdu: bytes) -> bytes:
        answer = super().transmit(c_apdu)
        self.answers.append(answer)
        return answer


class _Replay(Reader):
    """Answers from a recording: the card costs nothing."""

    path = "replay:"

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.position = 0
        self.feedback = RecordingFeedback()

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        self.position = 0
        return CardInfo()

    def transmit(self, c_apdu: bytes) -> bytes:
        self.position += 1
        return self.answers[self.position - 1]

    def card_present(self) -> bool:
        return True

    def repower(self) -> CardInfo:
        return self.wait_for_card()

    def close(self) -> None:
        pass


def _entry(cfg: TerminalConfig) -> EntryPoint:
    return EntryPoint(cfg, rng=lambda n: UN[:n], clock=lambda: WHEN)


def _config(kernel_id: bytes, **changes: Any) -> TerminalConfig:
    cfg = default_config()
    combos = tuple(
        replace(c, **changes) if c.kernel_id == kernel_id else c for c in cfg.combinations
    )
    return replace(cfg, combinations=combos)


def _bench(benchmark: Any, card: str, amount: int, cfg: TerminalConfig) -> TransactionResult:
    recorder = _Recorder(EmvCard(load_profile(CARDS / f"{card}.json")))
    _entry(cfg).run(recorder, Transaction(amount))
    reader = _Replay(recorder.answers)
    result: TransactionResult = benchmark(_entry(cfg).run, reader, Transaction(amount))
    benchmark.extra_info["apdus"] = result.apdu_count
    benchmark.extra_info["outcome"] = result.outcome.label
    return result


def test_amex_online_with_cda(benchmark: Any) -> None:
    result = _bench(benchmark, "amex-card", 1234, _config(b"\x04"))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 8


def test_amex_offline_with_cda(benchmark: Any) -> None:
    cfg = _config(b"\x04", floor_limit=5000, terminal_floor_limit=5000)
    result = _bench(benchmark, "amex-card", 1234, cfg)
    assert result.outcome is Outcome.APPROVED
    assert result.apdu_count == 8


def test_unionpay_online(benchmark: Any) -> None:
    result = _bench(benchmark, "unionpay-card", 1234, _config(b"\x07"))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 3


def test_unionpay_offline_with_fdda(benchmark: Any) -> None:
    result = _bench(benchmark, "unionpay-card", 1234, _config(b"\x07", floor_limit=5000))
    assert result.outcome is Outcome.APPROVED
    assert result.apdu_count == 7


def test_unionpay_phone_cdcvm_with_fdda(benchmark: Any) -> None:
    result = _bench(benchmark, "unionpay-phone", 6000, _config(b"\x07"))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 8
