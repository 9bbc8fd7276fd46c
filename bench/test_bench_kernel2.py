"""Kernel 2: the terminal's CPU time per Mastercard tap, the card's time left out.

A tap of the software card is recorded once (each R-APDU, with a fixed Unpredictable
Number so that the CDA signature verifies again); the benchmarks replay the answers
from memory, so what is measured is the kernel alone: DOL building, TLV parsing,
relay resistance bookkeeping, processing restrictions, CVM selection, terminal action
analysis and the CDA chain (issuer and ICC certificate recovery, signature check:
three RSA public operations). The goal is under 5 ms per tap.

- ``kernel``: :meth:`FlowKernel.activate` of kernel 2 from GPO to the outcome (7 APDUs);
- ``tap``: the whole transaction through the entry point (PPSE, SELECT, 9 APDUs);
- ``transcript``: the public offline transcript (mock-msc-offline, TC with CDA,
  1408-bit CA, e=3), approved, through the entry point.

Each records the APDUs of its flow in ``extra_info``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from card.emv import EmvCard
from emvwire.oda import CaKeyStore, parse_terminal_config
from terminal.kernel.config import TerminalConfig, default_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.k2.flow import KERNEL
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import KernelContext, KernelRegistry, PreProcessing
from terminal.kernel.transaction import OdaResult, Transaction
from terminal.readers.base import CardInfo, Reader, RecordingFeedback

ROOT = Path(__file__).resolve().parents[1]
WHEN = datetime(2026, 3, 14, 12, 0, 0)
UN = bytes.fromhex("5EED5EED")


class Replay(Reader):
    """Answers the i-th C-APDU with the i-th recorded R-APDU; optionally records."""

    def __init__(self, answers: list[bytes], live: Callable[[bytes], bytes] | None = None) -> None:
        self.path = "replay:"
        self.feedback = RecordingFeedback()
        self.answers = answers
        self.live = live
        self.count = 0

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        return CardInfo()

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        if self.live is not None:
            answer = self.live(c_apdu)
            self.answers.append(answer)
        else:
            answer = self.answers[self.count]
        self.count += 1
        return answer

    def card_present(self) -> bool:
        return True

    def repower(self) -> CardInfo:
        return CardInfo()

    def close(self) -> None:
        pass


def _config() -> TerminalConfig:
    base = default_config()
    return replace(base, combinations=tuple(c for c in base.combinations if c.kernel_id == b"\x02"))


def _entry_point(config: TerminalConfig, when: datetime, un: bytes) -> EntryPoint:
    return EntryPoint(config, KernelRegistry([KERNEL]), rng=lambda n: un, clock=lambda: when)


def _record(config: TerminalConfig) -> list[bytes]:
    card = EmvCard.from_file(ROOT / "fixtures" / "cards" / "mastercard-card.json", persist=False)
    card.power_on()
    answers: list[bytes] = []
    result = _entry_point(config, WHEN, UN).run(
        Replay(answers, card.process), Transaction(1000), wait=False
    )
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.PASSED
    return answers


def test_kernel2_activate_cpu_time(benchmark: Any) -> None:
    config = _config()
    answers = _record(config)
    fci = answers[1][:-2]
    combination = config.combinations[0]
    txn = Transaction(1000, when=WHEN)
    indicators = PreProcessing(floor_limit_exceeded=True)

    def activate() -> Any:
        ctx = KernelContext(
            reader=Replay(answers[2:]),
            config=config,
            combination=combination,
            aid=combination.aid,
            fci=fci,
            fci_sw=0x9000,
            indicators=indicators,
            transaction=txn,
            rng=lambda n: UN,
            clock=lambda: WHEN,
        )
        return KERNEL.activate(ctx)

    result = benchmark(activate)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.PASSED
    benchmark.extra_info["apdus"] = result.apdu_count


def test_kernel2_tap_cpu_time(benchmark: Any) -> None:
    config = _config()
    answers = _record(config)
    ep = _entry_point(config, WHEN, UN)

    def tap() -> Any:
        return ep.run(Replay(answers), Transaction(1000), wait=False)

    result = benchmark(tap)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert result.oda is OdaResult.PASSED
    benchmark.extra_info["apdus"] = result.apdu_count


def _transcript_store() -> CaKeyStore:
    folder = ROOT / "fixtures" / "transcripts"
    keys, _ = parse_terminal_config((folder / "cfg_default_terminal.json").read_text(),
                                    skip_invalid=True)  # fmt: skip
    return CaKeyStore(keys)


def test_kernel2_offline_transcript_cpu_time(benchmark: Any) -> None:
    doc = json.loads((ROOT / "fixtures" / "transcripts" / "mock-msc-offline.json").read_text())
    answers = [bytes.fromhex(a["resp"]) for a in doc["apdus"]]
    # The transcript leaves out SFI 1 record 1 (read fourth): an empty record stands in.
    answers.insert(3, bytes.fromhex("70009000"))
    base = _config()
    combination = replace(base.combinations[0], floor_limit=10_000, terminal_floor_limit=10_000)
    config = replace(
        base,
        terminal_data={
            **base.terminal_data,
            0x9F1A: bytes.fromhex("0056"),
            0x9F35: b"\x26",
            0x9F40: bytes.fromhex("6000F00001"),
        },
        combinations=(combination,),
        ca_keys=_transcript_store(),
    )
    when = datetime(2019, 8, 19, 0, 0, 0)
    ep = _entry_point(config, when, bytes.fromhex(doc["randoms"]))

    def tap() -> Any:
        return ep.run(Replay(answers), Transaction(1, currency=b"\x09\x78"), wait=False)

    result = benchmark(tap)
    assert result.outcome is Outcome.APPROVED
    assert result.oda is OdaResult.PASSED
    benchmark.extra_info["apdus"] = result.apdu_count
