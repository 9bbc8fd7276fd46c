"""Kernel time per tap without the card's time, and APDUs per flow: kernels 4 (American
Express, Book C-4) and 7 (UnionPay, Book C-7) beside kernels 2 and 3
(bench/test_bench_kernel.py, bench/test_bench_kernel2.py).

Each flow is recorded once from a fixture card through the built-in configuration, then
replayed (bench/replay.py): what is measured is the terminal's own work (entry point,
DOLs, TLV, the decisions, CDA or fDDA with their RSA public operations or, on the SM
suite card, SM2 verifications, field 55). The
random source and the clock are fixed, so the recorded signatures stay valid.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.replay import RecordingReader, ReplayReader
from card.emv import EmvCard
from emvwire.profile import load_profile
from terminal.kernel.config import TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.transaction import Transaction, TransactionResult

CARDS = Path(__file__).resolve().parents[1] / "fixtures" / "cards"
WHEN = datetime(2026, 3, 1, 12, 30, 0)
UN = bytes.fromhex("A1B2C3D4")


def _entry(cfg: TerminalConfig) -> EntryPoint:
    return EntryPoint(cfg, rng=lambda n: UN[:n], clock=lambda: WHEN)


def _config(kernel_id: bytes, **changes: Any) -> TerminalConfig:
    cfg = default_config()
    combos = tuple(
        replace(c, **changes) if c.kernel_id == kernel_id else c for c in cfg.combinations
    )
    return replace(cfg, combinations=combos)


def _bench(benchmark: Any, card: str, amount: int, cfg: TerminalConfig) -> TransactionResult:
    recorder = RecordingReader(EmvCard(load_profile(CARDS / f"{card}.json")))
    _entry(cfg).run(recorder, Transaction(amount))
    reader = ReplayReader(recorder.answers)
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


def test_unionpay_sm_offline_with_sm2_fdda(benchmark: Any) -> None:
    """The whole SM suite (fixtures/cards/unionpay-sm-card.json): the same flow as
    the RSA one above, the certificates and fDDA verified with SM2 in pure Python
    (emvwire/crypto/sm2.py), three signature verifications per tap."""
    result = _bench(benchmark, "unionpay-sm-card", 1234, _config(b"\x07", floor_limit=5000))
    assert result.outcome is Outcome.APPROVED
    assert result.oda_method == "fDDA (SM2)"
    assert result.apdu_count == 7


def test_unionpay_phone_cdcvm_with_fdda(benchmark: Any) -> None:
    result = _bench(benchmark, "unionpay-phone", 6000, _config(b"\x07"))
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.apdu_count == 8
