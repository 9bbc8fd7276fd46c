"""Entry point time per transaction, card excluded: pre-processing (Book B §3.1) to
kernel activation (§3.4), with 60 combinations configured (goal under 0.5 ms,
BENCHMARKS.md).

The card's answers (SELECT PPSE with four directory entries, SELECT AID) are recorded
in a dictionary the reader looks up, so the card costs nothing; the kernel activated
returns a result built beforehand, so what is measured is the entry point's own work:
pre-processing of 60 combinations (TTQ copies, limits), polling, PPSE parsing, the
candidate list (60 combinations x 4 entries, Requested Kernel IDs, priorities), the
SELECT AID, the Visa kernel 3/1 rule, the kernel context and activation.

Two figures: :meth:`EntryPoint.run` (one pass: what ``terminal pay`` does) and
:meth:`EntryPoint.process` (the same with outcome processing and the record of the
transaction: exchanges, activation parameters, UI requests).

Run (``scripts/bench`` always collects the whole of bench/, so this file alone)::

    .venv/bin/python -m pytest bench/test_bench_entry_point.py -p no:cacheprovider \
        --benchmark-enable --benchmark-columns=min,median,mean,ops,rounds
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from card.scripted import ScriptedCard
from emvwire.apdu import PPSE, select
from terminal.kernel.config import Combination, TerminalConfig, parse_config
from terminal.kernel.entry_point import EntryPoint
from terminal.kernel.outcome import Outcome
from terminal.kernel.registry import KernelContext, KernelRegistry
from terminal.kernel.transaction import Transaction, TransactionResult, build_result
from terminal.readers.base import CardInfo, Reader, RecordingFeedback

WHEN = datetime(2026, 3, 1, 12, 30, 0)
#: RIDs and their kernels: ten combinations each, 60 in all.
RIDS = {
    "A000000003": "03",
    "A000000004": "02",
    "A000000025": "04",
    "A000000065": "05",
    "A000000152": "06",
    "A000000333": "07",
}
SELECTED = "A0000000031010"


def _config() -> TerminalConfig:
    combos: list[dict[str, Any]] = []
    for rid, kid in RIDS.items():
        for n in range(10):
            combos.append(
                {
                    "aid": f"{rid}{n + 1:02d}10",
                    "kernel_id": kid,
                    "status_check": n % 2 == 0,
                    "zero_amount_allowed": True,
                    "extended_selection": n % 3 == 0,
                    "limits": {"transaction": 100000, "floor": 2000, "cvm_required": 5000},
                    "ttq": "36C04000",
                }
            )
    cfg = parse_config(
        {
            "schema": "tapstack.terminal-config/1",
            "terminal": {"9F1A": "0250", "5F2A": "0978", "5F36": "02"},
            "combinations": combos,
        }
    )
    assert len(cfg.combinations) == 60
    return cfg


def _card_answers() -> dict[bytes, bytes]:
    """What a card with four applications answers, recorded from a scripted card."""
    scripted = ScriptedCard(
        {
            "schema": "tapstack.scripted-card/1",
            "ppse": {
                "entries": [
                    {
                        "aid": "A0000000041010",
                        "label": "MASTERCARD",
                        "priority": "02",
                        "kernel_id": "02",
                    },
                    {"aid": SELECTED, "label": "VISA", "priority": "01", "kernel_id": "03"},
                    {"aid": "A0000000651010", "label": "JCB", "priority": "03"},
                    {"aid": "A0000009991010", "label": "OTHER", "kernel_id": "C10101"},
                ]
            },
            "applications": {SELECTED: {"fci": {"label": "VISA", "pdol": "9F66049F02069F3704"}}},
        }
    )
    scripted.power_on()
    answers = {}
    for name in (PPSE, bytes.fromhex(SELECTED)):
        command = select(name).encode()
        answers[command] = scripted.process(command)
    return answers


class CannedReader(Reader):
    """A reader whose card answers from a dictionary: no card time at all."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.path = "canned:"
        self.feedback = RecordingFeedback()

    def wait_for_card(self, timeout: float | None = None) -> CardInfo:
        return CardInfo(atr=b"\x3b\x80\x80\x01\x01")

    def transmit(self, c_apdu: bytes, timeout: float | None = None) -> bytes:
        return self.answers.get(bytes(c_apdu), b"\x6d\x00")

    def card_present(self) -> bool:
        return True

    def repower(self) -> CardInfo:
        return self.wait_for_card()

    def close(self) -> None:
        pass


class ActivatedKernel:
    """A kernel that ends as soon as it is activated (what follows is the kernel's
    time, measured by bench/test_bench_kernel.py)."""

    def __init__(self, kernel_id: bytes, result: TransactionResult) -> None:
        self.kernel_id = kernel_id
        self.name = f"activated {kernel_id.hex()}"
        self.result = result
        self.contexts = 0
        self.last: Combination | None = None

    def activate(self, ctx: KernelContext) -> TransactionResult:
        self.contexts += 1
        self.last = ctx.combination
        return self.result


def _entry_point() -> tuple[EntryPoint, ActivatedKernel, Transaction]:
    cfg = _config()
    transaction = Transaction(1500)
    done = build_result(Outcome.ONLINE_REQUEST, config=cfg, transaction=transaction)
    kernels = {kid: ActivatedKernel(bytes.fromhex(kid), done) for kid in RIDS.values()}
    registry = KernelRegistry(kernels.values())
    entry = EntryPoint(cfg, registry, clock=lambda: WHEN, rng=lambda n: bytes(n))
    return entry, kernels["03"], transaction


def test_entry_point_run_60_combinations(benchmark: Any) -> None:
    entry, visa, transaction = _entry_point()
    reader = CannedReader(_card_answers())
    result = benchmark(entry.run, reader, transaction)
    assert result.outcome is Outcome.ONLINE_REQUEST
    assert visa.contexts >= 1
    assert visa.last is not None
    assert visa.last.aid == bytes.fromhex(SELECTED)


def test_entry_point_process_recorded_60_combinations(benchmark: Any) -> None:
    entry, _visa, transaction = _entry_point()
    reader = CannedReader(_card_answers())
    record = benchmark(entry.process, reader, transaction)
    assert record.outcome is not None
    assert record.outcome.outcome is Outcome.ONLINE_REQUEST
    assert [s[1] for s in record.selects] == ["9000", "9000"]
    assert record.activations[0].aid == bytes.fromhex(SELECTED)
    assert record.activations[0].indicators.ttq == bytes.fromhex("36004000")
